/* rtproc — waits between reconnections and retries.
 *
 * Inline, so that it adds nothing to the plugin ABI. */
#ifndef RTPROC_BACKOFF_H
#define RTPROC_BACKOFF_H

#include <stdint.h>
#include <stdlib.h>

/* The wait before attempt `attempt` (0 for the first): first_ms doubling
 * up to max_ms, then drawn from the upper half of that step, so that many
 * rtproc processes that lost the same server do not come back in step,
 * and a wait never falls below half its step. */
static inline uint64_t rtp_backoff_ms(unsigned attempt, uint64_t first_ms, uint64_t max_ms)
{
    uint64_t wait = first_ms;
    for (unsigned i = 0; i < attempt && wait < max_ms; i++) wait *= 2;
    if (wait > max_ms) wait = max_ms;
    return wait / 2 + (uint64_t)rand() % (wait / 2 + 1);
}

#endif
