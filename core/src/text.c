/* Numbers from byte views: see rtproc/text.h for the contract.
 *
 * A decimal literal is scanned once into (mantissa, power of ten). Most
 * numbers met in practice ("15.07", "-1.25e3") have few digits, and for them
 * Clinger's observation gives the correctly rounded double with one IEEE
 * multiply or divide: both operands are exact doubles (mantissa <= 2^53,
 * 10^k for k <= 22) and IEEE rounds the single operation correctly. The rest
 * (long mantissas, huge or tiny exponents) goes to strtod_l in the C locale,
 * which is exact but some ten times slower. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l, newlocale */
#endif

#include "rtproc/text.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MANTISSA_DIGITS 19 /* 10^19 - 1 still fits a uint64_t */
#define EXPONENT_CLAMP 100000  /* far beyond any double; keeps int arithmetic safe */

/* The fast path is only exact when doubles are evaluated as doubles (not in
 * x87 extended registers); elsewhere every conversion takes the slow path. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define FAST_PATH_OK 1
#else
#define FAST_PATH_OK 0
#endif

typedef struct decimal {
    uint64_t mant;  /* the first 19 significant digits */
    int64_t exp10;  /* value = mant * 10^exp10, unless inexact */
    bool inexact;   /* a nonzero digit was dropped past the 19th */
    bool neg;
    bool plus;      /* written with a leading '+' */
    bool integer;   /* no '.' and no exponent */
    bool lead_zero; /* integer part starts with a 0 followed by a digit */
} decimal;

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const uint64_t pow10_u64[] = {1ull,
                                     10ull,
                                     100ull,
                                     1000ull,
                                     10000ull,
                                     100000ull,
                                     1000000ull,
                                     10000000ull,
                                     100000000ull,
                                     1000000000ull,
                                     10000000000ull,
                                     100000000000ull,
                                     1000000000000ull,
                                     10000000000000ull,
                                     100000000000000ull,
                                     1000000000000000ull};

static inline unsigned digit(char c) {
    return (unsigned)(unsigned char)c - '0';
}

/* ---- integers ------------------------------------------------------------- */

int rtp_parse_int64(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len) return -1;
    while (i + 1 < len && s[i] == '0') i++; /* leading zeros cost no digits */

    /* 18 digits cannot overflow; only a 19th needs a check, a 20th always does. */
    uint64_t v = 0;
    size_t ndigits = 0;
    for (; i < len; i++, ndigits++) {
        unsigned d = digit(s[i]);
        if (d > 9) return -1;
        if (ndigits >= 18) {
            uint64_t limit = (uint64_t)INT64_MAX + neg;
            if (ndigits > 18 || v > (limit - d) / 10) return -1;
        }
        v = v * 10 + d;
    }
    if (!neg)
        *out = (int64_t)v;
    else
        *out = v == 0 ? 0 : -(int64_t)(v - 1) - 1; /* INT64_MIN has no positive twin */
    return 0;
}

/* ---- decimal literals ----------------------------------------------------- */

static inline void add_digit(decimal *n, unsigned d, int *nsig, bool fraction) {
    if (*nsig < MAX_MANTISSA_DIGITS) {
        n->mant = n->mant * 10 + d;
        if (n->mant != 0) (*nsig)++;
        if (fraction) n->exp10--;
    } else {
        if (d != 0) n->inexact = true;
        if (!fraction) n->exp10++;
    }
}

/* Reads an optional exponent at s[*i]; 0, or -1 for "e" without digits. */
static int scan_exponent(const char *s, size_t len, size_t *i, decimal *n) {
    if (*i == len || (s[*i] != 'e' && s[*i] != 'E')) return 0;
    size_t j = *i + 1;
    bool neg = false;
    if (j < len && (s[j] == '-' || s[j] == '+')) neg = s[j++] == '-';
    if (j == len || digit(s[j]) > 9) return -1;
    int64_t e = 0;
    for (; j < len && digit(s[j]) <= 9; j++)
        if (e < EXPONENT_CLAMP) e = e * 10 + digit(s[j]);
    n->exp10 += neg ? -e : e;
    n->integer = false;
    *i = j;
    return 0;
}

/* Scans the whole view as a decimal literal; 0, or -1 when it is not one. */
static int scan_decimal(const char *s, size_t len, decimal *n) {
    memset(n, 0, sizeof *n);
    size_t i = 0;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        n->neg = s[i] == '-';
        n->plus = s[i] == '+';
        i++;
    }
    int nsig = 0;
    size_t int_start = i;
    for (; i < len && digit(s[i]) <= 9; i++) add_digit(n, digit(s[i]), &nsig, false);
    size_t ndigits = i - int_start;
    n->lead_zero = ndigits > 1 && s[int_start] == '0';
    n->integer = true;
    if (i < len && s[i] == '.') {
        n->integer = false;
        size_t frac_start = ++i;
        for (; i < len && digit(s[i]) <= 9; i++) add_digit(n, digit(s[i]), &nsig, true);
        ndigits += i - frac_start;
    }
    if (ndigits == 0) return -1;
    if (scan_exponent(s, len, &i, n) != 0) return -1;
    return i == len ? 0 : -1;
}

static bool fast_path(const decimal *n, double *out) {
    if (!FAST_PATH_OK || n->inexact || n->mant > (1ull << 53)) return false;
    int64_t e = n->exp10;
    if (e >= -22 && e <= 22) {
        double m = (double)n->mant;
        *out = e < 0 ? m / pow10_exact[-e] : m * pow10_exact[e];
        return true;
    }
    /* 12e30 is 12000000e25...: move the surplus power into the mantissa while
     * it stays exact, then one multiply by 1e22 is again correctly rounded. */
    int64_t surplus = e - 22;
    if (surplus > 0 && surplus <= 15 && n->mant <= (1ull << 53) / pow10_u64[surplus]) {
        *out = (double)(n->mant * pow10_u64[surplus]) * 1e22;
        return true;
    }
    return false;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void) {
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod_l needs a NUL-terminated copy; the view was validated already, so
 * strtod_l must consume all of it. */
static int slow_path(const char *s, size_t len, double *out) {
    pthread_once(&c_locale_once, c_locale_init);
    if (c_locale == (locale_t)0) return -1;
    char stack[128];
    char *copy = len < sizeof stack ? stack : malloc(len + 1);
    if (copy == NULL) return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    char *end;
    *out = strtod_l(copy, &end, c_locale);
    int rc = end == copy + len ? 0 : -1;
    if (copy != stack) free(copy);
    return rc;
}

static int decimal_value(const decimal *n, const char *s, size_t len, double *out) {
    double d;
    if (n->mant == 0) {
        d = n->neg ? -0.0 : 0.0;
    } else if (fast_path(n, &d)) {
        if (n->neg) d = -d;
    } else if (slow_path(s, len, &d) != 0) {
        return -1;
    }
    if (isinf(d)) return -1;
    *out = d;
    return 0;
}

static bool equals_nocase(const char *s, size_t len, const char *word) {
    size_t n = strlen(word);
    if (len != n) return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != word[i]) return false;
    return true;
}

static int parse_special(const char *s, size_t len, double *out) {
    bool neg = len > 0 && s[0] == '-';
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        s++;
        len--;
    }
    double v;
    if (equals_nocase(s, len, "inf") || equals_nocase(s, len, "infinity"))
        v = INFINITY;
    else if (equals_nocase(s, len, "nan"))
        v = NAN;
    else
        return -1;
    *out = neg ? -v : v;
    return 0;
}

int rtp_parse_double(const char *s, size_t len, double *out) {
    decimal n;
    if (scan_decimal(s, len, &n) == 0) return decimal_value(&n, s, len, out);
    return parse_special(s, len, out);
}

/* ---- classification -------------------------------------------------------- */

static bool integer_value(const decimal *n, int64_t *out) {
    if (n->exp10 != 0) return false; /* more than 19 digits: beyond int64 */
    uint64_t limit = (uint64_t)INT64_MAX + n->neg;
    if (n->mant > limit) return false;
    *out = !n->neg ? (int64_t)n->mant : n->mant == 0 ? 0 : -(int64_t)(n->mant - 1) - 1;
    return true;
}

rtp_type rtp_classify_number(const char *s, size_t len, int64_t *i, double *d) {
    decimal n;
    if (scan_decimal(s, len, &n) != 0 || n.plus || n.lead_zero) return RTP_STRING;
    if (n.integer) return integer_value(&n, i) ? RTP_INT : RTP_STRING;
    return decimal_value(&n, s, len, d) == 0 ? RTP_DOUBLE : RTP_STRING;
}
