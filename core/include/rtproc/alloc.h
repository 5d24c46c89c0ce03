/* rtproc — allocation that does not return NULL.
 *
 * Out of memory, an engine whose memory is bounded by configuration has
 * nothing sensible left to do but say so and stop; these print a message
 * and abort instead of handing every caller a NULL to check. */
#ifndef RTPROC_ALLOC_H
#define RTPROC_ALLOC_H

#include <stddef.h>

#include "version.h"

RTP_API void *rtp_xmalloc(size_t n);
RTP_API void *rtp_xcalloc(size_t n, size_t size);
RTP_API void *rtp_xrealloc(void *p, size_t n);
RTP_API char *rtp_xstrdup(const char *s);
RTP_API char *rtp_xstrndup(const char *s, size_t n);

#endif
