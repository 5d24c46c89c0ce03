/* in_kafka: the loop side.
 *
 * librdkafka writes a byte to a non-blocking pipe whenever the consumer
 * queue goes from empty to non-empty (rd_kafka_queue_io_event_enable), and a
 * uv_poll on the pipe's read end wakes us. Each wake-up takes at most one
 * batch (batch_size messages) with rd_kafka_consumer_poll(timeout 0), which
 * also serves the queue's events: rebalance, commit results, errors, logs.
 *
 * Not rd_kafka_consume_batch_queue: before librdkafka 2.1 (Debian 12 ships
 * 2.0.2) it could skip offsets of a partition that was paused and resumed
 * (librdkafka CHANGELOG 2.1.0, PR #4235), and backpressure pauses
 * partitions. consumer_poll is the path every client uses (kcat's balanced
 * consumer too); one message per call is cheap next to parsing it.
 *
 * A full batch means more is probably waiting, and since the pipe only
 * fires on the empty -> non-empty edge, an idle handle goes on at the next
 * loop iteration, after the engine's pump had its turn. (Not a 0 ms timer:
 * libuv before 1.45 runs a timer re-armed from its own callback again in
 * the same pass, so the pump would never see the batches and the input
 * would pause itself.)
 *
 * The tick timer also fires every TICK_MS on its own. librdkafka wants the
 * application to poll at least every max.poll.interval.ms even when nothing
 * arrives, or it leaves the group; and a wake-up lost to any race costs at
 * most TICK_MS of latency, never a stall. An idle consumer pays a few
 * microseconds ten times a second.
 *
 * Backpressure holds in two stages. At first the loop just stops taking
 * messages: librdkafka's prefetch fills up to queued.max.messages.kbytes
 * and its fetcher waits, which costs nothing to undo. Pausing partitions
 * instead throws the prefetch away (librdkafka bumps the partitions'
 * version and fetches again from the position on resume), and backpressure
 * from an output a little slower than Kafka comes and goes many times a
 * second: pausing at once made Kafka -> PostgreSQL 3x slower, refetching
 * the same messages. Taking nothing also leaves rebalances and commit
 * results waiting in the queue, and librdkafka leaves the group of a
 * consumer that does not poll for max.poll.interval.ms; so backpressure
 * that lasts HOLD_MS (a sink that is down) pauses the partitions and
 * polling goes on, for events only.
 *
 * A full prefetch queue stops librdkafka's fetcher, and before librdkafka
 * 2.2 nothing wakes it when the application empties the queue: its broker
 * thread sleeps up to its one-second maximum block. A consumer faster than
 * a second's worth of prefetch then spends most of its time waiting (kafka
 * -> null: 276k msg/s after the join at 16 MB). So when the queue has been
 * dry for REFETCH_MS and the cached high watermarks show messages left at
 * the broker, the lagging partitions are seeked to the offset we would take
 * next: a seek makes a partition fetchable and wakes its broker thread, and
 * with the queue empty it throws nothing away (884k msg/s, same memory). A
 * message fetched before the seek and taken already is skipped by offset.
 * librdkafka 2.2+ gets fetch.queue.backoff.ms instead (in_kafka.c).
 *
 * Payloads are copied into the batch (the JSON parser copies strings into
 * the arena): a rd_kafka_message_t is released right after its record is
 * built, so librdkafka's fetch buffers are never held by batches in flight. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "in_kafka.h"

#define TICK_MS 100
#define LAG_MS 5000
#define HOLD_MS 1000
#define REFETCH_MS 20

/* ---- messages to records -------------------------------------------------- */

static void add_headers(kafka_ctx *c, rtp_batch *b, rtp_record *r, rtp_key k, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    rtp_sbuf *sb = &c->headers; /* reused: a buffer per message cost a malloc each */
    sb->len = 0;
    rtp_sbuf_append(sb, "{", 1);
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0; i++) {
            if (i) rtp_sbuf_append(sb, ",", 1);
            rtp_json_write_string(sb, name, strlen(name));
            rtp_sbuf_append(sb, ":", 1);
            if (val)
                rtp_json_write_string(sb, val, size);
            else
                rtp_sbuf_append(sb, "null", 4);
        }
    }
    rtp_sbuf_append(sb, "}", 1);
    rtp_record_set_str(b, r, k, sb->data, sb->len);
}

static void add_meta(kafka_ctx *c, rtp_batch *b, rtp_record *r, const rd_kafka_message_t *m)
{
    for (size_t i = 0; i < c->n_meta; i++) {
        rtp_key k = c->meta[i].key;
        int64_t ts;
        const char *topic;
        switch (c->meta[i].kind) {
        case META_KEY:
            if (m->key)
                rtp_record_set_str(b, r, k, m->key, m->key_len);
            else
                rtp_record_set_null(b, r, k);
            break;
        case META_TOPIC:
            topic = rd_kafka_topic_name(m->rkt);
            rtp_record_set_str(b, r, k, topic, strlen(topic));
            break;
        case META_PARTITION: rtp_record_set_int(b, r, k, m->partition); break;
        case META_OFFSET: rtp_record_set_int(b, r, k, m->offset); break;
        case META_TIMESTAMP:
            ts = rd_kafka_message_timestamp(m, NULL);
            if (ts >= 0)
                rtp_record_set_time(b, r, k, ts * 1000000);
            else
                rtp_record_set_null(b, r, k);
            break;
        case META_HEADERS: add_headers(c, b, r, k, m); break;
        }
    }
}

/* The event time from time_key; NULL, or why the message has none. */
static const char *time_from_field(kafka_ctx *c, rtp_record *r)
{
    const rtp_field *f = rtp_record_get(r, c->time_field);
    char num[40];
    const char *s = num;
    size_t n;
    if (!f) return "time_key is missing";
    if (f->type == RTP_STRING) {
        s = f->v.s;
        n = f->len;
    } else if (f->type == RTP_INT) {
        n = (size_t)snprintf(num, sizeof num, "%" PRId64, f->v.i);
    } else if (f->type == RTP_DOUBLE) {
        n = (size_t)snprintf(num, sizeof num, "%.17g", f->v.d);
    } else {
        return "time_key is not a string or a number";
    }
    if (rtp_timefmt_parse(c->tf, s, n, &r->time) < 0) return "time_key does not match time_format";
    return NULL;
}

/* Fills r from the payload; NULL, or why the message cannot be a record. */
static const char *fill_record(kafka_ctx *c, rtp_batch *b, rtp_record *r, const rd_kafka_message_t *m)
{
    if (c->format == FORMAT_RAW) {
        if (m->payload)
            rtp_record_set_str(b, r, c->message_field, m->payload, m->len);
        else
            rtp_record_set_null(b, r, c->message_field);
    } else {
        rtp_json_error err = {0};
        if (!m->payload) return "empty message (no payload)";
        if (rtp_json_parse_record(b, r, m->payload, m->len, 0, &err) < 0) {
            snprintf(c->why, sizeof c->why, "invalid JSON at byte %zu: %s", err.offset, err.msg);
            return c->why;
        }
    }
    add_meta(c, b, r, m);
    if (c->time_key) return time_from_field(c, r);
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    if (ts >= 0) r->time = ts * 1000000;
    return NULL;
}

static void bad_message(kafka_ctx *c, const rd_kafka_message_t *m, const char *why)
{
    rtp_warn(c->ins, "bad message at %s[%" PRId32 "]@%" PRId64 ": %s", rd_kafka_topic_name(m->rkt),
             m->partition, m->offset, why);
    rtp_metric_add(c->m_errored, 1);
    rtp_input_error(c->ins, why, m->payload ? m->payload : "", m->len);
}

/* Events that arrive as messages with err set. */
static void message_error(kafka_ctx *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->rkt) {
        kafka_part *p = kafka_part_get(c, rd_kafka_topic_name(m->rkt), m->partition);
        if (!p->assigned) return;
        rtp_debug(c->ins, "%s[%" PRId32 "] at its end, offset %" PRId64 " (taken up to %" PRId64 ")",
                  p->topic, p->partition, m->offset, p->next);
        p->eof = true;
        p->next = m->offset;
        return;
    }
    rtp_warn(c->ins, "consumer: %s%s%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
             m->rkt ? ": " : "", rd_kafka_message_errstr(m));
}

static void take_message(kafka_ctx *c, rtp_batch **b, const rd_kafka_message_t *m)
{
    if (m->err) return message_error(c, m);
    size_t p = kafka_part_find(c, rd_kafka_topic_name(m->rkt), m->partition);
    /* revoked while it sat in the queue: the partition's new owner reads it */
    if (!c->parts[p].assigned) return;
    /* fetched before a refetch seek, and taken already */
    if (m->offset < c->parts[p].next) return;
    rtp_metric_add(c->m_messages, 1);
    rtp_metric_add(c->m_bytes, m->len);
    kafka_part_take(c, p, m->offset);
    if (m->len > c->max_message_size) {
        snprintf(c->why, sizeof c->why, "message of %zu bytes is larger than max_message_size (%" PRIu64 ")",
                 m->len, c->max_message_size);
        return bad_message(c, m, c->why);
    }
    if (!*b) *b = rtp_input_batch(c->ins);
    rtp_record *r = rtp_batch_append(*b, 8 + (uint32_t)c->n_meta);
    const char *bad = fill_record(c, *b, r, m);
    if (bad) {
        r->flags |= RTP_RECORD_DROPPED; /* the engine removes it at emit */
        bad_message(c, m, bad);
    }
    rtp_batch_add_bytes(*b, m->len);
}

/* Emits the batch, also an empty one when only bad messages came: its
 * acknowledgement follows the error records' and commits their offsets. */
static void emit(kafka_ctx *c, rtp_batch *b)
{
    if (!b && !c->n_touched) return;
    if (!b) b = rtp_input_batch(c->ins);
    kafka_ranges_push(c);
    rtp_input_emit(c->ins, b, c->seq++);
}

/* ---- consuming ------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    kafka_consume(t->data);
}

static void check_eof(kafka_ctx *c)
{
    if (!c->exit_on_eof || c->finished || !kafka_all_eof(c)) return;
    c->finished = true;
    rtp_info(c->ins, "every assigned partition is read to its end");
    rtp_input_finished(c->ins, true);
}

/* After stop: messages are no longer taken (nothing could be acknowledged),
 * the queue is served until the consumer has left the group. */
static void serve_closing(kafka_ctx *c)
{
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(c->rk, 0)) != NULL) rd_kafka_message_destroy(m);
    bool closed = rd_kafka_consumer_closed(c->rk);
    if (!closed && uv_now(rtp_instance_loop(c->ins)) < c->close_deadline) return;
    if (!closed) rtp_warn(c->ins, "the consumer did not leave its group in time; the group will time it out");
    kafka_loop_close(c);
}

/* librdkafka writes the wake-up byte once, then not again until a reader
 * marks the queue served; whether rd_kafka_consumer_poll does depends on
 * the version. Enabling the event again clears the flag either way; what
 * arrived in between is seen by the queue length check after it. */
static void rearm(kafka_ctx *c)
{
    rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "1", 1);
}

static void on_refetch(uv_timer_t *t)
{
    kafka_ctx *c = t->data;
    if (c->stopping || rtp_input_paused(c->ins)) return;
    int64_t taken = rtp_metric_value(c->m_messages);
    if (taken != c->taken_at_arm || rd_kafka_queue_length(c->queue) > 0) return;
    if (kafka_refetch(c)) c->taken_at_wake = taken;
}

/* The queue ran dry: if it stays dry for REFETCH_MS, see whether the
 * fetcher sleeps with messages left at the broker. At most one wake-up
 * until messages came after it, so that a fetch slower than REFETCH_MS is
 * not thrown away again and again. */
static void arm_refetch(kafka_ctx *c)
{
    if (!c->refetch_wakes || uv_is_active((uv_handle_t *)&c->refetch)) return;
    int64_t taken = rtp_metric_value(c->m_messages);
    if (taken == c->taken_at_wake) return;
    c->taken_at_arm = taken;
    uv_timer_start(&c->refetch, on_refetch, REFETCH_MS, 0);
}

void kafka_consume(kafka_ctx *c)
{
    if (!c->handles_open) return;
    if (c->stopping) return serve_closing(c);
    /* held: see the top of the file */
    if (rtp_input_paused(c->ins) && !c->partitions_paused) return;
    rtp_batch *b = NULL;
    int64_t n = 0;
    rd_kafka_message_t *m;
    while (n < c->batch_size && (m = rd_kafka_consumer_poll(c->rk, 0)) != NULL) {
        take_message(c, &b, m);
        rd_kafka_message_destroy(m);
        n++;
    }
    emit(c, b);
    check_eof(c);
    if (n == c->batch_size) return kafka_kick(c);
    rearm(c);
    if (rd_kafka_queue_length(c->queue) > 0) return kafka_kick(c);
    arm_refetch(c);
}

static void on_more(uv_idle_t *h)
{
    kafka_ctx *c = h->data;
    uv_idle_stop(h);
    kafka_consume(c);
}

void kafka_kick(kafka_ctx *c)
{
    if (c->handles_open) uv_idle_start(&c->more, on_more);
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    kafka_ctx *c = h->data;
    char buf[256];
    while (read(c->wake[0], buf, sizeof buf) > 0) {
        /* drained: the next edge writes again */
    }
    kafka_consume(c);
}

/* ---- backpressure ------------------------------------------------------------ */

static void on_hold(uv_timer_t *t)
{
    kafka_ctx *c = t->data;
    if (!rtp_input_paused(c->ins) || c->stopping) return;
    rtp_debug(c->ins, "backpressure for %d ms: pausing the partitions", HOLD_MS);
    c->partitions_paused = true;
    kafka_pause_assigned(c, true);
    kafka_consume(c); /* serve what waited in the queue meanwhile */
}

void kafka_pause(rtp_instance *ins, void *ctx)
{
    kafka_ctx *c = ctx;
    if (c->handles_open) uv_timer_start(&c->hold, on_hold, HOLD_MS, 0);
}

void kafka_resume(rtp_instance *ins, void *ctx)
{
    kafka_ctx *c = ctx;
    if (!c->handles_open || c->stopping) return;
    uv_timer_stop(&c->hold);
    if (c->partitions_paused) kafka_pause_assigned(c, false);
    c->partitions_paused = false;
    kafka_kick(c); /* messages wait in the queue without a new wake-up */
}

static void on_commit_timer(uv_timer_t *t)
{
    kafka_commit(t->data);
}

static void on_lag_timer(uv_timer_t *t)
{
    kafka_update_lag(t->data);
}

int kafka_loop_start(kafka_ctx *c)
{
    uv_loop_t *loop = rtp_instance_loop(c->ins);
    if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        rtp_error(c->ins, "pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_io_event_enable(c->queue, c->wake[1], "1", 1);
    uv_poll_init(loop, &c->poll, c->wake[0]);
    uv_timer_init(loop, &c->tick);
    uv_idle_init(loop, &c->more);
    uv_timer_init(loop, &c->commit);
    uv_timer_init(loop, &c->lag_timer);
    uv_timer_init(loop, &c->hold);
    uv_timer_init(loop, &c->refetch);
    c->poll.data = c->tick.data = c->more.data = c->commit.data = c->lag_timer.data = c->hold.data = c;
    c->refetch.data = c;
    c->handles_open = true;
    uv_poll_start(&c->poll, UV_READABLE, on_wake);
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_start(&c->commit, on_commit_timer, (uint64_t)c->commit_interval, (uint64_t)c->commit_interval);
    uv_timer_start(&c->lag_timer, on_lag_timer, LAG_MS, LAG_MS);
    return 0;
}

void kafka_loop_close(kafka_ctx *c)
{
    if (!c->handles_open) return;
    c->handles_open = false;
    rd_kafka_queue_io_event_enable(c->queue, -1, NULL, 0);
    uv_close((uv_handle_t *)&c->poll, NULL);
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_close((uv_handle_t *)&c->more, NULL);
    uv_close((uv_handle_t *)&c->commit, NULL);
    uv_close((uv_handle_t *)&c->lag_timer, NULL);
    uv_close((uv_handle_t *)&c->hold, NULL);
    uv_close((uv_handle_t *)&c->refetch, NULL);
}
