/* A ring of pointers: the queue in front of each output and the engine's
 * ingress. Power-of-two capacity, single-threaded. It grows rather than
 * refuse a push because the bound on what it can hold is enforced upstream by
 * input credit (see engine.h), which a fixed capacity could only duplicate. */
#ifndef RTP_RING_H
#define RTP_RING_H

#include <stddef.h>

typedef struct rtp_ring {
    void **slot;
    size_t cap; /* power of two */
    size_t head, tail; /* free-running: count = tail - head */
} rtp_ring;

void rtp_ring_init(rtp_ring *r, size_t cap);
void rtp_ring_free(rtp_ring *r);
void rtp_ring_push(rtp_ring *r, void *p);
void rtp_ring_push_front(rtp_ring *r, void *p);
void *rtp_ring_pop(rtp_ring *r);
static inline size_t rtp_ring_count(const rtp_ring *r)
{
    return r->tail - r->head;
}

#endif
