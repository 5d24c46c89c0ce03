/* rtproc — parsing and printing timestamps.
 *
 * Formats are strftime-style patterns (%Y %m %d %H %M %S %f %z %j %b %e %y %T %F
 * %s and literal text) or one of the names "epoch" (seconds, fraction
 * allowed), "epoch_ms", "epoch_us", "epoch_ns" and "iso8601" (RFC 3339 with optional
 * fraction and offset, 'T' or ' ' between date and time). Compiling once and
 * parsing many keeps the per-record cost to a few dozen nanoseconds. */
#ifndef RTPROC_TIMEFMT_H
#define RTPROC_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#include "version.h"

typedef struct rtp_timefmt rtp_timefmt;

/* NULL with *err set when the pattern is not understood. */
RTP_API rtp_timefmt *rtp_timefmt_new(const char *fmt, const char **err);
RTP_API void rtp_timefmt_free(rtp_timefmt *tf);
/* 0 and *ns (nanoseconds since the epoch, UTC) or -1 when s does not match. */
RTP_API int rtp_timefmt_parse(const rtp_timefmt *tf, const char *s, size_t len, int64_t *ns);

/* "2023-02-01T00:05:00.000Z"; out must hold 32 bytes; returns the length. */
RTP_API size_t rtp_time_rfc3339(int64_t ns, char *out);

#endif
