#include "ring.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void rtp_ring_init(rtp_ring *r, size_t cap)
{
    size_t c = 8;
    while (c < cap) c *= 2;
    r->slot = rtp_xcalloc(c, sizeof *r->slot);
    r->cap = c;
    r->head = r->tail = 0;
}

void rtp_ring_free(rtp_ring *r)
{
    free(r->slot);
    r->slot = NULL;
    r->cap = r->head = r->tail = 0;
}

/* Re-lays the items from index 0 in a ring twice the size. */
static void grow(rtp_ring *r)
{
    size_t n = rtp_ring_count(r);
    void **slot = rtp_xcalloc(r->cap * 2, sizeof *slot);
    for (size_t i = 0; i < n; i++) slot[i] = r->slot[(r->head + i) & (r->cap - 1)];
    free(r->slot);
    r->slot = slot;
    r->cap *= 2;
    r->head = 0;
    r->tail = n;
}

void rtp_ring_push(rtp_ring *r, void *p)
{
    if (rtp_ring_count(r) == r->cap) grow(r);
    r->slot[r->tail++ & (r->cap - 1)] = p;
}

void rtp_ring_push_front(rtp_ring *r, void *p)
{
    if (rtp_ring_count(r) == r->cap) grow(r);
    r->slot[--r->head & (r->cap - 1)] = p;
}

void *rtp_ring_pop(rtp_ring *r)
{
    if (r->head == r->tail) return NULL;
    return r->slot[r->head++ & (r->cap - 1)];
}
