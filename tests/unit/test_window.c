/* filter_window: the aggregate parser, every function, window arithmetic,
 * then the plugin in the engine with a scripted input: watermarks and
 * lateness, sessions, idle keys, max_windows, max_keys and the flush. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "../../plugins/filter_window/filter_window.c"
#include "../../plugins/filter_window/window_agg.c"
#include "pipeline_harness.h"

#define SEC INT64_C(1000000000)

/* ---- the aggregate parser ------------------------------------------------------ */

static wa_list parse_ok(const char *text)
{
    wa_list l;
    char err[300];
    cr_assert_eq(wa_parse(text, &l, err, sizeof err), 0, "%s: %s", text, err);
    return l;
}

static void parse_bad(const char *text, const char *want)
{
    wa_list l;
    char err[300] = "";
    cr_assert_eq(wa_parse(text, &l, err, sizeof err), -1, "%s parsed", text);
    cr_assert(strstr(err, want), "error for '%s' is '%s', expected '%s'", text, err, want);
    cr_assert_null(l.v);
}

Test(parse, the_bar_spec)
{
    wa_list l = parse_ok("open=first(open), high=max(high), low=min(low), close=last(close), "
                         "volume=sum(volume), trades=count()");
    cr_assert_eq(l.n, 6);
    wa_func want[] = {WA_FIRST, WA_MAX, WA_MIN, WA_LAST, WA_SUM, WA_COUNT};
    const char *names[] = {"open", "high", "low", "close", "volume", "trades"};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(l.v[i].func, want[i]);
        cr_assert_str_eq(rtp_key_name(l.v[i].out, NULL), names[i]);
    }
    cr_assert_not(l.v[5].has_field);
    cr_assert_str_eq(rtp_key_name(l.v[4].in, NULL), "volume");
    wa_list_free(&l);
}

Test(parse, spaces_case_default_names_and_count_of_a_field)
{
    wa_list l = parse_ok("  a = AVG( Adj Close ) ,stddev(x),count(), n=count(v)");
    cr_assert_eq(l.n, 4);
    cr_assert_eq(l.v[0].func, WA_AVG);
    cr_assert_str_eq(rtp_key_name(l.v[0].in, NULL), "Adj Close");
    cr_assert_str_eq(rtp_key_name(l.v[1].out, NULL), "x_stddev");
    cr_assert_str_eq(rtp_key_name(l.v[2].out, NULL), "count");
    cr_assert(l.v[3].has_field);
    wa_list_free(&l);
}

Test(parse, errors_name_the_item)
{
    parse_bad("a=sum(x), b=median(x)", "'b=median(x)': unknown function");
    parse_bad("a=sum(x),", "'': empty item");
    parse_bad("a=sum(x), ,b=max(x)", "empty item");
    parse_bad("a=sum()", "'a=sum()': this function needs a field");
    parse_bad("a=sum x", "expected name=function(field)");
    parse_bad("a=sum(x", "expected name=function(field)");
    parse_bad("=sum(x)", "output name");
    parse_bad("a=sum(x), a=max(x)", "'a=max(x)': output name used twice");
    parse_bad("a=sum(f(x))", "field name");
    parse_bad("", "empty item");
}

/* ---- accumulators ---------------------------------------------------------------- */

static rtp_batch *ab;
static rtp_key k_x;

static void agg_setup(void)
{
    ab = rtp_filter_batch(NULL, "t");
    k_x = rtp_key_cstr("x");
}

static void agg_teardown(void)
{
    rtp_batch_free(ab);
}

static wa_spec spec_of(const char *text)
{
    wa_list l = parse_ok(text);
    wa_spec s = l.v[0];
    wa_list_free(&l);
    return s;
}

static rtp_field dbl(double d)
{
    return (rtp_field){.key = k_x, .type = RTP_DOUBLE, .v.d = d};
}

static rtp_field integer(int64_t i)
{
    return (rtp_field){.key = k_x, .type = RTP_INT, .v.i = i};
}

static rtp_field str(const char *s)
{
    return (rtp_field){.key = k_x, .type = RTP_STRING, .len = (uint32_t)strlen(s), .v.s = s};
}

/* The output field of s after the values, at times 1, 2, 3...; NULL: omitted. */
static const rtp_field *result(const char *text, const rtp_field *vals, size_t n, wa_state *st)
{
    wa_spec s = spec_of(text);
    wa_reset(st);
    for (size_t i = 0; i < n; i++) wa_add(&s, st, vals[i].type == RTP_NULL ? NULL : &vals[i], (int64_t)i + 1);
    rtp_record *r = rtp_batch_append(ab, 1);
    wa_emit(&s, st, ab, r);
    return r->nfields ? &r->fields[0] : NULL;
}

TestSuite(agg, .init = agg_setup, .fini = agg_teardown);

Test(agg, count_counts_records_count_field_counts_values)
{
    wa_state st = {0};
    rtp_field v[] = {dbl(1), {.type = RTP_NULL}, str("s"), {.key = k_x, .type = RTP_NULL}};
    cr_assert_eq(result("c=count()", v, 4, &st)->v.i, 4);
    cr_assert_eq(result("c=count(x)", v, 4, &st)->v.i, 2, "nulls and missing fields are not values");
    cr_assert_eq(result("c=count(x)", v, 0, &st)->v.i, 0);
}

Test(agg, sum_of_ints_is_an_int_mixed_is_a_double_empty_is_zero)
{
    wa_state st = {0};
    rtp_field ints[] = {integer(INT64_C(9007199254740993)), integer(1), str("x")};
    const rtp_field *f = result("s=sum(x)", ints, 3, &st);
    cr_assert_eq(f->type, RTP_INT);
    cr_assert_eq(f->v.i, INT64_C(9007199254740994), "exact beyond 2^53");
    rtp_field mixed[] = {integer(1), dbl(0.5)};
    f = result("s=sum(x)", mixed, 2, &st);
    cr_assert_eq(f->type, RTP_DOUBLE);
    cr_assert_eq(f->v.d, 1.5);
    f = result("s=sum(x)", NULL, 0, &st);
    cr_assert_eq(f->type, RTP_INT);
    cr_assert_eq(f->v.i, 0, "pandas: the sum of no values is 0");
    rtp_field big[] = {integer(INT64_MAX), integer(1)};
    f = result("s=sum(x)", big, 2, &st);
    cr_assert_eq(f->type, RTP_DOUBLE, "an int overflow falls back to the double sum");
    cr_assert_eq(f->v.d, 9223372036854775808.0);
}

Test(agg, sums_are_compensated)
{
    wa_state st = {0};
    rtp_field v[10];
    for (int i = 0; i < 10; i++) v[i] = dbl(0.1);
    cr_assert_eq(result("s=sum(x)", v, 10, &st)->v.d, 1.0, "naive summation gives 0.9999999999999999");
    rtp_field cancel[] = {dbl(1e16), dbl(1), dbl(-1e16)};
    cr_assert_eq(result("s=sum(x)", cancel, 3, &st)->v.d, 1.0);
    cr_assert_eq(result("a=avg(x)", cancel, 3, &st)->v.d, 1.0 / 3);
}

Test(agg, numeric_functions_skip_what_is_not_a_number)
{
    wa_state st = {0};
    rtp_field v[] = {str("7"), dbl(NAN), {.key = k_x, .type = RTP_BOOL, .v.b = true}, dbl(2), integer(4)};
    cr_assert_eq(result("a=avg(x)", v, 5, &st)->v.d, 3.0);
    cr_assert_null(result("a=avg(x)", v, 3, &st), "no numbers: no average");
    cr_assert_null(result("m=min(x)", v, 3, &st));
    cr_assert_null(result("m=first(x)", NULL, 0, &st));
}

Test(agg, min_and_max_keep_the_value_as_it_came)
{
    wa_state st = {0};
    rtp_field v[] = {dbl(2.5), integer(-3), integer(9), dbl(9.0), (rtp_field){.key = k_x, .type = RTP_TIME, .v.t = 5 * SEC}};
    const rtp_field *f = result("m=min(x)", v, 5, &st);
    cr_assert_eq(f->type, RTP_INT);
    cr_assert_eq(f->v.i, -3);
    f = result("m=max(x)", v, 5, &st);
    cr_assert_eq(f->type, RTP_INT, "the first of equal maxima");
    cr_assert_eq(f->v.i, 9);
    f = result("m=min(x)", v + 4, 1, &st);
    cr_assert_eq(f->type, RTP_TIME);
}

Test(agg, first_and_last_take_any_type_by_event_time)
{
    wa_state st = {0};
    wa_spec first = spec_of("f=first(x)"), last = spec_of("l=last(x)");
    wa_state sf = {0}, sl = {0};
    char text[8];
    /* arrival order: t=5 "b", t=2 "a", t=9 "c", t=9 "d"; the buffer is reused */
    const char *vals[] = {"b", "a", "c", "d"};
    int64_t times[] = {5, 2, 9, 9};
    for (int i = 0; i < 4; i++) {
        strcpy(text, vals[i]);
        rtp_field f = str(text);
        wa_add(&first, &sf, &f, times[i]);
        wa_add(&last, &sl, &f, times[i]);
        strcpy(text, "zz");
    }
    rtp_record *r = rtp_batch_append(ab, 2);
    wa_emit(&first, &sf, ab, r);
    wa_emit(&last, &sl, ab, r);
    cr_assert_eq(r->fields[0].len, 1);
    cr_assert_eq(r->fields[0].v.s[0], 'a', "first is the earliest event");
    cr_assert_eq(r->fields[1].v.s[0], 'd', "last is the latest, the last to arrive on a tie");
    wa_free(&sf);
    wa_free(&sl);
    rtp_field nulls[] = {{.type = RTP_NULL}, dbl(3), {.key = k_x, .type = RTP_NULL}};
    cr_assert_eq(result("l=last(x)", nulls, 3, &st)->v.d, 3, "nulls are skipped like pandas");
    wa_free(&st);
}

Test(agg, stddev_is_the_sample_one_and_needs_two_values)
{
    wa_state st = {0};
    rtp_field v[] = {dbl(2), dbl(4), dbl(4), dbl(4), dbl(5), dbl(5), dbl(7), dbl(9)};
    cr_assert_float_eq(result("s=stddev(x)", v, 8, &st)->v.d, sqrt(32.0 / 7), 1e-15);
    cr_assert_null(result("s=stddev(x)", v, 1, &st), "one value: omitted, as pandas gives NaN");
    rtp_field same[] = {dbl(1e9 + 0.1), dbl(1e9 + 0.1), dbl(1e9 + 0.1)};
    cr_assert_eq(result("s=stddev(x)", same, 3, &st)->v.d, 0.0);
}

Test(agg, merging_equals_adding_everything_to_one_state)
{
    const char *specs[] = {"a=count()", "a=sum(x)", "a=avg(x)", "a=min(x)", "a=max(x)",
                           "a=first(x)", "a=last(x)", "a=stddev(x)"};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        wa_spec s = spec_of(specs[k]);
        wa_state all = {0}, left = {0}, right = {0};
        for (int i = 0; i < 20; i++) {
            rtp_field f = dbl(sin(i) * 100);
            int64_t t = (i * 7) % 20; /* out of order */
            wa_add(&s, &all, &f, t);
            wa_add(&s, i % 3 ? &left : &right, &f, t);
        }
        wa_merge(&s, &right, &left);
        rtp_record *ra = rtp_batch_append(ab, 1), *rb = rtp_batch_append(ab, 1);
        wa_emit(&s, &all, ab, ra);
        wa_emit(&s, &right, ab, rb);
        cr_assert(ra->nfields == 1 && rb->nfields == 1, "%s", specs[k]);
        double a, b;
        rtp_field_number(&ra->fields[0], &a);
        rtp_field_number(&rb->fields[0], &b);
        cr_assert_float_eq(a, b, 1e-12 * fabs(a) + 1e-300, "%s: %.17g vs %.17g", specs[k], a, b);
        wa_free(&all);
        wa_free(&left);
        wa_free(&right);
    }
}

/* ---- window arithmetic -------------------------------------------------------------- */

Test(assign, floor_division_rounds_down_for_negative_times)
{
    cr_assert_eq(wa_floor_div(7, 5), 1);
    cr_assert_eq(wa_floor_div(-7, 5), -2);
    cr_assert_eq(wa_floor_div(-5, 5), -1);
    cr_assert_eq(wa_floor_div(0, 5), 0);
}

Test(assign, tumbling_windows_are_epoch_aligned_and_half_open)
{
    int64_t five = 300 * SEC, s;
    cr_assert_eq(wa_assign(300 * SEC, five, five, &s), 1);
    cr_assert_eq(s, 300 * SEC, "exactly :05:00 belongs to [:05, :10)");
    cr_assert_eq(wa_assign(300 * SEC - 1, five, five, &s), 1);
    cr_assert_eq(s, 0);
    cr_assert_eq(wa_assign(-1, five, five, &s), 1);
    cr_assert_eq(s, -five, "before the epoch: [-5m, 0)");
    cr_assert_eq(wa_assign(-five, five, five, &s), 1);
    cr_assert_eq(s, -five);
    cr_assert_eq(wa_assign(1675209600 * SEC + 59 * SEC, five, five, &s), 1);
    cr_assert_eq(s, 1675209600 * SEC);
}

Test(assign, hopping_windows_containing_a_time)
{
    int64_t s;
    /* size 10, slide 5: t = 12 is in [5, 15) and [10, 20) */
    cr_assert_eq(wa_assign(12, 10, 5, &s), 2);
    cr_assert_eq(s, 10);
    cr_assert_eq(wa_assign(10, 10, 5, &s), 2, "[5, 15) and [10, 20)");
    /* size 10, slide 3: 12 is in [3,13), [6,16), [9,19), [12,22) */
    cr_assert_eq(wa_assign(12, 10, 3, &s), 4);
    cr_assert_eq(s, 12);
    cr_assert_eq(wa_assign(13, 10, 3, &s), 3, "[6,16), [9,19), [12,22)");
    cr_assert_eq(wa_assign(-1, 10, 5, &s), 2);
    cr_assert_eq(s, -5);
}

Test(assign, bounds_beyond_int64_are_refused)
{
    int64_t s;
    cr_assert_eq(wa_assign(INT64_MAX - 5, 100, 100, &s), 0);
    cr_assert_eq(wa_assign(INT64_MIN + 5, 100, 100, &s), 0);
    cr_assert_eq(wa_assign(INT64_MIN + 20, 100, 50, &s), 0, "the oldest window would start before INT64_MIN");
    cr_assert_eq(wa_assign(INT64_MIN + 250, 100, 50, &s), 2);
}

/* ---- the plugin in the engine ------------------------------------------------------------ */

/* A scripted input: each event is a record; wait_ms > 0 ends the batch
 * before it and waits that long (processing time) before going on. */
typedef struct ev {
    const char *k; /* NULL: no key field */
    int64_t ms;    /* event time; 0: unknown */
    double v;
    int wait_ms;
} ev;

static const ev *script;
static size_t script_n;
static rtp_key k_k, k_v;

typedef struct script_ctx {
    rtp_instance *ins;
    uv_timer_t timer;
    size_t next;
} script_ctx;

static void script_tick(uv_timer_t *t)
{
    script_ctx *s = t->data;
    rtp_batch *b = rtp_input_batch(s->ins);
    do {
        const ev *e = &script[s->next++];
        rtp_record *r = rtp_batch_append(b, 2);
        r->time = e->ms * 1000000;
        if (e->k) rtp_record_set_str(b, r, k_k, e->k, strlen(e->k));
        rtp_record_set_double(b, r, k_v, e->v);
    } while (s->next < script_n && script[s->next].wait_ms == 0);
    rtp_input_emit(s->ins, b, s->next);
    if (s->next < script_n)
        uv_timer_start(&s->timer, script_tick, (uint64_t)script[s->next].wait_ms, 0);
    else
        rtp_input_finished(s->ins, true);
}

static int script_init(rtp_instance *ins, void *ctx)
{
    ((script_ctx *)ctx)->ins = ins;
    k_k = rtp_key_cstr("k");
    k_v = rtp_key_cstr("v");
    return 0;
}

static int script_start(rtp_instance *ins, void *ctx)
{
    script_ctx *s = ctx;
    uv_timer_init(rtp_instance_loop(ins), &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, script_tick, 0, 0);
    return 0;
}

static void script_stop(rtp_instance *ins, void *ctx)
{
    uv_close((uv_handle_t *)&((script_ctx *)ctx)->timer, NULL);
}

static const rtp_plugin script_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                         .kind = RTP_INPUT, .name = "script", .description = "scripted input",
                                         .ctx_size = sizeof(script_ctx), .init = script_init,
                                         .start = script_start, .stop = script_stop};

/* An output that renders each record as "tag name=value ...", times in
 * seconds, so a test compares lines. */
static char seen[64][160];
static size_t n_seen;

static void render(char *line, size_t cap, const char *tag, const rtp_record *r)
{
    size_t n = (size_t)snprintf(line, cap, "%s", tag);
    for (uint32_t i = 0; i < r->nfields && n < cap; i++) {
        const rtp_field *f = &r->fields[i];
        const char *name = rtp_key_name(f->key, NULL);
        if (f->type == RTP_STRING)
            n += (size_t)snprintf(line + n, cap - n, " %s=%.*s", name, (int)f->len, f->v.s);
        else if (f->type == RTP_TIME)
            n += (size_t)snprintf(line + n, cap - n, " %s=%lld", name, (long long)(f->v.t / SEC));
        else if (f->type == RTP_INT)
            n += (size_t)snprintf(line + n, cap - n, " %s=%lld", name, (long long)f->v.i);
        else
            n += (size_t)snprintf(line + n, cap - n, " %s=%g", name, f->v.d);
    }
}

static void lines_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    for (size_t i = 0; i < rtp_batch_count(b) && n_seen < 64; i++)
        render(seen[n_seen++], sizeof seen[0], rtp_batch_tag(b), rtp_batch_record(b, i));
    rtp_output_done(ins, b, RTP_OK);
}

static const rtp_plugin lines_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                        .kind = RTP_OUTPUT, .name = "lines", .description = "test output",
                                        .write = lines_write};

static void eng_setup(void)
{
    static bool registered;
    if (!registered) {
        rtp_loader_add_static(&script_plugin);
        rtp_loader_add_static(&lines_plugin);
        rtp_loader_add_static(&rtproc_plugin);
        registered = true;
    }
    n_seen = 0;
    harness_init();
}

static int build(const char *window_conf)
{
    char text[1024];
    snprintf(text, sizeof text, "[input.script]\ntag = in\n[filter.win]\nplugin = window\n%s\n"
                                "[output.lines]\nmatch = *\n", window_conf);
    return harness_build(text);
}

#define RUN(events, conf)                                                                          \
    do {                                                                                           \
        script = (events);                                                                         \
        script_n = sizeof(events) / sizeof *(events);                                              \
        cr_assert_eq(build(conf), 0, "pipeline should build");                                     \
        cr_assert_eq(rtp_engine_run(&eng), 0);                                                     \
    } while (0)

static int64_t metric(const char *name)
{
    win_ctx *c = eng.filters[0]->ctx;
    rtp_metric *m = strcmp(name, "late") == 0        ? c->m_late
                    : strcmp(name, "evicted") == 0   ? c->m_evicted
                    : strcmp(name, "emitted") == 0   ? c->m_emitted
                    : strcmp(name, "no_time") == 0   ? c->m_no_time
                    : strcmp(name, "no_key") == 0    ? c->m_no_key
                    : strcmp(name, "keys") == 0      ? c->m_keys_evicted
                                                     : c->g_open;
    return rtp_metric_value(m);
}

static void expect(const char *const *want, size_t n)
{
    for (size_t i = 0; i < n_seen && i < n; i++) cr_expect_str_eq(seen[i], want[i], "line %zu", i);
    cr_assert_eq(n_seen, n, "%zu lines, expected %zu", n_seen, n);
}
#define EXPECT(...)                                                                                \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__};                                                 \
        expect(want_, sizeof want_ / sizeof *want_);                                               \
    } while (0)

TestSuite(plugin, .init = eng_setup, .fini = harness_fini);

#define AGG "aggregate = n=count(), s=sum(v)\n"

Test(plugin, the_watermark_closes_windows_and_late_records_go_on_unchanged)
{
    static const ev evs[] = {{"a", 60000, 1, 0},  {"a", 119999, 2, 0}, {"a", 120000, 4, 0},
                             {"a", 100000, 8, 0}, {"a", 180000, 16, 0}};
    RUN(evs, "key = k\nsize = 1m\n" AGG);
    /* windows closed by a batch come before its late records, each in a batch derived from it */
    EXPECT("win k=a window_start=60 window_end=120 n=2 s=3", "win k=a window_start=120 window_end=180 n=1 s=4",
           "late k=a v=8", "win k=a window_start=180 window_end=240 n=1 s=16");
    cr_assert_eq(metric("late"), 1);
    cr_assert_eq(metric("emitted"), 3);
}

Test(plugin, allowed_lateness_keeps_windows_open_for_stragglers)
{
    static const ev evs[] = {{"a", 60000, 1, 0}, {"a", 130000, 2, 0}, {"a", 100000, 4, 0}, {"a", 200000, 8, 0},
                             {"a", 110000, 16, 0}};
    RUN(evs, "key = k\nsize = 1m\nallowed_lateness = 30s\nlate_tag = stragglers\n" AGG);
    EXPECT("win k=a window_start=60 window_end=120 n=2 s=5", "stragglers k=a v=16",
           "win k=a window_start=120 window_end=180 n=1 s=2", "win k=a window_start=180 window_end=240 n=1 s=8");
}

Test(plugin, an_empty_late_tag_only_counts)
{
    static const ev evs[] = {{"a", 60000, 1, 0}, {"a", 130000, 2, 0}, {"a", 70000, 4, 0}};
    RUN(evs, "key = k\nsize = 1m\nlate_tag =\n" AGG);
    EXPECT("win k=a window_start=60 window_end=120 n=1 s=1", "win k=a window_start=120 window_end=180 n=1 s=2");
    cr_assert_eq(metric("late"), 1);
}

Test(plugin, per_key_watermarks_let_each_key_lag)
{
    static const ev evs[] = {{"a", 600000, 1, 0}, {"b", 60000, 2, 0}, {"a", 700000, 4, 0}, {"b", 61000, 8, 0}};
    RUN(evs, "key = k\nsize = 1m\n" AGG);
    EXPECT("win k=a window_start=600 window_end=660 n=1 s=1", "win k=b window_start=60 window_end=120 n=2 s=10",
           "win k=a window_start=660 window_end=720 n=1 s=4");
    cr_assert_eq(metric("late"), 0);
}

Test(plugin, a_global_watermark_makes_a_lagging_key_late)
{
    static const ev evs[] = {{"a", 600000, 1, 0}, {"b", 60000, 2, 0}, {"b", 650000, 8, 0}, {"a", 700000, 4, 0}};
    RUN(evs, "key = k\nsize = 1m\nwatermark = global\n" AGG);
    EXPECT("late k=b v=2", "win k=a window_start=600 window_end=660 n=1 s=1",
           "win k=b window_start=600 window_end=660 n=1 s=8", "win k=a window_start=660 window_end=720 n=1 s=4");
}

Test(plugin, hopping_windows_skip_only_the_closed_ones)
{
    /* size 10s slide 5s; 16s closes [0,10) and [5,15); 12s still fits [10,20) */
    static const ev evs[] = {{"a", 1000, 1, 0}, {"a", 6000, 2, 0}, {"a", 16000, 4, 0}, {"a", 12000, 8, 0},
                             {"a", 3000, 16, 0}};
    RUN(evs, "key = k\ntype = hopping\nsize = 10s\nslide = 5s\n" AGG);
    EXPECT("win k=a window_start=-5 window_end=5 n=1 s=1", "win k=a window_start=0 window_end=10 n=2 s=3",
           "win k=a window_start=5 window_end=15 n=1 s=2", "late k=a v=16",
           "win k=a window_start=10 window_end=20 n=2 s=12", "win k=a window_start=15 window_end=25 n=1 s=4");
    cr_assert_eq(metric("late"), 1);
}

Test(plugin, sessions_grow_close_after_the_gap_and_seal_what_they_covered)
{
    static const ev evs[] = {{"a", 1000, 1, 0},  {"a", 5000, 2, 0},  {"a", 14999, 4, 0},
                             {"a", 25000, 8, 0}, {"a", 20000, 16, 0}, {"a", 40000, 32, 0}};
    RUN(evs, "key = k\ntype = session\ngap = 10s\n" AGG);
    /* 25000 closes [1000, 24999); 20000 would have joined it: late, although
     * it is also within gap of the open session at 25000 */
    EXPECT("win k=a window_start=1 window_end=24 n=3 s=7", "win k=a window_start=25 window_end=35 n=1 s=8",
           "late k=a v=16", "win k=a window_start=40 window_end=50 n=1 s=32");
}

Test(plugin, a_record_between_two_sessions_merges_them)
{
    static const ev evs[] = {{"a", 1000, 1, 0}, {"a", 9000, 2, 0}, {"a", 5000, 4, 0}, {"a", 30000, 8, 0}};
    RUN(evs, "key = k\ntype = session\ngap = 5s\nallowed_lateness = 20s\n"
             "aggregate = n=count(), s=sum(v), f=first(v), l=last(v)\n");
    EXPECT("win k=a window_start=1 window_end=14 n=3 s=7 f=1 l=2", "win k=a window_start=30 window_end=35 n=1 s=8 f=8 l=8");
}

Test(plugin, an_idle_key_is_closed_and_forgotten)
{
    /* without the timeout both records fall in one window; with it the key
     * is closed between the batches and the second starts over */
    static const ev evs[] = {{"a", 61000, 1, 0}, {"a", 62000, 2, 300}};
    RUN(evs, "key = k\nsize = 1m\nidle_timeout = 40ms\n" AGG);
    EXPECT("win k=a window_start=60 window_end=120 n=1 s=1", "win k=a window_start=60 window_end=120 n=1 s=2");
}

Test(plugin, without_idle_timeout_windows_wait_for_the_flush)
{
    static const ev evs[] = {{"a", 61000, 1, 0}, {"a", 62000, 2, 100}};
    RUN(evs, "key = k\nsize = 1m\n" AGG);
    EXPECT("win k=a window_start=60 window_end=120 n=2 s=3");
}

Test(plugin, max_windows_emits_the_window_that_ends_first)
{
    static const ev evs[] = {{"a", 120000, 1, 0}, {"b", 60000, 2, 0}, {"c", 180000, 4, 0}, {"c", 181000, 8, 0}};
    RUN(evs, "key = k\nsize = 1m\nmax_windows = 2\n" AGG);
    EXPECT("win k=b window_start=60 window_end=120 n=1 s=2", "win k=a window_start=120 window_end=180 n=1 s=1",
           "win k=c window_start=180 window_end=240 n=2 s=12");
    cr_assert_eq(metric("evicted"), 1);
    cr_assert_eq(metric("open"), 0, "all flushed");
}

Test(plugin, max_keys_forgets_the_least_recent_key_after_emitting_it)
{
    static const ev evs[] = {{"a", 60000, 1, 0}, {"b", 60000, 2, 0}, {"a", 61000, 4, 0}};
    RUN(evs, "key = k\nsize = 1m\nmax_keys = 1\n" AGG);
    EXPECT("win k=a window_start=60 window_end=120 n=1 s=1", "win k=b window_start=60 window_end=120 n=1 s=2",
           "win k=a window_start=60 window_end=120 n=1 s=4");
    cr_assert_eq(metric("keys"), 2);
    cr_assert_eq(metric("evicted"), 2);
}

Test(plugin, the_flush_emits_open_windows_in_order_of_end)
{
    static const ev evs[] = {{"b", 300000, 1, 0}, {"a", 60000, 2, 0}, {"c", 120000, 4, 0}};
    RUN(evs, "key = k\nsize = 1m\n" AGG);
    EXPECT("win k=a window_start=60 window_end=120 n=1 s=2", "win k=c window_start=120 window_end=180 n=1 s=4",
           "win k=b window_start=300 window_end=360 n=1 s=1");
}

Test(plugin, pass_keeps_inputs_and_records_without_time_or_key_are_counted)
{
    static const ev evs[] = {{"a", 60000, 1, 0}, {"a", 0, 2, 0}, {NULL, 61000, 4, 0}};
    RUN(evs, "key = k\nsize = 1m\npass = true\ntag = bars\n" AGG);
    EXPECT("in k=a v=1", "in k=a v=2", "in v=4", "bars k=a window_start=60 window_end=120 n=1 s=1");
    cr_assert_eq(metric("no_time"), 1);
    cr_assert_eq(metric("no_key"), 1);
}

Test(plugin, one_global_key_without_key_fields)
{
    static const ev evs[] = {{"a", 60000, 1, 0}, {"b", 61000, 2, 0}, {NULL, 62000, 4, 0}};
    RUN(evs, "size = 1m\n" AGG);
    EXPECT("win window_start=60 window_end=120 n=3 s=7");
}

static void config_error(const char *conf, const char *want)
{
    cr_redirect_stderr();
    cr_assert_eq(build(conf), -1, "%s built", conf);
    fflush(stderr);
    char buf[512] = "";
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    cr_assert(strstr(buf, want), "stderr '%s' lacks '%s'", buf, want);
}

Test(plugin, type_and_duration_mistakes_are_config_errors)
{
    config_error("type = session\nsize = 1m\ngap = 5m\n" AGG, "[filter.win] size: not used by session windows");
}

Test(plugin, session_needs_gap)
{
    config_error("type = session\n" AGG, "[filter.win] gap: session windows need gap");
}

Test(plugin, tumbling_needs_size)
{
    config_error(AGG, "[filter.win] size: tumbling and hopping windows need size");
}

Test(plugin, tumbling_refuses_slide)
{
    config_error("size = 1m\nslide = 1m\n" AGG, "[filter.win] slide: only hopping windows slide");
}

Test(plugin, hopping_slide_must_not_exceed_size)
{
    config_error("type = hopping\nsize = 1m\nslide = 2m\n" AGG, "[filter.win] slide: must not exceed size");
}

Test(plugin, hopping_overlap_is_bounded)
{
    config_error("type = hopping\nsize = 1d\nslide = 1ms\n" AGG, "[filter.win] slide: size / slide is over");
}

Test(plugin, aggregate_outputs_must_not_shadow_keys)
{
    config_error("key = k\nsize = 1m\naggregate = k=count()\n", "[filter.win] aggregate: output 'k' is also a key");
}

Test(plugin, bad_aggregate_item_is_named)
{
    config_error("size = 1m\naggregate = n=count(), x=avg()\n", "[filter.win] aggregate: 'x=avg()': this function needs a field");
}

Test(plugin, limits_must_be_positive)
{
    config_error("size = 1m\nmax_windows = 0\n" AGG, "[filter.win] max_windows: must be at least 1");
}

Test(plugin, max_keys_must_be_positive)
{
    config_error("size = 1m\nmax_keys = 0\n" AGG, "[filter.win] max_keys: must be at least 1");
}
