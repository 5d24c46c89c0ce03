/* Timestamps: every directive, the calendar edges, the int64 limits, and
 * agreement with timegm/gmtime on random values. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtproc/timefmt.h"

#define NS 1000000000LL

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t next_random(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static rtp_timefmt *compile(const char *fmt) {
    const char *err = "unset";
    rtp_timefmt *tf = rtp_timefmt_new(fmt, &err);
    cr_assert_not_null(tf, "\"%s\": %s", fmt, err);
    cr_assert_null(err);
    return tf;
}

static int64_t parse_ok(const char *fmt, const char *s) {
    rtp_timefmt *tf = compile(fmt);
    int64_t ns = 0;
    cr_assert_eq(rtp_timefmt_parse(tf, s, strlen(s), &ns), 0, "\"%s\" with \"%s\" rejected", s,
                 fmt);
    rtp_timefmt_free(tf);
    return ns;
}

static void parse_bad(const char *fmt, const char *s) {
    rtp_timefmt *tf = compile(fmt);
    int64_t ns = 77;
    cr_assert_eq(rtp_timefmt_parse(tf, s, strlen(s), &ns), -1, "\"%s\" with \"%s\" accepted", s,
                 fmt);
    cr_assert_eq(ns, 77, "output written on failure");
    rtp_timefmt_free(tf);
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s) {
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * NS;
}

/* ---- compiling ---------------------------------------------------------- */

Test(timefmt_new, rejects_bad_patterns) {
    const char *bad[] = {"",       "%",      "%Y-%Q", "%Y%",     "no fields", "%s %Y",
                         "%s%z",   "%j %m",  "%Y %j %d", "%E",    "%s%H"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *err = NULL;
        cr_assert_null(rtp_timefmt_new(bad[i], &err), "\"%s\" accepted", bad[i]);
        cr_assert_not_null(err, "\"%s\": no reason", bad[i]);
    }
    cr_assert_null(rtp_timefmt_new("%Q", NULL), "err may be NULL");
}

Test(timefmt_new, accepts_names_and_patterns) {
    const char *good[] = {"epoch", "epoch_ms", "epoch_us", "epoch_ns", "iso8601", "%s",
                          "%s.%f", "%Y-%m-%d", "%F %T.%f%z", "%Y%j", "100%% %Y"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) rtp_timefmt_free(compile(good[i]));
    rtp_timefmt_free(NULL);
}

/* ---- directives ------------------------------------------------------------ */

Test(timefmt_parse, each_directive) {
    int64_t day = utc(2013, 2, 8, 0, 0, 0);
    cr_assert_eq(parse_ok("%Y-%m-%d", "2013-02-08"), day);
    cr_assert_eq(parse_ok("%Y-%m-%d", "2013-2-8"), day);
    cr_assert_eq(parse_ok("%F", "2013-02-08"), day);
    cr_assert_eq(parse_ok("%Y%m%d", "20130208"), day);
    cr_assert_eq(parse_ok("%d.%m.%y", "08.02.13"), day);
    cr_assert_eq(parse_ok("%y", "69"), utc(1969, 1, 1, 0, 0, 0));
    cr_assert_eq(parse_ok("%y", "68"), utc(2068, 1, 1, 0, 0, 0));
    cr_assert_eq(parse_ok("%d %b %Y", "08 Feb 2013"), day);
    cr_assert_eq(parse_ok("%d %b %Y", "08 february 2013"), day);
    cr_assert_eq(parse_ok("%d %B %Y", "08 FEBRUARY 2013"), day);
    cr_assert_eq(parse_ok("%b %e %Y", "Feb  8 2013"), day);
    cr_assert_eq(parse_ok("%b %e %Y", "Feb 8 2013"), day);
    cr_assert_eq(parse_ok("%b %e %Y", "Feb 18 2013"), day + 10 * 86400 * NS);
    cr_assert_eq(parse_ok("%Y %j", "2013 039"), day);
    cr_assert_eq(parse_ok("%Y-%j", "2024-366"), utc(2024, 12, 31, 0, 0, 0));
    cr_assert_eq(parse_ok("%F %T", "2013-02-08 13:14:15"), utc(2013, 2, 8, 13, 14, 15));
    cr_assert_eq(parse_ok("%F %H:%M:%S", "2013-02-08 1:2:3"), utc(2013, 2, 8, 1, 2, 3));
    cr_assert_eq(parse_ok("%T.%f", "00:00:01.5"), 1500000000);
    cr_assert_eq(parse_ok("%T.%f", "00:00:01.000000001"), 1000000001);
    cr_assert_eq(parse_ok("%T.%f", "00:00:01.123456789"), 1123456789);
    cr_assert_eq(parse_ok("%FT%T%z", "2013-02-08T13:14:15Z"), utc(2013, 2, 8, 13, 14, 15));
    cr_assert_eq(parse_ok("%FT%T%z", "2013-02-08T13:14:15z"), utc(2013, 2, 8, 13, 14, 15));
    cr_assert_eq(parse_ok("%FT%T%z", "2013-02-08T13:14:15+01:30"), utc(2013, 2, 8, 11, 44, 15));
    cr_assert_eq(parse_ok("%FT%T%z", "2013-02-08T13:14:15-0500"), utc(2013, 2, 8, 18, 14, 15));
    cr_assert_eq(parse_ok("%s", "1360329255"), 1360329255 * NS);
    cr_assert_eq(parse_ok("%s", "-1"), -NS);
    cr_assert_eq(parse_ok("%s.%f", "1360329255.25"), 1360329255 * NS + 250000000);
    cr_assert_eq(parse_ok("%s.%f", "-1.25"), -1250000000);
    cr_assert_eq(parse_ok("100%% %Y", "100% 2000"), utc(2000, 1, 1, 0, 0, 0));
    cr_assert_eq(parse_ok("%H:%M", "23:59"), utc(1970, 1, 1, 23, 59, 0));
    /* the ecommerce file's spreadsheet dates */
    cr_assert_eq(parse_ok("%m/%d/%Y %H:%M", "2/24/2015 22:55"), utc(2015, 2, 24, 22, 55, 0));
    cr_assert_eq(parse_ok("%m/%d/%Y %H:%M", "4/18/2015 2:47"), utc(2015, 4, 18, 2, 47, 0));
    /* an access log */
    cr_assert_eq(parse_ok("[%d/%b/%Y:%T %z]", "[10/Oct/2000:13:55:36 -0700]"),
                 utc(2000, 10, 10, 20, 55, 36));
}

Test(timefmt_parse, strict_matching) {
    parse_bad("%Y-%m-%d", "2013-02-08 ");
    parse_bad("%Y-%m-%d", " 2013-02-08");
    parse_bad("%Y-%m-%d", "2013-02-08T00:00");
    parse_bad("%Y-%m-%d", "2013/02/08");
    parse_bad("%Y-%m-%d", "13-02-08");
    parse_bad("%Y-%m-%d", "20130-02-08");
    parse_bad("%Y-%m-%d", "2013-002-08");
    parse_bad("%Y-%m-%d", "2013-02-");
    parse_bad("%Y-%m-%d", "");
    parse_bad("%Y-%m-%d", "2013-0x-08");
    parse_bad("%T.%f", "00:00:01.");
    parse_bad("%T.%f", "00:00:01.1234567891");
    parse_bad("%T%z", "00:00:01+1");
    parse_bad("%T%z", "00:00:01+01:");
    parse_bad("%T%z", "00:00:01+0160");
    parse_bad("%T%z", "00:00:01+2400");
    parse_bad("%T%z", "00:00:01UTC");
    parse_bad("%b", "Fe");
    parse_bad("%b", "Fex");
    parse_bad("%s", "");
    parse_bad("%s", "-");
    parse_bad("%s", "+5");
    parse_bad("%s", "99999999999999999999");
    parse_bad("%e", "  8");
    parse_bad("%Y %j", "2013 000");
    parse_bad("%Y %j", "2013 1000");
}

Test(timefmt_parse, out_of_range_fields) {
    parse_bad("%Y-%m-%d", "2013-13-01");
    parse_bad("%Y-%m-%d", "2013-00-01");
    parse_bad("%Y-%m-%d", "2013-01-32");
    parse_bad("%Y-%m-%d", "2013-01-00");
    parse_bad("%Y-%m-%d", "2013-04-31");
    parse_bad("%F %T", "2013-01-01 25:00:00");
    parse_bad("%F %T", "2013-01-01 24:00:00");
    parse_bad("%F %T", "2013-01-01 23:60:00");
    parse_bad("%F %T", "2013-01-01 23:59:61");
    cr_assert_eq(parse_ok("%F %T", "2016-12-31 23:59:60"), utc(2017, 1, 1, 0, 0, 0));
}

Test(timefmt_parse, leap_years) {
    cr_assert_eq(parse_ok("%F", "2000-02-29"), utc(2000, 2, 29, 0, 0, 0));
    cr_assert_eq(parse_ok("%F", "2024-02-29"), utc(2024, 2, 29, 0, 0, 0));
    parse_bad("%F", "1900-02-29");
    parse_bad("%F", "2023-02-29");
    parse_bad("%F", "2100-02-29");
    parse_bad("%Y %j", "2023 366");
    cr_assert_eq(parse_ok("%Y %j", "2000 366"), utc(2000, 12, 31, 0, 0, 0));
}

Test(timefmt_parse, negative_times_and_int64_limits) {
    cr_assert_eq(parse_ok("%F", "1969-12-31"), -86400 * NS);
    cr_assert_eq(parse_ok("%F", "1900-01-01"), -2208988800LL * NS);
    cr_assert_eq(parse_ok("iso8601", "1969-12-31T23:59:59.5Z"), -500000000);
    cr_assert_eq(parse_ok("iso8601", "1677-09-21T00:12:43.145224192Z"), INT64_MIN);
    parse_bad("iso8601", "1677-09-21T00:12:43.145224191Z");
    parse_bad("iso8601", "1677-09-21T00:12:42Z");
    parse_bad("%F", "1000-01-01");
    cr_assert_eq(parse_ok("iso8601", "2262-04-11T23:47:16.854775807Z"), INT64_MAX);
    parse_bad("iso8601", "2262-04-11T23:47:16.854775808Z");
    parse_bad("%F", "9999-12-31");
    cr_assert_eq(parse_ok("%s", "-9223372036"), -9223372036 * NS);
    parse_bad("%s", "-9223372037");
    parse_bad("%s", "9223372037");
    cr_assert_eq(parse_ok("%s.%f", "-9223372036.854775808"), INT64_MIN);
    parse_bad("%s.%f", "-9223372036.854775809");
}

/* ---- named formats ----------------------------------------------------------- */

Test(timefmt_parse, epochs) {
    cr_assert_eq(parse_ok("epoch", "1675209900"), 1675209900 * NS);
    cr_assert_eq(parse_ok("epoch", "1675209900.5"), 1675209900 * NS + 500000000);
    cr_assert_eq(parse_ok("epoch", "0.000000001"), 1);
    cr_assert_eq(parse_ok("epoch", "-1.5"), -1500000000);
    cr_assert_eq(parse_ok("epoch", "-0"), 0);
    cr_assert_eq(parse_ok("epoch", "-9223372036.854775808"), INT64_MIN);
    cr_assert_eq(parse_ok("epoch", "9223372036.854775807"), INT64_MAX);
    parse_bad("epoch", "9223372036.854775808");
    parse_bad("epoch", "1.");
    parse_bad("epoch", ".5");
    parse_bad("epoch", "1.1234567891");
    parse_bad("epoch", "1e9");
    parse_bad("epoch", "");
    parse_bad("epoch", " 1");
    parse_bad("epoch", "18446744073709551616");

    cr_assert_eq(parse_ok("epoch_ms", "1675209600000"), 1675209600000LL * 1000000);
    cr_assert_eq(parse_ok("epoch_ms", "1675209659999"), 1675209659999LL * 1000000);
    cr_assert_eq(parse_ok("epoch_ms", "1.5"), 1500000);
    cr_assert_eq(parse_ok("epoch_ms", "-1"), -1000000);
    parse_bad("epoch_ms", "1.1234567");
    parse_bad("epoch_ms", "9223372036855");
    cr_assert_eq(parse_ok("epoch_us", "1675209600000000"), 1675209600000000LL * 1000);
    cr_assert_eq(parse_ok("epoch_us", "2.001"), 2001);
    parse_bad("epoch_us", "2.0001");
    cr_assert_eq(parse_ok("epoch_ns", "9223372036854775807"), INT64_MAX);
    cr_assert_eq(parse_ok("epoch_ns", "-9223372036854775808"), INT64_MIN);
    parse_bad("epoch_ns", "9223372036854775808");
    parse_bad("epoch_ns", "1.0");
}

Test(timefmt_parse, iso8601) {
    int64_t t = utc(2023, 2, 1, 0, 5, 0);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01"), utc(2023, 2, 1, 0, 0, 0));
    cr_assert_eq(parse_ok("iso8601", "2023-02-01T00:05"), t);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01 00:05:00"), t);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01t00:05:00z"), t);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01T00:05:00Z"), t);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01T00:05:00.123Z"), t + 123000000);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01T00:05:00.123456789Z"), t + 123456789);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01T01:05:00+01:00"), t);
    cr_assert_eq(parse_ok("iso8601", "2023-02-01T01:05:00+0100"), t);
    cr_assert_eq(parse_ok("iso8601", "2023-01-31T19:35-04:30"), t);
    const char *bad[] = {"2023-02-01T",          "2023-2-01",           "2023-02-1",
                         "2023-02-01T00",        "2023-02-01T00:5",     "2023-02-01T00:05:0",
                         "2023-02-01T00:05:00.", "2023-02-01T00:05:00.1234567891Z",
                         "2023-02-01Z",          "2023-02-30",          "2023-13-01",
                         "2023-02-01T24:00",     "2023-02-01X00:00",    "2023-02-01T00:05:00 Z",
                         "2023-02-01T00:05:00+1", "20230201T000500Z",   "2023-02-01T00:05:00,5",
                         "2023-02-01T00:05Z "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) parse_bad("iso8601", bad[i]);
}

Test(timefmt_parse, views_are_not_nul_terminated) {
    rtp_timefmt *tf = compile("%Y-%m-%d");
    int64_t ns;
    cr_assert_eq(rtp_timefmt_parse(tf, "2013-02-08,15.07", 10, &ns), 0);
    cr_assert_eq(ns, utc(2013, 2, 8, 0, 0, 0));
    cr_assert_eq(rtp_timefmt_parse(tf, "2013-02-08", 9, &ns), -1);
    rtp_timefmt_free(tf);
    tf = compile("epoch_ms");
    cr_assert_eq(rtp_timefmt_parse(tf, "1675209600000,2", 13, &ns), 0);
    cr_assert_eq(ns, 1675209600000LL * 1000000);
    rtp_timefmt_free(tf);
}

/* ---- printing ------------------------------------------------------------------- */

static void expect_rfc3339(int64_t ns, const char *want) {
    char out[32];
    memset(out, 'x', sizeof out);
    size_t n = rtp_time_rfc3339(ns, out);
    cr_assert_eq(n, strlen(want));
    cr_assert_str_eq(out, want, "%" PRId64, ns);
}

Test(rfc3339, printing) {
    expect_rfc3339(0, "1970-01-01T00:00:00.000Z");
    expect_rfc3339(1675209900000000000, "2023-02-01T00:05:00.000Z");
    expect_rfc3339(1675209900123999999, "2023-02-01T00:05:00.123Z");
    expect_rfc3339(-1, "1969-12-31T23:59:59.999Z");
    expect_rfc3339(-1000000, "1969-12-31T23:59:59.999Z");
    expect_rfc3339(-1000001, "1969-12-31T23:59:59.998Z");
    expect_rfc3339(-86400 * NS, "1969-12-31T00:00:00.000Z");
    expect_rfc3339(951782400 * NS, "2000-02-29T00:00:00.000Z");
    expect_rfc3339(INT64_MIN, "1677-09-21T00:12:43.145Z");
    expect_rfc3339(INT64_MAX, "2262-04-11T23:47:16.854Z");
}

/* ---- against the C library -------------------------------------------------------- */

Test(roundtrip, random_times_against_timegm) {
    rtp_timefmt *pattern = compile("%Y-%m-%dT%H:%M:%S");
    rtp_timefmt *iso = compile("iso8601");
    rtp_timefmt *named = compile("%d %b %Y %H:%M:%S %z");
    /* int64 nanoseconds span 1677-09-22 .. 2262-04-10 with room to spare */
    const int64_t lo = -9223286400LL, span = 9223286400LL * 2;
    for (int i = 0; i < 200000; i++) {
        time_t t = (time_t)(lo + (int64_t)(next_random() % (uint64_t)span));
        struct tm tm;
        cr_assert_not_null(gmtime_r(&t, &tm));
        char buf[64];
        size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        int64_t ns;
        cr_assert_eq(rtp_timefmt_parse(pattern, buf, n, &ns), 0, "%s", buf);
        cr_assert_eq(ns, (int64_t)t * NS, "%s", buf);
        cr_assert_eq(timegm(&tm), t);

        int64_t when = (int64_t)next_random();
        if (when < INT64_MIN + NS) continue; /* its millisecond starts before INT64_MIN */
        n = rtp_time_rfc3339(when, buf);
        cr_assert_eq(rtp_timefmt_parse(iso, buf, n, &ns), 0, "%s", buf);
        int64_t floor_ms = when / 1000000 * 1000000;
        if (floor_ms > when) floor_ms -= 1000000;
        cr_assert_eq(ns, floor_ms, "%s from %" PRId64, buf, when);

        time_t secs = (time_t)(when / NS);
        cr_assert_not_null(gmtime_r(&secs, &tm));
        n = strftime(buf, sizeof buf, "%d %b %Y %H:%M:%S +0000", &tm);
        cr_assert_eq(rtp_timefmt_parse(named, buf, n, &ns), 0, "%s", buf);
        cr_assert_eq(ns, (int64_t)secs * NS, "%s", buf);
    }
    rtp_timefmt_free(pattern);
    rtp_timefmt_free(iso);
    rtp_timefmt_free(named);
}

Test(roundtrip, every_day_int64_can_hold) {
    rtp_timefmt *tf = compile("%F");
    rtp_timefmt *yday = compile("%Y-%j");
    for (time_t t = -9199958400; t < 9199958400; t += 86400) { /* 1678-06 .. 2261-07 */
        struct tm tm;
        gmtime_r(&t, &tm);
        char buf[32];
        size_t n = strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
        int64_t ns;
        cr_assert_eq(rtp_timefmt_parse(tf, buf, n, &ns), 0, "%s", buf);
        cr_assert_eq(ns, (int64_t)t * NS, "%s", buf);
        n = strftime(buf, sizeof buf, "%Y-%j", &tm);
        cr_assert_eq(rtp_timefmt_parse(yday, buf, n, &ns), 0, "%s", buf);
        cr_assert_eq(ns, (int64_t)t * NS, "%s", buf);
    }
    rtp_timefmt_free(tf);
    rtp_timefmt_free(yday);
}
