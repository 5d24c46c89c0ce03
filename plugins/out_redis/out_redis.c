/* out_redis: writes records to Redis as hashes, stream entries, published
 * messages or list items, through hiredis's asynchronous API on the loop
 * (redis_uv.c: hiredis's libuv adapter, fixed).
 *
 * A batch is pipelined: every command is sent without waiting, replies are
 * counted, and the batch is acknowledged once Redis answered all of them.
 * An error reply about the record (WRONGTYPE, a bad argument) rejects that
 * record to the error route; an error that says the server is not ready
 * (LOADING, OOM, READONLY, ...) and a lost connection keep the command to
 * be sent again: after a backoff, on the same or a new connection. Only
 * commands without a reply are sent again, so a reconnection does not
 * repeat an XADD or LPUSH that Redis already confirmed; a record's PEXPIRE
 * or LTRIM counts as done only once the write ahead of it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis_cmd.h"
#include "redis_uv.h"

/* A command's fate, per record and command (bit `which`). */
typedef struct job {
    rtp_batch *b;
    size_t n;
    int ncmd;            /* commands per record */
    uint8_t *done;       /* bit per command: replied (or record rejected) */
    uint8_t *sent;       /* bit per command: waiting for a reply */
    size_t outstanding;  /* replies awaited */
    bool resend;         /* some command needs sending again */
    struct token *tokens;
    struct job *next;
} job;

typedef struct token {
    job *j;
    uint32_t i;
    uint8_t which;
} token;

typedef struct redis_ctx {
    char *host;
    int64_t port;
    char *unix_socket;
    char *username;
    char *password;
    int64_t db;
    int mode;
    char *key;
    int64_t ttl;
    int64_t max_len;
    int64_t connect_timeout;
    int64_t reconnect_max_wait;

    rtp_instance *ins;
    uv_loop_t *loop;
    redis_tpl tpl;
    redis_cmd_conf cc;
    redisAsyncContext *ac;
    bool ready; /* connected, authenticated, database selected */
    bool stopping;
    unsigned attempts;
    bool connected_once;
    uv_timer_t timer; /* connect timeout, reconnect and retry waits */
    job *head, *tail;
    redis_cmd cmd;
    rtp_sbuf scratch;
    struct {
        rtp_metric *commands, *rejected, *reconnects;
    } m;
} redis_ctx;

#define OFF(f) offsetof(redis_ctx, f)
static const rtp_option redis_options[] = {
    {"host", RTP_OPT_STR, "127.0.0.1", 0, OFF(host), "Redis server address", NULL},
    {"port", RTP_OPT_INT, "6379", 0, OFF(port), "Redis server port", NULL},
    {"unix_socket", RTP_OPT_STR, NULL, 0, OFF(unix_socket), "path of a unix socket (replaces host and port)", NULL},
    {"username", RTP_OPT_STR, NULL, 0, OFF(username), "ACL user for AUTH (Redis 6+); unset: the default user", NULL},
    {"password", RTP_OPT_STR, NULL, 0, OFF(password), "password for AUTH; never logged", NULL},
    {"db", RTP_OPT_INT, "0", 0, OFF(db), "database number (SELECT)", NULL},
    {"mode", RTP_OPT_ENUM, "hash", 0, OFF(mode),
     "hash: HSET key field value ...; stream: XADD key MAXLEN ~ max_len * field value ...; "
     "publish: PUBLISH key <record as JSON>; list: LPUSH key <JSON> + LTRIM to max_len", "hash|stream|publish|list"},
    {"key", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(key),
     "key (channel for publish) template: {field} is the field's text, {{ and }} are braces; "
     "a record without a field of the template is rejected", NULL},
    {"ttl", RTP_OPT_DURATION, "0ms", 0, OFF(ttl), "hash: PEXPIRE the key after each write; 0: no expiry", NULL},
    {"max_len", RTP_OPT_INT, "10000", 0, OFF(max_len),
     "stream: approximate MAXLEN; list: entries kept by LTRIM; 0: unbounded", NULL},
    {"connect_timeout", RTP_OPT_DURATION, "5s", 0, OFF(connect_timeout), "give up a connection attempt after this",
     NULL},
    {"reconnect_max_wait", RTP_OPT_DURATION, "10s", 0, OFF(reconnect_max_wait),
     "longest wait between reconnection attempts (from 100 ms, doubling, with jitter)", NULL},
    RTP_OPT_END};

static void send_jobs(redis_ctx *c);
static void retry_later(redis_ctx *c);

/* ---- jobs --------------------------------------------------------------- */

static bool bit(const uint8_t *v, size_t i, int which)
{
    return v[i] & (1u << which);
}

static void job_free(job *j)
{
    free(j->done);
    free(j->sent);
    free(j->tokens);
    free(j);
}

static void complete_jobs(redis_ctx *c)
{
    while (c->head && c->head->outstanding == 0 && !c->head->resend) {
        job *j = c->head;
        size_t i = 0;
        for (; i < j->n; i++)
            if (j->done[i] != (1u << j->ncmd) - 1) break;
        if (i < j->n) return; /* not all sent yet (a reconnection is due) */
        c->head = j->next;
        if (!c->head) c->tail = NULL;
        rtp_output_done(c->ins, j->b, RTP_OK);
        job_free(j);
    }
}

/* Errors that say nothing about the record: the command is sent again. */
static bool transient(const char *err)
{
    static const char *const prefixes[] = {"LOADING", "BUSY", "TRYAGAIN", "OOM", "READONLY", "MASTERDOWN",
                                           "CLUSTERDOWN", "NOAUTH", "NOREPLICAS", "NOPERM"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0) return true;
    return false;
}

static void reject(redis_ctx *c, job *j, size_t i, const char *why)
{
    rtp_output_reject(c->ins, j->b, i, why);
    rtp_metric_add(c->m.rejected, 1);
    j->done[i] = (uint8_t)((1u << j->ncmd) - 1);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    token *t = privdata;
    job *j = t->j;
    redis_ctx *c = ac->data;
    uint8_t before = (uint8_t)((1u << t->which) - 1); /* the record's commands sent ahead of this one */
    j->outstanding--;
    j->sent[t->i] &= (uint8_t) ~(1u << t->which);
    if (!reply) {
        j->resend = true; /* the connection is gone: sent again on the next one */
    } else if (reply->type == REDIS_REPLY_ERROR && transient(reply->str)) {
        rtp_warn(c->ins, "Redis refused for now: %s; will send again", reply->str);
        j->resend = true;
        if (!c->stopping && !uv_is_active((uv_handle_t *)&c->timer)) retry_later(c);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        if (j->done[t->i] != (1u << j->ncmd) - 1) reject(c, j, t->i, reply->str);
    } else if ((j->done[t->i] & before) != before) {
        /* PEXPIRE or LTRIM accepted behind a write Redis refused for now:
         * it acted on a key that is not there yet, so it goes again after
         * the write (replies come in order: the write's came first) */
        j->resend = true;
        if (!c->stopping && !uv_is_active((uv_handle_t *)&c->timer)) retry_later(c);
    } else {
        j->done[t->i] |= (uint8_t)(1u << t->which);
    }
    if (!c->stopping) complete_jobs(c);
}

/* Sends every command of the job that is neither answered nor waiting. */
static void send_job(redis_ctx *c, job *j)
{
    j->resend = false;
    for (size_t i = 0; i < j->n; i++) {
        for (int w = 0; w < j->ncmd; w++) {
            if (bit(j->done, i, w) || bit(j->sent, i, w)) continue;
            const char *why = NULL;
            if (redis_cmd_build(&c->cc, rtp_batch_record(j->b, i), w, &c->cmd, &c->scratch, &why) < 0) {
                char msg[200];
                snprintf(msg, sizeof msg, why ? "field '%s' of the key template is missing or null"
                                              : "no field to write%s", why ? why : "");
                reject(c, j, i, msg);
                break;
            }
            token *t = &j->tokens[i * (size_t)j->ncmd + (size_t)w];
            if (redisAsyncCommandArgv(c->ac, on_reply, t, c->cmd.argc, c->cmd.argv, c->cmd.argvlen) != REDIS_OK) {
                j->resend = true;
                return;
            }
            j->sent[i] |= (uint8_t)(1u << w);
            j->outstanding++;
            rtp_metric_add(c->m.commands, 1);
        }
    }
}

static void send_jobs(redis_ctx *c)
{
    for (job *j = c->head; j && c->ready; j = j->next) send_job(c, j);
    complete_jobs(c);
}

/* ---- connection ------------------------------------------------------------ */

static void connect_now(redis_ctx *c);
static void on_timer(uv_timer_t *t);

/* 100 ms doubling up to reconnect_max_wait, with jitter. */
static void retry_later(redis_ctx *c)
{
    uint64_t wait = rtp_backoff_ms(c->attempts, 100, (uint64_t)c->reconnect_max_wait);
    c->attempts++;
    if (!c->stopping) uv_timer_start(&c->timer, on_timer, wait, 0);
}

static void on_timer(uv_timer_t *t)
{
    redis_ctx *c = t->data;
    if (!c->ac) {
        connect_now(c);
    } else if (!c->ready) {
        rtp_warn(c->ins, "connecting timed out after %lld ms", (long long)c->connect_timeout);
        redisAsyncFree(c->ac); /* no callback: the context was never connected */
        c->ac = NULL;
        retry_later(c);
    } else {
        send_jobs(c); /* a transient error's wait is over */
    }
}

/* AUTH and SELECT are the first commands on a connection; batches are
 * sent only once both succeeded, so no record meets a NOAUTH error. */
static void on_setup(redisAsyncContext *ac, void *r, void *privdata) /* cppcheck-suppress constParameter */
{
    redis_ctx *c = ac->data;
    redisReply *reply = r;
    bool last = privdata != NULL;
    if (!reply || c->stopping) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        rtp_error(c->ins, "%s failed: %s", last ? "SELECT" : "AUTH", reply->str);
        redisAsyncDisconnect(ac); /* the disconnect callback retries later */
        return;
    }
    if (!last) return;
    c->ready = true;
    c->attempts = 0;
    uv_timer_stop(&c->timer);
    if (c->connected_once) rtp_metric_add(c->m.reconnects, 1);
    c->connected_once = true;
    rtp_info(c->ins, "connected to %s", c->unix_socket ? c->unix_socket : c->host);
    send_jobs(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_ctx *c = ac->data;
    if (status == REDIS_OK) return; /* ready once the setup commands answer */
    rtp_warn(c->ins, "cannot connect: %s; reconnecting", ac->errstr);
    c->ac = NULL; /* hiredis frees the context after this callback */
    uv_timer_stop(&c->timer);
    retry_later(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_ctx *c = ac->data;
    c->ac = NULL;
    c->ready = false;
    if (c->stopping) return;
    rtp_warn(c->ins, "connection lost%s%s; reconnecting", status == REDIS_OK ? "" : ": ",
             status == REDIS_OK ? "" : ac->errstr);
    uv_timer_stop(&c->timer);
    retry_later(c);
}

static void send_setup(redis_ctx *c)
{
    static char last; /* privdata of the command whose reply makes the connection ready */
    if (c->password) {
        const char *argv[3] = {"AUTH", c->username ? c->username : c->password, c->password};
        redisAsyncCommandArgv(c->ac, on_setup, NULL, c->username ? 3 : 2, argv, NULL);
    }
    char db[24];
    snprintf(db, sizeof db, "%lld", (long long)c->db);
    const char *argv[2] = {"SELECT", db};
    redisAsyncCommandArgv(c->ac, on_setup, &last, 2, argv, NULL);
}

static void connect_now(redis_ctx *c)
{
    c->ac = c->unix_socket ? redisAsyncConnectUnix(c->unix_socket) : redisAsyncConnect(c->host, (int)c->port);
    if (!c->ac || c->ac->err) {
        rtp_warn(c->ins, "cannot connect: %s", c->ac ? c->ac->errstr : "out of memory");
        if (c->ac) redisAsyncFree(c->ac);
        c->ac = NULL;
        retry_later(c);
        return;
    }
    c->ac->data = c;
    if (redis_uv_attach(c->ac, c->loop) != REDIS_OK) {
        rtp_error(c->ins, "cannot watch the Redis socket");
        redisAsyncFree(c->ac);
        c->ac = NULL;
        retry_later(c);
        return;
    }
    redisAsyncSetConnectCallback(c->ac, on_connect);
    redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
    send_setup(c);
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->connect_timeout, 0);
}

/* ---- the engine's side ----------------------------------------------------- */

static int redis_init(rtp_instance *ins, void *ctx)
{
    redis_ctx *c = ctx;
    c->ins = ins;
    const char *err;
    if (redis_tpl_parse(&c->tpl, c->key, &err) < 0) {
        rtp_config_error(ins, "key", "%s in '%s'", err, c->key);
        return -1;
    }
    if (c->port < 1 || c->port > 65535) {
        rtp_config_error(ins, "port", "must be 1..65535");
        return -1;
    }
    if (c->max_len < 0 || c->db < 0) {
        rtp_config_error(ins, c->db < 0 ? "db" : "max_len", "must not be negative");
        return -1;
    }
    if (c->ttl > 0 && c->mode != MODE_HASH) {
        rtp_config_error(ins, "ttl", "applies to mode = hash only");
        return -1;
    }
    c->cc = (redis_cmd_conf){.mode = c->mode, .key = &c->tpl, .ttl_ms = c->ttl, .max_len = c->max_len};
    return 0;
}

static int redis_start(rtp_instance *ins, void *ctx)
{
    redis_ctx *c = ctx;
    c->loop = rtp_instance_loop(ins);
    uv_timer_init(c->loop, &c->timer);
    c->timer.data = c;
    c->m.commands = rtp_metric_counter(ins, "redis_commands", "commands sent");
    c->m.rejected = rtp_metric_counter(ins, "redis_rejected", "records Redis refused (sent to the error route)");
    c->m.reconnects = rtp_metric_counter(ins, "redis_reconnects", "connections made after the first");
    connect_now(c);
    return 0;
}

static void redis_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    redis_ctx *c = ctx;
    job *j = rtp_xcalloc(1, sizeof *j);
    j->b = b;
    j->n = rtp_batch_count(b);
    j->ncmd = redis_cmd_count(&c->cc);
    j->done = rtp_xcalloc(j->n + 1, 1);
    j->sent = rtp_xcalloc(j->n + 1, 1);
    j->tokens = rtp_xcalloc(j->n * (size_t)j->ncmd + 1, sizeof *j->tokens);
    for (size_t i = 0; i < j->n; i++)
        for (int w = 0; w < j->ncmd; w++) j->tokens[i * (size_t)j->ncmd + (size_t)w] = (token){j, (uint32_t)i, (uint8_t)w};
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    if (c->ready) send_job(c, j);
    complete_jobs(c);
}

static void redis_stop(rtp_instance *ins, void *ctx)
{
    redis_ctx *c = ctx;
    c->stopping = true;
    if (c->ac) redisAsyncFree(c->ac); /* pending callbacks run with no reply */
    c->ac = NULL;
    uv_close((uv_handle_t *)&c->timer, NULL);
}

/* Jobs still held were not confirmed: handed back unacknowledged, an
 * input with checkpoints replays them. */
static void redis_destroy(rtp_instance *ins, void *ctx)
{
    redis_ctx *c = ctx;
    for (job *j = c->head, *next; j; j = next) {
        next = j->next;
        rtp_output_done(ins, j->b, RTP_RETRY);
        job_free(j);
    }
    redis_tpl_free(&c->tpl);
    rtp_sbuf_free(&c->scratch);
}

RTP_PLUGIN_DEFINE(.kind = RTP_OUTPUT, .name = "redis",
                  .description = "writes records to Redis: hashes, streams, pub/sub messages or capped lists",
                  .options = redis_options, .ctx_size = sizeof(redis_ctx), .init = redis_init,
                  .start = redis_start, .stop = redis_stop, .write = redis_write, .destroy = redis_destroy,
                  /* keep the pipe full while the previous batch's replies come back */
                  .default_max_inflight = 4);
