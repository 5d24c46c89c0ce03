/* Batches as the engine sees them. Plugins only get the opaque rtp_batch and
 * the functions of rtproc/record.h. */
#ifndef RTP_BATCH_H
#define RTP_BATCH_H

#include <stdbool.h>

#include "rtproc/record.h"

typedef struct rtp_ack rtp_ack;

typedef struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    max_align_t data[];
} arena_block;

struct rtp_batch {
    int refs;          /* one per output queue holding it */
    const char *tag;   /* arena copy */
    rtp_record **recs; /* stable pointers: records never move */
    size_t n, cap;
    size_t bytes;      /* input bytes it stands for */
    size_t mem;        /* arena blocks and held buffers: what it costs in credit */
    arena_block *arena;
    rtp_buf **held;
    size_t n_held, cap_held;
    rtp_ack *ack;        /* engine: acknowledgement token of the source batch */
    unsigned next_stage; /* engine: index of the first filter it has not met */
    bool charged;        /* engine: counted against its input's credit */
    void *error_from;    /* engine: the output whose failure made this error batch */
    struct rtp_batch *qnext;
};

/* A standalone batch (tests, benchmarks, fuzzers). The engine makes its own
 * through rtp_input_batch and rtp_filter_derive. */
rtp_batch *rtp_batch_create(const char *tag);
void rtp_batch_ref(rtp_batch *b);
void rtp_batch_unref(rtp_batch *b);
/* Removes records marked RTP_RECORD_DROPPED; returns how many went. */
size_t rtp_batch_compact(rtp_batch *b);
/* Deep copy of one record into another batch (error route). */
rtp_record *rtp_batch_copy_record(rtp_batch *dst, const rtp_record *src);

#endif
