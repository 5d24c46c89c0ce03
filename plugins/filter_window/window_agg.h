/* filter_window: the parts that need no engine — the aggregate list parser,
 * the per-window accumulator of each aggregate function, and the arithmetic
 * that assigns an event time to epoch-aligned windows. filter_window.c keeps
 * windows per key and decides when they close; tests/unit/test_window.c
 * includes this file's .c to check each piece by hand. */
#ifndef FILTER_WINDOW_AGG_H
#define FILTER_WINDOW_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rtproc/rtproc.h>

typedef enum wa_func { WA_COUNT, WA_SUM, WA_MIN, WA_MAX, WA_AVG, WA_FIRST, WA_LAST, WA_STDDEV } wa_func;

/* One item of `aggregate`: out = func(field). */
typedef struct wa_spec {
    wa_func func;
    bool has_field; /* false only for count() */
    rtp_key in;     /* the field read */
    rtp_key out;    /* the field written */
} wa_spec;

typedef struct wa_list {
    wa_spec *v;
    size_t n;
} wa_list;

/* Parses "name=func(field), name2=func()" (a missing "name=" defaults to
 * field_func, e.g. volume_sum, or count for count()). 0, or -1 with the bad item and why in
 * err. The list owns nothing but its array: wa_list_free. */
int wa_parse(const char *text, wa_list *out, char *err, size_t errcap);
void wa_list_free(wa_list *l);

/* The running state of one aggregate in one window. The string buffer of
 * first/last survives wa_reset so a recycled window does not allocate. */
typedef struct wa_state {
    int64_t n; /* values taken (records, for count()) */
    union {
        struct {
            double s, c;  /* Neumaier: the sum is s + c */
            int64_t i;    /* exact sum while every value is an int */
            bool not_int; /* a double (or time) was added, or i overflowed */
        } sum;            /* sum, avg */
        struct {
            double mean, m2; /* Welford */
        } var;               /* stddev */
        struct {
            rtp_field f; /* the extreme value as it came (int, double or time) */
            double x;    /* its numeric value */
        } ext;           /* min, max */
        struct {
            rtp_field f; /* any type; a string points into buf */
            int64_t t;   /* event time it came with */
        } pick;          /* first, last */
    } u;
    char *buf;
    uint32_t cap;
} wa_state;

void wa_reset(wa_state *st);
void wa_free(wa_state *st);
/* Takes one record's field (NULL: absent) with the record's event time. */
void wa_add(const wa_spec *s, wa_state *st, const rtp_field *f, int64_t time);
/* Folds src into dst, as if dst had seen src's records too (sessions merge). */
void wa_merge(const wa_spec *s, wa_state *dst, const wa_state *src);
/* Adds the result to r under s->out, or nothing when it is undefined (no
 * value for min/max/avg/first/last, fewer than two for stddev). */
void wa_emit(const wa_spec *s, const wa_state *st, rtp_batch *b, rtp_record *r);

/* ---- window assignment ----------------------------------------------------- */

/* The windows [s, s + size) with s a multiple of step (epoch-aligned) that
 * contain t: *newest is the largest such s and the others follow step below
 * it. Tumbling windows are step == size. Returns how many (>= 1), or 0 when
 * a bound would not fit in int64 nanoseconds. */
int64_t wa_assign(int64_t t, int64_t size, int64_t step, int64_t *newest);

/* floor(a / b) for b > 0, rounding towards minus infinity also for a < 0. */
int64_t wa_floor_div(int64_t a, int64_t b);

#endif
