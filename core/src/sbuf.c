/* Growable byte buffer shared by every writer in the SDK.
 *
 * Capacity doubles, so appending n bytes one piece at a time costs O(n)
 * copying overall. Running out of memory aborts (rtp_xrealloc): the void API
 * lets writers append without checking every call, and a writer that cannot
 * grow its buffer has no better way out. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtproc/json.h"
#include "util.h"

#define SBUF_MIN_CAP 64

void rtp_sbuf_reserve(rtp_sbuf *sb, size_t extra)
{
    if (sb->cap - sb->len >= extra) return;
    if (extra > SIZE_MAX - sb->len) {
        fputs("rtproc: buffer size overflow\n", stderr);
        abort();
    }
    size_t need = sb->len + extra;
    size_t cap = sb->cap < SBUF_MIN_CAP ? SBUF_MIN_CAP : sb->cap;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    sb->data = rtp_xrealloc(sb->data, cap);
    sb->cap = cap;
}

void rtp_sbuf_append(rtp_sbuf *sb, const void *p, size_t n)
{
    if (n == 0) return;
    rtp_sbuf_reserve(sb, n);
    memcpy(sb->data + sb->len, p, n);
    sb->len += n;
}

void rtp_sbuf_free(rtp_sbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}
