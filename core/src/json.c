/* rtproc — JSON codec: a strict RFC 8259 reader and a writer whose output is
 * valid JSON whatever the record holds.
 *
 * Every choice the RFC leaves open is listed in docs/json.md (with the answer
 * for each i_*.json file of JSONTestSuite). In short:
 *  - the text must be UTF-8 without BOM; ill-formed UTF-8 and escapes of lone
 *    surrogates are errors;
 *  - containers nest at most RTP_JSON_MAX_DEPTH deep. Nothing here recurses:
 *    open containers live in fixed arrays, so stack use is bounded whatever
 *    the input;
 *  - a record takes integers that fit int64 as RTP_INT and every other number
 *    as the correctly rounded double; a number beyond the double range is an
 *    error in a record (rtp_json_validate checks the grammar only);
 *  - duplicate names in a record: the last one wins. */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtproc/json.h"
#include "rtproc/timefmt.h"

typedef struct jparser {
    const char *base; /* start of the text: error offsets count from here */
    const char *end;
    rtp_json_error *err;
} jparser;

/* A number as scanned: value = mant * 10^exp10 unless inexact. */
typedef struct jnum {
    const char *start, *end;
    uint64_t mant;    /* the first 19 significant digits */
    int64_t exp10;
    unsigned ndigits; /* significant digits held in mant */
    bool neg;
    bool integer;     /* neither fraction nor exponent */
    bool inexact;     /* nonzero digits beyond those held in mant */
} jnum;

#define NAME_INLINE 256
#define SEEN_WORDS 16 /* 1024 bits */

typedef struct rparser {
    jparser jp;
    rtp_batch *b;
    rtp_record *r;
    unsigned flags;
    /* Keys present in r, hashed by key % 1024: a clear bit proves a key new,
     * so only likely duplicates pay for rtp_record_put's linear search. */
    uint64_t seen[SEEN_WORDS];
    char *name; /* dotted name of the current member: "a.b.c" */
    size_t name_len, name_cap;
    char name_inline[NAME_INLINE];
} rparser;

/* A JSON number can only be converted exactly with double arithmetic while
 * expressions are evaluated in double precision (not on x87). */
#if FLT_EVAL_METHOD == 0
#define EXACT_DOUBLE_MATH 1
#else
#define EXACT_DOUBLE_MATH 0
#endif

static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const char *skip_value(jparser *jp, const char *p, unsigned depth);
static const char *parse_members(rparser *rp, const char *p);
static int expect_end(jparser *jp, const char *p);
static bool starts_with_bom(jparser *jp);
static void rparser_init(rparser *rp, rtp_batch *b, rtp_record *r, const char *s, size_t len,
                         unsigned flags, rtp_json_error *err);
static const char *skip_ws(const char *p, const char *end);
static void set_error(jparser *jp, const char *at, const char *msg);
static void write_name(rtp_sbuf *out, const char *name, size_t len, bool first);
static void write_value(rtp_sbuf *out, const rtp_field *f);
static void write_time(rtp_sbuf *out, int64_t ns);
static bool is_opt_name(const rtp_json_write_opts *opts, const char *name, size_t len);
static const char *skip_plain(const char *p, const char *end);
static const char *write_special(rtp_sbuf *out, const char *p, const char *end);
static size_t format_double(double d, char *out);
static void sb_put(rtp_sbuf *sb, const void *p, size_t n);
static void sb_byte(rtp_sbuf *sb, char c);

/* ==== public API ========================================================= */

int rtp_json_validate(const char *s, size_t len, rtp_json_error *err)
{
    jparser jp = {s, len ? s + len : s, err};
    if (starts_with_bom(&jp)) return -1;
    const char *p = skip_ws(s, jp.end);
    if (p == jp.end) {
        set_error(&jp, p, "empty input");
        return -1;
    }
    p = skip_value(&jp, p, 0);
    return p ? expect_end(&jp, p) : -1;
}

int rtp_json_parse_record(rtp_batch *b, rtp_record *r, const char *s, size_t len, unsigned flags,
                          rtp_json_error *err)
{
    rparser rp;
    rparser_init(&rp, b, r, s, len, flags, err);
    if (starts_with_bom(&rp.jp)) return -1;
    const char *p = skip_ws(s, rp.jp.end);
    if (p == rp.jp.end || *p != '{') {
        set_error(&rp.jp, p, "not an object");
        return -1;
    }
    p = parse_members(&rp, p);
    return p ? expect_end(&rp.jp, p) : -1;
}

void rtp_json_write_record(rtp_sbuf *out, const rtp_record *r, const rtp_json_write_opts *opts)
{
    static const rtp_json_write_opts none = {0};
    if (!opts) opts = &none;
    bool first = true;
    sb_byte(out, '{');
    if (opts->time_key) {
        write_name(out, opts->time_key, strlen(opts->time_key), first);
        first = false;
        /* record.h: a time of 0 means unknown, which null says honestly */
        if (r->time) write_time(out, r->time);
        else sb_put(out, "null", 4);
    }
    if (opts->tag_key) {
        write_name(out, opts->tag_key, strlen(opts->tag_key), first);
        first = false;
        if (opts->tag) rtp_json_write_string(out, opts->tag, strlen(opts->tag));
        else sb_put(out, "null", 4);
    }
    for (uint32_t i = 0; i < r->nfields; i++) {
        const rtp_field *f = &r->fields[i];
        size_t len;
        const char *name = rtp_key_name(f->key, &len);
        /* the names asked for in opts win: JSON names should be unique */
        if (is_opt_name(opts, name, len)) continue;
        write_name(out, name, len, first);
        first = false;
        write_value(out, f);
    }
    sb_byte(out, '}');
}

void rtp_json_write_string(rtp_sbuf *out, const char *s, size_t len)
{
    rtp_sbuf_reserve(out, len + 2);
    sb_byte(out, '"');
    const char *p = s, *end = len ? s + len : s;
    while (p < end) {
        const char *run = p;
        p = skip_plain(p, end);
        sb_put(out, run, (size_t)(p - run));
        if (p < end) p = write_special(out, p, end);
    }
    sb_byte(out, '"');
}

void rtp_json_write_double(rtp_sbuf *out, double d)
{
    char buf[32];
    sb_put(out, buf, format_double(d, buf));
}

/* ==== errors and white space ============================================= */

static void set_error(jparser *jp, const char *at, const char *msg)
{
    if (!jp->err) return;
    jp->err->offset = (size_t)(at - jp->base);
    jp->err->msg = msg;
}

/* set_error for functions that return the position reached */
static const char *jfail(jparser *jp, const char *at, const char *msg)
{
    set_error(jp, at, msg);
    return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* A BOM gets its own message: it is the one invisible reason for an error. */
static bool starts_with_bom(jparser *jp)
{
    if (jp->end - jp->base < 3 || memcmp(jp->base, "\xEF\xBB\xBF", 3) != 0) return false;
    set_error(jp, jp->base, "byte order mark (not allowed in JSON)");
    return true;
}

static int expect_end(jparser *jp, const char *p)
{
    p = skip_ws(p, jp->end);
    if (p == jp->end) return 0;
    set_error(jp, p, "trailing characters after the value");
    return -1;
}

/* ==== strings ============================================================ */

static bool is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_SCAN 1
/* Marks the bytes of x that are not plain (control, quote, backslash,
 * non-ASCII). Borrows can mark bytes above a marked one, never below it, so
 * the lowest mark is exact. */
static uint64_t special_bytes(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t quote = x ^ (ones * '"'), bslash = x ^ (ones * '\\');
    uint64_t ctrl = (x - ones * 0x20) & ~x;
    return (x | ctrl | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash)) & high;
}
#else
#define SWAR_SCAN 0
#endif

/* The first byte at or after p that is not plain ASCII text. Eight bytes at
 * a time where possible: strings are most of a message's bytes. */
static const char *skip_plain(const char *p, const char *end)
{
#if SWAR_SCAN
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t marks = special_bytes(x);
        if (marks) return p + (__builtin_ctzll(marks) >> 3);
        p += 8;
    }
#endif
    while (p < end && is_plain((unsigned char)*p)) p++;
    return p;
}

/* Length of the well-formed UTF-8 sequence at p (a byte >= 0x80), per
 * Unicode table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF.
 * 0 when ill-formed, with *bad the length of its longest well-formed prefix
 * (at least 1): what Unicode's "maximal subpart" practice replaces with one
 * U+FFFD. */
static size_t utf8_seq(const char *p, const char *end, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t avail = (size_t)(end - p), follow;
    unsigned char lo = 0x80, hi = 0xBF;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        follow = 1;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        follow = 2;
        if (u[0] == 0xE0) lo = 0xA0;      /* overlong */
        else if (u[0] == 0xED) hi = 0x9F; /* surrogates */
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        follow = 3;
        if (u[0] == 0xF0) lo = 0x90;      /* overlong */
        else if (u[0] == 0xF4) hi = 0x8F; /* beyond U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= follow; i++) {
        if (i >= avail || u[i] < lo || u[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return follow + 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(const char *p, const char *end, uint32_t *v)
{
    if (end - p < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0) return false;
        *v = *v << 4 | (uint32_t)d;
    }
    return true;
}

/* \uXXXX at p; a high surrogate must be followed by an escaped low one.
 * Lone surrogates are rejected rather than turned into ill-formed UTF-8 or
 * U+FFFD: either would silently change the data. */
static const char *decode_u(const char *p, const char *end, uint32_t *cp, const char **msg)
{
    uint32_t hi, lo;
    if (!hex4(p + 2, end, &hi)) {
        *msg = "invalid \\u escape";
        return NULL;
    }
    if (hi < 0xD800 || hi > 0xDFFF) {
        *cp = hi;
        return p + 6;
    }
    if (hi > 0xDBFF || end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, end, &lo) ||
        lo < 0xDC00 || lo > 0xDFFF) {
        *msg = "lone surrogate in \\u escape";
        return NULL;
    }
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return p + 12;
}

/* The escape at p (a backslash): the byte after it, and its code point. */
static const char *decode_escape(const char *p, const char *end, uint32_t *cp, const char **msg)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (end - p < 2) {
        *msg = "unterminated string";
        return NULL;
    }
    if (p[1] == 'u') return decode_u(p, end, cp, msg);
    const char *hit = p[1] ? strchr(from, p[1]) : NULL;
    if (!hit) {
        *msg = "invalid escape";
        return NULL;
    }
    *cp = (unsigned char)to[hit - from];
    return p + 2;
}

/* p is just past the opening quote. Checks the string to its closing quote
 * and returns the byte after that; *escaped tells whether it holds escapes. */
static const char *scan_string(jparser *jp, const char *p, bool *escaped)
{
    const char *end = jp->end;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end) return jfail(jp, p, "unterminated string");
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            uint32_t cp;
            const char *msg = NULL, *next = decode_escape(p, end, &cp, &msg);
            if (!next) return jfail(jp, p, msg);
            *escaped = true;
            p = next;
        } else if (c < 0x20) {
            return jfail(jp, p, "control character in string");
        } else {
            size_t bad, n = utf8_seq(p, end, &bad);
            if (!n) return jfail(jp, p, "invalid UTF-8");
            p += n;
        }
    }
}

static size_t utf8_put(char *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Copies a string body that scan_string accepted to d, decoding escapes.
 * Every escape is longer than its UTF-8, so end - p bytes of d suffice. */
static size_t unescape(char *d, const char *p, const char *end)
{
    char *start = d;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t run = (size_t)((bs ? bs : end) - p);
        memcpy(d, p, run);
        d += run;
        p += run;
        if (!bs) break;
        uint32_t cp = 0;
        const char *msg;
        p = decode_escape(p, end, &cp, &msg);
        d += utf8_put(d, cp);
    }
    return (size_t)(d - start);
}

/* ==== numbers ============================================================ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *int_digits(const char *p, const char *end, jnum *n)
{
    for (; p < end && is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n->ndigits < 19) {
            n->mant = n->mant * 10 + d;
            n->ndigits++;
        } else {
            n->exp10++;
            n->inexact |= d != 0;
        }
    }
    return p;
}

static const char *frac_digits(const char *p, const char *end, jnum *n)
{
    for (; p < end && is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n->ndigits < 19) {
            n->mant = n->mant * 10 + d;
            n->exp10--;
            n->ndigits += n->mant != 0; /* leading zeros are not significant */
        } else {
            n->inexact |= d != 0;
        }
    }
    return p;
}

/* Exponents beyond a billion saturate: the value is 0 or out of range long
 * before, and the fallback reads the text anyway. */
static const char *exp_digits(const char *p, const char *end, jnum *n)
{
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    int64_t e = 0;
    for (; p < end && is_digit(*p); p++)
        if (e < 1000000000) e = e * 10 + (*p - '0');
    n->exp10 += neg ? -e : e;
    return p;
}

/* Checks the grammar -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? and
 * collects what conversion needs. */
static const char *scan_number(jparser *jp, const char *p, jnum *n)
{
    const char *end = jp->end;
    *n = (jnum){.start = p, .integer = true};
    if (*p == '-') {
        n->neg = true;
        p++;
    }
    if (p == end || !is_digit(*p)) return jfail(jp, p, "invalid number");
    if (*p == '0') {
        if (++p < end && is_digit(*p)) return jfail(jp, p, "leading zero in number");
    } else {
        p = int_digits(p, end, n);
    }
    if (p < end && *p == '.') {
        n->integer = false;
        if (++p == end || !is_digit(*p)) return jfail(jp, p, "digit expected after '.'");
        p = frac_digits(p, end, n);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        n->integer = false;
        const char *digits = ++p < end && (*p == '-' || *p == '+') ? p + 1 : p;
        if (digits >= end || !is_digit(*digits)) return jfail(jp, digits, "digit expected in exponent");
        p = exp_digits(p, end, n);
    }
    n->end = p;
    return p;
}

static bool number_int(const jnum *n, int64_t *v)
{
    if (!n->integer || n->exp10 != 0 || n->inexact) return false;
    if (!n->neg) {
        if (n->mant > (uint64_t)INT64_MAX) return false;
        *v = (int64_t)n->mant;
        return true;
    }
    if (n->mant > (uint64_t)INT64_MAX + 1) return false;
    *v = n->mant == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n->mant;
    return true;
}

/* Clinger's fast path: a mantissa below 2^53 and a power of ten up to 10^22
 * are both exact doubles, so one IEEE multiplication or division rounds the
 * exact value once, correctly. */
static bool fast_double(const jnum *n, double *d)
{
    if (!EXACT_DOUBLE_MATH || n->inexact) return false;
    uint64_t m = n->mant;
    int64_t e = n->exp10;
    if (m == 0) {
        *d = n->neg ? -0.0 : 0.0;
        return true;
    }
    while (m > (1ull << 53) && m % 10 == 0) {
        m /= 10;
        e++;
    }
    if (m > (1ull << 53) || e < -22 || e > 22) return false;
    double v = e < 0 ? (double)m / pow10_tab[-e] : (double)m * pow10_tab[e];
    *d = n->neg ? -v : v;
    return true;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale_obj;

static void c_locale_init(void)
{
    c_locale_obj = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The "C" locale, or 0 if it cannot be had (glibc never fails here). JSON's
 * decimal point is '.', whatever setlocale a plugin may have called. */
static locale_t c_locale(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale_obj;
}

static double c_strtod(const char *s)
{
    locale_t c = c_locale();
    return c ? strtod_l(s, NULL, c) : strtod(s, NULL);
}

/* Digits kept for strtod: more than the 767 significant digits that can
 * matter for a double, then one nonzero digit when anything nonzero was cut,
 * so rounding stays exact while a hostile 10 MB number costs nothing. */
#define CANON_DIGITS 780

/* Rewrites the number as [-]0.DIGITS e EXP and converts that. */
static double slow_double(const jnum *n)
{
    char buf[CANON_DIGITS + 32], *d = buf;
    const char *p = n->start + n->neg;
    int64_t point = 0; /* where the decimal point sits among the kept digits */
    size_t kept = 0;
    bool cut = false, in_int = true;
    if (n->neg) *d++ = '-';
    *d++ = '0';
    *d++ = '.';
    for (; p < n->end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            in_int = false;
        } else if (kept == 0 && *p == '0') {
            point -= !in_int;
        } else if (kept < CANON_DIGITS) {
            d[kept++] = *p;
            point += in_int;
        } else {
            cut |= *p != '0';
            point += in_int;
        }
    }
    if (kept == 0) return n->neg ? -0.0 : 0.0;
    if (cut) d[kept++] = '1';
    /* the explicit exponent alone (n->exp10 also counts digits of mant) */
    int64_t e = 0;
    if (p < n->end) {
        jnum ex = {0};
        exp_digits(p + 1, n->end, &ex);
        e = ex.exp10;
    }
    e += point;
    if (e > 100000) e = 100000;
    if (e < -100000) e = -100000;
    snprintf(d + kept, sizeof buf - (size_t)(d + kept - buf), "e%lld", (long long)e);
    return c_strtod(buf);
}

/* 0 and the correctly rounded double, or -1 when it is beyond the range. */
static int number_double(const jnum *n, double *d)
{
    if (!fast_double(n, d)) *d = slow_double(n);
    return isinf(*d) ? -1 : 0;
}

/* ==== literals =========================================================== */

/* true, false or null at p: the byte after it, with its type and value. */
static const char *scan_literal(jparser *jp, const char *p, rtp_type *type, bool *v)
{
    size_t avail = (size_t)(jp->end - p);
    if (avail >= 4 && memcmp(p, "true", 4) == 0) {
        *type = RTP_BOOL;
        *v = true;
        return p + 4;
    }
    if (avail >= 5 && memcmp(p, "false", 5) == 0) {
        *type = RTP_BOOL;
        *v = false;
        return p + 5;
    }
    if (avail >= 4 && memcmp(p, "null", 4) == 0) {
        *type = RTP_NULL;
        *v = false;
        return p + 4;
    }
    return jfail(jp, p, "invalid literal");
}

/* ==== validation of any value ============================================ */

/* A string body as found in the text. */
typedef struct jstr {
    const char *s;
    size_t len;
    bool escaped;
} jstr;

/* p at a member's name: reads it (into *name when not NULL), the colon and
 * the white space around them; returns the start of the member's value. */
static const char *member_colon(jparser *jp, const char *p, jstr *name)
{
    if (p == jp->end) return jfail(jp, p, "unexpected end of input");
    if (*p != '"') return jfail(jp, p, "expected a string (member name)");
    bool escaped = false;
    const char *q = scan_string(jp, p + 1, &escaped);
    if (!q) return NULL;
    if (name) *name = (jstr){p + 1, (size_t)(q - 1 - (p + 1)), escaped};
    q = skip_ws(q, jp->end);
    if (q == jp->end) return jfail(jp, q, "unexpected end of input");
    if (*q != ':') return jfail(jp, q, "expected ':'");
    q = skip_ws(q + 1, jp->end);
    if (q == jp->end) return jfail(jp, q, "unexpected end of input");
    return q;
}

static const char *skip_scalar(jparser *jp, const char *p)
{
    bool escaped = false, b;
    rtp_type t;
    jnum n;
    switch (*p) {
    case '"': return scan_string(jp, p + 1, &escaped);
    case 't':
    case 'f':
    case 'n': return scan_literal(jp, p, &t, &b);
    default:
        if (*p == '-' || is_digit(*p)) return scan_number(jp, p, &n);
        return jfail(jp, p, "unexpected character");
    }
}

/* After a value inside containers: closes those that end here and returns
 * the start of the next element, or the byte after the outermost container
 * (*top then 0). is_array has one bit per open container. */
static const char *next_element(jparser *jp, const char *p, const uint64_t *is_array,
                                unsigned *top)
{
    while (*top > 0) {
        p = skip_ws(p, jp->end);
        if (p == jp->end) return jfail(jp, p, "unexpected end of input");
        unsigned i = *top - 1;
        bool array = is_array[i / 64] >> (i % 64) & 1;
        if (*p == ',') {
            p = skip_ws(p + 1, jp->end);
            if (array) return p == jp->end ? jfail(jp, p, "unexpected end of input") : p;
            return member_colon(jp, p, NULL);
        }
        if (*p != (array ? ']' : '}'))
            return jfail(jp, p, array ? "expected ',' or ']'" : "expected ',' or '}'");
        p++;
        --*top;
    }
    return p;
}

/* Checks one value at p (not white space) whose containers are already
 * depth deep, iteratively; returns the byte after it. */
static const char *skip_value(jparser *jp, const char *p, unsigned depth)
{
    uint64_t is_array[RTP_JSON_MAX_DEPTH / 64] = {0};
    unsigned top = 0;
    for (;;) {
        if (*p != '[' && *p != '{') {
            p = skip_scalar(jp, p);
        } else if (depth + top >= RTP_JSON_MAX_DEPTH) {
            return jfail(jp, p, "nesting too deep");
        } else {
            bool array = *p == '[';
            uint64_t bit = 1ull << (top % 64);
            is_array[top / 64] = array ? is_array[top / 64] | bit : is_array[top / 64] & ~bit;
            top++;
            p = skip_ws(p + 1, jp->end);
            if (p == jp->end) return jfail(jp, p, "unexpected end of input");
            /* an empty container leaves p at its closer, for next_element */
            if (*p != (array ? ']' : '}')) {
                if (!array && !(p = member_colon(jp, p, NULL))) return NULL;
                continue;
            }
        }
        if (p && top > 0) p = next_element(jp, p, is_array, &top);
        if (!p || top == 0) return p;
    }
}

/* ==== records ============================================================ */

/* Whether k may already be in the record; marks it as present. */
static bool mark_seen(rparser *rp, rtp_key k)
{
    uint64_t bit = 1ull << (k % 64), *word = &rp->seen[k / 64 % SEEN_WORDS];
    bool was = (*word & bit) != 0;
    *word |= bit;
    return was;
}

static void rparser_init(rparser *rp, rtp_batch *b, rtp_record *r, const char *s, size_t len,
                         unsigned flags, rtp_json_error *err)
{
    rp->jp = (jparser){s, len ? s + len : s, err};
    rp->b = b;
    rp->r = r;
    rp->flags = flags;
    memset(rp->seen, 0, sizeof rp->seen);
    for (uint32_t i = 0; i < r->nfields; i++) mark_seen(rp, r->fields[i].key);
    rp->name = rp->name_inline;
    rp->name_len = 0;
    rp->name_cap = NAME_INLINE;
}

/* After a member's value: closes the objects that end here and returns the
 * next member's name, or the byte after the outermost object (*depth 0). */
static const char *close_objects(rparser *rp, const char *p, unsigned *depth)
{
    jparser *jp = &rp->jp;
    for (;;) {
        p = skip_ws(p, jp->end);
        if (p == jp->end) return jfail(jp, p, "unexpected end of input");
        if (*p == ',') return skip_ws(p + 1, jp->end);
        if (*p != '}') return jfail(jp, p, "expected ',' or '}'");
        p++;
        if (--*depth == 0) return p;
    }
}

static const char *member_name(rparser *rp, const char *p, size_t prefix);
static const char *member_value(rparser *rp, const char *p, unsigned depth);

/* Reads the object at p and, unless they are kept as text, the objects
 * nested in it, without recursion: prefix[i] is the length of the dotted
 * name of the i-th object being read. */
static const char *parse_members(rparser *rp, const char *p)
{
    size_t prefix[RTP_JSON_MAX_DEPTH];
    unsigned depth = 0;
    bool open = true; /* p is at a '{' to enter */
    for (;;) {
        if (open) {
            if (depth == RTP_JSON_MAX_DEPTH) return jfail(&rp->jp, p, "nesting too deep");
            prefix[depth++] = rp->name_len;
            p = skip_ws(p + 1, rp->jp.end);
            /* an empty object: close_objects reads its '}' */
            if (p < rp->jp.end && *p == '}' && (!(p = close_objects(rp, p, &depth)) || depth == 0))
                return p;
        }
        p = member_name(rp, p, prefix[depth - 1]);
        if (!p) return NULL;
        open = *p == '{' && !(rp->flags & RTP_JSON_NESTED_AS_TEXT);
        if (open) continue;
        p = member_value(rp, p, depth);
        if (p) p = close_objects(rp, p, &depth);
        if (!p || depth == 0) return p;
    }
}

/* Room for extra more bytes of name. Names that outgrow the inline buffer
 * move to the arena: rare, and released with the batch like the rest. */
static char *name_room(rparser *rp, size_t extra)
{
    if (rp->name_cap - rp->name_len < extra) {
        size_t cap = rp->name_cap * 2;
        while (cap - rp->name_len < extra) cap *= 2;
        char *name = rtp_batch_alloc(rp->b, cap);
        memcpy(name, rp->name, rp->name_len);
        rp->name = name;
        rp->name_cap = cap;
    }
    return rp->name + rp->name_len;
}

/* p at the name of a member of the object whose dotted name is the first
 * prefix bytes of rp->name: makes rp->name the member's dotted name and
 * returns the start of its value. */
static const char *member_name(rparser *rp, const char *p, size_t prefix)
{
    jstr key;
    p = member_colon(&rp->jp, p, &key);
    if (!p) return NULL;
    rp->name_len = prefix;
    char *d = name_room(rp, key.len + 1);
    if (prefix) *d++ = '.';
    if (key.escaped) {
        d += unescape(d, key.s, key.s + key.len);
    } else {
        memcpy(d, key.s, key.len);
        d += key.len;
    }
    rp->name_len = (size_t)(d - rp->name);
    return p;
}

/* A field named rp->name. A name seen before in this record (duplicate
 * member, or a flattened name equal to a dotted one) takes the last value. */
static rtp_field *new_field(rparser *rp)
{
    rtp_key k = rtp_key_intern(rp->name, rp->name_len);
    if (mark_seen(rp, k)) return rtp_record_put(rp->b, rp->r, k);
    return rtp_record_add(rp->b, rp->r, k);
}

static const char *keep_text(const rparser *rp, const char *s, size_t len)
{
    return rp->flags & RTP_JSON_ZERO_COPY ? s : rtp_batch_strdup(rp->b, s, len);
}

static const char *string_field(rparser *rp, const char *p)
{
    bool escaped = false;
    const char *q = scan_string(&rp->jp, p + 1, &escaped);
    if (!q) return NULL;
    const char *body = p + 1;
    size_t len = (size_t)(q - 1 - body);
    if (len > UINT32_MAX) return jfail(&rp->jp, p, "string too long");
    rtp_field *f = new_field(rp);
    f->type = RTP_STRING;
    if (escaped) {
        char *d = rtp_batch_alloc(rp->b, len + 1);
        len = unescape(d, body, q - 1);
        d[len] = 0;
        f->v.s = d;
    } else {
        f->v.s = keep_text(rp, body, len);
    }
    f->len = (uint32_t)len;
    return q;
}

/* An array, or an object under RTP_JSON_NESTED_AS_TEXT: its exact text. */
static const char *text_field(rparser *rp, const char *p, unsigned depth)
{
    const char *q = skip_value(&rp->jp, p, depth);
    if (!q) return NULL;
    size_t len = (size_t)(q - p);
    if (len > UINT32_MAX) return jfail(&rp->jp, p, "value too long");
    rtp_field *f = new_field(rp);
    f->type = RTP_STRING;
    f->v.s = keep_text(rp, p, len);
    f->len = (uint32_t)len;
    return q;
}

static const char *literal_field(rparser *rp, const char *p)
{
    rtp_type type;
    bool v;
    const char *q = scan_literal(&rp->jp, p, &type, &v);
    if (!q) return NULL;
    rtp_field *f = new_field(rp);
    f->type = (uint8_t)type;
    f->len = 0;
    f->v.i = 0;
    f->v.b = v;
    return q;
}

static const char *number_field(rparser *rp, const char *p)
{
    if (*p != '-' && !is_digit(*p)) return jfail(&rp->jp, p, "unexpected character");
    jnum n;
    const char *q = scan_number(&rp->jp, p, &n);
    if (!q) return NULL;
    int64_t i = 0;
    double d = 0;
    bool integer = number_int(&n, &i);
    if (!integer && number_double(&n, &d) < 0) return jfail(&rp->jp, p, "number out of range");
    rtp_field *f = new_field(rp);
    f->len = 0;
    if (integer) {
        f->type = RTP_INT;
        f->v.i = i;
    } else {
        f->type = RTP_DOUBLE;
        f->v.d = d;
    }
    return q;
}

/* p at a value (not an object to flatten) inside depth open objects. */
static const char *member_value(rparser *rp, const char *p, unsigned depth)
{
    switch (*p) {
    case '"': return string_field(rp, p);
    case '[':
    case '{': return text_field(rp, p, depth);
    case 't':
    case 'f':
    case 'n': return literal_field(rp, p);
    default: return number_field(rp, p);
    }
}

/* ==== writer ============================================================= */

static void sb_put(rtp_sbuf *sb, const void *p, size_t n)
{
    if (n == 0) return;
    if (sb->cap - sb->len < n) rtp_sbuf_reserve(sb, n);
    memcpy(sb->data + sb->len, p, n);
    sb->len += n;
}

static void sb_byte(rtp_sbuf *sb, char c)
{
    if (sb->cap == sb->len) rtp_sbuf_reserve(sb, 1);
    sb->data[sb->len++] = c;
}

static bool same_name(const char *opt, const char *name, size_t len)
{
    return opt && strnlen(opt, len + 1) == len && memcmp(opt, name, len) == 0;
}

static bool is_opt_name(const rtp_json_write_opts *opts, const char *name, size_t len)
{
    return same_name(opts->time_key, name, len) || same_name(opts->tag_key, name, len);
}

static void write_name(rtp_sbuf *out, const char *name, size_t len, bool first)
{
    if (!first) sb_byte(out, ',');
    rtp_json_write_string(out, name, len);
    sb_byte(out, ':');
}

static void write_time(rtp_sbuf *out, int64_t ns)
{
    char buf[40];
    buf[0] = '"';
    size_t n = rtp_time_rfc3339(ns, buf + 1);
    buf[n + 1] = '"';
    sb_put(out, buf, n + 2);
}

static void write_int(rtp_sbuf *out, int64_t v)
{
    char buf[24], *end = buf + sizeof buf, *p = end;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    sb_put(out, p, (size_t)(end - p));
}

static void write_value(rtp_sbuf *out, const rtp_field *f)
{
    switch (f->type) {
    case RTP_BOOL:
        if (f->v.b) sb_put(out, "true", 4);
        else sb_put(out, "false", 5);
        break;
    case RTP_INT: write_int(out, f->v.i); break;
    case RTP_DOUBLE: rtp_json_write_double(out, f->v.d); break;
    case RTP_STRING: rtp_json_write_string(out, f->v.s, f->len); break;
    case RTP_TIME: write_time(out, f->v.t); break;
    default: sb_put(out, "null", 4); break;
    }
}

/* One byte at p that skip_plain stopped at: a whole UTF-8 sequence, U+FFFD
 * for an ill-formed one, or an escape. */
static const char *write_special(rtp_sbuf *out, const char *p, const char *end)
{
    static const char hex[] = "0123456789abcdef";
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    unsigned char c = (unsigned char)*p;
    if (c >= 0x80) {
        size_t bad, n = utf8_seq(p, end, &bad);
        if (n) {
            sb_put(out, p, n);
            return p + n;
        }
        sb_put(out, "\xEF\xBF\xBD", 3);
        return p + bad;
    }
    const char *hit = c ? memchr(from, c, sizeof from - 1) : NULL;
    if (hit) {
        char esc[2] = {'\\', to[hit - from]};
        sb_put(out, esc, 2);
    } else {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        sb_put(out, esc, 6);
    }
    return p + 1;
}

static size_t put_fixed(uint64_t m, unsigned k, char *out)
{
    char dig[20];
    size_t nd = 0;
    do {
        dig[sizeof dig - 1 - nd++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    const char *d = dig + sizeof dig - nd;
    char *o = out;
    if (nd <= k) { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        memset(o, '0', k - nd);
        o += k - nd;
        memcpy(o, d, nd);
        return (size_t)(o + nd - out);
    }
    memcpy(o, d, nd - k);
    o += nd - k;
    *o++ = '.';
    if (k == 0) {
        *o++ = '0'; /* 3.0, not 3: the value reads back as a double */
        return (size_t)(o - out);
    }
    memcpy(o, d + nd - k, k);
    return (size_t)(o + k - out);
}

/* a in [1e-4, 1e15) with at most 15 significant digits, in fixed notation
 * with the fewest decimals that read back as a: what %.15g would print,
 * without printf. n / 10^k with n < 2^53 and k <= 22 rounds once, correctly
 * (Clinger), exactly as strtod reads "n e-k". 0 when a is not such a number. */
static size_t fixed_decimal(double a, char *out)
{
    if (!EXACT_DOUBLE_MATH || a < 1e-4 || a >= 1e15) return 0;
    for (unsigned k = 0; k < sizeof pow10_tab / sizeof *pow10_tab; k++) {
        double x = a * pow10_tab[k];
        if (x >= 1e15) return 0;
        double m = floor(x + 0.5);
        if (m / pow10_tab[k] == a) return put_fixed((uint64_t)m, k, out);
    }
    return 0;
}

/* The first of %.15g, %.16g, %.17g that reads back as a (%.17g always
 * does), with ".0" added to integral values so they stay doubles. */
static size_t printf_double(double a, char *out, size_t size)
{
    locale_t c = c_locale(), old = c ? uselocale(c) : (locale_t)0;
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, size, "%.*g", prec, a);
        if (prec == 17 || c_strtod(out) == a) break;
    }
    if (c) uselocale(old);
    if (!strpbrk(out, ".e")) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

static size_t format_double(double d, char *buf)
{
    if (!isfinite(d)) {
        memcpy(buf, "null", 4);
        return 4;
    }
    char *p = buf;
    if (signbit(d)) {
        *p++ = '-';
        d = -d;
    }
    if (d == 0) {
        memcpy(p, "0.0", 3);
        return (size_t)(p - buf) + 3;
    }
    size_t n = fixed_decimal(d, p);
    if (!n) n = printf_double(d, p, 31);
    return (size_t)(p - buf) + n;
}
