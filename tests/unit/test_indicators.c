/* filter_indicators: the arithmetic on hand-checked examples (values worked
 * out by hand in the comments), warm-up lengths, 10M values against exact
 * recomputation, and the plugin in the engine for late records, bad values
 * and eviction. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "metrics.h"
#include "pipeline_harness.h"

#include "filter_indicators/filter_indicators.c"
#include "filter_indicators/indicators.c"

/* ---- the arithmetic ------------------------------------------------------------ */

typedef struct series {
    ind_config cfg;
    ind_state *st;
    double out[IND_NSLOTS];
    uint32_t mask;
} series;

static void series_open(series *s)
{
    const char *opt = NULL, *bad = ind_config_finish(&s->cfg, &opt);
    cr_assert_null(bad, "%s: %s", opt ? opt : "-", bad ? bad : "");
    s->st = calloc(1, s->cfg.state_size);
    ind_state_init(&s->cfg, s->st);
}

static uint32_t feed_full(series *s, double price, bool has_volume, double volume, double typical, int64_t day)
{
    ind_input in = {price, volume, has_volume, typical, day};
    s->mask = ind_update(&s->cfg, s->st, &in, s->out);
    return s->mask;
}

static uint32_t feed(series *s, double price)
{
    return feed_full(s, price, false, 0, price, 0);
}

static bool has(const series *s, int slot)
{
    return s->mask >> slot & 1;
}

#define assert_near(got, want)                                                                              \
    cr_assert(fabs((got) - (want)) <= 1e-12 * fmax(1.0, fabs(want)), "%s = %.17g, expected %.17g", #got,  \
              (double)(got), (double)(want))

Test(indicators, sma_is_the_mean_of_the_last_n)
{
    series s = {.cfg = {.n_sma = 1, .sma = {3}}};
    series_open(&s);
    feed(&s, 1);
    cr_assert(!has(&s, IND_SMA));
    feed(&s, 2);
    cr_assert(!has(&s, IND_SMA), "two values: window of 3 not full");
    feed(&s, 3);
    assert_near(s.out[IND_SMA], 2.0); /* (1+2+3)/3 */
    feed(&s, 4);
    assert_near(s.out[IND_SMA], 3.0); /* (2+3+4)/3 */
    feed(&s, 8);
    assert_near(s.out[IND_SMA], 5.0); /* (3+4+8)/3 */
    free(s.st);
}

Test(indicators, ema_seeded_with_the_sma_or_the_first_value)
{
    /* n = 3, k = 2/(3+1) = 0.5 */
    series s = {.cfg = {.n_ema = 1, .ema = {3}}};
    series_open(&s);
    feed(&s, 1);
    feed(&s, 2);
    cr_assert(!has(&s, IND_EMA));
    feed(&s, 3);
    assert_near(s.out[IND_EMA], 2.0); /* seed: (1+2+3)/3 */
    feed(&s, 4);
    assert_near(s.out[IND_EMA], 3.0); /* 2 + 0.5*(4-2) */
    feed(&s, 8);
    assert_near(s.out[IND_EMA], 5.5); /* 3 + 0.5*(8-3) */
    free(s.st);

    series f = {.cfg = {.n_ema = 1, .ema = {3}, .seed_first = true}};
    series_open(&f);
    double want[] = {1, 1.5, 2.25, 3.125, 5.5625}; /* 1; 1+.5(2-1); 1.5+.5(3-1.5); 2.25+.5(4-2.25); 3.125+.5(8-3.125) */
    double in[] = {1, 2, 3, 4, 8};
    for (int i = 0; i < 5; i++) {
        feed(&f, in[i]);
        cr_assert(has(&f, IND_EMA), "pandas' adjust=False EMA exists from the first value");
        assert_near(f.out[IND_EMA], want[i]);
    }
    free(f.st);
}

Test(indicators, rsi_is_wilders)
{
    /* n = 2 on 1, 2, 1.5, 2.5: changes +1, -0.5, +1.
     * record 3: gain (1+0)/2 = 0.5, loss (0+0.5)/2 = 0.25, rsi = 100*0.5/0.75 = 66.666...
     * record 4: gain (0.5*1+1)/2 = 0.75, loss (0.25*1+0)/2 = 0.125, rsi = 100*0.75/0.875 = 85.714... */
    series s = {.cfg = {.rsi = 2}};
    series_open(&s);
    feed(&s, 1);
    feed(&s, 2);
    cr_assert(!has(&s, IND_RSI), "two changes are needed, so three values");
    feed(&s, 1.5);
    assert_near(s.out[IND_RSI], 200.0 / 3.0);
    feed(&s, 2.5);
    assert_near(s.out[IND_RSI], 600.0 / 7.0);
    free(s.st);

    series up = {.cfg = {.rsi = 2}}, flat = {.cfg = {.rsi = 2}};
    series_open(&up);
    series_open(&flat);
    for (int i = 1; i <= 4; i++) {
        feed(&up, i);
        feed(&flat, 7);
    }
    cr_assert_eq(up.out[IND_RSI], 100.0, "no loss: 100");
    cr_assert_eq(flat.out[IND_RSI], 50.0, "no movement: 50, neither overbought nor oversold");
    free(up.st);
    free(flat.st);
}

Test(indicators, macd_signal_and_histogram)
{
    /* fast 2 (k = 2/3), slow 3 (k = 1/2), signal 2 (k = 2/3), on 1, 2, 3, 5, 8:
     * ema2: 1.5 (rec 2), 2.5, 25/6, 25/6 + 2/3*(8-25/6) = 121/18
     * ema3: 2 (rec 3), 3.5, 3.5 + (8-3.5)/2 = 23/4
     * macd: 1/2 (rec 3), 25/6 - 7/2 = 2/3, 121/18 - 23/4 = 35/36
     * signal: seed (1/2 + 2/3)/2 = 7/12 (rec 4), 7/12 + 2/3*(35/36 - 7/12) = 91/108
     * hist: 35/36 - 91/108 = 7/54 */
    series s = {.cfg = {.macd_fast = 2, .macd_slow = 3, .macd_signal = 2}};
    series_open(&s);
    feed(&s, 1);
    feed(&s, 2);
    cr_assert(!has(&s, IND_MACD), "macd needs the slow EMA");
    feed(&s, 3);
    assert_near(s.out[IND_MACD], 0.5);
    cr_assert(!has(&s, IND_MACD_SIGNAL));
    feed(&s, 5);
    assert_near(s.out[IND_MACD], 2.0 / 3.0);
    assert_near(s.out[IND_MACD_SIGNAL], 7.0 / 12.0);
    assert_near(s.out[IND_MACD_HIST], 2.0 / 3.0 - 7.0 / 12.0);
    feed(&s, 8);
    assert_near(s.out[IND_MACD], 35.0 / 36.0);
    assert_near(s.out[IND_MACD_SIGNAL], 91.0 / 108.0);
    assert_near(s.out[IND_MACD_HIST], 7.0 / 54.0);
    free(s.st);
}

Test(indicators, bollinger_uses_the_population_deviation)
{
    /* n = 3, k = 2 on 1, 2, 3: middle 2, variance ((1)+(0)+(1))/3 = 2/3, sd = sqrt(2/3)
     * upper/lower = 2 +- 2 sd, pctb = (3 - lower)/(4 sd) = (1 + 2 sd)/(4 sd) = 1/2 + 1/(4 sd),
 * width = 4 sd / 2 = 2 sd */
    series s = {.cfg = {.bb_n = 3, .bb_k = 2}};
    series_open(&s);
    feed(&s, 1);
    feed(&s, 2);
    cr_assert(!has(&s, IND_BB_MIDDLE));
    feed(&s, 3);
    double sd = sqrt(2.0 / 3.0);
    assert_near(s.out[IND_BB_MIDDLE], 2.0);
    assert_near(s.out[IND_BB_UPPER], 2.0 + 2 * sd);
    assert_near(s.out[IND_BB_LOWER], 2.0 - 2 * sd);
    assert_near(s.out[IND_BB_PCTB], 0.5 + 1 / (4 * sd));
    assert_near(s.out[IND_BB_WIDTH], 2 * sd);
    free(s.st);

    series flat = {.cfg = {.bb_n = 3, .bb_k = 2}};
    series_open(&flat);
    for (int i = 0; i < 500; i++) feed(&flat, i < 250 ? 1.1 + i * 0.01 : 1.9558);
    cr_assert(!has(&flat, IND_BB_PCTB), "upper == lower: pctb is undefined and omitted");
    cr_assert_eq(flat.out[IND_BB_WIDTH], 0.0, "a flat window has exactly zero width");
    cr_assert_eq(flat.out[IND_BB_MIDDLE], 1.9558);
    free(flat.st);
}

Test(indicators, volatility_pct_change_and_annualising)
{
    /* 100, 110, 99: returns 0.1, -0.1, mean 0, sample variance (0.01+0.01)/1 = 0.02,
     * volatility = sqrt(0.02) * 100 = 14.142...%; with annualize = 4: times 2 */
    series s = {.cfg = {.volatility = 2, .pct_change = true}};
    series a = {.cfg = {.volatility = 2, .annualize = 4}};
    series_open(&s);
    series_open(&a);
    feed(&s, 100);
    feed(&a, 100);
    cr_assert(!has(&s, IND_PCT_CHANGE), "no previous value");
    feed(&s, 110);
    feed(&a, 110);
    assert_near(s.out[IND_PCT_CHANGE], 10.0);
    cr_assert(!has(&s, IND_VOLATILITY), "one return of the two needed");
    feed(&s, 99);
    feed(&a, 99);
    assert_near(s.out[IND_PCT_CHANGE], -10.0);
    assert_near(s.out[IND_VOLATILITY], sqrt(0.02) * 100);
    assert_near(a.out[IND_VOLATILITY], 2 * sqrt(0.02) * 100);
    free(s.st);
    free(a.st);
}

Test(indicators, volume_average_skips_missing_volumes)
{
    series s = {.cfg = {.volume_avg = 2}};
    series_open(&s);
    feed_full(&s, 1, true, 10, 1, 0);
    cr_assert(!has(&s, IND_VOLUME_AVG));
    feed_full(&s, 1, false, 0, 1, 0); /* a negative or missing volume arrives as none */
    cr_assert(!has(&s, IND_VOLUME_AVG), "one valid volume so far");
    feed_full(&s, 1, true, 30, 1, 0);
    assert_near(s.out[IND_VOLUME_AVG], 20.0); /* (10+30)/2 */
    feed_full(&s, 1, false, 0, 1, 0);
    assert_near(s.out[IND_VOLUME_AVG], 20.0); /* still the last two valid ones */
    free(s.st);
}

Test(indicators, vwap_resets_per_day_or_never)
{
    /* day 0: typical 10 x 1, 20 x 3 -> (10 + 60)/4 = 17.5; day 1: 5 x 2 -> 5 (cumulative: 80/6) */
    series d = {.cfg = {.vwap = true, .vwap_daily = true}};
    series n = {.cfg = {.vwap = true}};
    series_open(&d);
    series_open(&n);
    feed_full(&d, 9, false, 0, 10, 0);
    cr_assert(!has(&d, IND_VWAP), "no volume yet: undefined");
    feed_full(&d, 9, true, 1, 10, 0);
    feed_full(&n, 9, true, 1, 10, 0);
    assert_near(d.out[IND_VWAP], 10.0);
    feed_full(&d, 9, true, 3, 20, 0);
    feed_full(&n, 9, true, 3, 20, 0);
    assert_near(d.out[IND_VWAP], 17.5);
    feed_full(&d, 9, true, 2, 5, 1);
    feed_full(&n, 9, true, 2, 5, 1);
    assert_near(d.out[IND_VWAP], 5.0);
    assert_near(n.out[IND_VWAP], 80.0 / 6.0);
    feed_full(&d, 9, true, 0, 5, 2);
    cr_assert(!has(&d, IND_VWAP), "a day with zero volume so far has no vwap");
    free(d.st);
    free(n.st);
}

Test(indicators, every_field_appears_exactly_when_its_window_is_full)
{
    series s = {.cfg = {.n_sma = 2,
                        .sma = {20, 50},
                        .n_ema = 2,
                        .ema = {12, 26},
                        .rsi = 14,
                        .macd_fast = 12,
                        .macd_slow = 26,
                        .macd_signal = 9,
                        .bb_n = 20,
                        .bb_k = 2,
                        .volatility = 20,
                        .pct_change = true}};
    series_open(&s);
    /* first record (1-based) at which each slot appears */
    int first[IND_NSLOTS] = {0};
    for (int rec = 1; rec <= 60; rec++) {
        uint32_t m = feed(&s, 100 + sin(rec) * 5);
        for (int slot = 0; slot < IND_NSLOTS; slot++)
            if (m >> slot & 1 && !first[slot]) first[slot] = rec;
            else if (!(m >> slot & 1)) cr_assert_eq(first[slot], 0, "slot %d disappeared at %d", slot, rec);
    }
    cr_assert_eq(first[IND_SMA], 20);
    cr_assert_eq(first[IND_SMA + 1], 50);
    cr_assert_eq(first[IND_EMA], 12);
    cr_assert_eq(first[IND_EMA + 1], 26);
    cr_assert_eq(first[IND_RSI], 15);
    cr_assert_eq(first[IND_MACD], 26);
    cr_assert_eq(first[IND_MACD_SIGNAL], 34);
    cr_assert_eq(first[IND_MACD_HIST], 34);
    cr_assert_eq(first[IND_BB_PCTB], 20);
    cr_assert_eq(first[IND_VOLATILITY], 21);
    cr_assert_eq(first[IND_PCT_CHANGE], 2);
    cr_assert_eq(first[IND_VWAP], 0, "not enabled");
    free(s.st);
}

Test(indicators, configuration_errors)
{
    const char *opt;
    ind_config none = {0};
    cr_assert_not_null(ind_config_finish(&none, &opt), "nothing enabled");
    ind_config dup = {.n_sma = 2, .sma = {5, 5}};
    cr_assert_not_null(ind_config_finish(&dup, &opt));
    cr_assert_str_eq(opt, "sma");
    ind_config macd = {.macd_fast = 26, .macd_slow = 12, .macd_signal = 9};
    cr_assert_not_null(ind_config_finish(&macd, &opt));
    cr_assert_str_eq(opt, "macd");
    ind_config vol = {.volatility = 1};
    cr_assert_not_null(ind_config_finish(&vol, &opt));
    cr_assert_str_eq(opt, "volatility");
    ind_config bb = {.bb_n = 20, .bb_k = -1};
    cr_assert_not_null(ind_config_finish(&bb, &opt));
    cr_assert_str_eq(opt, "bollinger");
}

/* ---- 10M values against exact recomputation ------------------------------------- */

/* Mean and squared deviations of the last n of a history, in long double,
 * two-pass: the definition, computed from scratch. */
static void exact_window(const double *h, size_t end, uint32_t n, long double *mean, long double *m2)
{
    long double s = 0, d2 = 0;
    for (size_t i = end - n; i < end; i++) s += h[i];
    *mean = s / n;
    for (size_t i = end - n; i < end; i++) d2 += (h[i] - *mean) * (h[i] - *mean);
    *m2 = d2;
}

static double rel(double got, long double want)
{
    return want == 0 ? fabs(got) : (double)fabsl((got - want) / want);
}

Test(indicators, ten_million_values_do_not_drift, .timeout = 300)
{
    enum { N = 10000000, HIST = 64 };
    series s = {.cfg = {.n_sma = 2, .sma = {20, 50}, .bb_n = 20, .bb_k = 2, .volatility = 20, .volume_avg = 20}};
    series_open(&s);
    double hist[HIST], rets[HIST], vols[HIST];
    double price = 100, worst = 0;
    uint64_t rng = 42;
    for (size_t i = 0; i < N; i++) {
        /* a random walk with regimes: calm (sd/mean ~ 1e-5 over a window), wilder, and a slow
         * drift from 100 to ~1e4 and back: where a running sum of squares loses its digits */
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        double u = (double)(rng >> 11) / 9007199254740992.0 - 0.5;
        double scale = (i / 1000000) % 2 ? 0.002 : 0.00002;
        price *= exp(u * scale + ((i / 2500000) % 2 ? -1.8e-6 : 1.8e-6));
        double volume = floor((u + 0.5) * 1e7);
        rets[i % HIST] = i ? price / hist[(i - 1) % HIST] - 1.0 : 0;
        hist[i % HIST] = price;
        vols[i % HIST] = volume;
        feed_full(&s, price, true, volume, price, 0);
        if (i < 100 || i % 9973) continue; /* check at a prime stride, off the recomputation cycle */
        double h[HIST], r[HIST], v[HIST];
        for (int j = 0; j < 50; j++) {
            h[j] = hist[(i - 49 + j) % HIST];
            r[j] = rets[(i - 49 + j) % HIST];
            v[j] = vols[(i - 49 + j) % HIST];
        }
        long double mean, m2;
        exact_window(h, 50, 20, &mean, &m2);
        worst = fmax(worst, rel(s.out[IND_SMA], mean));
        worst = fmax(worst, rel(s.out[IND_BB_UPPER], mean + 2 * sqrtl(m2 / 20)));
        worst = fmax(worst, rel(s.out[IND_BB_LOWER], mean - 2 * sqrtl(m2 / 20)));
        /* the deviation itself, from the state: upper - middle would only measure the rounding of
         * upper (1 ulp of ~100 against a deviation of ~1e-3) */
        ind_ring *rg = ring_of(s.st, &s.cfg.price);
        worst = fmax(worst, rel(win_m2(rg, &ring_wins(rg, &s.cfg.price)[s.cfg.bb_win], 20), m2));
        exact_window(h, 50, 50, &mean, &m2);
        worst = fmax(worst, rel(s.out[IND_SMA + 1], mean));
        exact_window(r, 50, 20, &mean, &m2);
        worst = fmax(worst, rel(s.out[IND_VOLATILITY], sqrtl(m2 / 19) * 100));
        exact_window(v, 50, 20, &mean, &m2);
        worst = fmax(worst, rel(s.out[IND_VOLUME_AVG], mean));
        cr_assert(worst <= 1e-12, "value %zu: relative error %.3g", i, worst);
    }
    cr_assert(price > 1e-3 && price < 1e9, "the walk stayed in a sane range: %g", price);
    cr_log_info("10M values: worst relative error %.3g", worst);
    free(s.st);
}

/* ---- the plugin in the engine ------------------------------------------------------- */

typedef struct row {
    int64_t t;
    const char *key;
    const char *text; /* price as text ("abc"); "": no price field; NULL: the double */
    double price;
    double volume;
} row;

static const row *g_rows;
static size_t g_nrows;
static rtp_key k_key, k_close, k_volume, k_sma;

typedef struct got {
    double close;
    bool has_sma;
    double sma;
} got;
static got g_out[64];
static size_t g_nout;

static int rows_start(rtp_instance *ins, void *ctx)
{
    rtp_batch *b = rtp_input_batch(ins);
    for (size_t i = 0; i < g_nrows; i++) {
        const row *w = &g_rows[i];
        rtp_record *r = rtp_batch_append(b, 3);
        r->time = w->t * 1000000000LL;
        rtp_record_set_str(b, r, k_key, w->key, strlen(w->key));
        if (w->text && *w->text)
            rtp_record_set_str(b, r, k_close, w->text, strlen(w->text));
        else if (!w->text)
            rtp_record_set_double(b, r, k_close, w->price);
        rtp_record_set_double(b, r, k_volume, w->volume);
    }
    rtp_input_emit(ins, b, 1);
    rtp_input_finished(ins, true);
    return 0;
}

static const rtp_plugin rows_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                       .kind = RTP_INPUT, .name = "rows", .description = "test rows",
                                       .start = rows_start};

static void grab_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    for (size_t i = 0; i < rtp_batch_count(b) && g_nout < 64; i++) {
        const rtp_record *r = rtp_batch_record(b, i);
        got *g = &g_out[g_nout++];
        g->close = NAN;
        rtp_field_number(rtp_record_get(r, k_close), &g->close);
        g->has_sma = rtp_field_number(rtp_record_get(r, k_sma), &g->sma);
    }
    rtp_output_done(ins, b, RTP_OK);
}

static const rtp_plugin grab_plugin = {.abi_major = RTP_ABI_MAJOR, .abi_minor = RTP_ABI_MINOR,
                                       .kind = RTP_OUTPUT, .name = "grab", .description = "test output",
                                       .write = grab_write};

TestSuite(plugin, .fini = harness_fini);

static ind_ctx *run_rows(const row *rows, size_t n, const char *options)
{
    static bool registered;
    if (!registered) {
        rtp_loader_add_static(&rows_plugin);
        rtp_loader_add_static(&grab_plugin);
        rtp_loader_add_static(&rtproc_plugin);
        registered = true;
    }
    rtp_log_configure(RTP_LOG_ERROR, false);
    k_key = rtp_key_cstr("s");
    k_close = rtp_key_cstr("close");
    k_volume = rtp_key_cstr("volume");
    k_sma = rtp_key_cstr("sma_2");
    g_rows = rows;
    g_nrows = n;
    g_nout = 0;
    harness_fini(); /* the previous run of this test */
    uv_loop_init(&loop);
    char text[512];
    snprintf(text, sizeof text, "[input.rows]\n[filter.indicators]\nkey = s\nsma = 2\n%s\n[output.grab]\n", options);
    cr_assert_eq(harness_build(text), 0);
    cr_assert_eq(rtp_engine_run(&eng), 0);
    return eng.filters[0]->ctx;
}

Test(plugin, bad_values_pass_unchanged_and_leave_the_series_alone)
{
    static const row rows[] = {{1, "A", NULL, 1, 10},   {2, "A", "abc", 0, 10}, {3, "A", NULL, NAN, 10},
                               {4, "A", NULL, -2, 10},  {5, "A", NULL, 0, 10},  {6, "A", NULL, INFINITY, 10},
                               {6, "A", "", 0, 10},
                               {7, "A", "12x", 0, 10},  {8, "A", NULL, 3, -1},  {9, "A", "5", 0, 10}};
    ind_ctx *c = run_rows(rows, 10, "volume_avg = 2");
    cr_assert_eq(g_nout, 10, "every record passes");
    for (size_t i = 1; i < 8; i++) cr_assert(!g_out[i].has_sma, "record %zu has a bad or no price", i);
    cr_assert(g_out[8].has_sma);
    cr_assert_eq(g_out[8].sma, 2.0, "(1 + 3)/2: the bad values never entered the window");
    cr_assert_eq(g_out[9].sma, 4.0, "numeric text counts: (3 + 5)/2");
    /* abc, NaN, -2, 0, Inf, 12x, and the volume -1; the missing price is not counted */
    cr_assert_eq(rtp_metric_value(c->m_bad), 7);
}

Test(plugin, late_records_are_dropped_and_counted)
{
    static const row rows[] = {{1, "A", NULL, 1, 1}, {2, "A", NULL, 2, 1}, {2, "A", NULL, 50, 1},
                               {1, "A", NULL, 50, 1}, {3, "A", NULL, 4, 1}, {1, "B", NULL, 8, 1}};
    ind_ctx *c = run_rows(rows, 6, "");
    cr_assert_eq(g_nout, 4);
    cr_assert_eq(g_out[2].close, 4.0);
    cr_assert_eq(g_out[2].sma, 3.0, "(2 + 4)/2: the late 50s never counted");
    cr_assert_eq(rtp_metric_value(c->m_late), 2);
    run_rows(rows, 6, "late = accept");
    cr_assert_eq(g_nout, 6);
    cr_assert_eq(g_out[3].sma, 50.0, "taken in arrival order");
}

Test(plugin, eviction_forgets_the_least_recently_used_series)
{
    static const row rows[] = {{1, "A", NULL, 1, 1}, {2, "B", NULL, 1, 1}, {3, "A", NULL, 3, 1},
                               {4, "C", NULL, 1, 1}, {5, "A", NULL, 5, 1}, {6, "B", NULL, 3, 1}};
    ind_ctx *c = run_rows(rows, 6, "max_series = 2");
    cr_assert(g_out[2].has_sma && g_out[4].has_sma);
    cr_assert_eq(g_out[4].sma, 4.0);
    cr_assert(!g_out[5].has_sma, "B was evicted by C and starts again");
    cr_assert_eq(rtp_metric_value(c->m_evicted), 2);
    cr_assert_eq(rtp_map_count(c->series), 2);
}
