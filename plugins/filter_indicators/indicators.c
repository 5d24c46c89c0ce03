/* indicators: see indicators.h for the design, docs/indicators.md for the
 * conventions. Everything here is plain arithmetic on one series. */
#include "indicators.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- compensated sums ------------------------------------------------------ */

/* Knuth's TwoSum: t = s + x exactly as t + e; e goes to the error term.
 * Branch-free, so it pipelines; the compiler must not reassociate it
 * (C11 without -ffast-math does not). */
static inline void sum_add(ind_sum *a, double x)
{
    double t = a->s + x;
    double z = t - a->s;
    a->c += (a->s - (t - z)) + (x - z);
    a->s = t;
}

static inline double sum_value(const ind_sum *a)
{
    return a->s + a->c;
}

/* ---- rings with windowed sums ----------------------------------------------- */

typedef struct ind_ring {
    uint64_t n;           /* values pushed */
    uint64_t same;        /* how many of the newest values equal the newest */
    uint32_t pos;         /* where the next value goes */
    uint32_t until_exact; /* pushes left before the exact recomputation */
    double shift;         /* the sums are of (x - shift) */
} ind_ring;

typedef struct ind_win {
    ind_sum s1, s2; /* sum of d and of d*d, d = x - shift */
} ind_win;

static size_t ring_bytes(const ind_ring_spec *sp)
{
    return sp->cap ? sizeof(ind_ring) + sp->cap * sizeof(double) + sp->nwin * sizeof(ind_win) : 0;
}

static ind_ring *ring_of(const ind_state *st, const ind_ring_spec *sp)
{
    return (ind_ring *)((char *)st + sp->off);
}

static double *ring_values(ind_ring *rg)
{
    return (double *)(rg + 1);
}

static ind_win *ring_wins(ind_ring *rg, const ind_ring_spec *sp)
{
    return (ind_win *)(ring_values(rg) + sp->cap);
}

static uint32_t exact_interval(const ind_ring_spec *sp)
{
    return IND_EXACT_EVERY * sp->cap;
}

/* The j-th newest value (j = 0: the newest). */
static double ring_at(ind_ring *rg, const ind_ring_spec *sp, uint32_t j)
{
    uint32_t back = j + 1;
    return ring_values(rg)[rg->pos >= back ? rg->pos - back : rg->pos + sp->cap - back];
}

/* Rebuilds every window's sums from the values themselves, around a new
 * shift (the mean of the ring), which wipes out whatever rounding the
 * running sums gathered and keeps the shift near the data as it drifts. */
static void ring_exact(const ind_ring_spec *sp, ind_ring *rg)
{
    uint32_t have = rg->n < sp->cap ? (uint32_t)rg->n : sp->cap;
    ind_sum mean = {0, 0};
    for (uint32_t j = 0; j < have; j++) sum_add(&mean, ring_at(rg, sp, j));
    rg->shift = sum_value(&mean) / have;
    ind_win *w = ring_wins(rg, sp);
    for (uint32_t k = 0; k < sp->nwin; k++) {
        uint32_t n = rg->n < sp->period[k] ? (uint32_t)rg->n : sp->period[k];
        w[k] = (ind_win){{0, 0}, {0, 0}};
        for (uint32_t j = 0; j < n; j++) {
            double d = ring_at(rg, sp, j) - rg->shift;
            sum_add(&w[k].s1, d);
            sum_add(&w[k].s2, d * d);
        }
    }
    rg->until_exact = exact_interval(sp);
}

/* Adds x to every window, removing the value that leaves each full one:
 * the removed term is recomputed from the stored double with the same
 * shift, so it is bit for bit the term that was added. */
static void ring_push(const ind_ring_spec *sp, ind_ring *rg, double x)
{
    double *v = ring_values(rg);
    ind_win *w = ring_wins(rg, sp);
    if (rg->n == 0) rg->shift = x;
    double d = x - rg->shift;
    for (uint32_t k = 0; k < sp->nwin; k++) {
        uint32_t n = sp->period[k];
        if (rg->n >= n) {
            double o = v[rg->pos >= n ? rg->pos - n : rg->pos + sp->cap - n] - rg->shift;
            sum_add(&w[k].s1, -o);
            sum_add(&w[k].s2, -(o * o));
        }
        sum_add(&w[k].s1, d);
        sum_add(&w[k].s2, d * d);
    }
    rg->same = rg->n && ring_at(rg, sp, 0) == x ? rg->same + 1 : 1;
    v[rg->pos] = x;
    rg->pos = rg->pos + 1 == sp->cap ? 0 : rg->pos + 1;
    rg->n++;
    if (--rg->until_exact == 0) ring_exact(sp, rg);
}

/* Mean of the newest n values (n <= values pushed). A window of equal
 * values has exactly that value as its mean. */
static double win_mean(const ind_ring *rg, const ind_win *w, uint32_t n, double newest)
{
    if (rg->same >= n) return newest;
    return rg->shift + sum_value(&w->s1) / n;
}

/* Sum of squared deviations from the mean of the newest n values: exactly 0
 * for equal values, never negative. */
static double win_m2(const ind_ring *rg, const ind_win *w, uint32_t n)
{
    if (rg->same >= n) return 0;
    double s1 = sum_value(&w->s1), s2 = sum_value(&w->s2);
    double m2 = s2 - s1 * (s1 / n);
    return m2 > 0 ? m2 : 0;
}

/* win_m2 for window k, first recomputing the ring when a trend has carried
 * the window's mean far from the shift: s2 - s1^2/n then cancels about
 * (drift/sd)^2 of the digits, so past a factor of 64 (6 bits) the sums are
 * rebuilt around the current mean. At most once per cap values, so that a
 * window a shift cannot suit (hardly any spread) costs O(1) all the same. */
static double win_m2_fresh(const ind_ring_spec *sp, ind_ring *rg, uint32_t k, uint32_t n)
{
    ind_win *w = &ring_wins(rg, sp)[k];
    double m2 = win_m2(rg, w, n), s1 = sum_value(&w->s1);
    if (s1 * s1 > 64.0 * n * m2 && rg->same < n && rg->until_exact + sp->cap <= exact_interval(sp)) {
        ring_exact(sp, rg);
        m2 = win_m2(rg, w, n);
    }
    return m2;
}

/* ---- EMA ------------------------------------------------------------------------ */

/* One step of pandas' ewm(adjust=False).mean(), evaluated as pandas does,
 * (keep*w + alpha*x) / (keep + alpha), and skipped when w == x, so that
 * ema_seed = first reproduces pandas to the last bit. */
static double ema_step(const ind_ema_spec *e, double w, double x)
{
    if (w == x) return w;
    return (e->keep * w + e->alpha * x) / e->den;
}

/* Feeds the t-th input (t from 0); true when the EMA has a value. Seeded
 * with the first input, or with the mean of the first n (TA-Lib). */
static bool ema_push(const ind_ema_spec *e, ind_ema *m, uint64_t t, double x, bool seed_first)
{
    if (seed_first) {
        m->value = t == 0 ? x : ema_step(e, m->value, x);
        return true;
    }
    if (t >= e->n) {
        m->value = ema_step(e, m->value, x);
        return true;
    }
    sum_add(&m->seed, x);
    if (t + 1 < e->n) return false;
    m->value = sum_value(&m->seed) / e->n;
    return true;
}

static ind_ema *emas_of(const ind_config *cfg, ind_state *st)
{
    return (ind_ema *)((char *)st + cfg->off_emas);
}

/* ---- configuration ---------------------------------------------------------------- */

static ind_ema_spec ema_spec(uint32_t n)
{
    ind_ema_spec e = {n, 2.0 / (n + 1.0), 0, 0};
    e.keep = 1.0 - e.alpha;
    e.den = e.keep + e.alpha;
    return e;
}

/* Index of period n in list (adding it when absent). */
static uint32_t add_unique(uint32_t *list, uint32_t *count, uint32_t n)
{
    for (uint32_t i = 0; i < *count; i++)
        if (list[i] == n) return i;
    list[*count] = n;
    return (*count)++;
}

static bool has_duplicates(const uint32_t *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = i + 1; j < n; j++)
            if (v[i] == v[j]) return true;
    return false;
}

static bool bad_period(uint32_t n, uint32_t min)
{
    return n < min || n > IND_MAX_PERIOD;
}

/* NULL, or what is wrong (and with which option, in *opt). */
static const char *check_periods(const ind_config *cfg, const char **opt)
{
    for (uint32_t i = 0; i < cfg->n_sma; i++)
        if (bad_period(cfg->sma[i], 1)) return *opt = "sma", "periods must be between 1 and 100000";
    for (uint32_t i = 0; i < cfg->n_ema; i++)
        if (bad_period(cfg->ema[i], 1)) return *opt = "ema", "periods must be between 1 and 100000";
    if (has_duplicates(cfg->sma, cfg->n_sma)) return *opt = "sma", "a period is listed twice";
    if (has_duplicates(cfg->ema, cfg->n_ema)) return *opt = "ema", "a period is listed twice";
    if (cfg->macd_fast && (bad_period(cfg->macd_fast, 1) || bad_period(cfg->macd_slow, 2) ||
                           bad_period(cfg->macd_signal, 1) || cfg->macd_fast >= cfg->macd_slow))
        return *opt = "macd", "needs fast < slow and a signal period, each between 1 and 100000";
    if (cfg->bb_n && (!(cfg->bb_k > 0) || !isfinite(cfg->bb_k)))
        return *opt = "bollinger", "needs a period between 1 and 100000 and a positive width k";
    if (cfg->volatility == 1) return *opt = "volatility", "needs a period of at least 2 (sample standard deviation)";
    if (!(cfg->annualize >= 0) || !isfinite(cfg->annualize)) return *opt = "annualize", "must be 0 or positive";
    return NULL;
}

static void ring_spec(ind_ring_spec *sp, size_t *off)
{
    for (uint32_t k = 0; k < sp->nwin; k++)
        if (sp->period[k] > sp->cap) sp->cap = sp->period[k];
    sp->off = *off;
    *off += ring_bytes(sp);
}

static uint32_t enabled_slots(const ind_config *cfg)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < cfg->n_sma; i++) m |= 1u << (IND_SMA + i);
    for (uint32_t i = 0; i < cfg->n_ema; i++) m |= 1u << (IND_EMA + i);
    if (cfg->rsi) m |= 1u << IND_RSI;
    if (cfg->macd_fast) m |= 1u << IND_MACD | 1u << IND_MACD_SIGNAL | 1u << IND_MACD_HIST;
    if (cfg->bb_n)
        m |= 1u << IND_BB_UPPER | 1u << IND_BB_MIDDLE | 1u << IND_BB_LOWER | 1u << IND_BB_PCTB |
             1u << IND_BB_WIDTH;
    if (cfg->volatility) m |= 1u << IND_VOLATILITY;
    if (cfg->pct_change) m |= 1u << IND_PCT_CHANGE;
    if (cfg->volume_avg) m |= 1u << IND_VOLUME_AVG;
    if (cfg->vwap) m |= 1u << IND_VWAP;
    return m;
}

const char *ind_config_finish(ind_config *cfg, const char **opt)
{
    const char *bad = check_periods(cfg, opt);
    if (bad) return bad;
    cfg->enabled = enabled_slots(cfg);
    if (!cfg->enabled) return *opt = NULL, "no indicator is enabled: set sma, ema, rsi, macd, bollinger, "
                                           "volatility, pct_change, volume_avg or vwap";

    /* one price ring serves every sma and the Bollinger window (sma_20 and
     * bb_middle are then the same number) */
    for (uint32_t i = 0; i < cfg->n_sma; i++)
        cfg->sma_win[i] = add_unique(cfg->price.period, &cfg->price.nwin, cfg->sma[i]);
    if (cfg->bb_n) cfg->bb_win = add_unique(cfg->price.period, &cfg->price.nwin, cfg->bb_n);
    if (cfg->volatility) add_unique(cfg->returns.period, &cfg->returns.nwin, cfg->volatility);
    if (cfg->volume_avg) add_unique(cfg->volume.period, &cfg->volume.nwin, cfg->volume_avg);

    /* ema and macd share EMAs of the same period */
    uint32_t periods[IND_MAX_PERIODS + 2];
    for (uint32_t i = 0; i < cfg->n_ema; i++) cfg->ema_of[i] = add_unique(periods, &cfg->n_emas, cfg->ema[i]);
    if (cfg->macd_fast) {
        cfg->macd_fast_i = add_unique(periods, &cfg->n_emas, cfg->macd_fast);
        cfg->macd_slow_i = add_unique(periods, &cfg->n_emas, cfg->macd_slow);
        cfg->signal = ema_spec(cfg->macd_signal);
    }
    for (uint32_t i = 0; i < cfg->n_emas; i++) cfg->emas[i] = ema_spec(periods[i]);
    cfg->vol_scale = 100.0 * (cfg->annualize > 0 ? sqrt(cfg->annualize) : 1.0);

    size_t off = (sizeof(ind_state) + 7) & ~(size_t)7;
    ring_spec(&cfg->price, &off);
    ring_spec(&cfg->returns, &off);
    ring_spec(&cfg->volume, &off);
    cfg->off_emas = off;
    cfg->state_size = off + cfg->n_emas * sizeof(ind_ema);
    return NULL;
}

void ind_state_init(const ind_config *cfg, ind_state *st)
{
    const ind_ring_spec *rings[] = {&cfg->price, &cfg->returns, &cfg->volume};
    for (size_t i = 0; i < 3; i++)
        if (rings[i]->cap) ring_of(st, rings[i])->until_exact = exact_interval(rings[i]);
}

int ind_slot_name(const ind_config *cfg, int slot, char *buf, size_t cap)
{
    static const char *const fixed[] = {"macd",     "macd_signal", "macd_hist", "bb_upper", "bb_middle",
                                        "bb_lower", "bb_pctb",     "bb_width"};
    if (slot >= IND_SMA && slot < IND_SMA + IND_MAX_PERIODS)
        return snprintf(buf, cap, "sma_%u", cfg->sma[slot - IND_SMA]);
    if (slot >= IND_EMA && slot < IND_EMA + IND_MAX_PERIODS)
        return snprintf(buf, cap, "ema_%u", cfg->ema[slot - IND_EMA]);
    if (slot >= IND_MACD && slot <= IND_BB_WIDTH) return snprintf(buf, cap, "%s", fixed[slot - IND_MACD]);
    switch (slot) {
    case IND_RSI: return snprintf(buf, cap, "rsi_%u", cfg->rsi);
    case IND_VOLATILITY: return snprintf(buf, cap, "volatility_%u", cfg->volatility);
    case IND_PCT_CHANGE: return snprintf(buf, cap, "pct_change");
    case IND_VOLUME_AVG: return snprintf(buf, cap, "volume_avg_%u", cfg->volume_avg);
    case IND_VWAP: return snprintf(buf, cap, "vwap");
    default: return -1;
    }
}

/* ---- one value ------------------------------------------------------------------------ */

#define PUT(slot, value) (out[(slot)] = (value), mask |= 1u << (slot))

static uint32_t price_windows(const ind_config *cfg, ind_state *st, double x, double *out)
{
    uint32_t mask = 0;
    ind_ring *rg = ring_of(st, &cfg->price);
    ring_push(&cfg->price, rg, x);
    ind_win *w = ring_wins(rg, &cfg->price);
    for (uint32_t i = 0; i < cfg->n_sma; i++)
        if (rg->n >= cfg->sma[i]) PUT(IND_SMA + i, win_mean(rg, &w[cfg->sma_win[i]], cfg->sma[i], x));
    uint32_t n = cfg->bb_n;
    if (n && rg->n >= n) {
        double mid = win_mean(rg, &w[cfg->bb_win], n, x);
        double sd = sqrt(win_m2_fresh(&cfg->price, rg, cfg->bb_win, n) / n); /* population (ddof 0) */
        double upper = mid + cfg->bb_k * sd, lower = mid - cfg->bb_k * sd;
        PUT(IND_BB_UPPER, upper);
        PUT(IND_BB_MIDDLE, mid);
        PUT(IND_BB_LOWER, lower);
        if (upper > lower) PUT(IND_BB_PCTB, (x - lower) / (upper - lower)); /* else undefined: omitted */
        PUT(IND_BB_WIDTH, (upper - lower) / mid);
    }
    return mask;
}

static uint32_t ema_family(const ind_config *cfg, ind_state *st, double x, double *out)
{
    uint32_t mask = 0;
    ind_ema *m = emas_of(cfg, st);
    uint32_t warm = 0; /* bit i: emas[i] has a value */
    for (uint32_t i = 0; i < cfg->n_emas; i++)
        if (ema_push(&cfg->emas[i], &m[i], st->count, x, cfg->seed_first)) warm |= 1u << i;
    for (uint32_t i = 0; i < cfg->n_ema; i++)
        if (warm >> cfg->ema_of[i] & 1) PUT(IND_EMA + i, m[cfg->ema_of[i]].value);
    if (!cfg->macd_fast || !(warm >> cfg->macd_slow_i & 1)) return mask;
    /* the slow EMA warms last: MACD values are numbered from its first */
    double macd = m[cfg->macd_fast_i].value - m[cfg->macd_slow_i].value;
    uint64_t t = cfg->seed_first ? st->count : st->count - (cfg->macd_slow - 1);
    PUT(IND_MACD, macd);
    if (ema_push(&cfg->signal, &st->signal, t, macd, cfg->seed_first)) {
        PUT(IND_MACD_SIGNAL, st->signal.value);
        PUT(IND_MACD_HIST, macd - st->signal.value);
    }
    return mask;
}

/* Wilder's RSI from the t-th change (t from 0). */
static uint32_t rsi(const ind_config *cfg, ind_state *st, double change, uint64_t t, double *out)
{
    uint32_t mask = 0, n = cfg->rsi;
    double gain = change > 0 ? change : 0, loss = change < 0 ? -change : 0;
    if (t < n) {
        sum_add(&st->gain_seed, gain);
        sum_add(&st->loss_seed, loss);
        if (t + 1 < n) return 0;
        st->avg_gain = sum_value(&st->gain_seed) / n;
        st->avg_loss = sum_value(&st->loss_seed) / n;
    } else {
        st->avg_gain = (st->avg_gain * (n - 1) + gain) / n;
        st->avg_loss = (st->avg_loss * (n - 1) + loss) / n;
    }
    double total = st->avg_gain + st->avg_loss;
    /* no loss: 100; no movement at all: 50, neither overbought nor oversold */
    PUT(IND_RSI, total > 0 ? 100.0 * st->avg_gain / total : 50.0);
    return mask;
}

/* Indicators of the change from the previous value (from the 2nd value on). */
static uint32_t changes(const ind_config *cfg, ind_state *st, double x, double *out)
{
    uint32_t mask = 0;
    double ret = x / st->prev - 1.0; /* simple return, as pandas' pct_change */
    if (cfg->pct_change) PUT(IND_PCT_CHANGE, ret * 100.0);
    if (cfg->rsi) mask |= rsi(cfg, st, x - st->prev, st->count - 1, out);
    if (cfg->volatility) {
        ind_ring *rg = ring_of(st, &cfg->returns);
        uint32_t n = cfg->volatility;
        ring_push(&cfg->returns, rg, ret);
        if (rg->n >= n) PUT(IND_VOLATILITY, sqrt(win_m2_fresh(&cfg->returns, rg, 0, n) / (n - 1)) * cfg->vol_scale);
    }
    return mask;
}

static uint32_t volume(const ind_config *cfg, ind_state *st, const ind_input *in, double *out)
{
    uint32_t mask = 0;
    if (cfg->volume_avg) {
        ind_ring *rg = ring_of(st, &cfg->volume);
        uint32_t n = cfg->volume_avg;
        if (in->has_volume) ring_push(&cfg->volume, rg, in->volume);
        if (rg->n >= n) PUT(IND_VOLUME_AVG, win_mean(rg, ring_wins(rg, &cfg->volume), n, ring_at(rg, &cfg->volume, 0)));
    }
    if (cfg->vwap) {
        if (st->count == 0 || (cfg->vwap_daily && in->day != st->vwap_day)) {
            st->pv = st->v = (ind_sum){0, 0};
            st->vwap_day = in->day;
        }
        if (in->has_volume) {
            sum_add(&st->pv, in->typical * in->volume);
            sum_add(&st->v, in->volume);
        }
        double v = sum_value(&st->v);
        if (v > 0) PUT(IND_VWAP, sum_value(&st->pv) / v);
    }
    return mask;
}

uint32_t ind_update(const ind_config *cfg, ind_state *st, const ind_input *in, double *out)
{
    double x = in->price;
    uint32_t mask = 0;
    if (cfg->price.cap) mask |= price_windows(cfg, st, x, out);
    if (cfg->n_emas) mask |= ema_family(cfg, st, x, out);
    if (st->count > 0) mask |= changes(cfg, st, x, out);
    mask |= volume(cfg, st, in, out);
    st->prev = x;
    st->count++;
    return mask;
}
