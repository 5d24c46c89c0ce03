/* out_stdout: one line per record on standard output.
 *
 * A pipe or terminal is written as a non-blocking libuv stream, a regular
 * file through the thread pool (files do not block for long). Either way a
 * batch is acknowledged only once the kernel took every byte, so a reader
 * that stops reading holds the batch, not the loop: the inputs pause through
 * backpressure instead of memory growing, and at shutdown closing the
 * stream cancels a write that would otherwise wait for ever.
 *
 * Each batch in flight has its own request and text (max_inflight may be
 * more than 1), and every instance shares one handle on fd 1 (below). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <rtproc/rtproc.h>

enum { FORMAT_JSON, FORMAT_LOGFMT };

typedef struct stdout_ctx {
    int format;
    char *time_key;
    char *tag_key;
    rtp_instance *ins;
} stdout_ctx;

#define OFF(f) offsetof(stdout_ctx, f)
static const rtp_option stdout_options[] = {
    {"format", RTP_OPT_ENUM, "json", 0, OFF(format),
     "json: one RFC 8259 object per line; logfmt: key=value pairs", "json|logfmt"},
    {"time_key", RTP_OPT_STR, NULL, 0, OFF(time_key),
     "add the event time (RFC 3339, UTC) under this name; unset: not printed", NULL},
    {"tag_key", RTP_OPT_STR, NULL, 0, OFF(tag_key), "add the record's tag under this name; unset: not printed",
     NULL},
    RTP_OPT_END};

/* ---- logfmt ---------------------------------------------------------------- */

static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0) return true;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] == '"' || s[i] == '=' || s[i] == '\\') return true;
    return false;
}

static void logfmt_value(rtp_sbuf *out, const char *s, size_t n)
{
    if (needs_quotes(s, n))
        rtp_json_write_string(out, s, n); /* JSON escaping is valid logfmt quoting */
    else
        rtp_sbuf_append(out, s, n);
}

static void logfmt_field(rtp_sbuf *out, const rtp_field *f)
{
    char num[40];
    int n;
    switch (f->type) {
    case RTP_NULL: rtp_sbuf_append(out, "null", 4); break;
    case RTP_BOOL: rtp_sbuf_append(out, f->v.b ? "true" : "false", f->v.b ? 4 : 5); break;
    case RTP_INT:
        n = snprintf(num, sizeof num, "%lld", (long long)f->v.i);
        rtp_sbuf_append(out, num, (size_t)n);
        break;
    case RTP_DOUBLE: rtp_json_write_double(out, f->v.d); break;
    case RTP_TIME: rtp_sbuf_append(out, num, rtp_time_rfc3339(f->v.t, num)); break;
    default: logfmt_value(out, f->v.s, f->len); break;
    }
}

static void logfmt_record(const stdout_ctx *c, rtp_sbuf *out, const rtp_record *r, const char *tag)
{
    size_t start = out->len;
    if (c->time_key) {
        char ts[40];
        rtp_sbuf_append(out, c->time_key, strlen(c->time_key));
        rtp_sbuf_append(out, "=", 1);
        rtp_sbuf_append(out, ts, rtp_time_rfc3339(r->time, ts));
    }
    if (c->tag_key) {
        if (out->len > start) rtp_sbuf_append(out, " ", 1);
        rtp_sbuf_append(out, c->tag_key, strlen(c->tag_key));
        rtp_sbuf_append(out, "=", 1);
        logfmt_value(out, tag, strlen(tag));
    }
    for (uint32_t i = 0; i < r->nfields; i++) {
        size_t klen;
        const char *k = rtp_key_name(r->fields[i].key, &klen);
        if (out->len > start) rtp_sbuf_append(out, " ", 1);
        logfmt_value(out, k, klen);
        rtp_sbuf_append(out, "=", 1);
        logfmt_field(out, &r->fields[i]);
    }
}

/* ---- the one stream on fd 1 ------------------------------------------------- */

/* A batch on its way to fd 1: its text and the request libuv runs for it. */
typedef struct pending {
    union {
        uv_write_t stream;
        uv_fs_t fs;
    } req;
    struct pending *next; /* a file: the writes queued behind this one */
    stdout_ctx *c;
    rtp_batch *batch;
    rtp_sbuf text;
    size_t written;
} pending;

/* Every instance writes through one handle. libuv keeps a single watcher per
 * file descriptor, so a second pipe handle on fd 1 never heard that the pipe
 * had room again: with two stdout outputs and a slow reader the run hung.
 * uv_write queues requests per handle, which keeps batches whole and in
 * order; a file gets the same from a queue of one write at a time, as two
 * thread-pool writes could land in either order. */
static struct {
    int users;
    uv_loop_t *loop;
    uv_stream_t *stream; /* NULL when fd 1 is a file (or could not be opened) */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } handle;
    pending *head, *tail; /* a file: the write running, then those waiting */
} fd1;

/* libuv takes unsigned lengths: a batch's text goes in pieces of this. */
#define PIECE ((size_t)1 << 30)

static uv_stream_t *fd1_open(uv_loop_t *loop)
{
    uv_handle_type type = uv_guess_handle(1);
    if (type == UV_TTY && uv_tty_init(loop, &fd1.handle.tty, 1, 0) == 0) return (uv_stream_t *)&fd1.handle.tty;
    if (type != UV_NAMED_PIPE) return NULL;
    uv_pipe_init(loop, &fd1.handle.pipe, 0);
    if (uv_pipe_open(&fd1.handle.pipe, 1) == 0) return (uv_stream_t *)&fd1.handle.pipe;
    uv_close((uv_handle_t *)&fd1.handle.pipe, NULL);
    return NULL;
}

/* ---- writing ---------------------------------------------------------------- */

static void format_batch(const stdout_ctx *c, rtp_sbuf *out, rtp_batch *b)
{
    rtp_json_write_opts opts = {c->time_key, c->tag_key, rtp_batch_tag(b)};
    for (size_t i = 0; i < rtp_batch_count(b); i++) {
        const rtp_record *r = rtp_batch_record(b, i);
        if (c->format == FORMAT_JSON)
            rtp_json_write_record(out, r, &opts);
        else
            logfmt_record(c, out, r, opts.tag);
        rtp_sbuf_append(out, "\n", 1);
    }
}

static void finish(pending *p, int status)
{
    rtp_output_done(p->c->ins, p->batch, status);
    rtp_sbuf_free(&p->text);
    free(p);
}

static void on_stream_written(uv_write_t *req, int status)
{
    pending *p = req->data;
    if (status < 0 && status != UV_ECANCELED)
        rtp_error(p->c->ins, "write to stdout failed: %s", uv_strerror(status));
    finish(p, status < 0 ? RTP_RETRY : RTP_OK);
}

static void stream_write(pending *p)
{
    size_t n = (p->text.len + PIECE - 1) / PIECE;
    uv_buf_t one = {0}, *bufs = n > 1 ? rtp_xmalloc(n * sizeof *bufs) : &one;
    for (size_t i = 0; i < n; i++) {
        size_t off = i * PIECE, len = p->text.len - off;
        bufs[i] = uv_buf_init(p->text.data + off, (unsigned)(len < PIECE ? len : PIECE));
    }
    p->req.stream.data = p;
    int rc = uv_write(&p->req.stream, fd1.stream, bufs, (unsigned)n, on_stream_written); /* copies bufs */
    if (bufs != &one) free(bufs);
    if (rc < 0) on_stream_written(&p->req.stream, rc);
}

static void file_next(void);

/* The write at the head of the queue is over: complete it, start the next. */
static void file_done(pending *p, int status)
{
    fd1.head = p->next;
    if (!fd1.head) fd1.tail = NULL;
    finish(p, status);
    file_next();
}

static void on_file_written(uv_fs_t *req)
{
    pending *p = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n < 0 && n != UV_EAGAIN && n != UV_EINTR) {
        rtp_error(p->c->ins, "write to stdout failed: %s", uv_strerror((int)n));
        file_done(p, RTP_RETRY);
        return;
    }
    if (n > 0) p->written += (size_t)n;
    if (p->written < p->text.len)
        file_next(); /* the rest of the same batch */
    else
        file_done(p, RTP_OK);
}

/* Starts (or continues) the write at the head of the queue. */
static void file_next(void)
{
    pending *p = fd1.head;
    if (!p) return;
    size_t len = p->text.len - p->written;
    uv_buf_t buf = uv_buf_init(p->text.data + p->written, (unsigned)(len < PIECE ? len : PIECE));
    p->req.fs.data = p;
    int rc = uv_fs_write(fd1.loop, &p->req.fs, 1, &buf, 1, -1, on_file_written);
    if (rc < 0) {
        rtp_error(p->c->ins, "cannot write to stdout: %s", uv_strerror(rc));
        file_done(p, RTP_RETRY);
    }
}

static void file_write(pending *p)
{
    bool idle = !fd1.head;
    if (fd1.tail)
        fd1.tail->next = p;
    else
        fd1.head = p;
    fd1.tail = p;
    if (idle) file_next();
}

static void stdout_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    pending *p = rtp_xcalloc(1, sizeof *p);
    p->c = ctx;
    p->batch = b;
    format_batch(p->c, &p->text, b);
    if (fd1.stream)
        stream_write(p);
    else
        file_write(p);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int stdout_init(rtp_instance *ins, void *ctx)
{
    stdout_ctx *c = ctx;
    c->ins = ins;
    return 0;
}

static int stdout_start(rtp_instance *ins, void *ctx)
{
    uv_loop_t *loop = rtp_instance_loop(ins);
    if (fd1.users && fd1.loop != loop) {
        rtp_error(ins, "standard output is already written by another engine in this process");
        return -1;
    }
    if (fd1.users++ == 0) {
        fd1.loop = loop;
        fd1.stream = fd1_open(loop);
    }
    return 0;
}

/* The last instance to stop closes the stream, which cancels every write
 * still waiting on a reader that went away. Writes to a file finish. */
static void stdout_stop(rtp_instance *ins, void *ctx)
{
    if (--fd1.users == 0 && fd1.stream) {
        uv_close((uv_handle_t *)fd1.stream, NULL);
        fd1.stream = NULL;
    }
}

RTP_PLUGIN_DEFINE(.kind = RTP_OUTPUT, .name = "stdout",
                  .description = "writes each record as a line of JSON (or logfmt) to standard output",
                  .options = stdout_options, .ctx_size = sizeof(stdout_ctx), .init = stdout_init,
                  .start = stdout_start, .stop = stdout_stop, .write = stdout_write);
