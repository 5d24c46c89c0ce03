/* Numbers from text: exactness against the C library, and the edges. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtproc/text.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void) { /* splitmix64: reproducible across runs */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool same_double(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* rtp_parse_double must give strtod's exact bits for every decimal literal. */
static void check_like_strtod(const char *s) {
    double want = strtod(s, NULL), got = 0;
    int rc = rtp_parse_double(s, strlen(s), &got);
    if (isinf(want)) {
        cr_assert_eq(rc, -1, "%s overflows: must be -1", s);
        return;
    }
    cr_assert_eq(rc, 0, "%s rejected", s);
    cr_assert(same_double(got, want), "%s: got %.17g want %.17g", s, got, want);
}

/* ---- integers ------------------------------------------------------------- */

static int64_t int_ok(const char *s) {
    int64_t v = 0;
    cr_assert_eq(rtp_parse_int64(s, strlen(s), &v), 0, "%s rejected", s);
    return v;
}

static void int_bad(const char *s) {
    int64_t v = 12345;
    cr_assert_eq(rtp_parse_int64(s, strlen(s), &v), -1, "%s accepted", s);
    cr_assert_eq(v, 12345, "%s: output written on failure", s);
}

Test(parse_int64, valid) {
    cr_assert_eq(int_ok("0"), 0);
    cr_assert_eq(int_ok("-0"), 0);
    cr_assert_eq(int_ok("+7"), 7);
    cr_assert_eq(int_ok("007"), 7);
    cr_assert_eq(int_ok("-42"), -42);
    cr_assert_eq(int_ok("9223372036854775807"), INT64_MAX);
    cr_assert_eq(int_ok("-9223372036854775808"), INT64_MIN);
    cr_assert_eq(int_ok("000000000000000000000009223372036854775807"), INT64_MAX);
    cr_assert_eq(int_ok("1000000000000000000"), 1000000000000000000);
}

Test(parse_int64, invalid_and_overflow) {
    const char *bad[] = {"",     "-",    "+",   " 1",  "1 ",   "1.0",  "1e3", "0x10",
                         "--1",  "+-1",  "1_0", "١",   "12a",  "a12",  "NaN",
                         "9223372036854775808", "-9223372036854775809",
                         "10000000000000000000", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) int_bad(bad[i]);
}

Test(parse_int64, views_are_not_nul_terminated) {
    int64_t v;
    cr_assert_eq(rtp_parse_int64("12345", 3, &v), 0);
    cr_assert_eq(v, 123);
    cr_assert_eq(rtp_parse_int64("12,34", 2, &v), 0);
    cr_assert_eq(v, 12);
}

Test(parse_int64, random_values_round_trip) {
    char buf[32];
    for (int i = 0; i < 200000; i++) {
        int64_t x = (int64_t)next_random() >> (next_random() % 64);
        snprintf(buf, sizeof buf, "%" PRId64, x);
        cr_assert_eq(int_ok(buf), x, "%s", buf);
    }
}

/* ---- doubles -------------------------------------------------------------- */

Test(parse_double, edge_values) {
    const char *cases[] = {
        "0.1", "0.2", "0.3", "1e22", "1e23", "1e-22", "1e-23", "9007199254740992",
        "9007199254740993", "9007199254740995", "18014398509481985", "123456789012345678",
        "1234567890123456789", "12345678901234567890", "0.30000000000000004",
        "2.2250738585072011e-308", "2.2250738585072014e-308", "4.9406564584124654e-324",
        "2.4703282292062327e-324", "2.4703282292062328e-324", "1e-400", "1.7976931348623157e308",
        "1.7976931348623158e308", "1.7976931348623159e308", "1e309", "5e-324", "1e-324",
        "0.000000000000000000000000000000000000000001", "15.07", "-1.25e3", ".5", "5.",
        "-.5", "+3.25", "1E5", "1e+5", "1e-5", "0e0", "0e999999999999999999", "1e0000000000022",
        "100000000000000000000000", "1000000000000000000000000e-24",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649"
        "017977587207096330286416692887910946555547851940402630657488671505820681908902000708383"
        "676273854845817711531764475730270069855571366959622842914819860834936475292719074168444"
        "365510704342711559699508093042880177904174497791.9999999999999999999999999999999999999999"
        "999999999999999999999999999999999999999999999999999999999999999999999999999999999999999",
        "7.2057594037927933e16", "8.98846567431158e307", "3.0e-44", "1.5e15", "12e30",
        "123e37", "9007199254740991e22", "9007199254740993e22", "0.1e-300",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_like_strtod(cases[i]);
}

Test(parse_double, negative_zero_and_signs) {
    double d;
    cr_assert_eq(rtp_parse_double("-0.0", 4, &d), 0);
    cr_assert(d == 0 && signbit(d));
    cr_assert_eq(rtp_parse_double("-0", 2, &d), 0);
    cr_assert(d == 0 && signbit(d));
    cr_assert_eq(rtp_parse_double("0.0", 3, &d), 0);
    cr_assert(d == 0 && !signbit(d));
    cr_assert_eq(rtp_parse_double("-1e-400", 7, &d), 0);
    cr_assert(d == 0 && signbit(d));
}

Test(parse_double, specials) {
    const struct {
        const char *s;
        int cls; /* 1 +inf, -1 -inf, 0 nan */
    } ok[] = {{"nan", 0},  {"NaN", 0},       {"-nan", 0},      {"inf", 1},
              {"INF", 1},  {"-Infinity", -1}, {"+infinity", 1}, {"-inf", -1}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double d;
        cr_assert_eq(rtp_parse_double(ok[i].s, strlen(ok[i].s), &d), 0, "%s", ok[i].s);
        if (ok[i].cls == 0)
            cr_assert(isnan(d), "%s", ok[i].s);
        else
            cr_assert(isinf(d) && (d > 0) == (ok[i].cls > 0), "%s", ok[i].s);
    }
}

Test(parse_double, rejects) {
    const char *bad[] = {"",       "-",      "+",     ".",     "-.",      "e5",   "1e",
                         "1e+",    "1e-",    "1.2.3", " 1",    "1 ",      "1\n",  "0x1p3",
                         "0x10",   "1,5",    "nan(1)", "infin", "infinityy", "1e5x", "--1",
                         "1..2",   "1.e",    ".e1",   "1e1.5", "in",    "na",   "1d",   "1f",
                         "1e400",  "-1e400", "1.8e308"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double d = 42;
        cr_assert_eq(rtp_parse_double(bad[i], strlen(bad[i]), &d), -1, "%s accepted", bad[i]);
        cr_assert_eq(d, 42, "%s: output written on failure", bad[i]);
    }
}

Test(parse_double, views_are_not_nul_terminated) {
    double d;
    cr_assert_eq(rtp_parse_double("1.25e3", 4, &d), 0);
    cr_assert_eq(d, 1.25);
    cr_assert_eq(rtp_parse_double("2.5,7", 3, &d), 0);
    cr_assert_eq(d, 2.5);
    /* a long literal cut out of a longer buffer takes the slow path */
    char buf[400];
    memset(buf, '1', sizeof buf);
    buf[1] = '.';
    cr_assert_eq(rtp_parse_double(buf, 300, &d), 0);
    cr_assert_eq(d, 1.1111111111111112);
}

Test(parse_double, random_bit_patterns) {
    char buf[512];
    for (int i = 0; i < 300000; i++) {
        uint64_t bits = next_random();
        double x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x)) continue;
        snprintf(buf, sizeof buf, "%.17g", x);
        check_like_strtod(buf);
        snprintf(buf, sizeof buf, "%.6f", x);
        check_like_strtod(buf);
        snprintf(buf, sizeof buf, "%.15g", x);
        check_like_strtod(buf);
    }
}

/* Values around the fast path's limits: short mantissas, every exponent. */
Test(parse_double, random_short_decimals) {
    char buf[64];
    for (int i = 0; i < 300000; i++) {
        int digits = 1 + (int)(next_random() % 19);
        uint64_t limit = 1;
        for (int k = 0; k < digits; k++) limit *= 10;
        uint64_t m = next_random() % limit;
        int e = (int)(next_random() % 80) - 40;
        switch (next_random() % 3) {
        case 0: snprintf(buf, sizeof buf, "%" PRIu64 "e%d", m, e); break;
        case 1: snprintf(buf, sizeof buf, "-%" PRIu64 ".%03" PRIu64, m, m % 1000); break;
        default: snprintf(buf, sizeof buf, "0.%0*" PRIu64, digits, m); break;
        }
        check_like_strtod(buf);
    }
}

Test(parse_double, prices_like_the_data_files) {
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        uint64_t cents = next_random() % 100000000;
        int decimals = (int)(next_random() % 6);
        snprintf(buf, sizeof buf, "%" PRIu64 ".%0*" PRIu64, cents / 100, decimals ? decimals : 1,
                 next_random() % 100000);
        check_like_strtod(buf);
    }
}

/* The slow path must not follow the process locale. */
Test(parse_double, ignores_the_process_locale) {
    const char *names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "C.UTF-8"};
    const char *set = NULL;
    for (size_t i = 0; i < 4 && set == NULL; i++) set = setlocale(LC_NUMERIC, names[i]);
    double d;
    const char *s = "3.14159265358979323846264338327950288";
    cr_assert_eq(rtp_parse_double(s, strlen(s), &d), 0);
    cr_assert_eq(d, 3.141592653589793);
    cr_assert_eq(rtp_parse_double("1.5e-310", 8, &d), 0);
    cr_assert_eq(d, 1.5e-310);
    setlocale(LC_NUMERIC, "C");
}

/* ---- classification ------------------------------------------------------- */

Test(classify, types) {
    const struct {
        const char *s;
        rtp_type want;
    } cases[] = {
        {"0", RTP_INT},          {"-0", RTP_INT},         {"42", RTP_INT},
        {"-42", RTP_INT},        {"8407500", RTP_INT},    {"9223372036854775807", RTP_INT},
        {"-9223372036854775808", RTP_INT},                {"9223372036854775808", RTP_STRING},
        {"12345678901234567890123", RTP_STRING},          {"007", RTP_STRING},
        {"02134", RTP_STRING},   {"00", RTP_STRING},      {"-007", RTP_STRING},
        {"+5", RTP_STRING},      {"+4420794600000", RTP_STRING},
        {"0.5", RTP_DOUBLE},     {"-1.25e3", RTP_DOUBLE}, {".5", RTP_DOUBLE},
        {"-.5", RTP_DOUBLE},     {"5.", RTP_DOUBLE},      {"1e6", RTP_DOUBLE},
        {"0e0", RTP_DOUBLE},     {"0.0", RTP_DOUBLE},     {"-0.0", RTP_DOUBLE},
        {"00.5", RTP_STRING},    {"01.5", RTP_STRING},    {"1e400", RTP_STRING},
        {"1e-400", RTP_DOUBLE},  {"nan", RTP_STRING},     {"NaN", RTP_STRING},
        {"inf", RTP_STRING},     {"-Infinity", RTP_STRING},
        {"", RTP_STRING},        {"-", RTP_STRING},       {".", RTP_STRING},
        {"2013-02-08", RTP_STRING},                       {"N/A", RTP_STRING},
        {"null", RTP_STRING},    {"BRK.B", RTP_STRING},   {"1,5", RTP_STRING},
        {" 1", RTP_STRING},      {"1 ", RTP_STRING},      {"0x1A", RTP_STRING},
        {"1e", RTP_STRING},      {"15.07", RTP_DOUBLE},   {"732758368.8", RTP_DOUBLE},
        {"99999999999999999999.5", RTP_DOUBLE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t iv = 0;
        double dv = 0;
        rtp_type t = rtp_classify_number(cases[i].s, strlen(cases[i].s), &iv, &dv);
        cr_assert_eq(t, cases[i].want, "\"%s\": got %d want %d", cases[i].s, t, cases[i].want);
    }
}

Test(classify, values) {
    int64_t i = 0;
    double d = 0;
    cr_assert_eq(rtp_classify_number("-9223372036854775808", 20, &i, &d), RTP_INT);
    cr_assert_eq(i, INT64_MIN);
    cr_assert_eq(rtp_classify_number("-0", 2, &i, &d), RTP_INT);
    cr_assert_eq(i, 0);
    cr_assert_eq(rtp_classify_number("15.07", 5, &i, &d), RTP_DOUBLE);
    cr_assert_eq(d, 15.07);
    cr_assert_eq(rtp_classify_number("-0.0", 4, &i, &d), RTP_DOUBLE);
    cr_assert(d == 0 && signbit(d));
}

Test(classify, only_the_returned_type_is_written) {
    int64_t i = 7;
    double d = 7;
    cr_assert_eq(rtp_classify_number("1.5", 3, &i, &d), RTP_DOUBLE);
    cr_assert_eq(i, 7);
    cr_assert_eq(rtp_classify_number("15", 2, &i, &d), RTP_INT);
    cr_assert_eq(d, 1.5);
    cr_assert_eq(rtp_classify_number("x", 1, &i, &d), RTP_STRING);
    cr_assert_eq(i, 15);
    cr_assert_eq(d, 1.5);
}

Test(classify, random_values_agree_with_libc) {
    char buf[64];
    for (int k = 0; k < 200000; k++) {
        int64_t x = (int64_t)next_random() >> (next_random() % 64);
        snprintf(buf, sizeof buf, "%" PRId64, x);
        int64_t i;
        double d;
        cr_assert_eq(rtp_classify_number(buf, strlen(buf), &i, &d), RTP_INT, "%s", buf);
        cr_assert_eq(i, x);

        uint64_t bits = next_random();
        double y;
        memcpy(&y, &bits, sizeof y);
        if (!isfinite(y)) continue;
        snprintf(buf, sizeof buf, "%.17g", y);
        rtp_type t = rtp_classify_number(buf, strlen(buf), &i, &d);
        if (strpbrk(buf, ".e") == NULL) {
            cr_assert(t == RTP_INT || t == RTP_STRING, "%s", buf);
        } else {
            cr_assert_eq(t, RTP_DOUBLE, "%s", buf);
            cr_assert(same_double(d, y), "%s", buf);
        }
    }
}
