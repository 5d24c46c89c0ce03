/* Timestamps: see rtproc/timefmt.h for the contract.
 *
 * strptime + timegm would do, but they cost a microsecond, depend on the
 * locale and TZ, and accept sloppy input. A pattern is compiled once into a
 * list of directives; parsing walks it over the view, fills broken-down
 * fields, checks their ranges and turns the date into days with Howard
 * Hinnant's days_from_civil, which is exact over the proleptic Gregorian
 * calendar with no tables and no time zone.
 *
 * Choices a caller may care about:
 *  - The whole view must match; literal text matches byte for byte (a space
 *    in the pattern matches exactly one space).
 *  - %Y is exactly 4 digits, %y 1-2 digits (69-99 -> 19xx, 00-68 -> 20xx),
 *    %m %d %H %M %S 1-2 digits (so "2/24/2015 2:47" parses with
 *    "%m/%d/%Y %H:%M"), %e like %d after an optional space, %j 1-3 digits.
 *  - %S accepts 60 (a leap second reads as the next minute's :00, as timegm
 *    does); everything else out of range (month 13, 31 April, hour 24) fails.
 *  - %f is 1-9 digits of fraction; %z is Z, z, +HH:MM or +HHMM (or '-').
 *  - %b (and %B) is an English month name, abbreviated or full, any case.
 *  - %s is signed seconds since the epoch; only %f and literals may join it.
 *  - %j sets the day of the year and excludes %m, %d, %e and %b.
 *  - Fields left out default to 1970-01-01 00:00:00 UTC.
 *  - Times outside what int64 nanoseconds hold (1677-09-21 .. 2262-04-11)
 *    fail. */
#include "rtproc/timefmt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_SEC 1000000000LL

enum kind { KIND_PATTERN, KIND_EPOCH, KIND_ISO8601 };

enum op {
    OP_LIT,
    OP_YEAR,
    OP_YEAR2,
    OP_MONTH,
    OP_MONTH_NAME,
    OP_DAY,
    OP_DAY_SPACE,
    OP_YDAY,
    OP_HOUR,
    OP_MINUTE,
    OP_SECOND,
    OP_FRACTION,
    OP_ZONE,
    OP_EPOCH
};

typedef struct directive {
    enum op op;
    const char *lit; /* OP_LIT: bytes to match */
    size_t len;
} directive;

struct rtp_timefmt {
    enum kind kind;
    int unit_digits; /* KIND_EPOCH: 0 seconds, 3 ms, 6 us, 9 ns */
    size_t n;
    directive d[];
};

/* Broken-down time while parsing; ranges are checked once at the end. */
typedef struct fields {
    int year, month, day, yday, hour, minute, second;
    int64_t nsec;
    int64_t offset; /* seconds east of UTC */
    int64_t epoch;
    bool has_epoch;
} fields;

/* ---- calendar ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m) {
    static const unsigned char days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* secs * 1e9 + nsec (0 <= nsec < 1e9) without overflowing. */
static int to_ns(int64_t secs, int64_t nsec, int64_t *ns) {
    if (secs > INT64_MAX / NS_PER_SEC || secs < INT64_MIN / NS_PER_SEC - 1) return -1;
    if (secs < INT64_MIN / NS_PER_SEC) { /* the last partial second before INT64_MIN */
        int64_t rest = INT64_MIN / NS_PER_SEC * NS_PER_SEC - INT64_MIN; /* 854775808 */
        if (NS_PER_SEC - nsec > rest) return -1;
        *ns = (secs + 1) * NS_PER_SEC - (NS_PER_SEC - nsec);
        return 0;
    }
    int64_t base = secs * NS_PER_SEC;
    if (base > 0 && nsec > INT64_MAX - base) return -1;
    *ns = base + nsec;
    return 0;
}

/* ---- field readers: each advances *p or returns -1 ----------------------- */

static inline unsigned digit(char c) {
    return (unsigned)(unsigned char)c - '0';
}

static int read_uint(const char **p, const char *end, int min, int max, int *out) {
    const char *s = *p;
    int v = 0, n = 0;
    while (n < max && s + n < end && digit(s[n]) <= 9) v = v * 10 + (int)digit(s[n++]);
    if (n < min) return -1;
    *p = s + n;
    *out = v;
    return 0;
}

/* 1-9 digits of a second, as nanoseconds. */
static int read_fraction(const char **p, const char *end, int64_t *nsec) {
    const char *s = *p;
    int64_t v = 0;
    int n = 0;
    while (n < 9 && s + n < end && digit(s[n]) <= 9) v = v * 10 + digit(s[n++]);
    if (n == 0) return -1;
    for (int k = n; k < 9; k++) v *= 10;
    *p = s + n;
    *nsec = v;
    return 0;
}

static int read_zone(const char **p, const char *end, int64_t *offset) {
    const char *s = *p;
    if (s < end && (*s == 'Z' || *s == 'z')) {
        *offset = 0;
        *p = s + 1;
        return 0;
    }
    if (s == end || (*s != '+' && *s != '-')) return -1;
    int sign = *s++ == '-' ? -1 : 1;
    int hh, mm;
    if (read_uint(&s, end, 2, 2, &hh) != 0) return -1;
    if (s < end && *s == ':') s++;
    if (read_uint(&s, end, 2, 2, &mm) != 0) return -1;
    if (hh > 23 || mm > 59) return -1;
    *offset = sign * (hh * 3600 + mm * 60);
    *p = s;
    return 0;
}

static const char *const month_names[] = {"january", "february", "march",     "april",
                                          "may",     "june",     "july",      "august",
                                          "september", "october", "november", "december"};

static bool match_nocase(const char *s, const char *end, const char *word, size_t n) {
    if ((size_t)(end - s) < n) return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != word[i]) return false;
    return true;
}

static int read_month_name(const char **p, const char *end, int *month) {
    for (int m = 0; m < 12; m++) {
        const char *name = month_names[m];
        size_t full = strlen(name);
        if (match_nocase(*p, end, name, full)) {
            *p += full;
        } else if (match_nocase(*p, end, name, 3)) {
            *p += 3;
        } else {
            continue;
        }
        *month = m + 1;
        return 0;
    }
    return -1;
}

static int read_epoch(const char **p, const char *end, int64_t *secs) {
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg) s++;
    int64_t v = 0;
    const char *start = s;
    for (; s < end && digit(*s) <= 9; s++) {
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + digit(*s);
    }
    if (s == start) return -1;
    *secs = neg ? -v : v;
    *p = s;
    return 0;
}

/* ---- assembling ------------------------------------------------------------ */

static int check_ranges(const fields *f) {
    if (f->month < 1 || f->month > 12) return -1;
    if (f->day < 1 || f->day > days_in_month(f->year, f->month)) return -1;
    if (f->yday != 0 && f->yday > (is_leap(f->year) ? 366 : 365)) return -1;
    if (f->hour > 23 || f->minute > 59 || f->second > 60) return -1;
    return 0;
}

static int fields_to_ns(const fields *f, int64_t *ns) {
    if (f->has_epoch) {
        /* "-1.5" is 1.5 s before the epoch: the fraction shares the sign. */
        if (f->epoch < 0 && f->nsec > 0) return to_ns(f->epoch - 1, NS_PER_SEC - f->nsec, ns);
        return to_ns(f->epoch, f->nsec, ns);
    }
    if (check_ranges(f) != 0) return -1;
    int64_t days = f->yday != 0 ? days_from_civil(f->year, 1, 1) + f->yday - 1
                                : days_from_civil(f->year, (unsigned)f->month, (unsigned)f->day);
    int64_t secs = days * 86400 + f->hour * 3600 + f->minute * 60 + f->second - f->offset;
    return to_ns(secs, f->nsec, ns);
}

static void fields_init(fields *f) {
    memset(f, 0, sizeof *f);
    f->year = 1970;
    f->month = 1;
    f->day = 1;
}

/* ---- patterns ---------------------------------------------------------------- */

static int apply(const directive *d, const char **p, const char *end, fields *f) {
    switch (d->op) {
    case OP_LIT:
        if ((size_t)(end - *p) < d->len || memcmp(*p, d->lit, d->len) != 0) return -1;
        *p += d->len;
        return 0;
    case OP_YEAR: return read_uint(p, end, 4, 4, &f->year);
    case OP_YEAR2:
        if (read_uint(p, end, 1, 2, &f->year) != 0) return -1;
        f->year += f->year < 69 ? 2000 : 1900;
        return 0;
    case OP_MONTH: return read_uint(p, end, 1, 2, &f->month);
    case OP_MONTH_NAME: return read_month_name(p, end, &f->month);
    case OP_DAY_SPACE:
        if (*p < end && **p == ' ') (*p)++;
        return read_uint(p, end, 1, 2, &f->day);
    case OP_DAY: return read_uint(p, end, 1, 2, &f->day);
    case OP_YDAY:
        if (read_uint(p, end, 1, 3, &f->yday) != 0) return -1;
        return f->yday == 0 ? -1 : 0;
    case OP_HOUR: return read_uint(p, end, 1, 2, &f->hour);
    case OP_MINUTE: return read_uint(p, end, 1, 2, &f->minute);
    case OP_SECOND: return read_uint(p, end, 1, 2, &f->second);
    case OP_FRACTION: return read_fraction(p, end, &f->nsec);
    case OP_ZONE: return read_zone(p, end, &f->offset);
    case OP_EPOCH:
        f->has_epoch = true;
        return read_epoch(p, end, &f->epoch);
    }
    return -1;
}

static int parse_pattern(const rtp_timefmt *tf, const char *s, size_t len, int64_t *ns) {
    fields f;
    fields_init(&f);
    const char *p = s, *end = s + len;
    for (size_t i = 0; i < tf->n; i++)
        if (apply(&tf->d[i], &p, end, &f) != 0) return -1;
    if (p != end) return -1;
    return fields_to_ns(&f, ns);
}

/* ---- named formats ------------------------------------------------------------ */

/* [-]digits[.fraction] in units of 10^-unit_digits s; the fraction may only
 * fill the digits down to a nanosecond. */
static int parse_epoch_units(const char *s, size_t len, int unit_digits, int64_t *ns) {
    static const int64_t scale[] = {1000000000, 100000000, 10000000, 1000000, 100000,
                                    10000,      1000,      100,      10,      1};
    const char *p = s, *end = s + len;
    bool neg = p < end && *p == '-';
    if (neg) p++;
    uint64_t whole = 0;
    const char *digits = p;
    for (; p < end && digit(*p) <= 9; p++) {
        if (whole > (UINT64_MAX - 9) / 10) return -1;
        whole = whole * 10 + digit(*p);
    }
    if (p == digits) return -1;
    uint64_t frac = 0; /* in nanoseconds */
    if (p < end && *p == '.' && unit_digits < 9) {
        const char *f = ++p;
        for (; p < end && digit(*p) <= 9 && p - f < 9 - unit_digits; p++)
            frac = frac * 10 + digit(*p);
        if (p == f) return -1;
        frac *= (uint64_t)scale[unit_digits + (p - f)];
    }
    if (p != end) return -1;
    uint64_t unit = (uint64_t)scale[unit_digits];
    uint64_t limit = (uint64_t)INT64_MAX + neg;
    if (whole > limit / unit || frac > limit - whole * unit) return -1;
    uint64_t mag = whole * unit + frac;
    *ns = !neg ? (int64_t)mag : mag == 0 ? 0 : -(int64_t)(mag - 1) - 1;
    return 0;
}

static int expect(const char **p, const char *end, char c) {
    if (*p == end || **p != c) return -1;
    (*p)++;
    return 0;
}

/* YYYY-MM-DD[(T|t| )HH:MM[:SS[.frac]][Z|+HH:MM|+HHMM]] */
static int parse_iso8601(const char *s, size_t len, int64_t *ns) {
    fields f;
    fields_init(&f);
    const char *p = s, *end = s + len;
    if (read_uint(&p, end, 4, 4, &f.year) || expect(&p, end, '-') ||
        read_uint(&p, end, 2, 2, &f.month) || expect(&p, end, '-') ||
        read_uint(&p, end, 2, 2, &f.day))
        return -1;
    if (p < end) {
        if (*p != 'T' && *p != 't' && *p != ' ') return -1;
        p++;
        if (read_uint(&p, end, 2, 2, &f.hour) || expect(&p, end, ':') ||
            read_uint(&p, end, 2, 2, &f.minute))
            return -1;
        if (p < end && *p == ':') {
            p++;
            if (read_uint(&p, end, 2, 2, &f.second)) return -1;
            if (p < end && *p == '.') {
                p++;
                if (read_fraction(&p, end, &f.nsec)) return -1;
            }
        }
        if (p < end && read_zone(&p, end, &f.offset)) return -1;
    }
    if (p != end) return -1;
    return fields_to_ns(&f, ns);
}

int rtp_timefmt_parse(const rtp_timefmt *tf, const char *s, size_t len, int64_t *ns) {
    switch (tf->kind) {
    case KIND_EPOCH: return parse_epoch_units(s, len, tf->unit_digits, ns);
    case KIND_ISO8601: return parse_iso8601(s, len, ns);
    case KIND_PATTERN: return parse_pattern(tf, s, len, ns);
    }
    return -1;
}

/* ---- compiling ------------------------------------------------------------------ */

static void emit(rtp_timefmt *tf, enum op op, const char *lit, size_t len) {
    tf->d[tf->n++] = (directive){.op = op, .lit = lit, .len = len};
}

/* Appends the directives of one conversion character; -1 if unknown. */
static int compile_conversion(rtp_timefmt *tf, char c, const char *self) {
    switch (c) {
    case 'Y': emit(tf, OP_YEAR, NULL, 0); return 0;
    case 'y': emit(tf, OP_YEAR2, NULL, 0); return 0;
    case 'm': emit(tf, OP_MONTH, NULL, 0); return 0;
    case 'b':
    case 'B': emit(tf, OP_MONTH_NAME, NULL, 0); return 0;
    case 'd': emit(tf, OP_DAY, NULL, 0); return 0;
    case 'e': emit(tf, OP_DAY_SPACE, NULL, 0); return 0;
    case 'j': emit(tf, OP_YDAY, NULL, 0); return 0;
    case 'H': emit(tf, OP_HOUR, NULL, 0); return 0;
    case 'M': emit(tf, OP_MINUTE, NULL, 0); return 0;
    case 'S': emit(tf, OP_SECOND, NULL, 0); return 0;
    case 'f': emit(tf, OP_FRACTION, NULL, 0); return 0;
    case 'z': emit(tf, OP_ZONE, NULL, 0); return 0;
    case 's': emit(tf, OP_EPOCH, NULL, 0); return 0;
    case '%': emit(tf, OP_LIT, self, 1); return 0;
    case 'T':
        emit(tf, OP_HOUR, NULL, 0);
        emit(tf, OP_LIT, ":", 1);
        emit(tf, OP_MINUTE, NULL, 0);
        emit(tf, OP_LIT, ":", 1);
        emit(tf, OP_SECOND, NULL, 0);
        return 0;
    case 'F':
        emit(tf, OP_YEAR, NULL, 0);
        emit(tf, OP_LIT, "-", 1);
        emit(tf, OP_MONTH, NULL, 0);
        emit(tf, OP_LIT, "-", 1);
        emit(tf, OP_DAY, NULL, 0);
        return 0;
    default: return -1;
    }
}

/* Combinations whose meaning would be a guess are refused up front. */
static const char *check_combination(const rtp_timefmt *tf) {
    bool epoch = false, yday = false, calendar = false, other = false, any_field = false;
    for (size_t i = 0; i < tf->n; i++) {
        switch (tf->d[i].op) {
        case OP_EPOCH: epoch = true; break;
        case OP_YDAY: yday = true; break;
        case OP_MONTH:
        case OP_MONTH_NAME:
        case OP_DAY:
        case OP_DAY_SPACE: calendar = true; break;
        case OP_LIT:
        case OP_FRACTION: break;
        default: other = true; break;
        }
        any_field |= tf->d[i].op != OP_LIT;
    }
    if (epoch && (yday || calendar || other))
        return "%s cannot be combined with date, time or zone fields";
    if (yday && calendar) return "%j cannot be combined with %m, %d, %e or %b";
    if (!any_field) return "time format has no % field";
    return NULL;
}

static rtp_timefmt *compile_pattern(const char *fmt, const char **err) {
    size_t flen = strlen(fmt);
    /* Each pattern byte yields at most 3 directives (%T: 2 bytes, 5 directives);
     * the pattern text itself is kept after them for the literals. */
    size_t cap = flen * 3 + 1;
    rtp_timefmt *tf = malloc(sizeof *tf + cap * sizeof(directive) + flen + 1);
    if (tf == NULL) {
        *err = "out of memory";
        return NULL;
    }
    char *text = (char *)&tf->d[cap];
    memcpy(text, fmt, flen + 1);
    tf->kind = KIND_PATTERN;
    tf->unit_digits = 0;
    tf->n = 0;
    for (size_t i = 0; i < flen;) {
        if (text[i] != '%') {
            size_t j = i;
            while (j < flen && text[j] != '%') j++;
            emit(tf, OP_LIT, text + i, j - i);
            i = j;
        } else if (i + 1 == flen || compile_conversion(tf, text[i + 1], text + i + 1) != 0) {
            *err = i + 1 == flen ? "time format ends with a lone %"
                                 : "unknown % directive in time format";
            free(tf);
            return NULL;
        } else {
            i += 2;
        }
    }
    if ((*err = check_combination(tf)) != NULL) {
        free(tf);
        return NULL;
    }
    return tf;
}

static rtp_timefmt *named(enum kind kind, int unit_digits) {
    rtp_timefmt *tf = malloc(sizeof *tf);
    if (tf == NULL) return NULL;
    tf->kind = kind;
    tf->unit_digits = unit_digits;
    tf->n = 0;
    return tf;
}

rtp_timefmt *rtp_timefmt_new(const char *fmt, const char **err) {
    static const struct {
        const char *name;
        enum kind kind;
        int unit_digits;
    } names[] = {{"epoch", KIND_EPOCH, 0},    {"epoch_ms", KIND_EPOCH, 3},
                 {"epoch_us", KIND_EPOCH, 6}, {"epoch_ns", KIND_EPOCH, 9},
                 {"iso8601", KIND_ISO8601, 0}};
    const char *ignored;
    if (err == NULL) err = &ignored;
    *err = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(fmt, names[i].name) != 0) continue;
        rtp_timefmt *tf = named(names[i].kind, names[i].unit_digits);
        if (tf == NULL) *err = "out of memory";
        return tf;
    }
    return compile_pattern(fmt, err);
}

void rtp_timefmt_free(rtp_timefmt *tf) {
    free(tf);
}

/* ---- printing -------------------------------------------------------------------- */

static char *put_digits(char *out, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10) out[i] = (char)('0' + v % 10);
    return out + n;
}

size_t rtp_time_rfc3339(int64_t ns, char *out) {
    int64_t ms = floor_div(ns, 1000000);
    int64_t secs = floor_div(ms, 1000);
    int64_t days = floor_div(secs, 86400);
    unsigned sod = (unsigned)(secs - days * 86400);
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    char *p = put_digits(out, (unsigned)y, 4); /* int64 ns only spans 1677..2262 */
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)(ms - secs * 1000), 3);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - out);
}
