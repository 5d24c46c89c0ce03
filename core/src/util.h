/* Small helpers shared by the engine's files: allocation that cannot return
 * NULL (an engine that runs out of memory has nothing sensible left to do but
 * say so and stop), hashing, and string helpers. */
#ifndef RTP_UTIL_H
#define RTP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "rtproc/alloc.h"

char *rtp_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* FNV-1a: short keys, no need for anything stronger. */
static inline uint32_t rtp_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Monotonic clock in nanoseconds. */
uint64_t rtp_now_ns(void);

#define RTP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
