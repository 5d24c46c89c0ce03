/* The libpq connection of out_postgres, driven by the event loop.
 *
 * libpq's asynchronous API does the protocol; the loop only says when the
 * socket is ready: connecting is PQconnectStart + PQconnectPoll on socket
 * events, and a transaction is a few steps (send a command, stream COPY
 * rows, read results), each advanced by pg_drive() whenever the socket is
 * readable or, while libpq has unsent bytes, writable. The connection is in
 * non-blocking mode, so no call here waits for the server.
 *
 * A dedicated thread with the blocking API would be simpler to write but
 * buys nothing: COPY is streaming I/O, the server does the work, and the
 * loop thread spends its time formatting rows either way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out_postgres.h"

/* COPY data is handed to libpq in slices of this size, and the next slice
 * only once libpq has sent the previous one: libpq would otherwise copy a
 * whole unit into its own buffer. */
#define COPY_SLICE (256 * 1024)
#define BACKOFF_FIRST_MS 100

static void pg_drive(pg_ctx *c);
static void on_connect_event(pg_ctx *c);
static void connection_failed(pg_ctx *c, const char *what);

/* ---- socket watching ---------------------------------------------------- */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void unwatch(pg_ctx *c)
{
    if (!c->poll) return;
    /* uv_close removes the descriptor from epoll at once, so the socket may
     * be closed (PQfinish) right after; the handle is freed later. */
    uv_close((uv_handle_t *)c->poll, free_handle);
    c->poll = NULL;
    c->poll_events = 0;
}

static void lost(pg_ctx *c);

/* A negative status is a socket error (POLLERR: the server reset the
 * connection, as a shutting-down PostgreSQL does after its FATAL message),
 * and libuv has already stopped the handle. Ignoring it left the output
 * waiting for an event that could no longer come, with a unit in flight
 * and nothing in the log. libpq first reads what arrived (the message says
 * why), then the connection is given up whatever it concluded. */
static void on_socket(uv_poll_t *h, int status, int events)
{
    pg_ctx *c = h->data;
    if (status < 0) c->poll_events = 0;
    if (c->state == PG_CONNECTING) {
        on_connect_event(c);
        if (status < 0 && c->state == PG_CONNECTING) connection_failed(c, "connection failed");
        return;
    }
    const PGconn *conn = c->conn;
    pg_drive(c);
    if (status < 0 && c->conn == conn && c->state == PG_READY) lost(c);
}

/* PQsocket may change during PQconnectPoll (another address, SSL retry),
 * and always does across reconnections. */
static void watch(pg_ctx *c, int events)
{
    int fd = PQsocket(c->conn);
    if (c->poll && c->poll_fd != fd) unwatch(c);
    if (fd < 0) return;
    if (!c->poll) {
        c->poll = rtp_xmalloc(sizeof *c->poll);
        if (uv_poll_init(c->loop, c->poll, fd) < 0) {
            free(c->poll);
            c->poll = NULL;
            rtp_error(c->ins, "cannot watch the PostgreSQL socket");
            return;
        }
        c->poll->data = c;
        c->poll_fd = fd;
    }
    if (events != c->poll_events) {
        uv_poll_start(c->poll, events, on_socket);
        c->poll_events = events;
    }
}

/* ---- connecting and reconnecting ------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void close_conn(pg_ctx *c)
{
    unwatch(c);
    if (c->conn) PQfinish(c->conn);
    c->conn = NULL;
    c->state = PG_DOWN;
    c->setup_done = false;
}

/* 100 ms doubling up to reconnect_max_wait, with jitter. */
void pg_retry_later(pg_ctx *c)
{
    uint64_t wait = rtp_backoff_ms(c->attempts, BACKOFF_FIRST_MS, (uint64_t)c->reconnect_max_wait);
    c->attempts++;
    if (!c->stopping) uv_timer_start(&c->timer, on_timer, wait, 0);
}

static void connection_failed(pg_ctx *c, const char *what)
{
    const char *msg = c->conn ? PQerrorMessage(c->conn) : "out of memory";
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) len--;
    rtp_warn(c->ins, "%s: %.*s; reconnecting", what, (int)len, msg);
    close_conn(c);
    pg_retry_later(c);
}

/* Extra connection parameters after the user's conninfo: later entries win,
 * so the encoding of the COPY text is always UTF-8. */
void pg_conn_start(pg_ctx *c)
{
    static const char *const keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
    const char *const values[] = {c->conninfo, "rtproc", "UTF8", NULL};
    if (c->stopping) return;
    c->conn = PQconnectStartParams(keys, values, 1);
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
        connection_failed(c, "cannot connect");
        return;
    }
    c->state = PG_CONNECTING;
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->connect_timeout, 0);
    watch(c, UV_WRITABLE); /* as if PQconnectPoll had said PGRES_POLLING_WRITING */
}

static void on_timer(uv_timer_t *t)
{
    pg_ctx *c = t->data;
    if (c->state == PG_CONNECTING) {
        rtp_warn(c->ins, "connecting timed out after %lld ms; reconnecting", (long long)c->connect_timeout);
        close_conn(c);
        pg_retry_later(c);
    } else if (c->state == PG_DOWN) {
        pg_conn_start(c);
    } else {
        pg_schedule(c); /* the wait after a failed transaction is over */
    }
}

static void on_connect_event(pg_ctx *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING: watch(c, UV_READABLE); return;
    case PGRES_POLLING_WRITING: watch(c, UV_WRITABLE); return;
    case PGRES_POLLING_FAILED: connection_failed(c, "connection failed"); return;
    default: break;
    }
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->conn, 1) != 0) {
        connection_failed(c, "cannot make the connection non-blocking");
        return;
    }
    c->state = PG_READY;
    c->attempts = 0;
    rtp_info(c->ins, "connected to %s:%s, database %s as %s", PQhost(c->conn), PQport(c->conn), PQdb(c->conn),
             PQuser(c->conn));
    watch(c, UV_READABLE);
    pg_connected(c);
}

void pg_conn_stop(pg_ctx *c)
{
    c->stopping = true;
    close_conn(c);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->linger, NULL);
}

/* ---- one unit of work ---------------------------------------------------- */

static void keep_error(pg_ctx *c, const PGresult *res)
{
    if (c->error) return;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *detail = PQresultErrorField(res, PG_DIAG_CONTEXT);
    if (!msg) msg = PQresultErrorMessage(res);
    size_t n = strlen(msg) + (detail ? strlen(detail) + 3 : 0) + 1;
    c->error = rtp_xmalloc(n);
    snprintf(c->error, n, "%s%s%s%s", msg, detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");
}

static void clear_error(pg_ctx *c)
{
    free(c->error);
    c->error = NULL;
    c->sqlstate[0] = '\0';
}

static bool send_query(pg_ctx *c, const char *sql, pg_step next)
{
    c->step = next;
    if (!PQsendQuery(c->conn, sql)) return false;
    watch(c, PQflush(c->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return true;
}

static void lost(pg_ctx *c)
{
    c->step = STEP_NONE;
    clear_error(c);
    connection_failed(c, "connection lost");
    pg_unit_failed(c, true);
}

void pg_run_unit(pg_ctx *c)
{
    clear_error(c);
    c->t_start = uv_hrtime();
    bool ok = c->setup_done || !c->sql_setup ? send_query(c, c->sql_copy, STEP_COPY_WAIT)
                                               : send_query(c, c->sql_setup, STEP_SETUP);
    if (!ok) lost(c);
}

/* The server ended the COPY with an error before all rows were sent
 * (libpq then refuses more data): its result says why. */
static bool copy_refused(pg_ctx *c)
{
    if (PQstatus(c->conn) != CONNECTION_OK) return false;
    c->step = STEP_COPY_DONE;
    return true;
}

/* Hands libpq the next slices of COPY data while it can send them. */
static bool copy_some(pg_ctx *c)
{
    while (c->copy_sent < c->copy.len) {
        int flushed = PQflush(c->conn);
        if (flushed < 0) return false;
        if (flushed == 1) {
            watch(c, UV_READABLE | UV_WRITABLE);
            return true;
        }
        size_t n = c->copy.len - c->copy_sent;
        if (n > COPY_SLICE) n = COPY_SLICE;
        int rc = PQputCopyData(c->conn, c->copy.data + c->copy_sent, (int)n);
        if (rc < 0) return copy_refused(c);
        if (rc == 0) {
            watch(c, UV_READABLE | UV_WRITABLE);
            return true;
        }
        c->copy_sent += n;
    }
    if (PQputCopyEnd(c->conn, NULL) != 1) return copy_refused(c);
    c->step = STEP_COPY_DONE;
    watch(c, PQflush(c->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return true;
}

/* Connection errors (retry on a new connection) against errors of the rows
 * (isolate and reject them) against everything else (wait and retry). */
static bool pg_error_is_connection(const pg_ctx *c)
{
    const char *s = c->sqlstate;
    return !c->conn || PQstatus(c->conn) == CONNECTION_BAD || s[0] == '\0' || strncmp(s, "08", 2) == 0 ||
           strncmp(s, "57P", 3) == 0 || strcmp(s, "53300") == 0;
}

/* The last result of a step arrived (PQgetResult gave NULL): what next. */
static bool step_finished(pg_ctx *c)
{
    if (c->error && c->step != STEP_ROLLBACK && PQtransactionStatus(c->conn) != PQTRANS_IDLE)
        return send_query(c, "ROLLBACK", STEP_ROLLBACK);
    if (c->error || c->step == STEP_ROLLBACK) {
        c->step = STEP_NONE;
        if (pg_error_is_connection(c)) return false;
        pg_unit_failed(c, false);
        return true;
    }
    switch (c->step) {
    case STEP_SETUP:
        c->setup_done = true;
        return send_query(c, c->sql_copy, STEP_COPY_WAIT);
    case STEP_COPY_DONE:
        if (c->sql_merge) return send_query(c, c->sql_merge, STEP_MERGE);
        c->step = STEP_NONE; /* a lone COPY is its own transaction */
        pg_unit_committed(c);
        return true;
    default:
        c->step = STEP_NONE;
        pg_unit_committed(c);
        return true;
    }
}

/* Reads every result that is complete; false when the connection broke. */
static bool read_results(pg_ctx *c)
{
    while (c->conn && c->step != STEP_NONE && c->step != STEP_COPY_SEND && !PQisBusy(c->conn)) {
        PGresult *res = PQgetResult(c->conn);
        if (!res) {
            if (!step_finished(c)) return false;
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) {
            c->step = STEP_COPY_SEND;
            c->copy_sent = 0;
        } else if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
            keep_error(c, res);
        }
        PQclear(res);
        if (c->step == STEP_COPY_SEND && !copy_some(c)) return false;
    }
    return true;
}

static void pg_drive(pg_ctx *c)
{
    if (!PQconsumeInput(c->conn)) {
        lost(c);
        return;
    }
    if (c->step == STEP_NONE) {
        /* idle: notices, or the server closing the connection */
        if (PQstatus(c->conn) == CONNECTION_BAD) lost(c);
        return;
    }
    if (c->step == STEP_COPY_SEND ? !copy_some(c) : PQflush(c->conn) < 0) {
        lost(c);
        return;
    }
    if (c->step != STEP_COPY_SEND && c->step != STEP_NONE && PQflush(c->conn) == 0 &&
        (c->poll_events & UV_WRITABLE))
        watch(c, UV_READABLE);
    if (!read_results(c)) lost(c);
}

