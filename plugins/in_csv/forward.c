/* in_csv: reading a file from start to end.
 *
 * Chunks are read by libuv's thread pool into fresh reference-counted
 * buffers; a row cut by the end of a chunk is carried to the front of the
 * next one (batches still hold the old buffer). Every emitted batch carries
 * the offset just past its last row, which is what the checkpoint stores. */
#include <math.h>
#include <string.h>

#include "in_csv.h"

static void on_read(uv_fs_t *req)
{
    csv_ctx *c = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    c->reading = false;
    if (c->stopped) return;
    if (n < 0) {
        csv_give_up(c, uv_strerror((int)n));
        return;
    }
    c->len += (size_t)n;
    if (n == 0) c->eof = true;
    csv_produce(c);
}

/* Moves the unfinished row to the front of a fresh buffer (batches still hold
 * the old one) and reads the next chunk after it. */
static void start_read(csv_ctx *c)
{
    size_t carry = c->buf ? c->len - c->off : 0;
    size_t cap = (size_t)c->buffer_size;
    while (cap < carry * 2) cap *= 2;
    rtp_buf *nb = rtp_buf_new(cap);
    if (carry) memcpy(rtp_buf_data(nb), rtp_buf_data(c->buf) + c->off, carry);
    c->base += c->off;
    rtp_buf_unref(c->buf);
    c->buf = nb;
    c->len = carry;
    c->off = 0;
    uv_buf_t ub = uv_buf_init(rtp_buf_data(nb) + carry, (unsigned)(cap - carry));
    c->read_req.data = c;
    c->reading = true;
    uv_fs_read(rtp_instance_loop(c->ins), &c->read_req, c->fd, &ub, 1, (int64_t)(c->base + carry), on_read);
}

/* A row longer than max_row_size: report its start, then discard bytes up to
 * the next line end, however many reads away that is. */
static void start_skipping(csv_ctx *c)
{
    csv_row row = {.start = c->off, .end = c->off + (c->max_row_size < 256 ? c->max_row_size : 256)};
    csv_bad_row(c, &row, "row longer than max_row_size");
    c->skipping = true;
}

/* True when the line end was found in the buffer. */
static bool skip_to_line_end(csv_ctx *c)
{
    char *data = rtp_buf_data(c->buf);
    char *nl = memchr(data + c->off, '\n', c->len - c->off);
    c->off = nl ? (size_t)(nl - data) + 1 : c->len;
    c->skipping = !nl;
    return nl != NULL;
}

/* ---- pacing ------------------------------------------------------------------ */

void csv_on_timer(uv_timer_t *t)
{
    csv_ctx *c = t->data;
    if (c->reverse)
        csv_reverse_produce(c);
    else
        csv_produce(c);
}

static void wait_ms(csv_ctx *c, double ms)
{
    csv_emit_batch(c, c->base + c->off);
    uv_timer_start(&c->timer, csv_on_timer, ms < 1 ? 1 : (uint64_t)ceil(ms), 0);
}

/* True when the row may go now; otherwise arms the timer for when it may. */
bool csv_row_due(csv_ctx *c, const csv_row *row)
{
    double elapsed_ms = (double)(uv_hrtime() - c->start_ns) / 1e6;
    if (c->rate > 0) {
        double due = (double)c->paced_rows * 1000.0 / c->rate;
        if (due > elapsed_ms) return wait_ms(c, due - elapsed_ms), false;
        return true;
    }
    if (c->speed > 0 && row->ncells == c->ncols) {
        const csv_cell *cell = &row->cells[c->time_col];
        int64_t t;
        if (cell->flags & CSV_ESCAPED || rtp_timefmt_parse(c->tf, cell->p, cell->len, &t) < 0) return true;
        if (!c->have_first) c->first_event = t, c->have_first = true;
        double due = (double)(t - c->first_event) / 1e6 / c->speed;
        if (due > elapsed_ms) return wait_ms(c, due - elapsed_ms), false;
    }
    return true;
}

/* ---- the producing loop -------------------------------------------------- */

void csv_produce(csv_ctx *c)
{
    bool paced = c->rate > 0 || c->speed > 0;
    while (!c->stopped && !c->done && !c->reading && !rtp_input_paused(c->ins)) {
        if (c->skipping && !skip_to_line_end(c) && !c->eof) {
            start_read(c);
            return;
        }
        csv_row row;
        unsigned flags = (c->eof ? CSV_EOF : 0) | (c->base + c->off == 0 ? CSV_BOF : 0);
        csv_status st = c->buf ? csv_next_row(&c->parser, rtp_buf_data(c->buf), c->len, c->off, flags, &row)
                               : CSV_NEED_MORE;
        if (st == CSV_END) return csv_finish(c);
        if (st == CSV_NEED_MORE && c->eof) return csv_finish(c); /* cannot happen: CSV_EOF decides */
        if (st == CSV_NEED_MORE) {
            if (c->buf && c->len - c->off >= c->max_row_size) {
                start_skipping(c);
                continue;
            }
            csv_emit_batch(c, c->base + c->off);
            start_read(c);
            return;
        }
        if (paced && !csv_row_due(c, &row)) return;
        c->paced_rows++;
        if (st == CSV_BAD_ROW)
            csv_bad_row(c, &row, row.error);
        else
            csv_take_row(c, &row);
        c->off = row.end;
        if (c->batch && rtp_batch_count(c->batch) >= (size_t)c->batch_size) csv_emit_batch(c, c->base + c->off);
    }
    csv_emit_batch(c, c->base + c->off);
}

