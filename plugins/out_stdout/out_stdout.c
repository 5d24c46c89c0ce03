/* out_stdout: one line per record on standard output.
 *
 * A pipe or terminal is written as a non-blocking libuv stream, a regular
 * file through the thread pool (files do not block for long). Either way a
 * batch is acknowledged only once the kernel took every byte, so a reader
 * that stops reading holds the batch, not the loop: the inputs pause through
 * backpressure instead of memory growing, and at shutdown closing the
 * stream cancels a write that would otherwise wait for ever. */
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
    uv_stream_t *stream; /* the shared fd 1 stream; NULL: a file, written with uv_fs_write */
    uv_write_t wreq;
    uv_fs_t req;
    rtp_sbuf out;
    size_t written;
    rtp_batch *batch; /* being written */
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

static void logfmt_record(stdout_ctx *c, const rtp_record *r, const char *tag)
{
    rtp_sbuf *out = &c->out;
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

/* ---- writing ---------------------------------------------------------------- */

static void format_batch(stdout_ctx *c, rtp_batch *b)
{
    rtp_json_write_opts opts = {c->time_key, c->tag_key, rtp_batch_tag(b)};
    c->out.len = 0;
    for (size_t i = 0; i < rtp_batch_count(b); i++) {
        const rtp_record *r = rtp_batch_record(b, i);
        if (c->format == FORMAT_JSON)
            rtp_json_write_record(&c->out, r, &opts);
        else
            logfmt_record(c, r, opts.tag);
        rtp_sbuf_append(&c->out, "\n", 1);
    }
}

static void write_rest(stdout_ctx *c);

static void on_written(uv_fs_t *req)
{
    stdout_ctx *c = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n < 0 && n != UV_EAGAIN && n != UV_EINTR) {
        rtp_error(c->ins, "write to stdout failed: %s", uv_strerror((int)n));
        rtp_batch *b = c->batch;
        c->batch = NULL;
        rtp_output_done(c->ins, b, RTP_RETRY);
        return;
    }
    if (n > 0) c->written += (size_t)n;
    if (c->written < c->out.len) {
        write_rest(c);
        return;
    }
    rtp_batch *b = c->batch;
    c->batch = NULL;
    rtp_output_done(c->ins, b, RTP_OK);
}

static void write_rest(stdout_ctx *c)
{
    uv_buf_t buf = uv_buf_init(c->out.data + c->written, (unsigned)(c->out.len - c->written));
    c->req.data = c;
    int rc = uv_fs_write(rtp_instance_loop(c->ins), &c->req, 1, &buf, 1, -1, on_written);
    if (rc < 0) {
        rtp_error(c->ins, "cannot write to stdout: %s", uv_strerror(rc));
        rtp_batch *b = c->batch;
        c->batch = NULL;
        rtp_output_done(c->ins, b, RTP_RETRY);
    }
}

static void on_stream_written(uv_write_t *req, int status)
{
    stdout_ctx *c = req->data;
    rtp_batch *b = c->batch;
    c->batch = NULL;
    if (status < 0 && status != UV_ECANCELED) rtp_error(c->ins, "write to stdout failed: %s", uv_strerror(status));
    rtp_output_done(c->ins, b, status < 0 ? RTP_RETRY : RTP_OK);
}

static void stdout_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    stdout_ctx *c = ctx;
    format_batch(c, b);
    c->batch = b;
    c->written = 0;
    if (!c->stream) {
        write_rest(c);
        return;
    }
    uv_buf_t buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, c->stream, &buf, 1, on_stream_written);
    if (rc < 0) on_stream_written(&c->wreq, rc);
}

static int stdout_init(rtp_instance *ins, void *ctx)
{
    stdout_ctx *c = ctx;
    c->ins = ins;
    return 0;
}

/* ---- the one stream on fd 1 ------------------------------------------------- */

/* Every instance writes through one handle. libuv keeps a single watcher per
 * file descriptor, so a second pipe handle on fd 1 never heard that the pipe
 * had room again: with two stdout outputs and a slow reader the run hung.
 * uv_write queues requests per handle, so sharing keeps each batch whole. */
static struct {
    int users;
    uv_loop_t *loop;
    uv_stream_t *stream; /* NULL when fd 1 is a file (or could not be opened) */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } handle;
} fd1;

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

static int stdout_start(rtp_instance *ins, void *ctx)
{
    stdout_ctx *c = ctx;
    uv_loop_t *loop = rtp_instance_loop(ins);
    if (fd1.users && fd1.loop != loop) {
        rtp_error(ins, "standard output is already written by another engine in this process");
        return -1;
    }
    if (fd1.users++ == 0) {
        fd1.loop = loop;
        fd1.stream = fd1_open(loop);
    }
    c->stream = fd1.stream;
    return 0;
}

/* The last instance to stop closes the stream, which cancels every write
 * still waiting on a reader that went away. */
static void stdout_stop(rtp_instance *ins, void *ctx)
{
    stdout_ctx *c = ctx;
    c->stream = NULL;
    if (--fd1.users == 0 && fd1.stream) {
        uv_close((uv_handle_t *)fd1.stream, NULL);
        fd1.stream = NULL;
    }
}

static void stdout_destroy(rtp_instance *ins, void *ctx)
{
    stdout_ctx *c = ctx;
    rtp_sbuf_free(&c->out);
}

RTP_PLUGIN_DEFINE(.kind = RTP_OUTPUT, .name = "stdout",
                  .description = "writes each record as a line of JSON (or logfmt) to standard output",
                  .options = stdout_options, .ctx_size = sizeof(stdout_ctx), .init = stdout_init,
                  .start = stdout_start, .stop = stdout_stop, .write = stdout_write, .destroy = stdout_destroy);
