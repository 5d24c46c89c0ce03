/* in_kafka: consumes Kafka topics through librdkafka's high-level consumer.
 *
 * The consumer is driven by the engine's loop, without a polling thread:
 * librdkafka writes a byte to a pipe when its consumer queue gets work
 * (messages, rebalances, errors, commit results, logs) and a uv_poll on the
 * pipe wakes us to take a batch (consume.c).
 *
 * Delivery is at-least-once, on delivery rather than on ingest: automatic
 * commits and the offset store are off; every emitted batch remembers the
 * next offset of each partition it covers, the engine acknowledges batches
 * in emission order once every output delivered them, and only acknowledged
 * offsets are committed (offsets.c). A crash replays what was not yet
 * delivered. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "in_kafka.h"

/* How long stop lets the consumer leave its group: under the engine's 3 s
 * for plugins to finish, so a broker that does not answer cannot hold the
 * exit; the group then times the member out instead. */
#define CLOSE_WAIT_MS 2500

#define OFF(f) offsetof(kafka_ctx, f)
static const rtp_option kafka_options[] = {
    {"brokers", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(brokers),
     "bootstrap servers, host:port[,host:port...]", NULL},
    {"topics", RTP_OPT_LIST, NULL, RTP_OPT_REQUIRED, OFF(topics),
     "topics to subscribe to; an entry starting with ^ is a regular expression", NULL},
    {"group_id", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(group_id),
     "consumer group: processes with the same group share the partitions", NULL},
    {"rdkafka.", RTP_OPT_PREFIX, NULL, 0, OFF(rdkafka),
     "any librdkafka consumer property, e.g. rdkafka.security.protocol = ssl", NULL},
    {"format", RTP_OPT_ENUM, "json", 0, OFF(format),
     "json: the message is a JSON object (nested objects become dotted names, arrays JSON text); "
     "raw: the payload becomes the string field 'message'", "json|raw"},
    {"start", RTP_OPT_ENUM, "earliest", 0, OFF(start),
     "where a group without a committed offset starts in a partition", "earliest|latest"},
    {"fields", RTP_OPT_LIST, NULL, 0, OFF(fields),
     "message metadata to add: key, topic, partition, offset, timestamp, headers; added as kafka_<name>, "
     "or name:field to choose the field", NULL},
    {"time_key", RTP_OPT_STR, NULL, 0, OFF(time_key),
     "field of the JSON message that gives the event time (default: the Kafka message timestamp)", NULL},
    {"time_format", RTP_OPT_STR, "iso8601", 0, OFF(time_format),
     "format of time_key: strftime pattern, epoch, epoch_ms, epoch_us, epoch_ns or iso8601", NULL},
    {"batch_size", RTP_OPT_INT, "4096", 0, OFF(batch_size), "most messages per batch", NULL},
    {"max_message_size", RTP_OPT_SIZE, "1M", 0, OFF(max_message_size),
     "a longer message goes to the error route", NULL},
    {"commit_interval", RTP_OPT_DURATION, "1s", 0, OFF(commit_interval),
     "how often delivered offsets are committed (also at rebalances and at stop)", NULL},
    {"exit_on_eof", RTP_OPT_BOOL, "false", 0, OFF(exit_on_eof),
     "end the run once every assigned partition is read to its end and delivered (tests, backfills)", NULL},
    RTP_OPT_END};

/* ---- configuration --------------------------------------------------------- */

/* Properties the plugin owns: setting them through rdkafka.* would break the
 * delivery guarantee or duplicate an option. */
static const char *const owned[][2] = {
    {"bootstrap.servers", "brokers"},          {"metadata.broker.list", "brokers"},
    {"group.id", "group_id"},                  {"auto.offset.reset", "start"},
    {"enable.partition.eof", "exit_on_eof"},   {"enable.auto.commit", NULL},
    {"enable.auto.offset.store", NULL},
};

static int check_owned(rtp_instance *ins, const char *key)
{
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) {
        if (strcmp(key, owned[i][0]) != 0) continue;
        char full[160];
        snprintf(full, sizeof full, "rdkafka.%s", key);
        if (owned[i][1])
            rtp_config_error(ins, full, "set by the option '%s'", owned[i][1]);
        else
            rtp_config_error(ins, full, "in_kafka commits offsets itself, once outputs delivered the messages");
        return -1;
    }
    return 0;
}

static int conf_set(kafka_ctx *c, const char *key, const char *value, const char *optname)
{
    char err[512];
    if (rd_kafka_conf_set(c->conf, key, value, err, sizeof err) == RD_KAFKA_CONF_OK) return 0;
    rtp_config_error(c->ins, optname, "%s", err);
    return -1;
}

static int build_conf(kafka_ctx *c)
{
    char full[160];
    c->conf = rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", c->brokers, "brokers") < 0 ||
        conf_set(c, "group.id", c->group_id, "group_id") < 0 ||
        conf_set(c, "auto.offset.reset", c->start == START_LATEST ? "latest" : "earliest", "start") < 0 ||
        conf_set(c, "enable.partition.eof", c->exit_on_eof ? "true" : "false", "exit_on_eof") < 0)
        return -1;
    /* Defaults a user may change: the prefetch queue is memory outside
     * mem_limit, so it is bounded by 16 MB rather than librdkafka's 64 MB,
     * and by bytes only: librdkafka counts queued.min.messages against the
     * one consumer queue of all partitions, and its default (100,000) made
     * the fetcher back off whenever a parsing consumer fell a little behind
     * (measured: 900,000 JSON ticks over 32 partitions took 5.7 s instead
     * of 3.7 s). A full queue stops the fetcher for a second; consume.c
     * wakes it sooner, and librdkafka 2.2 made that wait an option
     * (fetch.queue.backoff.ms). Logs come back to the loop thread through
     * the queue (rtp_log is not thread-safe). */
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},           {"enable.auto.offset.store", "false"},
        {"queued.max.messages.kbytes", "16384"},   {"queued.min.messages", "10000000"},
        {"log.queue", "true"},                     {"client.id", "rtproc"}};
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (conf_set(c, defaults[i][0], defaults[i][1], "rdkafka.") < 0) return -1;
    c->refetch_wakes = rd_kafka_version() < KAFKA_FETCH_BACKOFF_VERSION;
    if (!c->refetch_wakes && conf_set(c, "fetch.queue.backoff.ms", "20", "rdkafka.") < 0) return -1;
    for (size_t i = 0; i < c->rdkafka.n; i++) {
        snprintf(full, sizeof full, "rdkafka.%s", c->rdkafka.keys[i]);
        if (check_owned(c->ins, c->rdkafka.keys[i]) < 0 ||
            conf_set(c, c->rdkafka.keys[i], c->rdkafka.values[i], full) < 0)
            return -1;
    }
    return 0;
}

static int parse_fields(kafka_ctx *c)
{
    static const char *const names[] = {"key", "topic", "partition", "offset", "timestamp", "headers"};
    c->meta = rtp_xcalloc(c->fields.n ? c->fields.n : 1, sizeof *c->meta);
    for (size_t i = 0; i < c->fields.n; i++) {
        const char *item = c->fields.v[i];
        const char *colon = strchr(item, ':');
        size_t len = colon ? (size_t)(colon - item) : strlen(item);
        int kind = -1;
        for (int k = 0; k < (int)(sizeof names / sizeof *names); k++)
            if (strlen(names[k]) == len && strncmp(item, names[k], len) == 0) kind = k;
        if (kind < 0 || (colon && !colon[1])) {
            rtp_config_error(c->ins, "fields", "'%s': expected key, topic, partition, offset, timestamp or "
                                               "headers, optionally followed by :field_name", item);
            return -1;
        }
        char def[32];
        snprintf(def, sizeof def, "kafka_%s", names[kind]);
        c->meta[c->n_meta++] = (meta_field){(meta_kind)kind, rtp_key_cstr(colon ? colon + 1 : def)};
    }
    return 0;
}

static int check_topics(kafka_ctx *c)
{
    for (size_t i = 0; i < c->topics.n; i++) {
        regex_t re;
        const char *t = c->topics.v[i];
        if (!t[0]) {
            rtp_config_error(c->ins, "topics", "empty topic name");
            return -1;
        }
        if (t[0] != '^') continue;
        /* librdkafka compiles subscriptions as POSIX extended expressions */
        if (regcomp(&re, t, REG_EXTENDED | REG_NOSUB) != 0) {
            rtp_config_error(c->ins, "topics", "'%s' is not a valid regular expression", t);
            return -1;
        }
        regfree(&re);
    }
    return 0;
}

static int check_numbers(kafka_ctx *c)
{
    if (c->batch_size < 1 || c->batch_size > 1000000) {
        rtp_config_error(c->ins, "batch_size", "must be between 1 and 1000000");
        return -1;
    }
    if (c->max_message_size < 1) {
        rtp_config_error(c->ins, "max_message_size", "must be more than 0");
        return -1;
    }
    if (c->commit_interval < 1) {
        rtp_config_error(c->ins, "commit_interval", "must be more than 0");
        return -1;
    }
    return 0;
}

static int check_time(kafka_ctx *c)
{
    const char *err = NULL;
    if (!c->time_key) return 0;
    if (c->format == FORMAT_RAW) {
        rtp_config_error(c->ins, "time_key", "needs format = json (a raw message has no fields)");
        return -1;
    }
    c->tf = rtp_timefmt_new(c->time_format, &err);
    if (!c->tf) {
        rtp_config_error(c->ins, "time_format", "'%s': %s", c->time_format, err);
        return -1;
    }
    c->time_field = rtp_key_cstr(c->time_key);
    return 0;
}

static void make_metrics(kafka_ctx *c)
{
    rtp_instance *ins = c->ins;
    c->m_messages = rtp_metric_counter(ins, "messages_consumed", "Kafka messages consumed");
    c->m_bytes = rtp_metric_counter(ins, "bytes_consumed", "payload bytes of the messages consumed");
    c->m_errored = rtp_metric_counter(ins, "messages_errored", "messages sent to the error route");
    c->m_rebalances = rtp_metric_counter(ins, "rebalances", "partition assignments and revocations");
    c->m_commits = rtp_metric_counter(ins, "commits", "offset commits sent");
    c->m_commit_errors = rtp_metric_counter(ins, "commit_errors", "offset commits that failed");
    c->m_lag = rtp_metric_gauge(ins, "consumer_lag", "messages behind the high watermark, all partitions");
    c->m_assigned = rtp_metric_gauge(ins, "assigned_partitions", "partitions assigned to this consumer");
}

/* librdkafka's logs arrive on the loop thread (log.queue) */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kafka_ctx *c = rd_kafka_opaque(rk);
    rtp_log_level l = level <= 3 ? RTP_LOG_ERROR : level == 4 ? RTP_LOG_WARN : level <= 6 ? RTP_LOG_INFO
                                                                                         : RTP_LOG_DEBUG;
    if (rtp_log_enabled(l)) rtp_log(c->ins, l, "librdkafka %s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_ctx *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        rtp_error(c->ins, "fatal consumer error: %s", why);
        return;
    }
    rtp_warn(c->ins, "consumer error: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Names the rdkafka.* key an error text mentions, for rtp_config_error. */
static const char *guess_key(const kafka_ctx *c, const char *text, char *buf, size_t size)
{
    for (size_t i = 0; i < c->rdkafka.n; i++)
        if (strstr(text, c->rdkafka.keys[i])) return snprintf(buf, size, "rdkafka.%s", c->rdkafka.keys[i]), buf;
    return "rdkafka.";
}

/* The handle is made here, not in start, so what librdkafka only checks when
 * a handle is created (TLS files, SASL mechanisms) fails as a configuration
 * error before anything starts. It connects to nothing until start
 * subscribes, beyond fetching metadata. */
static int make_consumer(kafka_ctx *c)
{
    char err[512];
    rd_kafka_conf_set_opaque(c->conf, c);
    rd_kafka_conf_set_rebalance_cb(c->conf, kafka_rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(c->conf, kafka_commit_cb);
    rd_kafka_conf_set_error_cb(c->conf, on_error);
    rd_kafka_conf_set_log_cb(c->conf, on_log);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c->conf, err, sizeof err);
    if (!c->rk) {
        char key[160];
        rtp_config_error(c->ins, guess_key(c, err, key, sizeof key), "cannot create the consumer: %s", err);
        return -1;
    }
    c->conf = NULL; /* the handle owns it now */
    return 0;
}

static int kafka_init(rtp_instance *ins, void *ctx)
{
    kafka_ctx *c = ctx;
    c->ins = ins;
    c->wake[0] = c->wake[1] = -1;
    c->message_field = rtp_key_cstr("message");
    if (check_numbers(c) < 0 || check_topics(c) < 0 || parse_fields(c) < 0 || check_time(c) < 0 ||
        build_conf(c) < 0)
        return -1;
    make_metrics(c);
    return make_consumer(c);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int subscribe(kafka_ctx *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->topics.n);
    for (size_t i = 0; i < c->topics.n; i++)
        rd_kafka_topic_partition_list_add(l, c->topics.v[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) rtp_error(c->ins, "cannot subscribe: %s", rd_kafka_err2str(err));
    return err ? -1 : 0;
}

static int kafka_start(rtp_instance *ins, void *ctx)
{
    kafka_ctx *c = ctx;
    /* Everything (messages, rebalances, errors, logs) goes to one queue,
     * the one the loop watches. */
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_set_log_queue(c->rk, NULL);
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    if (kafka_loop_start(c) < 0) return -1;
    return subscribe(c);
}

/* Commits what was delivered, then closes the consumer without blocking:
 * rd_kafka_consumer_close_queue leaves the group in the background while the
 * loop keeps serving the queue (rebalance callbacks, the commit's result);
 * consume.c closes the handles once the consumer is closed, or after
 * CLOSE_WAIT_MS, within the engine's 3 s for plugins to finish. */
static void kafka_stop(rtp_instance *ins, void *ctx)
{
    kafka_ctx *c = ctx;
    c->stopping = true;
    if (!c->handles_open) return;
    kafka_commit(c);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, c->queue);
    if (e) {
        rtp_warn(ins, "closing the consumer: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    c->close_deadline = uv_now(rtp_instance_loop(ins)) + CLOSE_WAIT_MS;
    kafka_consume(c);
}

static void kafka_destroy(rtp_instance *ins, void *ctx)
{
    kafka_ctx *c = ctx;
    if (c->conf) rd_kafka_conf_destroy(c->conf);
    if (c->queue) rd_kafka_queue_destroy(c->queue);
    if (c->rk) {
        /* A consumer that did not finish closing is not closed again here:
         * that would block for as long as the group takes. */
        bool closed = rd_kafka_consumer_closed(c->rk);
        rd_kafka_destroy_flags(c->rk, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0) close(c->wake[i]);
    kafka_parts_free(c);
    rtp_timefmt_free(c->tf);
    rtp_sbuf_free(&c->headers);
    free(c->meta);
}

RTP_PLUGIN_DEFINE(.kind = RTP_INPUT, .name = "kafka",
                  .description = "consumes Kafka topics in a consumer group; offsets are committed once "
                                 "outputs delivered the messages",
                  .options = kafka_options, .ctx_size = sizeof(kafka_ctx), .init = kafka_init,
                  .start = kafka_start, .stop = kafka_stop, .destroy = kafka_destroy, .pause = kafka_pause,
                  .resume = kafka_resume, .ack = kafka_ack);
