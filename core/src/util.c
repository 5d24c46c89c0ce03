#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *check(void *p)
{
    if (!p) {
        fputs("rtproc: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *rtp_xmalloc(size_t n)
{
    return check(malloc(n ? n : 1));
}

void *rtp_xcalloc(size_t n, size_t size)
{
    return check(calloc(n ? n : 1, size ? size : 1));
}

void *rtp_xrealloc(void *p, size_t n)
{
    return check(realloc(p, n ? n : 1));
}

char *rtp_xstrdup(const char *s)
{
    return check(strdup(s));
}

char *rtp_xstrndup(const char *s, size_t n)
{
    char *d = rtp_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *rtp_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) check(NULL);
    return s;
}

uint64_t rtp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
