/* filter_window: aggregate parsing, accumulators and window arithmetic.
 *
 * Numeric functions read ints, doubles and times (as seconds, like
 * rtp_field_number) and skip everything else: a missing field, null, a
 * string, a bool, and NaN, which pandas skips too. first/last take a value of
 * any type but null, chosen by event time rather than arrival, so a record
 * that arrives late within allowed_lateness still lands where it belongs. */
#include "window_agg.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- parsing ---------------------------------------------------------------- */

static const char *const func_names[] = {"count", "sum", "min", "max", "avg", "first", "last", "stddev"};
#define N_FUNCS (sizeof func_names / sizeof *func_names)

/* The view [*a, *b) without white space at either end. */
static void trim(const char **a, const char **b)
{
    while (*a < *b && isspace((unsigned char)**a)) (*a)++;
    while (*b > *a && isspace((unsigned char)(*b)[-1])) (*b)--;
}

static int find_func(const char *p, size_t n)
{
    for (size_t i = 0; i < N_FUNCS; i++)
        if (strlen(func_names[i]) == n && strncasecmp(func_names[i], p, n) == 0) return (int)i;
    return -1;
}

static bool plain_name(const char *p, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (strchr("=(),", p[i])) return false;
    return true;
}

/* The output name when the item has no "name=": volume_sum, or count. */
static rtp_key default_name(const wa_spec *s)
{
    if (!s->has_field) return rtp_key_cstr(func_names[s->func]);
    size_t n;
    const char *field = rtp_key_name(s->in, &n);
    char buf[256];
    int len = snprintf(buf, sizeof buf, "%.*s_%s", (int)(n > 200 ? 200 : n), field, func_names[s->func]);
    return rtp_key_intern(buf, (size_t)len);
}

/* One item, [a, b) already trimmed and not empty. NULL, or why it is bad. */
static const char *parse_item(const char *a, const char *b, wa_spec *s)
{
    const char *eq = memchr(a, '=', (size_t)(b - a));
    const char *name_a = a, *name_b = eq ? eq : a;
    const char *f = eq ? eq + 1 : a;
    trim(&name_a, &name_b);
    if (eq && !plain_name(name_a, (size_t)(name_b - name_a))) return "the output name is empty or has = ( ) ,";
    const char *open = memchr(f, '(', (size_t)(b - f));
    if (!open || b[-1] != ')') return "expected name=function(field)";
    const char *fn_a = f, *fn_b = open, *arg_a = open + 1, *arg_b = b - 1;
    trim(&fn_a, &fn_b);
    trim(&arg_a, &arg_b);
    int func = find_func(fn_a, (size_t)(fn_b - fn_a));
    if (func < 0) return "unknown function (count, sum, min, max, avg, first, last, stddev)";
    s->func = (wa_func)func;
    s->has_field = arg_b > arg_a;
    if (s->has_field && !plain_name(arg_a, (size_t)(arg_b - arg_a))) return "the field name has = ( ) ,";
    if (!s->has_field && s->func != WA_COUNT) return "this function needs a field";
    if (s->has_field) s->in = rtp_key_intern(arg_a, (size_t)(arg_b - arg_a));
    s->out = eq ? rtp_key_intern(name_a, (size_t)(name_b - name_a)) : default_name(s);
    return NULL;
}

static bool duplicate_out(const wa_list *l, rtp_key out)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].out == out) return true;
    return false;
}

int wa_parse(const char *text, wa_list *out, char *err, size_t errcap)
{
    out->v = NULL;
    out->n = 0;
    for (const char *p = text;;) {
        const char *a = p, *b = p + strcspn(p, ",");
        trim(&a, &b);
        wa_spec s = {0};
        const char *why = a == b ? "empty item" : parse_item(a, b, &s);
        if (!why && duplicate_out(out, s.out)) why = "output name used twice";
        if (why) {
            snprintf(err, errcap, "'%.*s': %s", (int)(b - a), a, why);
            wa_list_free(out);
            return -1;
        }
        out->v = rtp_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = s;
        p += strcspn(p, ",");
        if (!*p++) return 0;
    }
}

void wa_list_free(wa_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- accumulators ------------------------------------------------------------ */

static bool number_of(const rtp_field *f, double *x)
{
    return f && rtp_field_number(f, x) && !isnan(*x);
}

/* Neumaier's compensated sum: exact to the last bit for any realistic window
 * where a naive sum of a month of volumes drifts in the 13th digit. */
static void neumaier(double *s, double *c, double x)
{
    double t = *s + x;
    if (fabs(*s) >= fabs(x))
        *c += (*s - t) + x;
    else
        *c += (x - t) + *s;
    *s = t;
}

void wa_reset(wa_state *st)
{
    char *buf = st->buf;
    uint32_t cap = st->cap;
    memset(st, 0, sizeof *st);
    st->buf = buf;
    st->cap = cap;
}

void wa_free(wa_state *st)
{
    free(st->buf);
    st->buf = NULL;
    st->cap = 0;
}

static void add_sum(wa_state *st, const rtp_field *f, double x)
{
    neumaier(&st->u.sum.s, &st->u.sum.c, x);
    if (f->type != RTP_INT || __builtin_add_overflow(st->u.sum.i, f->v.i, &st->u.sum.i)) st->u.sum.not_int = true;
}

static void add_var(wa_state *st, double x)
{
    double d = x - st->u.var.mean;
    st->u.var.mean += d / (double)st->n;
    st->u.var.m2 += d * (x - st->u.var.mean);
}

static void add_extreme(wa_state *st, const rtp_field *f, double x, bool is_max)
{
    if (st->n == 1 || (is_max ? x > st->u.ext.x : x < st->u.ext.x)) {
        st->u.ext.f = *f;
        st->u.ext.x = x;
    }
}

/* Keeps f, copying a string into the state's own buffer (the record's
 * bytes die with its batch). */
static void keep(wa_state *st, const rtp_field *f, int64_t time)
{
    st->u.pick.f = *f;
    st->u.pick.t = time;
    if (f->type != RTP_STRING) return;
    if (f->len > st->cap) {
        st->cap = f->len < 32 ? 32 : f->len;
        free(st->buf);
        st->buf = rtp_xmalloc(st->cap);
    }
    if (f->len) memcpy(st->buf, f->v.s, f->len);
    st->u.pick.f.v.s = st->buf;
}

static void add_pick(wa_state *st, const rtp_field *f, int64_t time, bool is_last)
{
    if (st->n == 1 || (is_last ? time >= st->u.pick.t : time < st->u.pick.t)) keep(st, f, time);
}

void wa_add(const wa_spec *s, wa_state *st, const rtp_field *f, int64_t time)
{
    double x;
    if (s->func == WA_COUNT) {
        st->n += !s->has_field || (f && f->type != RTP_NULL);
        return;
    }
    if (s->func == WA_FIRST || s->func == WA_LAST) {
        if (!f || f->type == RTP_NULL) return;
        st->n++;
        add_pick(st, f, time, s->func == WA_LAST);
        return;
    }
    if (!number_of(f, &x)) return;
    st->n++;
    switch (s->func) {
    case WA_SUM:
    case WA_AVG: add_sum(st, f, x); break;
    case WA_STDDEV: add_var(st, x); break;
    case WA_MIN:
    case WA_MAX: add_extreme(st, f, x, s->func == WA_MAX); break;
    default: break;
    }
}

/* Chan et al.'s pairwise update: the variance of the union of two samples. */
static void merge_var(wa_state *dst, const wa_state *src)
{
    double na = (double)dst->n, nb = (double)src->n, n = na + nb;
    double d = src->u.var.mean - dst->u.var.mean;
    dst->u.var.mean += d * nb / n;
    dst->u.var.m2 += src->u.var.m2 + d * d * na * nb / n;
}

static void merge_sum(wa_state *dst, const wa_state *src)
{
    neumaier(&dst->u.sum.s, &dst->u.sum.c, src->u.sum.s);
    dst->u.sum.c += src->u.sum.c;
    if (src->u.sum.not_int || __builtin_add_overflow(dst->u.sum.i, src->u.sum.i, &dst->u.sum.i))
        dst->u.sum.not_int = true;
}

static bool src_wins(const wa_spec *s, const wa_state *dst, const wa_state *src)
{
    switch (s->func) {
    case WA_MIN: return src->u.ext.x < dst->u.ext.x;
    case WA_MAX: return src->u.ext.x > dst->u.ext.x;
    case WA_FIRST: return src->u.pick.t < dst->u.pick.t;
    case WA_LAST: return src->u.pick.t >= dst->u.pick.t;
    default: return false;
    }
}

void wa_merge(const wa_spec *s, wa_state *dst, const wa_state *src)
{
    if (src->n == 0) return;
    if (s->func == WA_COUNT) {
        dst->n += src->n;
        return;
    }
    bool take = dst->n == 0 || src_wins(s, dst, src);
    if (s->func == WA_SUM || s->func == WA_AVG) merge_sum(dst, src);
    if (s->func == WA_STDDEV) {
        if (dst->n == 0)
            dst->u.var = src->u.var;
        else
            merge_var(dst, src);
    }
    if ((s->func == WA_MIN || s->func == WA_MAX) && take) dst->u.ext = src->u.ext;
    if ((s->func == WA_FIRST || s->func == WA_LAST) && take) keep(dst, &src->u.pick.f, src->u.pick.t);
    dst->n += src->n;
}

/* Output names are unique (wa_parse checks), so fields are appended
 * without the search rtp_record_set_* does for an existing key. */
static void add_int(rtp_batch *b, rtp_record *r, rtp_key k, int64_t v)
{
    rtp_field *f = rtp_record_add(b, r, k);
    f->type = RTP_INT;
    f->len = 0;
    f->v.i = v;
}

static void add_double(rtp_batch *b, rtp_record *r, rtp_key k, double v)
{
    rtp_field *f = rtp_record_add(b, r, k);
    f->type = RTP_DOUBLE;
    f->len = 0;
    f->v.d = v;
}

static void emit_sum(const wa_spec *s, const wa_state *st, rtp_batch *b, rtp_record *r)
{
    if (s->func == WA_SUM && !st->u.sum.not_int) {
        add_int(b, r, s->out, st->u.sum.i); /* ints sum to an int, like pandas */
        return;
    }
    double sum = st->u.sum.not_int ? st->u.sum.s + st->u.sum.c : (double)st->u.sum.i;
    add_double(b, r, s->out, s->func == WA_SUM ? sum : sum / (double)st->n);
}

static void emit_field(const wa_spec *s, const rtp_field *f, rtp_batch *b, rtp_record *r)
{
    if (f->type == RTP_STRING) {
        rtp_record_set_str(b, r, s->out, f->v.s, f->len);
        return;
    }
    rtp_field *o = rtp_record_add(b, r, s->out);
    o->type = f->type;
    o->len = 0;
    o->v = f->v;
}

void wa_emit(const wa_spec *s, const wa_state *st, rtp_batch *b, rtp_record *r)
{
    switch (s->func) {
    case WA_COUNT: add_int(b, r, s->out, st->n); return;
    case WA_SUM:
    case WA_AVG:
        /* pandas: the sum of no values is 0; their mean is undefined */
        if (st->n || s->func == WA_SUM) emit_sum(s, st, b, r);
        return;
    case WA_STDDEV:
        if (st->n > 1) add_double(b, r, s->out, sqrt(st->u.var.m2 / (double)(st->n - 1)));
        return;
    case WA_MIN:
    case WA_MAX:
        if (st->n) emit_field(s, &st->u.ext.f, b, r);
        return;
    case WA_FIRST:
    case WA_LAST:
        if (st->n) emit_field(s, &st->u.pick.f, b, r);
        return;
    }
}

/* ---- window assignment --------------------------------------------------------- */

int64_t wa_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int64_t wa_assign(int64_t t, int64_t size, int64_t step, int64_t *newest)
{
    int64_t rem = t % step, newest_start, end, oldest;
    if (rem < 0) rem += step;
    if (__builtin_sub_overflow(t, rem, &newest_start) || __builtin_add_overflow(newest_start, size, &end))
        return 0;
    /* starts s = newest - j*step with s > t - size: j < (size - rem) / step */
    int64_t n = (size - rem - 1) / step + 1;
    if (__builtin_mul_overflow(n - 1, step, &oldest) || __builtin_sub_overflow(newest_start, oldest, &oldest))
        return 0;
    *newest = newest_start;
    return n;
}
