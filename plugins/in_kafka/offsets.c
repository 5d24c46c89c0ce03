/* in_kafka: partitions, acknowledgements, commits and rebalances.
 *
 * Every emitted batch pushes one range per partition it touched, (batch,
 * partition, assignment epoch, next offset), onto a FIFO. The engine
 * acknowledges batches in emission order, so an ack pops ranges from the
 * front and each partition's delivered offset only moves forward: offsets
 * are per-partition in order without sorting anything. Error records (bad
 * messages) are acknowledged before the batch emitted after them, and that
 * batch covers their offsets, so they are committed once the error output
 * delivered them.
 *
 * Commits carry explicit offsets (rd_kafka_commit with a list, async), every
 * commit_interval, at revocation and at stop; the offset store is never
 * used, so nothing but a delivered offset can be committed.
 *
 * A revoked partition's batches still in flight are not committed by us:
 * their acks belong to an older assignment epoch and are ignored, and the
 * partition's next owner starts from the last committed offset. That replays
 * those messages (at-least-once), never skips them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "in_kafka.h"

/* ---- the partition table --------------------------------------------------- */

static rtp_metric *lag_metric(kafka_ctx *c, const char *topic, int32_t partition)
{
    char name[200];
    int n = snprintf(name, sizeof name, "consumer_lag_%s_%" PRId32, topic, partition);
    for (int i = 0; i < n && i < (int)sizeof name - 1; i++) /* Prometheus names: [a-zA-Z0-9_] */
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9')))
            name[i] = '_';
    return rtp_metric_gauge(c->ins, name, "messages behind the high watermark in one partition");
}

size_t kafka_part_find(kafka_ctx *c, const char *topic, int32_t partition)
{
    if (c->last_part < c->n_parts) {
        const kafka_part *p = &c->parts[c->last_part];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) return c->last_part;
    }
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0)
            return c->last_part = i;
    c->parts = rtp_xrealloc(c->parts, (c->n_parts + 1) * sizeof *c->parts);
    kafka_part *p = &c->parts[c->n_parts];
    *p = (kafka_part){.topic = rtp_xstrdup(topic), .partition = partition, .next = -1, .acked = -1, .committed = -1};
    p->lag = lag_metric(c, topic, partition);
    return c->last_part = c->n_parts++;
}

kafka_part *kafka_part_get(kafka_ctx *c, const char *topic, int32_t partition)
{
    size_t i = kafka_part_find(c, topic, partition); /* may move the table: index first */
    return &c->parts[i];
}

void kafka_part_take(kafka_ctx *c, size_t i, int64_t offset)
{
    kafka_part *p = &c->parts[i];
    p->next = offset + 1;
    p->eof = false;
    if (p->batch_seq == c->seq + 1) return; /* already listed for this batch */
    p->batch_seq = c->seq + 1;
    if (c->n_touched == c->cap_touched) {
        c->cap_touched = c->cap_touched ? c->cap_touched * 2 : 16;
        c->touched = rtp_xrealloc(c->touched, c->cap_touched * sizeof *c->touched);
    }
    c->touched[c->n_touched++] = (uint32_t)i;
}

bool kafka_all_eof(const kafka_ctx *c)
{
    size_t assigned = 0;
    for (size_t i = 0; i < c->n_parts; i++) {
        if (!c->parts[i].assigned) continue;
        if (!c->parts[i].eof) return false;
        assigned++;
    }
    return assigned > 0;
}

void kafka_parts_free(kafka_ctx *c)
{
    for (size_t i = 0; i < c->n_parts; i++) free(c->parts[i].topic);
    free(c->parts);
    free(c->ranges);
    free(c->touched);
}

/* ---- in-flight ranges and acks ---------------------------------------------- */

static void ring_push(kafka_ctx *c, kafka_range r)
{
    if (c->r_len == c->r_cap) {
        size_t cap = c->r_cap ? c->r_cap * 2 : 64;
        kafka_range *nr = rtp_xmalloc(cap * sizeof *nr);
        for (size_t i = 0; i < c->r_len; i++) nr[i] = c->ranges[(c->r_head + i) % c->r_cap];
        free(c->ranges);
        c->ranges = nr;
        c->r_cap = cap;
        c->r_head = 0;
    }
    c->ranges[(c->r_head + c->r_len++) % c->r_cap] = r;
}

void kafka_ranges_push(kafka_ctx *c)
{
    for (size_t i = 0; i < c->n_touched; i++) {
        const kafka_part *p = &c->parts[c->touched[i]];
        ring_push(c, (kafka_range){c->seq, c->touched[i], p->epoch, p->next});
    }
    c->n_touched = 0;
}

void kafka_ack(rtp_instance *ins, void *ctx, uint64_t cookie)
{
    kafka_ctx *c = ctx;
    while (c->r_len && c->ranges[c->r_head].seq <= cookie) {
        const kafka_range *r = &c->ranges[c->r_head];
        kafka_part *p = &c->parts[r->part];
        if (p->assigned && p->epoch == r->epoch && r->next > p->acked) p->acked = r->next;
        c->r_head = (c->r_head + 1) % c->r_cap;
        c->r_len--;
    }
}

/* ---- commits ----------------------------------------------------------------- */

/* Commits the delivered offsets of the partitions in `only` (all assigned
 * ones when NULL) that moved since their last commit. */
static void commit_parts(kafka_ctx *c, const rd_kafka_topic_partition_list_t *only)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < c->n_parts; i++) {
        kafka_part *p = &c->parts[i];
        if (!p->assigned || p->acked < 0 || p->acked == p->committed) continue;
        if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition)) continue;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->acked;
        p->committed = p->acked;
    }
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, l, 1);
        rtp_metric_add(c->m_commits, 1);
        if (err) {
            rtp_metric_add(c->m_commit_errors, 1);
            rtp_warn(c->ins, "commit: %s", rd_kafka_err2str(err));
            for (int i = 0; i < l->cnt; i++)
                kafka_part_get(c, l->elems[i].topic, l->elems[i].partition)->committed = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void kafka_commit(kafka_ctx *c)
{
    if (c->rk) commit_parts(c, NULL);
}

/* A failed commit is sent again at the next interval (the offsets are still
 * the delivered ones, or newer). */
void kafka_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                     void *opaque)
{
    kafka_ctx *c = opaque;
    if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    rtp_metric_add(c->m_commit_errors, 1);
    rtp_warn(c->ins, "offset commit failed: %s; retrying at the next interval", rd_kafka_err2str(err));
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        kafka_part *p = kafka_part_get(c, offsets->elems[i].topic, offsets->elems[i].partition);
        if (p->committed == offsets->elems[i].offset) p->committed = -1;
    }
}

/* ---- rebalances --------------------------------------------------------------- */

static void describe(kafka_ctx *c, const char *what, const rd_kafka_topic_partition_list_t *l, bool coop)
{
    rtp_sbuf sb = {0};
    for (int i = 0; i < l->cnt; i++) {
        char item[200];
        int n = snprintf(item, sizeof item, "%s%s[%" PRId32 "]", i ? " " : "", l->elems[i].topic,
                         l->elems[i].partition);
        rtp_sbuf_append(&sb, item, (size_t)n < sizeof item ? (size_t)n : sizeof item - 1);
    }
    rtp_info(c->ins, "%s %d partition%s%s: %.*s", what, l->cnt, l->cnt == 1 ? "" : "s",
             coop ? " (incremental)" : "", (int)sb.len, sb.data ? sb.data : "");
    rtp_sbuf_free(&sb);
}

static void set_assigned(kafka_ctx *c, const rd_kafka_topic_partition_list_t *l, bool assigned)
{
    for (int i = 0; i < l->cnt; i++) {
        kafka_part *p = kafka_part_get(c, l->elems[i].topic, l->elems[i].partition);
        p->assigned = assigned;
        p->eof = false;
        if (assigned) {
            /* a new epoch: acks of batches from an earlier assignment are stale */
            p->epoch++;
            p->next = p->acked = p->committed = -1;
        } else {
            rtp_metric_set(p->lag, 0);
        }
    }
    int64_t n = 0;
    for (size_t i = 0; i < c->n_parts; i++) n += c->parts[i].assigned;
    rtp_metric_set(c->m_assigned, n);
}

static void report(kafka_ctx *c, const char *what, rd_kafka_error_t *e)
{
    if (!e) return;
    rtp_error(c->ins, "%s: %s", what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
}

static void assign_parts(kafka_ctx *c, rd_kafka_topic_partition_list_t *l, bool cooperative)
{
    describe(c, "assigned", l, cooperative);
    set_assigned(c, l, true);
    if (cooperative)
        report(c, "incremental assign", rd_kafka_incremental_assign(c->rk, l));
    else if (rd_kafka_assign(c->rk, l))
        rtp_error(c->ins, "assign failed");
    /* held back by lasting backpressure: new partitions wait too */
    if (c->partitions_paused) rd_kafka_pause_partitions(c->rk, l);
}

/* Commits what was delivered in the revoked partitions (unless they are
 * lost: another member owns them already), then lets them go. */
static void revoke_parts(kafka_ctx *c, rd_kafka_topic_partition_list_t *l, bool cooperative)
{
    describe(c, rd_kafka_assignment_lost(c->rk) ? "lost" : "revoked", l, cooperative);
    if (!rd_kafka_assignment_lost(c->rk)) commit_parts(c, l);
    set_assigned(c, l, false);
    if (cooperative)
        report(c, "incremental unassign", rd_kafka_incremental_unassign(c->rk, l));
    else
        rd_kafka_assign(c->rk, NULL);
}

void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                        void *opaque)
{
    kafka_ctx *c = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rtp_metric_add(c->m_rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign_parts(c, parts, cooperative);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        revoke_parts(c, parts, cooperative);
    } else {
        rtp_error(c->ins, "rebalance failed: %s; dropping the assignment", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_t *all = NULL;
        if (rd_kafka_assignment(rk, &all) == 0) {
            set_assigned(c, all, false);
            rd_kafka_topic_partition_list_destroy(all);
        }
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- backpressure and lag ------------------------------------------------------ */

void kafka_pause_assigned(kafka_ctx *c, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) != 0) return;
    if (l->cnt) {
        if (pause)
            rd_kafka_pause_partitions(c->rk, l);
        else
            rd_kafka_resume_partitions(c->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Messages at the broker past what p took, from the high watermark
 * librdkafka caches from fetch responses (no request, nothing blocks); -1
 * when unknown: not assigned, nothing taken yet, or no watermark yet. */
static int64_t part_lag(const kafka_ctx *c, const kafka_part *p)
{
    int64_t lo = -1, hi = -1;
    if (!p->assigned || p->next < 0) return -1;
    if (rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) || hi < 0) return -1;
    return hi > p->next ? hi - p->next : 0;
}

bool kafka_refetch(kafka_ctx *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < c->n_parts; i++) {
        kafka_part *p = &c->parts[i];
        if (!p->eof && part_lag(c, p) > 0)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->next;
    }
    bool any = l->cnt > 0;
    if (any) report(c, "seek", rd_kafka_seek_partitions(c->rk, l, 0));
    rd_kafka_topic_partition_list_destroy(l);
    return any;
}

/* A partition not read from yet counts 0. */
void kafka_update_lag(kafka_ctx *c)
{
    int64_t total = 0;
    for (size_t i = 0; i < c->n_parts; i++) {
        kafka_part *p = &c->parts[i];
        int64_t lag = part_lag(c, p);
        if (lag < 0) continue;
        rtp_metric_set(p->lag, lag);
        total += lag;
    }
    rtp_metric_set(c->m_lag, total);
    rtp_debug(c->ins, "consumer_lag %" PRId64, total);
}
