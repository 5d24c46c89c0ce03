/* in_csv internals shared by its files:
 *   in_csv.c   options, init, checkpoints, lifecycle
 *   rows.c     a tokenized row to a record (or to the error route)
 *   forward.c  reading the file from start to end in chunks, pacing
 *   reverse.c  replaying it from its last row to its first */
#ifndef RTP_IN_CSV_H
#define RTP_IN_CSV_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <rtproc/rtproc.h>

#include "csv_parse.h"

typedef struct csv_reverse csv_reverse;

typedef enum col_type { COL_AUTO, COL_STRING, COL_INT, COL_DOUBLE, COL_BOOL, COL_TIME } col_type;

typedef struct csv_ctx {
    /* options */
    char *path;
    char *delimiter;
    char *quote;
    bool header;
    bool reverse;
    rtp_strlist columns;
    rtp_strlist types;
    rtp_strlist null_values;
    size_t *null_lens; /* strlen of each null_values item, measured once */
    char *time_key;
    char *time_format;
    double rate;
    double speed;
    bool exit_on_eof;
    char *state_dir;
    int64_t batch_size;
    uint64_t buffer_size;
    uint64_t max_row_size;
    int64_t checkpoint_interval;

    rtp_instance *ins;
    csv_parser parser;
    csv_cell *cells;
    rtp_timefmt *tf;

    /* columns */
    uint32_t ncols;
    rtp_key *keys;
    col_type *ctype;
    int time_col;
    uint64_t data_start; /* file offset of the first data row */

    /* file and buffer */
    int fd;
    uint64_t dev, ino;
    uv_fs_t read_req;
    bool reading, eof, done, stopped;
    bool skipping; /* inside an overlong row: discard up to the next line end */
    rtp_buf *buf;
    size_t len;    /* valid bytes in buf */
    size_t off;    /* next row starts here */
    uint64_t base; /* file offset of buf[0] */

    /* the batch being filled */
    rtp_batch *batch;

    /* pacing (rate or speed) and wake-ups */
    uv_timer_t timer;
    uint64_t start_ns;
    uint64_t paced_rows;
    int64_t first_event;
    bool have_first;

    /* checkpoint */
    char *ckpt_path;
    uint64_t acked;
    uint64_t saved;
    uv_timer_t ckpt_timer;

    csv_reverse *rev; /* reverse = true */

    rtp_metric *bad_rows;
    char why[200]; /* text of the last bad row's problem */
} csv_ctx;

/* rows.c */
void csv_take_row(csv_ctx *c, const csv_row *row);
void csv_bad_row(csv_ctx *c, const csv_row *row, const char *why);
/* Hands the batch being filled to the engine; cookie is the checkpoint
 * offset its acknowledgement will carry back. */
void csv_emit_batch(csv_ctx *c, uint64_t cookie);
/* The whole file is read: the input is finished. */
void csv_finish(csv_ctx *c);
/* Reading cannot go on (I/O error, file changed): log why, end the input. */
void csv_give_up(csv_ctx *c, const char *why);

/* forward.c */
void csv_produce(csv_ctx *c);
/* True when the row may go now; otherwise arms the timer for when it may. */
bool csv_row_due(csv_ctx *c, const csv_row *row);
void csv_on_timer(uv_timer_t *t);

/* reverse.c: end is the offset where the replay starts (the file's size, or
 * a checkpoint); rows in [data_start, end) are replayed last row first. */
void csv_reverse_start(csv_ctx *c, uint64_t end);
void csv_reverse_produce(csv_ctx *c);
void csv_reverse_free(csv_ctx *c);

#endif
