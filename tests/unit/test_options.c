/* Option tables: parsing every type into a context, defaults, required
 * keys, unknown keys with suggestions. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stddef.h>

#include "config.h"
#include "options.h"

typedef struct ctx {
    char *s;
    int64_t i;
    double d;
    bool b;
    uint64_t size;
    int64_t dur;
    rtp_strlist list;
    int e;
} ctx;

#define O(f) offsetof(ctx, f)
static const rtp_option table[] = {
    {"s", RTP_OPT_STR, "dflt", 0, O(s), "a string", NULL},
    {"i", RTP_OPT_INT, "7", 0, O(i), "an int", NULL},
    {"d", RTP_OPT_DOUBLE, "0.5", 0, O(d), "a double", NULL},
    {"b", RTP_OPT_BOOL, "false", 0, O(b), "a bool", NULL},
    {"size", RTP_OPT_SIZE, "1k", 0, O(size), "a size", NULL},
    {"dur", RTP_OPT_DURATION, "1s", 0, O(dur), "a duration", NULL},
    {"list", RTP_OPT_LIST, NULL, 0, O(list), "a list", NULL},
    {"e", RTP_OPT_ENUM, "json", 0, O(e), "an enum", "json|raw|text"},
    RTP_OPT_END};

typedef struct prefixed {
    rtp_kvlist kafka;
    char *brokers;
} prefixed;

static const rtp_option prefix_table[] = {
    {"brokers", RTP_OPT_STR, NULL, 0, offsetof(prefixed, brokers), "bootstrap servers", NULL},
    {"rdkafka.", RTP_OPT_PREFIX, NULL, 0, offsetof(prefixed, kafka), "librdkafka properties", NULL},
    RTP_OPT_END};

Test(options, prefix_options_collect_every_key_under_the_prefix)
{
    rtp_config *cfg = rtp_config_parse("[input.k]\nbrokers = b:9092\nrdkafka.security.protocol = SSL\n"
                                       "rdkafka.fetch.wait.max.ms = 10\n", "t.conf");
    prefixed p = {0};
    const rtp_option *tables[] = {prefix_table};
    cr_assert_eq(rtp_options_apply(prefix_table, &cfg->sec[0], &p), 0);
    cr_assert_eq(rtp_options_check_unused(&cfg->sec[0], tables, 1), 0, "prefixed keys count as known");
    cr_assert_eq(p.kafka.n, 2);
    cr_assert_str_eq(p.kafka.keys[0], "security.protocol");
    cr_assert_str_eq(p.kafka.values[0], "SSL");
    cr_assert_str_eq(p.kafka.keys[1], "fetch.wait.max.ms");
    rtp_options_release(prefix_table, &p);
    cr_assert_eq(p.kafka.n, 0);
    rtp_config_free(cfg);
}

static const rtp_option required_table[] = {
    {"path", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, 0, "file to read", NULL}, RTP_OPT_END};

static int apply(const char *text, ctx *c, rtp_config **cfg)
{
    *cfg = rtp_config_parse(text, "t.conf");
    cr_assert_not_null(*cfg);
    int rc = rtp_options_apply(table, &(*cfg)->sec[0], c);
    const rtp_option *tables[] = {table};
    if (rc == 0) rc = rtp_options_check_unused(&(*cfg)->sec[0], tables, 1);
    return rc;
}

Test(options, defaults_fill_every_type)
{
    ctx c = {0};
    rtp_config *cfg;
    cr_assert_eq(apply("[input.a]\n", &c, &cfg), 0);
    cr_assert_str_eq(c.s, "dflt");
    cr_assert_eq(c.i, 7);
    cr_assert_float_eq(c.d, 0.5, 1e-12);
    cr_assert_eq(c.b, false);
    cr_assert_eq(c.size, 1024);
    cr_assert_eq(c.dur, 1000);
    cr_assert_eq(c.list.n, 0);
    cr_assert_eq(c.e, 0);
    rtp_options_release(table, &c);
    rtp_config_free(cfg);
}

Test(options, given_values_parse)
{
    ctx c = {0};
    rtp_config *cfg;
    cr_assert_eq(apply("[input.a]\ns = hello world\ni = -42\nd = 1e-3\nb = yes\nsize = 4M\n"
                       "dur = 1.5m\nlist = a, b ,,c\ne = RAW\n",
                       &c, &cfg),
                 0);
    cr_assert_str_eq(c.s, "hello world");
    cr_assert_eq(c.i, -42);
    cr_assert_float_eq(c.d, 1e-3, 1e-15);
    cr_assert_eq(c.b, true);
    cr_assert_eq(c.size, 4u << 20);
    cr_assert_eq(c.dur, 90000);
    cr_assert_eq(c.list.n, 3);
    cr_assert_str_eq(c.list.v[0], "a");
    cr_assert_str_eq(c.list.v[1], "b");
    cr_assert_str_eq(c.list.v[2], "c");
    cr_assert_eq(c.e, 1);
    rtp_options_release(table, &c);
    rtp_config_free(cfg);
}

Test(options, sizes_and_durations)
{
    uint64_t sz;
    int64_t ms;
    const char *err;
    cr_assert_eq(rtp_parse_size("512", &sz, &err), 0);
    cr_assert_eq(sz, 512);
    cr_assert_eq(rtp_parse_size("64k", &sz, &err), 0);
    cr_assert_eq(sz, 65536);
    cr_assert_eq(rtp_parse_size("1G", &sz, &err), 0);
    cr_assert_eq(sz, 1u << 30);
    cr_assert_eq(rtp_parse_size("1.5MB", &sz, &err), 0);
    cr_assert_eq(sz, 1572864);
    cr_assert_eq(rtp_parse_size("-1k", &sz, &err), -1);
    cr_assert_eq(rtp_parse_size("4 parsecs", &sz, &err), -1);
    cr_assert_eq(rtp_parse_size("", &sz, &err), -1);
    cr_assert_eq(rtp_parse_duration_ms("500ms", &ms, &err), 0);
    cr_assert_eq(ms, 500);
    cr_assert_eq(rtp_parse_duration_ms("1h", &ms, &err), 0);
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(rtp_parse_duration_ms("2d", &ms, &err), 0);
    cr_assert_eq(ms, 172800000);
    cr_assert_eq(rtp_parse_duration_ms("5", &ms, &err), -1, "a duration needs a unit");
    cr_assert_eq(rtp_parse_duration_ms("0", &ms, &err), 0, "except zero");
    cr_assert_eq(ms, 0);
    cr_assert_eq(rtp_parse_duration_ms("5 fortnights", &ms, &err), -1);
}

Test(options, wrong_type_names_section_and_key, .init = cr_redirect_stderr)
{
    ctx c = {0};
    rtp_config *cfg;
    cr_assert_eq(apply("[input.a]\ni = twelve\n", &c, &cfg), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: [input.a] i: invalid value 'twelve': expected an integer\n");
    rtp_options_release(table, &c);
    rtp_config_free(cfg);
}

Test(options, bad_duration_says_what_is_expected, .init = cr_redirect_stderr)
{
    ctx c = {0};
    rtp_config *cfg;
    cr_assert_eq(apply("[input.a]\ndur = 10\n", &c, &cfg), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: [input.a] dur: invalid value '10': expected a duration with a unit such "
                            "as 500ms, 5s, 1.5m, 1h or 2d\n");
    rtp_options_release(table, &c);
    rtp_config_free(cfg);
}

Test(options, unknown_key_suggests_the_closest, .init = cr_redirect_stderr)
{
    ctx c = {0};
    rtp_config *cfg;
    cr_assert_eq(apply("[input.a]\nszie = 4k\n", &c, &cfg), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: [input.a] szie: unknown option; did you mean 'size'?\n");
    rtp_options_release(table, &c);
    rtp_config_free(cfg);
}

Test(options, missing_required_key, .init = cr_redirect_stderr)
{
    rtp_config *cfg = rtp_config_parse("[input.csv]\n", "t.conf");
    char *path = NULL;
    cr_assert_eq(rtp_options_apply(required_table, &cfg->sec[0], &path), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: [input.csv] path: required option is missing (file to read)\n");
    rtp_config_free(cfg);
}
