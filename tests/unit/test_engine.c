/* The engine end to end, with plugins defined here: routing, fan-out,
 * filters that drop and derive, acknowledgement order, retries, the error
 * route and backpressure. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "metrics.h"
#include "pipeline_harness.h"

/* ---- a generator input ------------------------------------------------------ */

typedef struct gen_ctx {
    int64_t count, batch;
    rtp_instance *ins;
    uv_timer_t timer;
    int64_t next;
    uint64_t acks[4096];
    size_t n_acks;
    int pauses, resumes;
    size_t max_inflight_seen;
} gen_ctx;

static gen_ctx *the_gen;
static rtp_key k_v;

static const rtp_option gen_opts[] = {
    {"count", RTP_OPT_INT, "100", 0, offsetof(gen_ctx, count), "records", NULL},
    {"batch", RTP_OPT_INT, "10", 0, offsetof(gen_ctx, batch), "records per batch", NULL},
    RTP_OPT_END};

static void gen_tick(uv_timer_t *t)
{
    gen_ctx *g = t->data;
    while (g->next < g->count && !rtp_input_paused(g->ins)) {
        rtp_batch *b = rtp_input_batch(g->ins);
        int64_t end = g->next + g->batch < g->count ? g->next + g->batch : g->count;
        for (; g->next < end; g->next++) {
            rtp_record *r = rtp_batch_append(b, 1);
            rtp_record_set_int(b, r, k_v, g->next);
        }
        rtp_input_emit(g->ins, b, (uint64_t)end);
        size_t inflight = g->ins->inflight_mem;
        if (inflight > g->max_inflight_seen) g->max_inflight_seen = inflight;
    }
    if (g->next >= g->count) rtp_input_finished(g->ins, true);
}

static int gen_init(rtp_instance *ins, void *ctx)
{
    gen_ctx *g = ctx;
    g->ins = ins;
    the_gen = g;
    k_v = rtp_key_cstr("v");
    return 0;
}

static int gen_start(rtp_instance *ins, void *ctx)
{
    gen_ctx *g = ctx;
    uv_timer_init(rtp_instance_loop(ins), &g->timer);
    g->timer.data = g;
    uv_timer_start(&g->timer, gen_tick, 0, 0);
    return 0;
}

static void gen_resume(rtp_instance *ins, void *ctx)
{
    gen_ctx *g = ctx;
    g->resumes++;
    uv_timer_start(&g->timer, gen_tick, 0, 0);
}

static void gen_pause(rtp_instance *ins, void *ctx)
{
    ((gen_ctx *)ctx)->pauses++;
}

static void gen_ack(rtp_instance *ins, void *ctx, uint64_t cookie)
{
    gen_ctx *g = ctx;
    if (g->n_acks < 4096) g->acks[g->n_acks++] = cookie;
}

static void gen_stop(rtp_instance *ins, void *ctx)
{
    uv_close((uv_handle_t *)&((gen_ctx *)ctx)->timer, NULL);
}

static const rtp_plugin gen_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                      .kind = RTP_INPUT, .name = "gen", .description = "test generator",
                                      .options = gen_opts, .ctx_size = sizeof(gen_ctx), .init = gen_init,
                                      .start = gen_start, .stop = gen_stop, .pause = gen_pause,
                                      .resume = gen_resume, .ack = gen_ack};

/* ---- a filter: drops multiples of 7, derives an alert for multiples of 10 -- */

static void tagger_process(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    rtp_batch *alerts = NULL;
    for (size_t i = 0; i < rtp_batch_count(b); i++) {
        rtp_record *r = rtp_batch_record(b, i);
        int64_t v = rtp_record_get(r, k_v)->v.i;
        if (v % 10 == 0) {
            if (!alerts) alerts = rtp_filter_derive(ins, b, "alerts");
            rtp_record *a = rtp_batch_append(alerts, 1);
            rtp_record_set_int(alerts, a, k_v, v);
        }
        if (v % 7 == 0) r->flags |= RTP_RECORD_DROPPED;
    }
}

static const rtp_plugin tagger_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                         .kind = RTP_FILTER, .name = "tagger", .description = "test filter",
                                         .process = tagger_process};

/* ---- a filter that swallows records and emits their sum when flushed ------ */

typedef struct summer_ctx {
    int64_t sum;
} summer_ctx;

static void summer_process(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    summer_ctx *c = ctx;
    for (size_t i = 0; i < rtp_batch_count(b); i++) {
        rtp_record *r = rtp_batch_record(b, i);
        c->sum += rtp_record_get(r, k_v)->v.i;
        r->flags |= RTP_RECORD_DROPPED;
    }
}

static void summer_flush(rtp_instance *ins, void *ctx)
{
    summer_ctx *c = ctx;
    rtp_batch *b = rtp_filter_batch(ins, "sum");
    rtp_record *r = rtp_batch_append(b, 1);
    rtp_record_set_int(b, r, k_v, c->sum);
    rtp_filter_emit(ins, b);
}

static const rtp_plugin summer_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                         .kind = RTP_FILTER, .name = "summer", .description = "test filter",
                                         .ctx_size = sizeof(summer_ctx), .process = summer_process,
                                         .flush = summer_flush};

/* ---- a collecting output with failure modes ----------------------------- */

enum { MODE_OK, MODE_RETRY_TWICE, MODE_REJECT_ODD, MODE_HOLD, MODE_FAIL_FIRST_LATER };

typedef struct collect_ctx {
    int mode;
    rtp_instance *ins;
    int64_t seen[8192];
    size_t n;
    int failures;
    rtp_batch *held[4096];
    size_t n_held;
    uv_timer_t later; /* fail_first_later: completes the held batches */
    bool later_open;
} collect_ctx;

static collect_ctx *collectors[4];
static size_t n_collectors;

static const rtp_option collect_opts[] = {
    {"mode", RTP_OPT_ENUM, "ok", 0, offsetof(collect_ctx, mode), "behaviour",
     "ok|retry_twice|reject_odd|hold|fail_first_later"},
    RTP_OPT_END};

static int collect_init(rtp_instance *ins, void *ctx)
{
    collect_ctx *c = ctx;
    c->ins = ins;
    collectors[n_collectors++] = c;
    return 0;
}

/* fail_first_later: batches complete together a moment after their write,
 * as with max_inflight > 1 on a network sink; the one holding record 0
 * always fails, the others succeed. */
static void complete_later(uv_timer_t *t)
{
    collect_ctx *c = t->data;
    size_t n = c->n_held;
    c->n_held = 0;
    for (size_t i = 0; i < n; i++) {
        rtp_batch *b = c->held[i];
        if (rtp_record_get(rtp_batch_record(b, 0), k_v)->v.i == 0) {
            c->failures++;
            rtp_output_done(c->ins, b, RTP_RETRY);
            continue;
        }
        for (size_t k = 0; k < rtp_batch_count(b); k++) c->seen[c->n++] = rtp_record_get(rtp_batch_record(b, k), k_v)->v.i;
        rtp_output_done(c->ins, b, RTP_OK);
    }
}

static void collect_stop(rtp_instance *ins, void *ctx)
{
    collect_ctx *c = ctx;
    if (c->later_open) uv_close((uv_handle_t *)&c->later, NULL);
}

static void collect_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    collect_ctx *c = ctx;
    if (c->mode == MODE_FAIL_FIRST_LATER) {
        if (!c->later_open) {
            uv_timer_init(rtp_instance_loop(ins), &c->later);
            c->later.data = c;
            c->later_open = true;
        }
        c->held[c->n_held++] = b;
        uv_timer_start(&c->later, complete_later, 1, 0);
        return;
    }
    if (c->mode == MODE_RETRY_TWICE && c->failures < 2) {
        c->failures++;
        rtp_output_done(ins, b, RTP_RETRY);
        return;
    }
    if (c->mode == MODE_HOLD) {
        c->held[c->n_held++] = b;
        return;
    }
    for (size_t i = 0; i < rtp_batch_count(b); i++) {
        int64_t v = rtp_record_get(rtp_batch_record(b, i), k_v)->v.i;
        if (c->mode == MODE_REJECT_ODD && v % 2) {
            rtp_output_reject(ins, b, i, "odd");
            continue;
        }
        if (c->n < 8192) c->seen[c->n++] = v;
    }
    rtp_output_done(ins, b, RTP_OK);
}

static const rtp_plugin collect_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                          .kind = RTP_OUTPUT, .name = "collect", .description = "test output",
                                          .options = collect_opts, .ctx_size = sizeof(collect_ctx),
                                          .init = collect_init, .write = collect_write, .stop = collect_stop};

/* ---- harness ------------------------------------------------------------------ */

static void setup(void)
{
    static bool registered;
    if (!registered) {
        rtp_loader_add_static(&gen_plugin);
        rtp_loader_add_static(&tagger_plugin);
        rtp_loader_add_static(&collect_plugin);
        rtp_loader_add_static(&summer_plugin);
        registered = true;
    }
    n_collectors = 0;
    the_gen = NULL;
    harness_init();
}

static int build(const char *text)
{
    return harness_build(text);
}

static void run(const char *text)
{
    cr_assert_eq(build(text), 0, "pipeline should build");
    cr_assert_eq(rtp_engine_run(&eng), 0);
}

static void assert_all_once(const collect_ctx *c, int64_t count, int skip_mod)
{
    char *seen = calloc((size_t)count, 1);
    size_t expected = 0;
    for (int64_t v = 0; v < count; v++) expected += !(skip_mod && v % skip_mod == 0);
    for (size_t i = 0; i < c->n; i++) {
        cr_assert(c->seen[i] >= 0 && c->seen[i] < count);
        cr_assert_eq(seen[c->seen[i]], 0, "value %lld delivered twice", (long long)c->seen[i]);
        seen[c->seen[i]] = 1;
    }
    cr_assert_eq(c->n, expected, "delivered %zu, expected %zu", c->n, expected);
    free(seen);
}

static void assert_acks_in_order(int64_t count, int64_t batch)
{
    cr_assert_eq(the_gen->n_acks, (size_t)((count + batch - 1) / batch));
    for (size_t i = 0; i < the_gen->n_acks; i++) {
        uint64_t want = (uint64_t)((int64_t)(i + 1) * batch < count ? (int64_t)(i + 1) * batch : count);
        cr_assert_eq(the_gen->acks[i], want, "ack %zu is %llu, expected %llu", i,
                     (unsigned long long)the_gen->acks[i], (unsigned long long)want);
    }
}

TestSuite(engine, .init = setup, .fini = harness_fini);

Test(engine, every_record_once_and_acks_in_order)
{
    run("[input.gen]\ncount = 1000\nbatch = 7\n[output.collect]\n");
    assert_all_once(collectors[0], 1000, 0);
    assert_acks_in_order(1000, 7);
}

Test(engine, fan_out_gives_each_output_everything)
{
    run("[input.gen]\ncount = 500\n[output.a]\nplugin = collect\n[output.b]\nplugin = collect\n");
    assert_all_once(collectors[0], 500, 0);
    assert_all_once(collectors[1], 500, 0);
    assert_acks_in_order(500, 10);
}

Test(engine, match_selects_outputs)
{
    run("[input.gen]\ntag = stocks.aapl\ncount = 50\n"
        "[output.yes]\nplugin = collect\nmatch = stocks.*\n"
        "[output.no]\nplugin = collect\nmatch = fx.*\n");
    assert_all_once(collectors[0], 50, 0);
    cr_assert_eq(collectors[1]->n, 0);
}

Test(engine, filter_drops_and_derives_under_new_tag)
{
    run("[input.gen]\ntag = t\ncount = 100\n[filter.tagger]\nmatch = t\n"
        "[output.main]\nplugin = collect\nmatch = t\n"
        "[output.alerts]\nplugin = collect\nmatch = alerts\n");
    assert_all_once(collectors[0], 100, 7);
    cr_assert_eq(collectors[1]->n, 10);
    for (size_t i = 0; i < collectors[1]->n; i++) cr_assert_eq(collectors[1]->seen[i] % 10, 0);
    assert_acks_in_order(100, 10);
}

Test(engine, a_filter_flushes_what_it_holds_once_the_input_is_done)
{
    run("[input.gen]\ncount = 1000\nbatch = 33\n[filter.summer]\n[output.collect]\nmatch = sum\n");
    cr_assert_eq(collectors[0]->n, 1);
    cr_assert_eq(collectors[0]->seen[0], 999 * 1000 / 2, "the flush saw every record");
    assert_acks_in_order(1000, 33);
}

static const rtp_plugin collect4_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                           .kind = RTP_OUTPUT, .name = "collect4", .description = "test output",
                                           .options = collect_opts, .ctx_size = sizeof(collect_ctx),
                                           .init = collect_init, .write = collect_write,
                                           .default_max_inflight = 4};

Test(engine, a_plugin_sets_its_own_default_max_inflight)
{
    rtp_loader_add_static(&collect4_plugin);
    cr_assert_eq(build("[input.gen]\n[output.a]\nplugin = collect4\n[output.b]\nplugin = collect4\n"
                       "max_inflight = 2\n[output.c]\nplugin = collect\n"), 0);
    cr_assert_eq(eng.outputs[0]->conf.max_inflight, 4);
    cr_assert_eq(eng.outputs[1]->conf.max_inflight, 2, "the section wins");
    cr_assert_eq(eng.outputs[2]->conf.max_inflight, 1);
}

Test(engine, retry_delivers_once_after_failures)
{
    run("[input.gen]\ncount = 30\n[output.collect]\nmode = retry_twice\nretry_max_wait = 10ms\n");
    assert_all_once(collectors[0], 30, 0);
    cr_assert_eq(collectors[0]->failures, 2);
    cr_assert_eq(rtp_metric_value(eng.outputs[0]->m.retries), 2);
}

Test(engine, exhausted_retries_send_the_batch_to_the_error_route)
{
    run("[input.gen]\ntag = t\ncount = 10\n"
        "[output.sink]\nplugin = collect\nmode = retry_twice\nretry_limit = 1\nretry_max_wait = 10ms\nmatch = t\n"
        "[output.dlq]\nplugin = collect\nmatch = error.*\n");
    cr_assert_eq(collectors[0]->failures, 2, "one try and one retry, then the batch is given up");
    cr_assert_eq(collectors[1]->n, 10, "the whole failed batch reached the error route");
    assert_acks_in_order(10, 10);
}

Test(engine, retry_limit_counts_each_batch_while_others_succeed)
{
    run("[input.gen]\ntag = t\ncount = 100\n"
        "[output.sink]\nplugin = collect\nmode = fail_first_later\nmax_inflight = 4\nretry_limit = 2\n"
        "retry_max_wait = 10ms\nmatch = t\n"
        "[output.dlq]\nplugin = collect\nmatch = error.*\n");
    cr_assert_eq(collectors[0]->failures, 3, "one try and retry_limit retries, not one per success around it");
    cr_assert_eq(collectors[0]->n, 90);
    cr_assert_eq(collectors[1]->n, 10, "the failing batch reached the error route");
    assert_acks_in_order(100, 10);
}

Test(engine, rejected_records_reach_the_error_route)
{
    run("[input.gen]\ntag = t\ncount = 40\n"
        "[output.sink]\nplugin = collect\nmode = reject_odd\nmatch = t\n"
        "[output.dlq]\nplugin = collect\nmatch = error.*\n");
    cr_assert_eq(collectors[0]->n, 20);
    cr_assert_eq(collectors[1]->n, 20);
    for (size_t i = 0; i < collectors[1]->n; i++) cr_assert_eq(collectors[1]->seen[i] % 2, 1);
    assert_acks_in_order(40, 10);
}

static void release_held(uv_timer_t *t)
{
    collect_ctx *c = t->data;
    for (size_t i = 0; i < c->n_held; i++) {
        rtp_batch *b = c->held[i];
        for (size_t k = 0; k < rtp_batch_count(b); k++)
            c->seen[c->n++] = rtp_record_get(rtp_batch_record(b, k), k_v)->v.i;
        rtp_output_done(c->ins, b, RTP_OK);
    }
    c->n_held = 0;
    c->mode = MODE_OK;
    uv_close((uv_handle_t *)t, NULL);
}

Test(engine, a_stalled_output_pauses_the_input_and_memory_stays_bounded)
{
    cr_assert_eq(build("[input.gen]\ncount = 5000\nbatch = 50\nmem_limit = 64k\n"
                       "[output.collect]\nmode = hold\nmax_inflight = 4096\n"),
                 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = collectors[0];
    uv_timer_start(&t, release_held, 200, 0);
    cr_assert_eq(rtp_engine_run(&eng), 0);
    cr_assert_geq(the_gen->pauses, 1, "the input was never paused");
    cr_assert_geq(the_gen->resumes, 1);
    /* one batch may overshoot the limit: the check happens at emit */
    cr_assert_lt(the_gen->max_inflight_seen, 64 * 1024 + 64 * 1024, "in flight: %zu", the_gen->max_inflight_seen);
    assert_all_once(collectors[0], 5000, 0);
}

Test(engine, unknown_key_fails_before_start)
{
    cr_redirect_stderr();
    cr_assert_eq(build("[input.gen]\ncuont = 5\n[output.collect]\n"), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: [input.gen] cuont: unknown option; did you mean 'count'?\n");
}

Test(engine, bad_enum_names_section_and_key)
{
    cr_redirect_stderr();
    cr_assert_eq(build("[input.gen]\n[output.collect]\nmode = sometimes\n"), -1);
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: [output.collect] mode: invalid value 'sometimes': expected one of "
                            "ok|retry_twice|reject_odd|hold|fail_first_later\n");
}

Test(engine, missing_plugin_is_a_config_error)
{
    cr_redirect_stderr();
    cr_assert_eq(build("[input.gen]\n[output.nosuch]\n"), -1);
}

Test(engine, pipeline_without_outputs_is_refused)
{
    cr_redirect_stderr();
    cr_assert_eq(build("[input.gen]\n"), -1);
}
