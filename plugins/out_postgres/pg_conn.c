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

static void pg_drive(pg_link *l);
static void on_connect_event(pg_link *l);
static void connection_failed(pg_link *l, const char *what);

/* ---- socket watching ---------------------------------------------------- */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void unwatch(pg_link *l)
{
    if (!l->poll) return;
    /* uv_close removes the descriptor from epoll at once, so the socket may
     * be closed (PQfinish) right after; the handle is freed later. */
    uv_close((uv_handle_t *)l->poll, free_handle);
    l->poll = NULL;
    l->poll_events = 0;
}

static void lost(pg_link *l);

/* A negative status is a socket error (POLLERR: the server reset the
 * connection, as a shutting-down PostgreSQL does after its FATAL message),
 * and libuv has already stopped the handle. Ignoring it left the output
 * waiting for an event that could no longer come, with a unit in flight
 * and nothing in the log. libpq first reads what arrived (the message says
 * why), then the connection is given up whatever it concluded. */
static void on_socket(uv_poll_t *h, int status, int events)
{
    pg_link *l = h->data;
    if (status < 0) l->poll_events = 0;
    if (l->state == PG_CONNECTING) {
        on_connect_event(l);
        if (status < 0 && l->state == PG_CONNECTING) connection_failed(l, "connection failed");
        return;
    }
    const PGconn *conn = l->conn;
    pg_drive(l);
    if (status < 0 && l->conn == conn && l->state == PG_READY) lost(l);
}

/* PQsocket may change during PQconnectPoll (another address, SSL retry),
 * and always does across reconnections. */
static void watch(pg_link *l, int events)
{
    int fd = PQsocket(l->conn);
    if (l->poll && l->poll_fd != fd) unwatch(l);
    if (fd < 0) return;
    if (!l->poll) {
        l->poll = rtp_xmalloc(sizeof *l->poll);
        if (uv_poll_init(l->c->loop, l->poll, fd) < 0) {
            free(l->poll);
            l->poll = NULL;
            rtp_error(l->c->ins, "cannot watch the PostgreSQL socket");
            return;
        }
        l->poll->data = l;
        l->poll_fd = fd;
    }
    if (events != l->poll_events) {
        uv_poll_start(l->poll, events, on_socket);
        l->poll_events = events;
    }
}

/* ---- connecting and reconnecting ------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void close_conn(pg_link *l)
{
    unwatch(l);
    if (l->conn) PQfinish(l->conn);
    l->conn = NULL;
    l->state = PG_DOWN;
    l->setup_done = false;
}

/* 100 ms doubling up to reconnect_max_wait, with jitter. */
void pg_retry_later(pg_link *l)
{
    uint64_t wait = rtp_backoff_ms(l->attempts, BACKOFF_FIRST_MS, (uint64_t)l->c->reconnect_max_wait);
    l->attempts++;
    if (!l->c->stopping) uv_timer_start(&l->timer, on_timer, wait, 0);
}

static void connection_failed(pg_link *l, const char *what)
{
    const char *msg = l->conn ? PQerrorMessage(l->conn) : "out of memory";
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) len--;
    rtp_warn(l->c->ins, "connection %u: %s: %.*s; reconnecting", l->id, what, (int)len, msg);
    close_conn(l);
    pg_retry_later(l);
}

/* Extra connection parameters after the user's conninfo: later entries win,
 * so the encoding of the COPY text is always UTF-8. */
void pg_conn_start(pg_link *l)
{
    static const char *const keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
    const char *const values[] = {l->c->conninfo, "rtproc", "UTF8", NULL};
    if (l->c->stopping) return;
    l->conn = PQconnectStartParams(keys, values, 1);
    if (!l->conn || PQstatus(l->conn) == CONNECTION_BAD) {
        connection_failed(l, "cannot connect");
        return;
    }
    l->state = PG_CONNECTING;
    uv_timer_start(&l->timer, on_timer, (uint64_t)l->c->connect_timeout, 0);
    watch(l, UV_WRITABLE); /* as if PQconnectPoll had said PGRES_POLLING_WRITING */
}

static void on_timer(uv_timer_t *t)
{
    pg_link *l = t->data;
    if (l->state == PG_CONNECTING) {
        rtp_warn(l->c->ins, "connection %u: connecting timed out after %lld ms; reconnecting", l->id,
                 (long long)l->c->connect_timeout);
        close_conn(l);
        pg_retry_later(l);
    } else if (l->state == PG_DOWN) {
        pg_conn_start(l);
    } else if (l->current) {
        pg_run_unit(l); /* the wait after a failed transaction is over */
    }
}

static void on_connect_event(pg_link *l)
{
    switch (PQconnectPoll(l->conn)) {
    case PGRES_POLLING_READING: watch(l, UV_READABLE); return;
    case PGRES_POLLING_WRITING: watch(l, UV_WRITABLE); return;
    case PGRES_POLLING_FAILED: connection_failed(l, "connection failed"); return;
    default: break;
    }
    uv_timer_stop(&l->timer);
    if (PQsetnonblocking(l->conn, 1) != 0) {
        connection_failed(l, "cannot make the connection non-blocking");
        return;
    }
    l->state = PG_READY;
    l->attempts = 0;
    rtp_info(l->c->ins, "connection %u: connected to %s:%s, database %s as %s", l->id, PQhost(l->conn),
             PQport(l->conn), PQdb(l->conn), PQuser(l->conn));
    watch(l, UV_READABLE);
    pg_connected(l);
}

void pg_conn_stop(pg_link *l)
{
    close_conn(l);
    uv_close((uv_handle_t *)&l->timer, NULL);
}

/* ---- one unit of work ---------------------------------------------------- */

static void keep_error(pg_link *l, const PGresult *res)
{
    if (l->error) return;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *detail = PQresultErrorField(res, PG_DIAG_CONTEXT);
    if (!msg) msg = PQresultErrorMessage(res);
    size_t n = strlen(msg) + (detail ? strlen(detail) + 3 : 0) + 1;
    l->error = rtp_xmalloc(n);
    snprintf(l->error, n, "%s%s%s%s", msg, detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    snprintf(l->sqlstate, sizeof l->sqlstate, "%s", state ? state : "");
}

static void clear_error(pg_link *l)
{
    free(l->error);
    l->error = NULL;
    l->sqlstate[0] = '\0';
}

static bool send_query(pg_link *l, const char *sql, pg_step next)
{
    l->step = next;
    if (!PQsendQuery(l->conn, sql)) return false;
    watch(l, PQflush(l->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return true;
}

static void lost(pg_link *l)
{
    l->step = STEP_NONE;
    clear_error(l);
    connection_failed(l, "connection lost");
    pg_unit_failed(l, true);
}

void pg_run_unit(pg_link *l)
{
    clear_error(l);
    l->t_start = uv_hrtime();
    bool ok = l->setup_done || !l->c->sql_setup ? send_query(l, l->c->sql_copy, STEP_COPY_WAIT)
                                               : send_query(l, l->c->sql_setup, STEP_SETUP);
    if (!ok) lost(l);
}

/* The server ended the COPY with an error before all rows were sent
 * (libpq then refuses more data): its result says why. */
static bool copy_refused(pg_link *l)
{
    if (PQstatus(l->conn) != CONNECTION_OK) return false;
    l->step = STEP_COPY_DONE;
    return true;
}

/* Hands libpq the next slices of COPY data while it can send them. */
static bool copy_some(pg_link *l)
{
    while (l->copy_sent < l->copy.len) {
        int flushed = PQflush(l->conn);
        if (flushed < 0) return false;
        if (flushed == 1) {
            watch(l, UV_READABLE | UV_WRITABLE);
            return true;
        }
        size_t n = l->copy.len - l->copy_sent;
        if (n > COPY_SLICE) n = COPY_SLICE;
        int rc = PQputCopyData(l->conn, l->copy.data + l->copy_sent, (int)n);
        if (rc < 0) return copy_refused(l);
        if (rc == 0) {
            watch(l, UV_READABLE | UV_WRITABLE);
            return true;
        }
        l->copy_sent += n;
    }
    if (PQputCopyEnd(l->conn, NULL) != 1) return copy_refused(l);
    l->step = STEP_COPY_DONE;
    watch(l, PQflush(l->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return true;
}

/* Connection errors (retry on a new connection) against errors of the rows
 * (isolate and reject them) against everything else (wait and retry). */
static bool pg_error_is_connection(const pg_link *l)
{
    const char *s = l->sqlstate;
    return !l->conn || PQstatus(l->conn) == CONNECTION_BAD || s[0] == '\0' || strncmp(s, "08", 2) == 0 ||
           strncmp(s, "57P", 3) == 0 || strcmp(s, "53300") == 0;
}

/* The last result of a step arrived (PQgetResult gave NULL): what next. */
static bool step_finished(pg_link *l)
{
    if (l->error && l->step != STEP_ROLLBACK && PQtransactionStatus(l->conn) != PQTRANS_IDLE)
        return send_query(l, "ROLLBACK", STEP_ROLLBACK);
    if (l->error || l->step == STEP_ROLLBACK) {
        l->step = STEP_NONE;
        if (pg_error_is_connection(l)) return false;
        pg_unit_failed(l, false);
        return true;
    }
    switch (l->step) {
    case STEP_SETUP:
        l->setup_done = true;
        return send_query(l, l->c->sql_copy, STEP_COPY_WAIT);
    case STEP_COPY_DONE:
        if (l->c->sql_merge) return send_query(l, l->c->sql_merge, STEP_MERGE);
        l->step = STEP_NONE; /* a lone COPY is its own transaction */
        pg_unit_committed(l);
        return true;
    default:
        l->step = STEP_NONE;
        pg_unit_committed(l);
        return true;
    }
}

/* Reads every result that is complete; false when the connection broke. */
static bool read_results(pg_link *l)
{
    while (l->conn && l->step != STEP_NONE && l->step != STEP_COPY_SEND && !PQisBusy(l->conn)) {
        PGresult *res = PQgetResult(l->conn);
        if (!res) {
            if (!step_finished(l)) return false;
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) {
            l->step = STEP_COPY_SEND;
            l->copy_sent = 0;
        } else if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
            keep_error(l, res);
        }
        PQclear(res);
        if (l->step == STEP_COPY_SEND && !copy_some(l)) return false;
    }
    return true;
}

static void pg_drive(pg_link *l)
{
    if (!PQconsumeInput(l->conn)) {
        lost(l);
        return;
    }
    if (l->step == STEP_NONE) {
        /* idle: notices, or the server closing the connection */
        if (PQstatus(l->conn) == CONNECTION_BAD) lost(l);
        return;
    }
    if (l->step == STEP_COPY_SEND ? !copy_some(l) : PQflush(l->conn) < 0) {
        lost(l);
        return;
    }
    if (l->step != STEP_COPY_SEND && l->step != STEP_NONE && PQflush(l->conn) == 0 &&
        (l->poll_events & UV_WRITABLE))
        watch(l, UV_READABLE);
    if (!read_results(l)) lost(l);
}

