/* out_postgres: writes records into a PostgreSQL table with COPY.
 *
 * Batches the engine hands over are held, not acknowledged, until the
 * transaction holding their rows has committed. Whenever the connection is
 * idle, the batches waiting are written together in one transaction (up to
 * batch_size rows; with max_inflight > 1 the engine hands over several, so
 * batches that arrive during a transaction are combined into the next one:
 * group commit without added latency; flush_interval can add a linger).
 *
 * A transaction that fails on bad data is bisected: its rows are split in
 * two halves, each written in its own transaction, recursively, until the
 * rows PostgreSQL refuses are alone; those go to the error route with the
 * server's message and every other row commits. Connection errors keep the
 * work and reconnect with backoff; the engine's inputs wait meanwhile
 * through backpressure (max_inflight bounds what the plugin holds). Other
 * server errors (a missing table, a deadlock) wait with the same backoff
 * and retry the same rows.
 *
 * With connections > 1, each connection (pg_link) takes the next unit when
 * it is free; acknowledgements stay in arrival order (complete_batches).
 * Not with upsert_keys: two transactions may commit in either order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out_postgres.h"

#define OFF(f) offsetof(pg_ctx, f)
static const rtp_option pg_options[] = {
    {"conninfo", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(conninfo),
     "libpq connection string (host=... dbname=... user=...); put the password in PGPASSWORD or ~/.pgpass", NULL},
    {"table", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(table),
     "target table, or schema.table; names are used exactly as written (\"quote\" a part holding a dot)", NULL},
    {"columns", RTP_OPT_LIST, NULL, 0, OFF(columns),
     "field:type or field:column:type, e.g. symbol:text, ts:timestamptz, close:double precision; "
     "unset: the first record's fields, into columns of the same names", NULL},
    {"create_table", RTP_OPT_BOOL, "false", 0, OFF(create_table),
     "CREATE TABLE IF NOT EXISTS from the columns' types, with upsert_keys as primary key", NULL},
    {"upsert_keys", RTP_OPT_LIST, NULL, 0, OFF(upsert_keys),
     "columns of a unique key: rows are merged with INSERT ... ON CONFLICT DO UPDATE, so a replay "
     "never duplicates a row", NULL},
    {"batch_size", RTP_OPT_INT, "50000", 0, OFF(batch_size),
     "most rows written in one transaction when several batches wait (a batch is never split)", NULL},
    {"flush_interval", RTP_OPT_DURATION, "0ms", 0, OFF(flush_interval),
     "wait up to this long for batch_size rows before writing (needs max_inflight > 1 to gather them); "
     "0: write as soon as the connection is free", NULL},
    {"connect_timeout", RTP_OPT_DURATION, "10s", 0, OFF(connect_timeout),
     "give up a connection attempt after this long", NULL},
    {"reconnect_max_wait", RTP_OPT_DURATION, "10s", 0, OFF(reconnect_max_wait),
     "longest wait between reconnection attempts (from 100 ms, doubling, with jitter)", NULL},
    {"connections", RTP_OPT_INT, "1", 0, OFF(connections),
     "transactions run side by side on this many connections (plain COPY only: not with upsert_keys)", NULL},
    RTP_OPT_END};

/* ---- configuration ------------------------------------------------------ */

static int find_col(const pg_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->ncols; i++) {
        size_t len;
        const char *field = rtp_key_name(c->cols[i].field, &len);
        if (strcmp(c->cols[i].column, name) == 0 || (strlen(name) == len && memcmp(field, name, len) == 0))
            return (int)i;
    }
    return -1;
}

static int paren_depth(const char *s)
{
    int d = 0;
    for (; *s; s++) d += (*s == '(') - (*s == ')');
    return d;
}

static char *strip(char *s)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
    return s;
}

/* One `columns` item: field, field:type or field:column:type. */
static int parse_col(pg_ctx *c, rtp_instance *ins, char *item)
{
    char *parts[3] = {item, NULL, NULL};
    int n = 1;
    for (char *p = item; *p && n < 3; p++)
        if (*p == ':') {
            *p = '\0';
            parts[n++] = p + 1;
        }
    pg_col *col = &c->cols[c->ncols];
    const char *field = strip(parts[0]);
    const char *column = n == 3 ? strip(parts[1]) : field;
    const char *type = n == 1 ? NULL : strip(parts[n - 1]);
    if (!*field || !*column) {
        rtp_config_error(ins, "columns", "an item needs a field name: field, field:type or field:column:type");
        return -1;
    }
    if (type && *type && !pg_type_ok(type)) {
        rtp_config_error(ins, "columns", "'%s' is not a type name (words, (n) or (n,m) modifiers, [])", type);
        return -1;
    }
    if (c->create_table && (!type || !*type)) {
        rtp_config_error(ins, "columns", "create_table = true needs a type for every column ('%s' has none)",
                         field);
        return -1;
    }
    col->field = rtp_key_cstr(field);
    col->column = rtp_xstrdup(column);
    col->type = type && *type ? rtp_xstrdup(type) : NULL;
    c->ncols++;
    return 0;
}

/* The option parser splits at every comma, so a type such as
 * numeric(12,4) arrives in pieces: glue items while a '(' is open. */
static int parse_columns(pg_ctx *c, rtp_instance *ins)
{
    c->cols = rtp_xcalloc(c->columns.n, sizeof *c->cols);
    for (size_t i = 0; i < c->columns.n; i++) {
        rtp_sbuf item = {0};
        rtp_sbuf_append(&item, c->columns.v[i], strlen(c->columns.v[i]));
        rtp_sbuf_append(&item, "", 1);
        while (paren_depth(item.data) > 0 && i + 1 < c->columns.n) {
            item.len--;
            rtp_sbuf_append(&item, ",", 1);
            i++;
            rtp_sbuf_append(&item, c->columns.v[i], strlen(c->columns.v[i]) + 1);
        }
        int rc = parse_col(c, ins, item.data);
        rtp_sbuf_free(&item);
        if (rc < 0) return -1;
    }
    return 0;
}

static int parse_keys(pg_ctx *c, rtp_instance *ins)
{
    c->keys = rtp_xcalloc(c->upsert_keys.n ? c->upsert_keys.n : 1, sizeof *c->keys);
    for (size_t i = 0; i < c->upsert_keys.n; i++) {
        int k = find_col(c, c->upsert_keys.v[i]);
        if (k < 0) {
            rtp_config_error(ins, "upsert_keys", "'%s' is not one of the columns", c->upsert_keys.v[i]);
            return -1;
        }
        c->keys[c->nkeys++] = (size_t)k;
    }
    return 0;
}

static int pg_init(rtp_instance *ins, void *ctx)
{
    pg_ctx *c = ctx;
    c->ins = ins;
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(c->conninfo, &err);
    if (!opts) {
        rtp_config_error(ins, "conninfo", "%s", err ? err : "cannot be parsed");
        PQfreemem(err);
        return -1;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
            rtp_warn(ins, "conninfo holds a password (never logged); PGPASSWORD or ~/.pgpass keep it out "
                          "of the pipeline file");
    PQconninfoFree(opts);
    rtp_sbuf target = {0};
    const char *why;
    if (pg_parse_table(c->table, &target, &why) < 0) {
        rtp_sbuf_free(&target);
        rtp_config_error(ins, "table", "%s", why);
        return -1;
    }
    rtp_sbuf_append(&target, "", 1);
    c->target = target.data;
    if (c->create_table && !c->columns.n) {
        rtp_config_error(ins, "columns", "create_table = true needs columns with types");
        return -1;
    }
    if (c->upsert_keys.n && !c->columns.n) {
        rtp_config_error(ins, "columns", "upsert_keys needs the columns listed");
        return -1;
    }
    if (c->batch_size < 1) {
        rtp_config_error(ins, "batch_size", "must be at least 1");
        return -1;
    }
    if (c->connections < 1 || c->connections > 64) {
        rtp_config_error(ins, "connections", "must be between 1 and 64");
        return -1;
    }
    /* transactions on two connections may commit in either order, and
     * the later commit of one key's update would win over a newer one */
    if (c->connections > 1 && c->upsert_keys.n) {
        rtp_config_error(ins, "connections", "must be 1 with upsert_keys: concurrent transactions could apply "
                                             "two updates of one key out of order");
        return -1;
    }
    if (parse_columns(c, ins) < 0 || parse_keys(c, ins) < 0) return -1;
    if (c->ncols) pg_build_sql(c);
    return 0;
}

/* Without `columns`, the first record names the columns. */
static void columns_from_record(pg_ctx *c, rtp_batch *b)
{
    const rtp_record *r = rtp_batch_record(b, 0);
    c->cols = rtp_xrealloc(c->cols, (r->nfields ? r->nfields : 1) * sizeof *c->cols);
    for (uint32_t i = 0; i < r->nfields; i++) {
        size_t len;
        const char *name = rtp_key_name(r->fields[i].key, &len);
        c->cols[i] = (pg_col){.field = r->fields[i].key, .column = rtp_xstrndup(name, len)};
    }
    c->ncols = r->nfields;
    pg_build_sql(c);
}

static int pg_start(rtp_instance *ins, void *ctx)
{
    pg_ctx *c = ctx;
    c->loop = rtp_instance_loop(ins);
    uv_timer_init(c->loop, &c->linger);
    c->linger.data = c;
    c->nlinks = (size_t)c->connections;
    c->links = rtp_xcalloc(c->nlinks, sizeof *c->links);
    for (size_t i = 0; i < c->nlinks; i++) {
        pg_link *l = &c->links[i];
        *l = (pg_link){.c = c, .id = (unsigned)i + 1};
        uv_timer_init(c->loop, &l->timer);
        l->timer.data = l;
    }
    c->m.rows = rtp_metric_counter(ins, "pg_rows_written", "rows committed");
    c->m.transactions = rtp_metric_counter(ins, "pg_transactions", "transactions committed");
    c->m.rejected = rtp_metric_counter(ins, "pg_rows_rejected", "rows PostgreSQL refused (sent to the error route)");
    c->m.reconnects = rtp_metric_counter(ins, "pg_reconnects", "connections made after the first");
    c->m.commit_us = rtp_metric_counter(ins, "pg_commit_us_total", "microseconds spent in committed transactions");
    c->m.latency_us = rtp_metric_gauge(ins, "pg_commit_latency_us", "duration of the last committed transaction");
    c->m.bisections = rtp_metric_counter(ins, "pg_bisections", "failed transactions split to isolate bad rows");
    pg_conn_start(&c->links[0]);
    return 0;
}

/* ---- units of work ------------------------------------------------------ */

static void unit_free(pg_unit *u)
{
    if (!u) return;
    free(u->segs);
    free(u);
}

static void push_unit(pg_ctx *c, pg_unit *u)
{
    u->next = c->stack;
    c->stack = u;
}

static size_t waiting_rows(const pg_ctx *c)
{
    size_t n = 0;
    for (const pg_pending *p = c->head; p; p = p->next)
        if (!p->queued) n += p->n;
    return n;
}

/* A unit of whole batches that wait, up to batch_size rows (at least one). */
static pg_unit *unit_from_waiting(pg_ctx *c)
{
    pg_unit *u = rtp_xcalloc(1, sizeof *u);
    size_t cap = 0;
    for (pg_pending *p = c->head; p; p = p->next) {
        if (p->queued) continue;
        if (u->nsegs && u->rows + p->n > (size_t)c->batch_size) break;
        if (u->nsegs == cap) {
            cap = cap ? cap * 2 : 4;
            u->segs = rtp_xrealloc(u->segs, cap * sizeof *u->segs);
        }
        u->segs[u->nsegs++] = (pg_seg){p, 0, p->n};
        u->rows += p->n;
        p->queued = true;
    }
    return u;
}

/* Whole batches were formatted on arrival (pg_write), while the previous
 * transaction ran, so that between two transactions the server waits for a
 * memcpy, not for formatting (csv -> postgres upserts: 73% of psql's own
 * staged upsert before, 87-94% after). Parts of batches (bisection halves)
 * are formatted here. */
static void format_unit(pg_link *l, const pg_unit *u)
{
    l->copy.len = 0;
    for (size_t i = 0; i < u->nsegs; i++) {
        const pg_seg *s = &u->segs[i];
        if (s->lo == 0 && s->hi == s->p->n)
            rtp_sbuf_append(&l->copy, s->p->text.data, s->p->text.len);
        else
            pg_format_rows(l->c, &l->copy, s->p->b, s->lo, s->hi);
    }
}

static void on_linger(uv_timer_t *t)
{
    pg_ctx *c = t->data;
    c->linger_due = true;
    pg_schedule(c);
}

/* Write now, or linger (flush_interval) for more rows to arrive. */
static bool should_write(pg_ctx *c)
{
    size_t rows = waiting_rows(c);
    if (rows == 0) return false;
    if (c->flush_interval == 0 || c->flushing || c->linger_due || rows >= (size_t)c->batch_size) return true;
    if (!uv_is_active((uv_handle_t *)&c->linger))
        uv_timer_start(&c->linger, on_linger, (uint64_t)c->flush_interval, 0);
    return false;
}

/* Starts the next unit on l if it is free: split halves and retries first
 * (they hold the oldest rows), then the batches that wait. */
static void schedule_link(pg_ctx *c, pg_link *l)
{
    if (l->state != PG_READY || l->current || uv_is_active((uv_handle_t *)&l->timer)) return;
    if (c->stack) {
        l->current = c->stack;
        c->stack = c->stack->next;
    } else if (should_write(c)) {
        uv_timer_stop(&c->linger);
        c->linger_due = false;
        l->current = unit_from_waiting(c);
    } else {
        return;
    }
    format_unit(l, l->current);
    pg_run_unit(l);
}

void pg_schedule(pg_ctx *c)
{
    if (c->stopping) return;
    for (size_t i = 0; i < c->nlinks; i++) schedule_link(c, &c->links[i]);
}

void pg_connected(pg_link *l)
{
    if (l->connected_once) rtp_metric_add(l->c->m.reconnects, 1);
    l->connected_once = true;
    pg_schedule(l->c);
}

/* The other connections open once the first has committed: its setup
 * (create_table) is done by then, and two sessions racing CREATE TABLE IF
 * NOT EXISTS can fail on a duplicate catalog entry (SQLSTATE 23505, which
 * would read as bad rows). */
static void start_links(pg_ctx *c)
{
    if (c->others_started) return;
    c->others_started = true;
    for (size_t i = 1; i < c->nlinks; i++) pg_conn_start(&c->links[i]);
}

/* Acknowledges, in arrival order, every batch whose rows are all done. */
static void complete_batches(pg_ctx *c)
{
    while (c->head && c->head->queued && c->head->left == 0) {
        pg_pending *p = c->head;
        c->head = p->next;
        if (!c->head) c->tail = NULL;
        rtp_output_done(c->ins, p->b, RTP_OK);
        rtp_sbuf_free(&p->text);
        free(p);
    }
}

void pg_unit_committed(pg_link *l)
{
    pg_ctx *c = l->c;
    pg_unit *u = l->current;
    l->current = NULL;
    uint64_t us = (uv_hrtime() - l->t_start) / 1000;
    rtp_metric_add(c->m.rows, u->rows);
    rtp_metric_add(c->m.transactions, 1);
    rtp_metric_add(c->m.commit_us, us);
    rtp_metric_set(c->m.latency_us, (int64_t)us);
    for (size_t i = 0; i < u->nsegs; i++) u->segs[i].p->left -= u->segs[i].hi - u->segs[i].lo;
    unit_free(u);
    l->attempts = 0;
    complete_batches(c);
    start_links(c);
    pg_schedule(c);
}

/* The first `rows` rows of u (which == 0) or the rest (which == 1). */
static pg_unit *unit_half(const pg_unit *u, size_t rows, int which)
{
    pg_unit *h = rtp_xcalloc(1, sizeof *h);
    h->segs = rtp_xcalloc(u->nsegs, sizeof *h->segs);
    size_t seen = 0;
    for (size_t i = 0; i < u->nsegs; i++) {
        pg_seg s = u->segs[i];
        size_t n = s.hi - s.lo;
        size_t cut = rows > seen ? (rows - seen < n ? rows - seen : n) : 0; /* rows of s in the first half */
        seen += n;
        pg_seg part = which == 0 ? (pg_seg){s.p, s.lo, s.lo + cut} : (pg_seg){s.p, s.lo + cut, s.hi};
        if (part.hi > part.lo) {
            h->segs[h->nsegs++] = part;
            h->rows += part.hi - part.lo;
        }
    }
    return h;
}

/* Bad data: a single row is rejected, more rows are split in two units
 * that run before anything else, the first half first, so rows still
 * commit in their original order (upserts keep the last value). */
static void isolate_bad_rows(pg_ctx *c, pg_unit *u, const pg_link *l)
{
    if (u->rows == 1) {
        pg_seg *s = &u->segs[0];
        rtp_warn(c->ins, "row refused (SQLSTATE %s): %s", l->sqlstate, l->error);
        rtp_output_reject(c->ins, s->p->b, s->lo, l->error);
        rtp_metric_add(c->m.rejected, 1);
        s->p->left--;
        unit_free(u);
        complete_batches(c);
        return;
    }
    rtp_metric_add(c->m.bisections, 1);
    push_unit(c, unit_half(u, u->rows / 2, 1));
    push_unit(c, unit_half(u, u->rows / 2, 0));
    unit_free(u);
}

static bool is_data_error(const char *sqlstate)
{
    /* 22: data exception (bad value, bad encoding), 23: integrity
     * constraint, 54: program limit (a value too large for an index). */
    return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0 || strncmp(sqlstate, "54", 2) == 0;
}

void pg_unit_failed(pg_link *l, bool connection_lost)
{
    pg_ctx *c = l->c;
    pg_unit *u = l->current;
    l->current = NULL;
    if (!u) return;
    if (connection_lost) {
        push_unit(c, u); /* a reconnection, or another connection, runs it again */
        pg_schedule(c);
        return;
    }
    if (is_data_error(l->sqlstate)) {
        isolate_bad_rows(c, u, l);
        pg_schedule(c);
        return;
    }
    rtp_error(c->ins, "transaction failed (SQLSTATE %s): %s; retrying", l->sqlstate, l->error ? l->error : "?");
    /* the unit stays on this connection and runs again when its wait is
     * over: on the shared stack, another free connection would retry it at
     * once, without backoff */
    l->current = u;
    pg_retry_later(l);
}

/* ---- the engine's side ---------------------------------------------------- */

static void pg_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    pg_ctx *c = ctx;
    size_t n = rtp_batch_count(b);
    if (n == 0) {
        rtp_output_done(ins, b, RTP_OK);
        return;
    }
    if (!c->ncols) columns_from_record(c, b);
    pg_pending *p = rtp_xcalloc(1, sizeof *p);
    *p = (pg_pending){.b = b, .n = n, .left = n};
    pg_format_rows(c, &p->text, b, 0, n);
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    pg_schedule(c);
}

static void pg_flush(rtp_instance *ins, void *ctx)
{
    pg_ctx *c = ctx;
    c->flushing = true; /* the run is draining: no more lingering */
    pg_schedule(c);
}

static void pg_stop(rtp_instance *ins, void *ctx)
{
    pg_ctx *c = ctx;
    c->stopping = true;
    for (size_t i = 0; i < c->nlinks; i++) pg_conn_stop(&c->links[i]);
    uv_close((uv_handle_t *)&c->linger, NULL);
}

/* Batches still held were not committed: handing them back unacknowledged
 * (the engine is stopped) lets an input with checkpoints replay them. */
static void pg_destroy(rtp_instance *ins, void *ctx)
{
    pg_ctx *c = ctx;
    for (pg_pending *p = c->head, *next; p; p = next) {
        next = p->next;
        rtp_output_done(ins, p->b, RTP_RETRY);
        rtp_sbuf_free(&p->text);
        free(p);
    }
    for (size_t i = 0; i < c->nlinks; i++) {
        unit_free(c->links[i].current);
        free(c->links[i].error);
        rtp_sbuf_free(&c->links[i].copy);
    }
    free(c->links);
    for (pg_unit *u = c->stack, *next; u; u = next) {
        next = u->next;
        unit_free(u);
    }
    for (size_t i = 0; i < c->ncols; i++) {
        free(c->cols[i].column);
        free(c->cols[i].type);
    }
    free(c->cols);
    free(c->keys);
    free(c->target);
    free(c->sql_setup);
    free(c->sql_copy);
    free(c->sql_merge);
}

RTP_PLUGIN_DEFINE(.kind = RTP_OUTPUT, .name = "postgres",
                  .description = "writes records into a PostgreSQL table with COPY, optionally as upserts",
                  .options = pg_options, .ctx_size = sizeof(pg_ctx), .init = pg_init, .start = pg_start,
                  .stop = pg_stop, .write = pg_write, .flush = pg_flush, .destroy = pg_destroy,
                  /* batches arriving during a commit join the next transaction;
                   * memory stays bounded by the inputs' mem_limit, and each
                   * transaction costs a few loop round trips (docs/postgres.md) */
                  .default_max_inflight = 16);
