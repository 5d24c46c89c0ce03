/* filter_indicators: technical indicators per series, added to each record.
 *
 * A series is one value of `key` (one symbol) times one price field (close,
 * or each currency column of a wide file). Its state is one fixed-size value
 * in an rtp_map bounded by max_series; the arithmetic is in indicators.c.
 *
 * Per record: read the price field(s), build the series key, one map lookup
 * per series, O(1) update, then the warm indicators are appended as double
 * fields under names interned at init (or when a `*` field is first seen),
 * so the hot path has no malloc, no snprintf and no string comparison.
 *
 * Bad input never reaches a series: a missing or null price leaves the
 * record alone; a price that is not a positive finite number is counted
 * (bad_values) and the record passes without indicators for that series.
 * Out-of-order event times are dropped (late_records) unless late = accept.
 * docs/indicators.md documents every convention. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rtproc/rtproc.h>

#include "indicators.h"

#define MAX_KEY_BYTES 480   /* series key: key fields' text, then the field id */
#define MAX_PRICE_FIELDS 1024 /* distinct fields `price_field = *` will follow */
#define NS_PER_DAY 86400000000000LL

enum { LATE_DROP, LATE_ACCEPT };
enum { SEED_SMA, SEED_FIRST };
enum { RESET_DAY, RESET_NEVER };

/* Per interned key id: what that field name is to this instance. */
enum { KEY_SKIP = 1u, KEY_OUTPUT = 2u };
typedef struct key_info {
    int32_t price; /* index in price fields, -1: none */
    uint32_t flags;
} key_info;

typedef struct price_field {
    rtp_key key;
    rtp_key out[IND_NSLOTS]; /* output names, prefixed with the field when several */
} price_field;

/* One series of the record being processed. */
typedef struct pending {
    uint32_t index; /* in price fields (which `*` may grow meanwhile) */
    double price;
} pending;

typedef struct ind_ctx {
    /* options */
    rtp_strlist key;
    rtp_strlist price_field;
    rtp_strlist exclude;
    char *volume_field, *high_field, *low_field;
    rtp_strlist sma, ema, macd, bollinger;
    int64_t rsi, volatility, volume_avg, max_series;
    double annualize;
    bool pct_change, vwap;
    int vwap_reset, ema_seed, late;

    rtp_instance *ins;
    ind_config cfg;
    rtp_map *series;
    rtp_key *keys;
    rtp_key k_volume, k_high, k_low;
    bool all_fields; /* price_field = * */
    bool prefixed;   /* output names carry the price field's name */
    bool collide;    /* two output names coincide: replace, never append */
    price_field *pf;
    uint32_t n_pf, cap_pf;
    key_info *info; /* indexed by key id */
    size_t n_info;
    pending *feeds; /* the series of one record */

    uint64_t evictions_seen;
    rtp_metric *m_late, *m_bad, *m_evicted, *m_series, *m_no_key;
} ind_ctx;

#define OFF(f) offsetof(ind_ctx, f)
static const rtp_option ind_options[] = {
    {"key", RTP_OPT_LIST, NULL, 0, OFF(key),
     "fields naming a series (e.g. Name, or exchange, symbol); several make a composite key; empty: one "
     "series. A record whose key field is missing or null passes unchanged (metric missing_key)", NULL},
    {"price_field", RTP_OPT_LIST, "close", 0, OFF(price_field),
     "value field(s) to compute on; each (key, field) pair is its own series. One field: outputs are "
     "unprefixed (sma_20); several, or *: prefixed with the field (USD_sma_20). * takes every int or double "
     "field except key, volume, exclude and time-typed fields", NULL},
    {"exclude", RTP_OPT_LIST, NULL, 0, OFF(exclude),
     "with price_field = *: numeric fields that are not prices (an epoch time column, a count)", NULL},
    {"sma", RTP_OPT_LIST, NULL, 0, OFF(sma),
     "simple moving averages, e.g. 20,50 -> sma_20, sma_50: mean of the last n values, from the n-th", NULL},
    {"ema", RTP_OPT_LIST, NULL, 0, OFF(ema),
     "exponential moving averages, e.g. 12,26 -> ema_12, ema_26: k = 2/(n+1), seeded per ema_seed", NULL},
    {"ema_seed", RTP_OPT_ENUM, "sma", 0, OFF(ema_seed),
     "sma: an EMA starts as the mean of its first n values, at the n-th (TA-Lib); first: it starts at the "
     "first value and appears from the first record (pandas ewm(span=n, adjust=False)); applies to ema, "
     "macd and its signal", "sma|first"},
    {"rsi", RTP_OPT_INT, "0", 0, OFF(rsi),
     "Wilder's RSI period -> rsi_n, from record n+1: first averages are means of the first n changes, then "
     "avg = (prev*(n-1) + x)/n; no loss gives 100, no change at all 50; 0: off", NULL},
    {"macd", RTP_OPT_LIST, NULL, 0, OFF(macd),
     "fast,slow,signal, e.g. 12,26,9 -> macd = ema(fast) - ema(slow) (from record slow), macd_signal = "
     "ema(signal) of macd seeded like ema_seed (from record slow+signal-1), macd_hist = macd - signal", NULL},
    {"bollinger", RTP_OPT_LIST, NULL, 0, OFF(bollinger),
     "n,k, e.g. 20,2 -> bb_middle = sma(n), bb_upper/bb_lower = middle +- k * population std dev (ddof 0) "
     "of the same window, bb_pctb = (price-lower)/(upper-lower) (omitted when upper == lower), bb_width = "
     "(upper-lower)/middle; from record n", NULL},
    {"volatility", RTP_OPT_INT, "0", 0, OFF(volatility),
     "n -> volatility_n: sample std dev (ddof 1) of the last n simple returns, in percent, from record n+1; "
     "0: off", NULL},
    {"annualize", RTP_OPT_DOUBLE, "0", 0, OFF(annualize),
     "periods per year: volatility is multiplied by sqrt(annualize) (252 for daily bars); 0: not annualised",
     NULL},
    {"pct_change", RTP_OPT_BOOL, "false", 0, OFF(pct_change),
     "pct_change = (price / previous price - 1) * 100, from the series' 2nd value", NULL},
    {"volume_avg", RTP_OPT_INT, "0", 0, OFF(volume_avg),
     "n -> volume_avg_n: mean of the last n valid volumes (negative, NaN, Inf or non-numeric volumes are "
     "skipped); 0: off", NULL},
    {"volume_field", RTP_OPT_STR, "volume", 0, OFF(volume_field), "volume for volume_avg and vwap", NULL},
    {"vwap", RTP_OPT_BOOL, "false", 0, OFF(vwap),
     "vwap = sum(typical * volume) / sum(volume) since the last reset; typical = (high+low+price)/3 when the "
     "record has valid high and low fields, else the price; absent while the volume sum is 0", NULL},
    {"vwap_reset", RTP_OPT_ENUM, "day", 0, OFF(vwap_reset),
     "day: vwap restarts at each UTC day of the event time; never: cumulative", "day|never"},
    {"high_field", RTP_OPT_STR, "high", 0, OFF(high_field), "high of the bar, for vwap's typical price", NULL},
    {"low_field", RTP_OPT_STR, "low", 0, OFF(low_field), "low of the bar, for vwap's typical price", NULL},
    {"late", RTP_OPT_ENUM, "drop", 0, OFF(late),
     "drop: a record whose event time is not after its series' last one is removed (metric late_records); "
     "accept: taken in arrival order", "drop|accept"},
    {"max_series", RTP_OPT_INT, "100000", 0, OFF(max_series),
     "series kept; past it the least recently updated is forgotten (metric series_evicted) and starts its "
     "warm-up again if it comes back", NULL},
    RTP_OPT_END};

/* ---- configuration ------------------------------------------------------------ */

static int parse_period(ind_ctx *c, const char *opt, const char *s, uint32_t *out)
{
    int64_t v;
    if (rtp_parse_int64(s, strlen(s), &v) < 0 || v < 1 || v > IND_MAX_PERIOD) {
        rtp_config_error(c->ins, opt, "'%s' is not a period (an integer from 1 to %d)", s, IND_MAX_PERIOD);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_periods(ind_ctx *c, const char *opt, const rtp_strlist *l, uint32_t *out, uint32_t *n)
{
    if (l->n > IND_MAX_PERIODS) {
        rtp_config_error(c->ins, opt, "at most %d periods", IND_MAX_PERIODS);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        if (parse_period(c, opt, l->v[i], &out[i]) < 0) return -1;
    *n = (uint32_t)l->n;
    return 0;
}

static int parse_scalar(ind_ctx *c, const char *opt, int64_t v, uint32_t *out)
{
    if (v < 0 || v > IND_MAX_PERIOD) {
        rtp_config_error(c->ins, opt, "must be 0 (off) or a period up to %d", IND_MAX_PERIOD);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_macd(ind_ctx *c, ind_config *cfg)
{
    if (!c->macd.n) return 0;
    if (c->macd.n != 3) {
        rtp_config_error(c->ins, "macd", "needs three periods: fast,slow,signal (e.g. 12,26,9)");
        return -1;
    }
    if (parse_period(c, "macd", c->macd.v[0], &cfg->macd_fast) < 0 ||
        parse_period(c, "macd", c->macd.v[1], &cfg->macd_slow) < 0 ||
        parse_period(c, "macd", c->macd.v[2], &cfg->macd_signal) < 0)
        return -1;
    return 0;
}

static int parse_bollinger(ind_ctx *c, ind_config *cfg)
{
    if (!c->bollinger.n) return 0;
    const char *k = c->bollinger.v[c->bollinger.n - 1];
    if (c->bollinger.n != 2 || rtp_parse_double(k, strlen(k), &cfg->bb_k) < 0) {
        rtp_config_error(c->ins, "bollinger", "needs n,k (e.g. 20,2)");
        return -1;
    }
    return parse_period(c, "bollinger", c->bollinger.v[0], &cfg->bb_n);
}

static int build_config(ind_ctx *c)
{
    ind_config *cfg = &c->cfg;
    if (parse_periods(c, "sma", &c->sma, cfg->sma, &cfg->n_sma) < 0 ||
        parse_periods(c, "ema", &c->ema, cfg->ema, &cfg->n_ema) < 0 || parse_macd(c, cfg) < 0 ||
        parse_bollinger(c, cfg) < 0 || parse_scalar(c, "rsi", c->rsi, &cfg->rsi) < 0 ||
        parse_scalar(c, "volatility", c->volatility, &cfg->volatility) < 0 ||
        parse_scalar(c, "volume_avg", c->volume_avg, &cfg->volume_avg) < 0)
        return -1;
    cfg->annualize = c->annualize;
    cfg->pct_change = c->pct_change;
    cfg->vwap = c->vwap;
    cfg->vwap_daily = c->vwap_reset == RESET_DAY;
    cfg->seed_first = c->ema_seed == SEED_FIRST;
    const char *opt = NULL, *bad = ind_config_finish(cfg, &opt);
    if (bad) {
        rtp_config_error(c->ins, opt, "%s", bad);
        return -1;
    }
    return 0;
}

/* ---- field names ---------------------------------------------------------------- */

static key_info *info_of(ind_ctx *c, rtp_key k)
{
    if (k >= c->n_info) {
        size_t n = c->n_info ? c->n_info : 64;
        while (n <= k) n *= 2;
        c->info = rtp_xrealloc(c->info, n * sizeof *c->info);
        for (size_t i = c->n_info; i < n; i++) c->info[i] = (key_info){-1, 0};
        c->n_info = n;
    }
    return &c->info[k];
}

/* Adds a price field and interns its output names (once per field name,
 * never per record). -1 past MAX_PRICE_FIELDS. */
static int32_t add_price_field(ind_ctx *c, rtp_key k)
{
    if (c->n_pf == MAX_PRICE_FIELDS) return -1;
    if (c->n_pf == c->cap_pf) {
        c->cap_pf = c->cap_pf ? c->cap_pf * 2 : 8;
        c->pf = rtp_xrealloc(c->pf, c->cap_pf * sizeof *c->pf);
    }
    price_field *pf = &c->pf[c->n_pf];
    size_t flen;
    const char *fname = rtp_key_name(k, &flen);
    pf->key = k;
    for (int s = 0; s < IND_NSLOTS; s++) {
        char name[64], full[600];
        if (!(c->cfg.enabled >> s & 1) || ind_slot_name(&c->cfg, s, name, sizeof name) < 0) continue;
        int n = c->prefixed ? snprintf(full, sizeof full, "%.*s_%s", (int)(flen < 512 ? flen : 512), fname, name)
                            : snprintf(full, sizeof full, "%s", name);
        pf->out[s] = rtp_key_intern(full, (size_t)n);
        key_info *ki = info_of(c, pf->out[s]);
        if (ki->flags & KEY_OUTPUT) c->collide = true;
        ki->flags |= KEY_OUTPUT;
    }
    info_of(c, k)->price = (int32_t)c->n_pf;
    return (int32_t)c->n_pf++;
}

static void skip_key(ind_ctx *c, const char *name)
{
    info_of(c, rtp_key_cstr(name))->flags |= KEY_SKIP;
}

static int resolve_fields(ind_ctx *c)
{
    c->keys = rtp_xcalloc(c->key.n ? c->key.n : 1, sizeof *c->keys);
    for (size_t i = 0; i < c->key.n; i++) {
        c->keys[i] = rtp_key_cstr(c->key.v[i]);
        skip_key(c, c->key.v[i]);
    }
    c->k_volume = rtp_key_cstr(c->volume_field);
    c->k_high = rtp_key_cstr(c->high_field);
    c->k_low = rtp_key_cstr(c->low_field);
    skip_key(c, c->volume_field);
    for (size_t i = 0; i < c->exclude.n; i++) skip_key(c, c->exclude.v[i]);

    c->all_fields = c->price_field.n == 1 && strcmp(c->price_field.v[0], "*") == 0;
    c->prefixed = c->all_fields || c->price_field.n > 1;
    if (c->all_fields) return 0;
    for (size_t i = 0; i < c->price_field.n; i++) {
        const char *name = c->price_field.v[i];
        rtp_key k = rtp_key_cstr(name);
        const char *why = strcmp(name, "*") == 0 ? "'*' must be the only item" : NULL;
        for (size_t j = 0; j < c->key.n; j++)
            if (strcmp(name, c->key.v[j]) == 0) why = "is a key field";
        if (info_of(c, k)->price >= 0) why = "is listed twice";
        if (why) {
            rtp_config_error(c->ins, "price_field", "'%s' %s", name, why);
            return -1;
        }
        add_price_field(c, k);
    }
    if (!c->n_pf) {
        rtp_config_error(c->ins, "price_field", "needs at least one field, or *");
        return -1;
    }
    return 0;
}

static int ind_init(rtp_instance *ins, void *ctx)
{
    ind_ctx *c = ctx;
    c->ins = ins;
    if (build_config(c) < 0 || resolve_fields(c) < 0) return -1;
    if (c->max_series < 1) {
        rtp_config_error(ins, "max_series", "must be at least 1");
        return -1;
    }
    c->series = rtp_map_new(c->cfg.state_size, (size_t)c->max_series, NULL, NULL);
    c->feeds = rtp_xcalloc(MAX_PRICE_FIELDS, sizeof *c->feeds);
    c->m_late = rtp_metric_counter(ins, "late_records", "records dropped: event time not after the series' last");
    c->m_bad = rtp_metric_counter(ins, "bad_values", "prices or volumes rejected: not a positive finite number");
    c->m_no_key = rtp_metric_counter(ins, "missing_key", "records passed unchanged: a key field is missing");
    c->m_evicted = rtp_metric_counter(ins, "series_evicted", "series forgotten to stay within max_series");
    c->m_series = rtp_metric_gauge(ins, "series", "series held");
    rtp_debug(ins, "%zu bytes of state per series", c->cfg.state_size);
    return 0;
}

/* ---- reading a record ------------------------------------------------------------ */

/* A number from an int, a double or numeric text ("12.5" from JSON APIs).
 * 1: a number; 0: missing or null; -1: something else (bool, time, text). */
static int read_number(const rtp_field *f, double *out)
{
    if (!f || f->type == RTP_NULL) return 0;
    if (rtp_field_number(f, out) && f->type != RTP_TIME) return 1;
    if (f->type == RTP_STRING && rtp_parse_double(f->v.s, f->len, out) == 0) return 1;
    return -1;
}

/* A price is a positive finite number; anything else is a bad value. */
static bool take_price(ind_ctx *c, uint32_t index, const rtp_field *f, uint32_t *n, uint64_t *bad)
{
    double x;
    int k = read_number(f, &x);
    if (k == 0) return false;
    if (k < 0 || !isfinite(x) || x <= 0) {
        (*bad)++;
        return false;
    }
    c->feeds[*n] = (pending){index, x};
    (*n)++;
    return true;
}

/* The series this record feeds, in c->feeds; returns how many. */
static uint32_t collect(ind_ctx *c, const rtp_record *r, uint64_t *bad)
{
    uint32_t n = 0;
    if (!c->all_fields) {
        for (uint32_t i = 0; i < c->n_pf; i++) take_price(c, i, rtp_record_get(r, c->pf[i].key), &n, bad);
        return n;
    }
    for (uint32_t i = 0; i < r->nfields; i++) {
        const rtp_field *f = &r->fields[i];
        if (f->type != RTP_INT && f->type != RTP_DOUBLE) continue; /* not time, text, bool, null */
        key_info *ki = info_of(c, f->key);
        if (ki->flags & (KEY_SKIP | KEY_OUTPUT)) continue;
        if (ki->price < 0 && add_price_field(c, f->key) < 0) {
            rtp_warn(c->ins, "more than %d price fields: ignoring the new ones", MAX_PRICE_FIELDS);
            ki->flags |= KEY_SKIP;
            continue;
        }
        take_price(c, (uint32_t)info_of(c, f->key)->price, f, &n, bad);
    }
    return n;
}

/* Volume: a non-negative finite number, else absent (bad ones counted). */
static bool take_volume(ind_ctx *c, const rtp_record *r, double *v, uint64_t *bad)
{
    int k = read_number(rtp_record_get(r, c->k_volume), v);
    if (k > 0 && isfinite(*v) && *v >= 0) return true;
    if (k != 0) (*bad)++;
    return false;
}

static bool positive(const rtp_record *r, rtp_key k, double *out)
{
    return read_number(rtp_record_get(r, k), out) > 0 && isfinite(*out) && *out > 0;
}

/* Series key: the key fields' text, then (several price fields) 0x1e and
 * the field's index, so USD and JPY of one key are two series. */
static size_t series_key(const ind_ctx *c, char *buf, size_t len, uint32_t index)
{
    if (!c->prefixed) return len;
    buf[len] = 0x1e;
    memcpy(buf + len + 1, &index, sizeof index);
    return len + 1 + sizeof index;
}

static bool is_late(const ind_ctx *c, const ind_state *st, int64_t t)
{
    return c->late == LATE_DROP && t != 0 && st->count > 0 && t <= st->last_time;
}

/* With several series in one record, all are checked before any changes:
 * a record is late for all its series or for none. */
static bool any_late(ind_ctx *c, const rtp_record *r, char *kbuf, size_t klen, uint32_t n)
{
    if (c->late != LATE_DROP || r->time == 0) return false;
    for (uint32_t i = 0; i < n; i++) {
        const ind_state *st = rtp_map_find(c->series, kbuf, series_key(c, kbuf, klen, c->feeds[i].index));
        if (st && is_late(c, st, r->time)) return true;
    }
    return false;
}

/* ---- writing indicators -------------------------------------------------------------- */

static bool has_output_field(const ind_ctx *c, const rtp_record *r)
{
    for (uint32_t i = 0; i < r->nfields; i++)
        if (r->fields[i].key < c->n_info && (c->info[r->fields[i].key].flags & KEY_OUTPUT)) return true;
    return false;
}

/* Appends the warm indicators into the room rtp_record_reserve made; replaces
 * instead when the record may already hold a field of that name
 * (indicators computed twice, names that collide), at a scan per field. */
static void write_outputs(rtp_batch *b, rtp_record *r, const price_field *pf, uint32_t mask, const double *v,
                          bool replace)
{
    while (mask) {
        int s = __builtin_ctz(mask);
        mask &= mask - 1;
        rtp_field *f = replace ? rtp_record_put(b, r, pf->out[s]) : &r->fields[r->nfields++];
        f->key = pf->out[s];
        f->len = 0;
        f->type = RTP_DOUBLE;
        f->v.d = v[s];
    }
}

static int64_t utc_day(int64_t ns)
{
    return ns >= 0 ? ns / NS_PER_DAY : -((-ns - 1) / NS_PER_DAY) - 1;
}

/* ---- the hot path -------------------------------------------------------------------- */

typedef struct batch_counts {
    uint64_t late, bad, no_key;
} batch_counts;

static void update_series(ind_ctx *c, rtp_batch *b, rtp_record *r, const pending *p, ind_input *in,
                          ind_state *st, bool replace)
{
    double out[IND_NSLOTS];
    in->price = p->price;
    if (c->cfg.vwap) {
        double hi, lo;
        in->typical = positive(r, c->k_high, &hi) && positive(r, c->k_low, &lo) ? (hi + lo + p->price) / 3.0
                                                                                  : p->price;
    }
    uint32_t mask = ind_update(&c->cfg, st, in, out);
    if (r->time > st->last_time) st->last_time = r->time;
    write_outputs(b, r, &c->pf[p->index], mask, out, replace);
}

static void process_record(ind_ctx *c, rtp_batch *b, rtp_record *r, batch_counts *bc)
{
    char kbuf[MAX_KEY_BYTES + 8];
    uint32_t n = collect(c, r, &bc->bad);
    if (!n) return;
    int klen = rtp_record_key(r, c->keys, c->key.n, kbuf, MAX_KEY_BYTES);
    if (klen < 0) {
        bc->no_key++;
        return;
    }
    if (n > 1 && any_late(c, r, kbuf, (size_t)klen, n)) {
        r->flags |= RTP_RECORD_DROPPED;
        bc->late++;
        return;
    }
    ind_input in = {0};
    in.has_volume = (c->cfg.volume_avg || c->cfg.vwap) && take_volume(c, r, &in.volume, &bc->bad);
    in.day = utc_day(r->time);
    bool replace = c->collide || has_output_field(c, r);
    rtp_record_reserve(b, r, n * (uint32_t)__builtin_popcount(c->cfg.enabled));
    for (uint32_t i = 0; i < n; i++) {
        bool created;
        size_t len = series_key(c, kbuf, (size_t)klen, c->feeds[i].index);
        ind_state *st = rtp_map_get(c->series, kbuf, len, &created);
        if (created) {
            ind_state_init(&c->cfg, st);
        } else if (n == 1 && is_late(c, st, r->time)) {
            r->flags |= RTP_RECORD_DROPPED;
            bc->late++;
            return;
        }
        update_series(c, b, r, &c->feeds[i], &in, st, replace);
    }
}

static void ind_process(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    ind_ctx *c = ctx;
    batch_counts bc = {0, 0, 0};
    size_t count = rtp_batch_count(b);
    for (size_t i = 0; i < count; i++) {
        rtp_record *r = rtp_batch_record(b, i);
        if (!(r->flags & RTP_RECORD_DROPPED)) process_record(c, b, r, &bc);
    }
    uint64_t ev = rtp_map_evictions(c->series);
    if (bc.late) rtp_metric_add(c->m_late, bc.late);
    if (bc.bad) rtp_metric_add(c->m_bad, bc.bad);
    if (bc.no_key) rtp_metric_add(c->m_no_key, bc.no_key);
    if (ev != c->evictions_seen) rtp_metric_add(c->m_evicted, ev - c->evictions_seen);
    c->evictions_seen = ev;
    rtp_metric_set(c->m_series, (int64_t)rtp_map_count(c->series));
}

static void ind_destroy(rtp_instance *ins, void *ctx)
{
    ind_ctx *c = ctx;
    rtp_map_free(c->series);
    free(c->keys);
    free(c->pf);
    free(c->info);
    free(c->feeds);
}

RTP_PLUGIN_DEFINE(.kind = RTP_FILTER, .name = "indicators",
                  .description = "adds technical indicators per series (SMA, EMA, RSI, MACD, Bollinger, "
                                 "volatility, % change, average volume, VWAP), O(1) per record",
                  .options = ind_options, .ctx_size = sizeof(ind_ctx), .init = ind_init, .process = ind_process,
                  .destroy = ind_destroy);
