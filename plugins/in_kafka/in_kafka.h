/* in_kafka internals shared by its files:
 *   in_kafka.c   options, librdkafka configuration, lifecycle, backpressure
 *   consume.c    the loop side: wake-up pipe, consuming batches, messages to records
 *   offsets.c    partitions, what each emitted batch covers, acks, commits,
 *                rebalances, lag */
#ifndef RTP_IN_KAFKA_H
#define RTP_IN_KAFKA_H

#include <stdbool.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include <rtproc/rtproc.h>

enum { FORMAT_JSON, FORMAT_RAW };

/* librdkafka 2.2.0 (rd_kafka_version() form): fetch.queue.backoff.ms */
#define KAFKA_FETCH_BACKOFF_VERSION 0x020200ff
enum { START_EARLIEST, START_LATEST };

/* Metadata a message can add to its record (`fields`). */
typedef enum meta_kind { META_KEY, META_TOPIC, META_PARTITION, META_OFFSET, META_TIMESTAMP, META_HEADERS } meta_kind;

typedef struct meta_field {
    meta_kind kind;
    rtp_key key;
} meta_field;

/* One partition this consumer has seen. Slots are never freed while the
 * instance lives, so an index stays valid in the in-flight ranges. */
typedef struct kafka_part {
    char *topic;
    int32_t partition;
    bool assigned;
    bool eof;          /* at the end of the partition (exit_on_eof) */
    uint32_t epoch;    /* bumped at every assignment: acks of an older one are ignored */
    int64_t next;      /* offset after the last message taken; -1 unknown */
    int64_t acked;     /* offset after the last message delivered; -1 none */
    int64_t committed; /* acked offset last sent in a commit; -1 none */
    uint64_t batch_seq; /* batch that last touched it (to list each partition once) */
    rtp_metric *lag;
} kafka_part;

/* What one emitted batch covers in one partition: when the batch is
 * acknowledged, `next` is delivered for that partition. */
typedef struct kafka_range {
    uint64_t seq; /* the batch (its cookie) */
    uint32_t part;
    uint32_t epoch;
    int64_t next;
} kafka_range;

typedef struct kafka_ctx {
    /* options */
    char *brokers;
    rtp_strlist topics;
    char *group_id;
    rtp_kvlist rdkafka;
    int format;
    int start;
    rtp_strlist fields;
    char *time_key;
    char *time_format;
    int64_t batch_size;
    uint64_t max_message_size;
    int64_t commit_interval;
    bool exit_on_eof;

    rtp_instance *ins;
    rd_kafka_conf_t *conf; /* built by init, consumed by start */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* the consumer queue: messages and events */
    meta_field *meta;
    size_t n_meta;
    rtp_key time_field;
    rtp_key message_field;
    rtp_timefmt *tf;

    /* the loop side */
    int wake[2]; /* librdkafka writes to wake[1] when the queue gets work */
    uv_poll_t poll;
    uv_timer_t tick;   /* fallback wake-up every 100 ms */
    uv_idle_t more;    /* a full batch was taken: go on at the next iteration */
    uv_timer_t commit; /* commit_interval */
    uv_timer_t lag_timer;
    uv_timer_t hold;   /* backpressure lasting HOLD_MS pauses the partitions */
    uv_timer_t refetch; /* the queue ran dry with messages left at the broker */
    bool refetch_wakes; /* librdkafka < 2.2: wake its fetcher ourselves (consume.c) */
    int64_t taken_at_arm, taken_at_wake; /* m_messages then */
    bool handles_open;
    bool partitions_paused; /* backpressure lasted HOLD_MS: the partitions are paused */
    bool stopping;  /* stop was called: closing the consumer */
    bool finished;  /* exit_on_eof reported */
    uint64_t close_deadline;

    /* partitions and in-flight ranges */
    kafka_part *parts;
    size_t n_parts;
    size_t last_part; /* lookup cache: messages come in runs per partition */
    kafka_range *ranges; /* FIFO ring: acks come back in emission order */
    size_t r_head, r_len, r_cap;
    uint64_t seq;        /* cookie of the batch being built */
    uint32_t *touched;   /* partitions in the batch being built */
    size_t n_touched, cap_touched;

    char why[160];

    rtp_metric *m_messages, *m_bytes, *m_errored, *m_rebalances, *m_commits, *m_commit_errors;
    rtp_sbuf headers; /* the headers field being built, reused message to message */
    rtp_metric *m_lag, *m_assigned;
} kafka_ctx;

/* consume.c */
int kafka_loop_start(kafka_ctx *c);
/* Takes messages from the queue and serves its events now. */
void kafka_consume(kafka_ctx *c);
void kafka_loop_close(kafka_ctx *c);
/* Consumes at the next loop iteration (not inside the engine's pump). */
void kafka_kick(kafka_ctx *c);

/* offsets.c */
/* The slot of a partition, made on first sight. Finding may grow the table:
 * a kafka_part pointer is valid until the next find. */
size_t kafka_part_find(kafka_ctx *c, const char *topic, int32_t partition);
kafka_part *kafka_part_get(kafka_ctx *c, const char *topic, int32_t partition);
/* The message at offset of part p goes into the batch being built. */
void kafka_part_take(kafka_ctx *c, size_t p, int64_t offset);
/* The batch being built is emitted with cookie c->seq: remember what it covers. */
void kafka_ranges_push(kafka_ctx *c);
void kafka_ack(rtp_instance *ins, void *ctx, uint64_t cookie);
/* Commits delivered offsets of assigned partitions (asynchronously). */
void kafka_commit(kafka_ctx *c);
void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                        void *opaque);
void kafka_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                     void *opaque);
/* Pauses or resumes every assigned partition. */
void kafka_pause_assigned(kafka_ctx *c, bool pause);
void kafka_pause(rtp_instance *ins, void *ctx);
void kafka_resume(rtp_instance *ins, void *ctx);
void kafka_update_lag(kafka_ctx *c);
/* Seeks the assigned partitions that have messages at the broker, none in
 * the queue, to where they are; true if there was any. */
bool kafka_refetch(kafka_ctx *c);
/* True when every assigned partition is at its end (there is at least one). */
bool kafka_all_eof(const kafka_ctx *c);
void kafka_parts_free(kafka_ctx *c);

#endif
