/* in_csv: replays a CSV file as records.
 *
 * The file is read in chunks by libuv's thread pool into reference-counted
 * buffers; rows are cut by the tokenizer in csv_parse.c and their cells
 * become fields that point into the buffer (the batch holds it), so a row
 * costs no copy unless a cell has "" escapes. A row cut by the end of a chunk
 * is carried to the front of the next buffer.
 *
 * Progress is a byte offset: every emitted batch carries the offset just past
 * its last row, acknowledgements come back in order, and the acknowledged
 * offset is what the checkpoint stores. A restart reads the header again,
 * then seeks to the checkpoint: nothing delivered is read twice, nothing
 * undelivered is skipped. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "checkpoint.h"
#include "in_csv.h"

static const char *const col_type_names[] = {"auto", "string", "int", "double", "bool", "time"};

#define MAX_BUFFER ((uint64_t)1 << 30)

#define OFF(f) offsetof(csv_ctx, f)
static const rtp_option csv_options[] = {
    {"path", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(path), "CSV file to read", NULL},
    {"delimiter", RTP_OPT_STR, ",", 0, OFF(delimiter),
     "cell separator: one character, or tab, semicolon, comma, pipe, space (';' itself would start a comment)",
     NULL},
    {"quote", RTP_OPT_STR, "\"", 0, OFF(quote), "quote character; empty: quotes are ordinary text", NULL},
    {"header", RTP_OPT_BOOL, "true", 0, OFF(header), "the first row names the fields", NULL},
    {"columns", RTP_OPT_LIST, NULL, 0, OFF(columns),
     "field names, in file order (replaces the header's names; needed without a header)", NULL},
    {"types", RTP_OPT_LIST, NULL, 0, OFF(types),
     "column types as name:type, type one of auto, string, int, double, bool, time "
     "(time uses time_format); undeclared columns are auto: int, double or string by their text", NULL},
    {"null_values", RTP_OPT_LIST, "null,NULL,N/A", 0, OFF(null_values),
     "unquoted cell texts that mean null (an empty unquoted cell always does)", NULL},
    {"time_key", RTP_OPT_STR, NULL, 0, OFF(time_key), "column that gives each record its event time", NULL},
    {"time_format", RTP_OPT_STR, "iso8601", 0, OFF(time_format),
     "format of time_key and time columns: strftime pattern (%Y-%m-%d), epoch, epoch_ms, epoch_us, "
     "epoch_ns or iso8601", NULL},
    {"rate", RTP_OPT_DOUBLE, "0", 0, OFF(rate), "records per second to replay at; 0: as fast as possible", NULL},
    {"speed", RTP_OPT_DOUBLE, "0", 0, OFF(speed),
     "replay at this multiple of the data's own pace, by time_key (1: real time, 60: a minute a second)", NULL},
    {"reverse", RTP_OPT_BOOL, "false", 0, OFF(reverse),
     "replay the file from its last row to its first (for files written newest first)", NULL},
    {"exit_on_eof", RTP_OPT_BOOL, "false", 0, OFF(exit_on_eof),
     "end the run once the whole file is read and delivered", NULL},
    {"state_dir", RTP_OPT_STR, NULL, 0, OFF(state_dir),
     "directory for the checkpoint (<instance>.ckpt); a restart resumes after the last delivered row", NULL},
    {"checkpoint_interval", RTP_OPT_DURATION, "1s", 0, OFF(checkpoint_interval),
     "how often the delivered offset is written (and always at stop)", NULL},
    {"batch_size", RTP_OPT_INT, "4096", 0, OFF(batch_size), "records per batch", NULL},
    {"buffer_size", RTP_OPT_SIZE, "1M", 0, OFF(buffer_size), "bytes read from the file at a time (4k to 1G)", NULL},
    {"max_row_size", RTP_OPT_SIZE, "1M", 0, OFF(max_row_size),
     "longest row (up to 1G); a longer one goes to the error route and reading resumes at the next line", NULL},
    RTP_OPT_END};

/* ---- configuration --------------------------------------------------------- */

/* ';' starts a comment in the pipeline file and tabs are invisible, so
 * delimiters also have names. */
static const char *delimiter_char(const char *d)
{
    static const char *const names[][2] = {{"\\t", "\t"}, {"tab", "\t"},      {"semicolon", ";"},
                                           {"comma", ","},  {"pipe", "|"},       {"space", " "}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(d, names[i][0]) == 0) return names[i][1];
    return d;
}

static int parse_delims(csv_ctx *c, rtp_instance *ins)
{
    const char *d = delimiter_char(c->delimiter);
    int quote = c->quote[0] ? (unsigned char)c->quote[0] : CSV_NO_QUOTE;
    if (strlen(d) != 1) {
        rtp_config_error(ins, "delimiter", "must be one character or a name (tab, semicolon, comma, pipe, "
                                           "space), not '%s'%s", c->delimiter,
                         c->delimiter[0] ? "" : " (a ';' after '=' starts a comment: write semicolon)");
        return -1;
    }
    if (strlen(c->quote) > 1) {
        rtp_config_error(ins, "quote", "must be one character or empty, not '%s'", c->quote);
        return -1;
    }
    c->cells = rtp_xcalloc(CSV_DEFAULT_MAX_CELLS, sizeof *c->cells);
    if (csv_parser_init(&c->parser, d[0], quote, c->cells, CSV_DEFAULT_MAX_CELLS) < 0) {
        rtp_config_error(ins, "delimiter", "'%s' cannot be used with quote '%s'", c->delimiter, c->quote);
        return -1;
    }
    return 0;
}

static int find_column(const csv_ctx *c, const char *name)
{
    for (uint32_t i = 0; i < c->ncols; i++)
        if (strcmp(rtp_key_name(c->keys[i], NULL), name) == 0) return (int)i;
    return -1;
}

static int set_names(csv_ctx *c, const csv_row *row)
{
    if (c->columns.n) {
        c->ncols = (uint32_t)c->columns.n;
        c->keys = rtp_xcalloc(c->ncols, sizeof *c->keys);
        for (uint32_t i = 0; i < c->ncols; i++) c->keys[i] = rtp_key_cstr(c->columns.v[i]);
    } else {
        c->ncols = row->ncells;
        c->keys = rtp_xcalloc(c->ncols, sizeof *c->keys);
        for (uint32_t i = 0; i < c->ncols; i++) {
            char *name = rtp_xmalloc(row->cells[i].len + 1);
            size_t n = csv_unescape(&c->parser, &row->cells[i], name);
            c->keys[i] = rtp_key_intern(name, n);
            free(name);
        }
    }
    c->ctype = rtp_xcalloc(c->ncols ? c->ncols : 1, sizeof *c->ctype);
    return 0;
}

static int parse_types(csv_ctx *c, rtp_instance *ins)
{
    for (size_t i = 0; i < c->types.n; i++) {
        char *colon = strrchr(c->types.v[i], ':');
        if (!colon) {
            rtp_config_error(ins, "types", "'%s' is not name:type", c->types.v[i]);
            return -1;
        }
        *colon = 0;
        int col = find_column(c, c->types.v[i]);
        int t = -1;
        for (int k = 0; k < (int)(sizeof col_type_names / sizeof *col_type_names); k++)
            if (strcmp(colon + 1, col_type_names[k]) == 0) t = k;
        if (col < 0 || t < 0) {
            rtp_config_error(ins, "types", col < 0 ? "no column named '%s'" : "unknown type in '%s:%s'",
                             c->types.v[i], colon + 1);
            *colon = ':';
            return -1;
        }
        *colon = ':';
        c->ctype[col] = (col_type)t;
    }
    return 0;
}

/* Reads up to the end of the header row with plain blocking reads: init runs
 * before the loop, and knowing the columns here lets `types` and `time_key`
 * be checked against them before anything starts (and by --dry-run). */
static int read_header(csv_ctx *c, rtp_instance *ins)
{
    size_t cap = 65536, len = 0;
    char *buf = rtp_xmalloc(cap);
    csv_row row;
    csv_status st = CSV_NEED_MORE;
    for (;;) {
        ssize_t n = pread(c->fd, buf + len, cap - len, (off_t)len);
        if (n < 0) {
            rtp_config_error(ins, "path", "cannot read %s: %s", c->path, strerror(errno));
            break;
        }
        len += (size_t)n;
        st = csv_next_row(&c->parser, buf, len, 0, CSV_BOF | (n == 0 ? CSV_EOF : 0), &row);
        if (st != CSV_NEED_MORE || n == 0 || len >= c->max_row_size) break;
        if (len == cap) buf = rtp_xrealloc(buf, cap *= 2);
    }
    int rc = -1;
    if (st == CSV_ROW) {
        set_names(c, &row);
        c->data_start = row.end;
        rc = 0;
    } else if (st == CSV_END) {
        rtp_config_error(ins, "path", "%s is empty: no header row", c->path);
    } else if (st != CSV_NEED_MORE || len < c->max_row_size) {
        rtp_config_error(ins, "path", "%s: bad header row: %s", c->path, row.error ? row.error : "unreadable");
    } else {
        rtp_config_error(ins, "path", "%s: header row longer than max_row_size", c->path);
    }
    free(buf);
    return rc;
}

static int open_file(csv_ctx *c, rtp_instance *ins)
{
    c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (c->fd < 0 || fstat(c->fd, &st) < 0) {
        rtp_config_error(ins, "path", "cannot open %s: %s", c->path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        rtp_config_error(ins, "path", "%s is a directory", c->path);
        return -1;
    }
    c->dev = (uint64_t)st.st_dev;
    c->ino = (uint64_t)st.st_ino;
    return 0;
}

static int check_pacing(csv_ctx *c, rtp_instance *ins)
{
    if (c->rate < 0 || c->speed < 0 || !isfinite(c->rate) || !isfinite(c->speed)) {
        rtp_config_error(ins, c->rate < 0 ? "rate" : "speed", "must not be negative");
        return -1;
    }
    if (c->rate > 0 && c->speed > 0) {
        rtp_config_error(ins, "speed", "choose rate or speed, not both");
        return -1;
    }
    if (c->speed > 0 && c->time_col < 0) {
        rtp_config_error(ins, "speed", "needs time_key: the pace comes from the data's timestamps");
        return -1;
    }
    if (c->batch_size < 1) {
        rtp_config_error(ins, "batch_size", "must be at least 1");
        return -1;
    }
    if (c->buffer_size < 4096 || c->max_row_size < 16) {
        rtp_config_error(ins, c->buffer_size < 4096 ? "buffer_size" : "max_row_size", "is too small");
        return -1;
    }
    /* a read is at most twice the larger of the two, and libuv's read
     * lengths are unsigned: 4G would read 0 bytes and look like the end */
    if (c->buffer_size > MAX_BUFFER || c->max_row_size > MAX_BUFFER) {
        rtp_config_error(ins, c->buffer_size > MAX_BUFFER ? "buffer_size" : "max_row_size", "is more than 1G");
        return -1;
    }
    return 0;
}

static int csv_init(rtp_instance *ins, void *ctx)
{
    csv_ctx *c = ctx;
    c->ins = ins;
    c->fd = -1;
    c->time_col = -1;
    const char *err = NULL;
    if (parse_delims(c, ins) < 0 || open_file(c, ins) < 0) return -1;
    if (!c->header && !c->columns.n) {
        rtp_config_error(ins, "columns", "required when header = false");
        return -1;
    }
    if (c->header && read_header(c, ins) < 0) return -1;
    if (!c->header) set_names(c, NULL);
    if (parse_types(c, ins) < 0) return -1;
    c->tf = rtp_timefmt_new(c->time_format, &err);
    if (!c->tf) {
        rtp_config_error(ins, "time_format", "'%s': %s", c->time_format, err);
        return -1;
    }
    if (c->time_key && (c->time_col = find_column(c, c->time_key)) < 0) {
        rtp_config_error(ins, "time_key", "no column named '%s'", c->time_key);
        return -1;
    }
    c->bad_rows = rtp_metric_counter(ins, "bad_rows", "rows sent to the error route");
    c->null_lens = rtp_xcalloc(c->null_values.n + 1, sizeof *c->null_lens);
    for (size_t i = 0; i < c->null_values.n; i++) c->null_lens[i] = strlen(c->null_values.v[i]);
    return check_pacing(c, ins);
}

/* ---- checkpoint ---------------------------------------------------------------- */

static void save_checkpoint(csv_ctx *c)
{
    if (!c->ckpt_path || c->acked == c->saved) return;
    csv_checkpoint ck = {c->acked, c->dev, c->ino, c->reverse};
    if (csv_checkpoint_write(c->ckpt_path, &ck) < 0)
        rtp_error(c->ins, "cannot write checkpoint %s: %s", c->ckpt_path, strerror(errno));
    else
        c->saved = c->acked;
}

static void on_ckpt_timer(uv_timer_t *t)
{
    save_checkpoint(t->data);
}

/* Where reading starts: the data start (or, in reverse, the end of the
 * file), unless a checkpoint of this very file in the same direction says
 * how far delivery got. */
static uint64_t resume_offset(csv_ctx *c)
{
    struct stat st;
    uint64_t size = fstat(c->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    uint64_t fresh = c->reverse ? size : c->data_start;
    csv_checkpoint ck;
    if (!c->ckpt_path || csv_checkpoint_read(c->ckpt_path, &ck) < 0) return fresh;
    if (ck.dev != c->dev || ck.ino != c->ino || size < ck.offset) {
        rtp_warn(c->ins, "checkpoint %s is for another or a truncated file; reading from the start",
                 c->ckpt_path);
        return fresh;
    }
    if (ck.reverse != (uint64_t)c->reverse) {
        rtp_warn(c->ins, "checkpoint %s was written with reverse = %s; reading from the start", c->ckpt_path,
                 ck.reverse ? "true" : "false");
        return fresh;
    }
    if (ck.offset < c->data_start) return c->reverse ? c->data_start : fresh;
    rtp_info(c->ins, "resuming %s at byte %llu%s", c->path, (unsigned long long)ck.offset,
             c->reverse ? " (replaying backwards from there)" : "");
    return ck.offset;
}

static void csv_ack(rtp_instance *ins, void *ctx, uint64_t offset)
{
    csv_ctx *c = ctx;
    c->acked = offset;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int csv_start(rtp_instance *ins, void *ctx)
{
    csv_ctx *c = ctx;
    uv_loop_t *loop = rtp_instance_loop(ins);
    uv_timer_init(loop, &c->timer);
    uv_timer_init(loop, &c->ckpt_timer);
    c->timer.data = c->ckpt_timer.data = c;
    if (c->state_dir) {
        if (mkdir(c->state_dir, 0755) < 0 && errno != EEXIST) {
            rtp_error(ins, "cannot create state_dir %s: %s", c->state_dir, strerror(errno));
            return -1;
        }
        c->ckpt_path = rtp_xmalloc(strlen(c->state_dir) + strlen(rtp_instance_name(ins)) + 8);
        sprintf(c->ckpt_path, "%s/%s.ckpt", c->state_dir, rtp_instance_name(ins));
        uint64_t every = (uint64_t)(c->checkpoint_interval > 0 ? c->checkpoint_interval : 1000);
        uv_timer_start(&c->ckpt_timer, on_ckpt_timer, every, every);
    }
    c->base = resume_offset(c);
    c->acked = c->saved = c->base;
    c->start_ns = uv_hrtime();
    if (c->reverse)
        csv_reverse_start(c, c->base);
    else
        csv_produce(c);
    return 0;
}

static void csv_resume(rtp_instance *ins, void *ctx)
{
    csv_ctx *c = ctx;
    uv_timer_start(&c->timer, csv_on_timer, 0, 0); /* not from inside the engine's pump */
}

static void csv_stop(rtp_instance *ins, void *ctx)
{
    csv_ctx *c = ctx;
    c->stopped = true;
    save_checkpoint(c);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->ckpt_timer, NULL);
}

static void csv_destroy(rtp_instance *ins, void *ctx)
{
    csv_ctx *c = ctx;
    rtp_batch_free(c->batch);
    csv_reverse_free(c);
    rtp_buf_unref(c->buf);
    if (c->fd >= 0) close(c->fd);
    rtp_timefmt_free(c->tf);
    free(c->cells);
    free(c->keys);
    free(c->ctype);
    free(c->ckpt_path);
    free(c->null_lens);
}

RTP_PLUGIN_DEFINE(.kind = RTP_INPUT, .name = "csv",
                  .description = "reads a CSV file (RFC 4180) as records, with checkpoints and paced replay",
                  .options = csv_options, .ctx_size = sizeof(csv_ctx), .init = csv_init, .start = csv_start,
                  .stop = csv_stop, .destroy = csv_destroy, .resume = csv_resume, .ack = csv_ack);
