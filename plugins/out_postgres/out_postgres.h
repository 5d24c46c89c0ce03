/* out_postgres: shared declarations of the plugin's three parts.
 *
 *   out_postgres.c  options, batches in and acknowledgements out, the work
 *                   queue, bisection of rejected rows
 *   pg_conn.c       the libpq connection driven by the loop: connect,
 *                   reconnect with backoff, one transaction's protocol steps
 *   pg_sql.c        SQL text: quoted identifiers, DDL, COPY and upsert
 *                   statements, COPY text-format rows */
#ifndef OUT_POSTGRES_H
#define OUT_POSTGRES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <rtproc/rtproc.h>

/* One column of the target table and the field that fills it. */
typedef struct pg_col {
    rtp_key field;
    char *column; /* as written: quoted when SQL is made */
    char *type;   /* SQL type for create_table; NULL when not given */
} pg_col;

/* An engine batch held by the plugin until every row is committed or
 * rejected. Pendings form a FIFO in arrival order. */
typedef struct pg_pending {
    rtp_batch *b;
    size_t n;      /* rows */
    size_t left;   /* rows neither committed nor rejected yet */
    bool queued;   /* already part of some unit of work */
    rtp_sbuf text; /* COPY text of all its rows, made on arrival */
    struct pg_pending *next;
} pg_pending;

/* Rows lo..hi-1 of one pending batch. */
typedef struct pg_seg {
    pg_pending *p;
    size_t lo, hi;
} pg_seg;

/* A unit of work: rows written in one transaction. A unit that fails on
 * bad data is split in two units (bisection) pushed on the work stack. */
typedef struct pg_unit {
    pg_seg *segs;
    size_t nsegs;
    size_t rows;
    struct pg_unit *next;
} pg_unit;

typedef enum pg_state {
    PG_DOWN,       /* no connection; the timer brings the next attempt */
    PG_CONNECTING, /* PQconnectPoll in progress */
    PG_READY       /* connected; a unit may be running */
} pg_state;

typedef enum pg_step {
    STEP_NONE,
    STEP_SETUP,     /* CREATE TABLE / temporary staging table */
    STEP_COPY_WAIT, /* COPY sent, waiting for the server to ask for data */
    STEP_COPY_SEND, /* sending rows */
    STEP_COPY_DONE, /* rows sent, reading COPY's result */
    STEP_MERGE,     /* upsert: INSERT ... ON CONFLICT; COMMIT */
    STEP_ROLLBACK   /* after an error inside a transaction */
} pg_step;

struct pg_ctx;

/* One connection and the unit of work it runs. With connections > 1 the
 * units run side by side (plain COPY only: see out_postgres.c). */
typedef struct pg_link {
    struct pg_ctx *c;
    unsigned id; /* 1.., for the log */
    PGconn *conn;
    pg_state state;
    uv_poll_t *poll; /* on PQsocket(conn); heap: its close outlives a reconnect */
    int poll_fd;
    int poll_events;
    uv_timer_t timer;  /* connect timeout, reconnect backoff, retry wait */
    unsigned attempts; /* failed connection attempts in a row */
    bool setup_done;   /* on this connection */
    bool connected_once;

    pg_unit *current; /* running */
    pg_step step;
    rtp_sbuf copy;    /* COPY text of the current unit */
    size_t copy_sent;
    char *error;      /* first error of the current step, and its SQLSTATE */
    char sqlstate[6];
    uint64_t t_start; /* ns, for commit latency */
} pg_link;

typedef struct pg_ctx {
    /* options */
    char *conninfo;
    char *table;
    rtp_strlist columns;
    rtp_strlist upsert_keys;
    bool create_table;
    int64_t batch_size;
    int64_t flush_interval;
    int64_t connect_timeout;
    int64_t reconnect_max_wait;
    int64_t connections;

    rtp_instance *ins;
    uv_loop_t *loop;

    /* what to write: resolved at init, or from the first record when
     * `columns` is not given */
    pg_col *cols;
    size_t ncols;
    size_t *keys; /* indexes into cols of upsert_keys */
    size_t nkeys;
    char *target;  /* quoted "schema"."table" */
    char *sql_setup, *sql_copy, *sql_merge;

    pg_link *links;
    size_t nlinks;
    bool others_started; /* links after the first: see start_links */
    uv_timer_t linger; /* flush_interval */
    bool stopping;
    bool flushing;
    bool linger_due; /* flush_interval passed since rows began to wait */

    /* work */
    pg_pending *head, *tail;
    pg_unit *stack; /* units to run before new batches: bisection halves, retries */

    struct {
        rtp_metric *rows, *transactions, *rejected, *reconnects, *commit_us, *latency_us, *bisections;
    } m;
} pg_ctx;

/* pg_conn.c */
void pg_conn_start(pg_link *l);
void pg_conn_stop(pg_link *l);
void pg_run_unit(pg_link *l);
void pg_retry_later(pg_link *l);

/* out_postgres.c: called by pg_conn.c */
void pg_connected(pg_link *l);
void pg_unit_committed(pg_link *l);
void pg_unit_failed(pg_link *l, bool connection_lost);
void pg_schedule(pg_ctx *c);

/* pg_sql.c */
void pg_quote_ident(rtp_sbuf *sb, const char *name, size_t len);
int pg_parse_table(const char *spec, rtp_sbuf *quoted, const char **err);
bool pg_type_ok(const char *type);
void pg_build_sql(pg_ctx *c);
void pg_format_rows(const pg_ctx *c, rtp_sbuf *out, rtp_batch *b, size_t lo, size_t hi);

#endif
