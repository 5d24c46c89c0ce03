/* in_csv: replaying a file from its last row to its first (reverse = true),
 * for files written newest first, such as the ECB history.
 *
 * Reading backwards cannot tell where a row starts once quoted cells hold
 * line ends, so a first pass on the thread pool reads forward and notes the
 * offset of every BLOCK_ROWS-th row. Blocks are then read last to first and
 * each one's rows emitted in reverse. Memory: the index (8 bytes per
 * BLOCK_ROWS rows) and one block at a time.
 *
 * Progress runs backwards too: a batch's cookie is the offset of the
 * earliest row it holds, and a checkpoint at offset X means every row from X
 * to the end is delivered, so a restart replays [start, X) only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "in_csv.h"

#define BLOCK_ROWS 1024

struct csv_reverse {
    uv_work_t work;
    uint64_t end;    /* the replay covers [data_start, end) */
    uint64_t *marks; /* block starts, ascending, then end */
    size_t n_marks, cap_marks;
    int error; /* errno of the index pass */
    bool indexed;
    size_t block;  /* blocks not yet read: the next is block - 1 */
    size_t *rows;  /* row starts in the current block, then its length */
    size_t n_rows, cap_rows;
    size_t next; /* rows of the current block not yet emitted */
    uv_fs_t read_req;
};

static void add_mark(csv_reverse *rv, uint64_t off)
{
    if (rv->n_marks && rv->marks[rv->n_marks - 1] == off) return;
    if (rv->n_marks == rv->cap_marks) {
        rv->cap_marks = rv->cap_marks ? rv->cap_marks * 2 : 64;
        rv->marks = rtp_xrealloc(rv->marks, rv->cap_marks * sizeof *rv->marks);
    }
    rv->marks[rv->n_marks++] = off;
}

/* ---- the index pass (thread pool: no SDK calls here) --------------------- */

static int fill(csv_ctx *c, char **buf, size_t *cap, size_t *len, uint64_t at)
{
    if (*len == *cap) {
        if (*cap >= c->max_row_size * 2) return EFBIG; /* one row fills it: too long */
        *buf = rtp_xrealloc(*buf, *cap *= 2);
    }
    uint64_t left = c->rev->end - at;
    size_t want = *cap - *len < left ? *cap - *len : (size_t)left;
    ssize_t n = pread(c->fd, *buf + *len, want, (off_t)at);
    if (n < 0) return errno;
    *len += (size_t)n;
    return n == 0 && want ? EIO : 0; /* the file shrank under us */
}

static void index_file(uv_work_t *w)
{
    csv_ctx *c = w->data;
    csv_reverse *rv = c->rev;
    size_t cap = (size_t)c->buffer_size, len = 0, off = 0;
    char *buf = rtp_xmalloc(cap);
    uint64_t base = c->data_start, rows = 0;
    add_mark(rv, base);
    for (;;) {
        bool eof = base + len >= rv->end;
        unsigned flags = (eof ? CSV_EOF : 0) | (base + off == 0 ? CSV_BOF : 0);
        csv_row row;
        csv_status st = csv_next_row(&c->parser, buf, len, off, flags, &row);
        if (st == CSV_END) break;
        if (st == CSV_NEED_MORE) {
            memmove(buf, buf + off, len - off);
            base += off, len -= off, off = 0;
            if ((rv->error = fill(c, &buf, &cap, &len, base + len)) != 0) break;
            continue;
        }
        if (++rows % BLOCK_ROWS == 0) add_mark(rv, base + row.end);
        off = row.end;
    }
    add_mark(rv, rv->end);
    free(buf);
}

static void index_done(uv_work_t *w, int status)
{
    csv_ctx *c = w->data;
    csv_reverse *rv = c->rev;
    if (c->stopped || status == UV_ECANCELED) return;
    if (rv->error) {
        csv_give_up(c, rv->error == EFBIG ? "a row is longer than max_row_size" : strerror(rv->error));
        return;
    }
    rv->indexed = true;
    rv->block = rv->n_marks - 1;
    rtp_debug(c->ins, "reverse replay of %s: %zu blocks", c->path, rv->block);
    csv_reverse_produce(c);
}

void csv_reverse_start(csv_ctx *c, uint64_t end)
{
    c->rev = rtp_xcalloc(1, sizeof *c->rev);
    c->rev->end = end;
    c->rev->work.data = c;
    uv_queue_work(rtp_instance_loop(c->ins), &c->rev->work, index_file, index_done);
}

/* ---- replay --------------------------------------------------------------- */

/* Row starts of the block just read, so they can be taken last first. */
static void scan_block(csv_ctx *c)
{
    csv_reverse *rv = c->rev;
    const char *data = rtp_buf_data(c->buf);
    rv->n_rows = 0;
    for (size_t off = 0;;) {
        csv_row row;
        unsigned flags = CSV_EOF | (c->base + off == 0 ? CSV_BOF : 0);
        if (csv_next_row(&c->parser, data, c->len, off, flags, &row) == CSV_END) break;
        if (rv->n_rows == rv->cap_rows) {
            rv->cap_rows = rv->cap_rows ? rv->cap_rows * 2 : BLOCK_ROWS + 1;
            rv->rows = rtp_xrealloc(rv->rows, rv->cap_rows * sizeof *rv->rows);
        }
        rv->rows[rv->n_rows++] = row.start;
        off = row.end;
    }
    rv->next = rv->n_rows;
    c->off = c->len; /* nothing of this block emitted yet */
}

static void on_block(uv_fs_t *req)
{
    csv_ctx *c = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    c->reading = false;
    if (c->stopped) return;
    if (n != (ssize_t)c->len) {
        csv_give_up(c, n < 0 ? uv_strerror((int)n) : "short read during reverse replay (did the file change?)");
        return;
    }
    scan_block(c);
    csv_reverse_produce(c);
}

static void read_block(csv_ctx *c)
{
    csv_reverse *rv = c->rev;
    rv->block--;
    uint64_t start = rv->marks[rv->block], size = rv->marks[rv->block + 1] - start;
    rtp_buf_unref(c->buf);
    c->buf = rtp_buf_new((size_t)size);
    c->base = start;
    c->len = (size_t)size;
    uv_buf_t ub = uv_buf_init(rtp_buf_data(c->buf), (unsigned)size);
    rv->read_req.data = c;
    c->reading = true;
    uv_fs_read(rtp_instance_loop(c->ins), &rv->read_req, c->fd, &ub, 1, (int64_t)start, on_block);
}

void csv_reverse_produce(csv_ctx *c)
{
    csv_reverse *rv = c->rev;
    bool paced = c->rate > 0 || c->speed > 0;
    while (rv->indexed && !c->stopped && !c->done && !c->reading && !rtp_input_paused(c->ins)) {
        if (rv->next == 0) {
            csv_emit_batch(c, c->base + c->off); /* a batch never spans two buffers */
            if (rv->block == 0) return csv_finish(c);
            read_block(c);
            return;
        }
        csv_row row;
        size_t at = rv->rows[rv->next - 1];
        unsigned flags = CSV_EOF | (c->base + at == 0 ? CSV_BOF : 0);
        csv_status st = csv_next_row(&c->parser, rtp_buf_data(c->buf), c->len, at, flags, &row);
        if (paced && !csv_row_due(c, &row)) return;
        c->paced_rows++;
        if (st == CSV_BAD_ROW)
            csv_bad_row(c, &row, row.error);
        else
            csv_take_row(c, &row);
        rv->next--;
        c->off = at;
        if (c->batch && rtp_batch_count(c->batch) >= (size_t)c->batch_size) csv_emit_batch(c, c->base + c->off);
    }
    if (rv->indexed) csv_emit_batch(c, c->base + c->off);
}

void csv_reverse_free(csv_ctx *c)
{
    if (!c->rev) return;
    free(c->rev->marks);
    free(c->rev->rows);
    free(c->rev);
    c->rev = NULL;
}
