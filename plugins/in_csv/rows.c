/* in_csv: turning a tokenized row into a record.
 *
 * Cells become fields that point into the read buffer the batch holds; only
 * cells with "" escapes are copied (into the batch arena). A row that does
 * not fit (cell count, declared type, time format) goes to the error route
 * with its raw bytes, and the run goes on. */
#include <stdio.h>
#include <string.h>

#include "in_csv.h"

static bool is_null_token(const csv_ctx *c, const char *p, size_t n)
{
    for (size_t i = 0; i < c->null_values.n; i++) {
        const char *tok = c->null_values.v[i];
        /* "AAPL" and "12.5" have the length of "null": the first byte sorts them out */
        if (c->null_lens[i] == n && tok[0] == p[0] && memcmp(tok, p, n) == 0) return true;
    }
    return false;
}

static bool parse_bool_view(const char *p, size_t n, bool *out)
{
    char tmp[8];
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    return rtp_parse_bool(tmp, out) == 0;
}

/* Fills f from the cell text; NULL, or why the text does not fit the type. */
static const char *convert(const csv_ctx *c, col_type t, const char *p, size_t n, rtp_field *f)
{
    switch (t) {
    case COL_AUTO:
        f->type = (uint8_t)rtp_classify_number(p, n, &f->v.i, &f->v.d);
        break;
    case COL_INT:
        if (rtp_parse_int64(p, n, &f->v.i) < 0) return "not an int";
        f->type = RTP_INT;
        return NULL;
    case COL_DOUBLE:
        if (rtp_parse_double(p, n, &f->v.d) < 0) return "not a number";
        f->type = RTP_DOUBLE;
        return NULL;
    case COL_BOOL:
        if (!parse_bool_view(p, n, &f->v.b)) return "not a bool";
        f->type = RTP_BOOL;
        return NULL;
    case COL_TIME:
        if (rtp_timefmt_parse(c->tf, p, n, &f->v.t) < 0) return "does not match time_format";
        f->type = RTP_TIME;
        return NULL;
    case COL_STRING: f->type = RTP_STRING; break;
    }
    if (f->type == RTP_STRING) {
        f->v.s = p;
        f->len = (uint32_t)n;
    }
    return NULL;
}

static const char *fill_record(csv_ctx *c, rtp_batch *b, rtp_record *r, const csv_row *row)
{
    for (uint32_t i = 0; i < c->ncols; i++) {
        const csv_cell *cell = &row->cells[i];
        const char *p = cell->p;
        size_t n = cell->len;
        if (cell->flags & CSV_ESCAPED) {
            char *d = rtp_batch_alloc(b, n ? n : 1);
            n = csv_unescape(&c->parser, cell, d);
            p = d;
        }
        rtp_field *f = &r->fields[r->nfields++];
        f->key = c->keys[i];
        f->len = 0;
        f->type = RTP_NULL;
        f->v.i = 0;
        bool quoted = cell->flags & CSV_QUOTED;
        if (!quoted && (n == 0 || is_null_token(c, p, n))) continue;
        const char *bad = convert(c, c->ctype[i], p, n, f);
        if (!bad && (int)i == c->time_col) {
            if (f->type == RTP_TIME) /* a declared time column was parsed just now */
                r->time = f->v.t;
            else if (rtp_timefmt_parse(c->tf, p, n, &r->time) < 0)
                bad = "does not match time_format";
        }
        if (bad) {
            snprintf(c->why, sizeof c->why, "column '%s': '%.*s' %s", rtp_key_name(c->keys[i], NULL),
                     (int)(n > 40 ? 40 : n), p, bad);
            return c->why;
        }
    }
    if (c->time_col >= 0 && r->fields[c->time_col].type == RTP_NULL) return "time_key is empty";
    return NULL;
}

void csv_bad_row(csv_ctx *c, const csv_row *row, const char *why)
{
    uint64_t at = c->base + row->start;
    rtp_warn(c->ins, "bad row at byte %llu: %s", (unsigned long long)at, why);
    rtp_metric_add(c->bad_rows, 1);
    rtp_input_error(c->ins, why, rtp_buf_data(c->buf) + row->start, row->end - row->start);
}

void csv_take_row(csv_ctx *c, const csv_row *row)
{
    if (row->ncells != c->ncols) {
        snprintf(c->why, sizeof c->why, "expected %u cells, found %u", c->ncols, row->ncells);
        csv_bad_row(c, row, c->why);
        return;
    }
    if (!c->batch) c->batch = rtp_input_batch(c->ins);
    rtp_batch_hold(c->batch, c->buf); /* cells point into it; holding twice is a no-op */
    rtp_record *r = rtp_batch_append(c->batch, c->ncols);
    const char *bad = fill_record(c, c->batch, r, row);
    if (bad) {
        r->flags |= RTP_RECORD_DROPPED; /* the engine removes it at emit */
        csv_bad_row(c, row, bad);
    }
    rtp_batch_add_bytes(c->batch, row->end - row->start);
}

void csv_emit_batch(csv_ctx *c, uint64_t cookie)
{
    if (!c->batch) return;
    rtp_batch *b = c->batch;
    c->batch = NULL;
    rtp_input_emit(c->ins, b, cookie);
}

void csv_give_up(csv_ctx *c, const char *why)
{
    rtp_error(c->ins, "%s: %s; this input stops here", c->path, why);
    c->done = true;
    rtp_input_finished(c->ins, c->exit_on_eof);
}

void csv_finish(csv_ctx *c)
{
    csv_emit_batch(c, c->reverse ? c->data_start : c->base + c->off);
    c->done = true;
    rtp_input_finished(c->ins, c->exit_on_eof);
}

