/* filter_anomaly: per-series alert rules on price and volume streams.
 *
 * A series is one value of `key` (possibly composite) times one value field,
 * so a wide file such as the ECB history (a column per currency) is checked
 * column by column without reshaping. For each record and each series the
 * enabled rules are evaluated against the series' state (its previous value
 * and a ring of its last `window` returns or volumes); each rule that fires
 * appends an alert record to a batch derived from the one being processed,
 * under `alert_tag`, so the source batch is acknowledged only once its alerts
 * are delivered too.
 *
 * Volume and RSI are properties of the record's key, not of a value field, so
 * they are series of their own (series = the volume or RSI field's name):
 * checking `value_field = open, close` does not report a volume spike twice.
 *
 * Cost per record: the key is built once, each series costs one map lookup
 * and O(1) arithmetic, except the robust z-score which partially sorts a copy
 * of the window (O(window), window <= 1000). Nothing is allocated per record;
 * a series' ring lives inside its map entry. docs/anomaly.md is the user's
 * description of every rule, formula, severity and output field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <rtproc/rtproc.h>
#include <rtproc/text.h>

#include "anomaly_stats.h"

enum rule { R_PCT, R_VOLUME, R_Z, R_ROBUST, R_RSI, R_COUNT };
static const char *const rule_names[R_COUNT] = {"pct_change", "volume_spike", "zscore", "robust_zscore", "rsi"};
#define BIT(r) (1u << (r))

/* What a map entry stands for; part of its key, so that a field used both
 * as a value and as the volume gets two independent series. */
enum series_kind { KIND_VALUE = 'v', KIND_VOLUME = 'q', KIND_RSI = 'r' };

#define KEY_CAP 256    /* composite key text + kind byte + field id */
#define KEY_SUFFIX 5   /* kind byte + 4-byte field id */
#define FLAGGED_CAP 256

typedef struct series {
    anom_window w; /* returns (value series) or volumes (volume series) */
    double prev;   /* last good value (value series) */
    bool has_prev;
    uint8_t alerted; /* bit per rule: last_alert[rule] is set */
    int64_t last_alert[R_COUNT];
    double ring[]; /* w.v points here: `window` doubles when a rule needs them */
} series;

typedef struct anomaly_ctx {
    /* options */
    rtp_strlist key, value_field, exclude, rsi_field, pct_change, rsi;
    char *volume_field, *alert_tag;
    double volume_spike, zscore, robust_zscore, min_pct;
    int64_t window, max_series, cooldown_ms;
    bool annotate;

    rtp_instance *ins;
    unsigned rules; /* BIT(rule) for each enabled rule */
    double pct_medium, pct_high, rsi_hi, rsi_lo;
    int64_t cooldown_ns;
    rtp_key *keys, *values, *rsi_keys, *excluded;
    rtp_key volume_key;
    bool all_values;   /* value_field = * */
    uint8_t *kclass;   /* value_field = *: per field id, 0 unknown, 1 series, 2 not */
    size_t nkclass;
    uint32_t ring_len; /* doubles per series ring: window, or 0 if no rule needs one */
    rtp_map *series;
    double *scratch; /* window doubles for the robust z-score's median */
    uint64_t evictions_seen;

    rtp_key k_series, k_rule, k_value, k_threshold, k_score, k_severity, k_time, k_detected;
    rtp_key k_anomaly, k_anomaly_rules, k_anomaly_series;
    rtp_metric *m_alerts[R_COUNT], *m_bad, *m_suppressed, *m_evicted, *m_series;
} anomaly_ctx;

/* Work on one record of one batch. */
typedef struct pass {
    rtp_batch *src, *alerts;
    int64_t now; /* wall clock, read once per batch at its first alert */
    rtp_record *r;
    char key[KEY_CAP];
    size_t klen; /* bytes of composite key text in key */
    unsigned fired;
    char flagged[FLAGGED_CAP]; /* series names that alerted, for annotate */
    size_t nflagged;
} pass;

#define OFF(f) offsetof(anomaly_ctx, f)
static const rtp_option anomaly_options[] = {
    {"key", RTP_OPT_LIST, NULL, 0, OFF(key),
     "field(s) naming a series (several make a composite key); empty: the whole stream is one series", NULL},
    {"value_field", RTP_OPT_LIST, "close", 0, OFF(value_field),
     "numeric field(s) checked, each its own series; *: every int or double field except key, volume_field, "
     "rsi_field, exclude and time-like names (date, time, datetime, ts, timestamp*, epoch*, *_time, "
     "*_at, *_ts, *_date)", NULL},
    {"exclude", RTP_OPT_LIST, NULL, 0, OFF(exclude), "fields value_field = * leaves out", NULL},
    {"volume_field", RTP_OPT_STR, "volume", 0, OFF(volume_field), "volume read by the volume_spike rule", NULL},
    {"rsi_field", RTP_OPT_LIST, "rsi_14", 0, OFF(rsi_field),
     "RSI field(s) read by the rsi rule (as filter_indicators adds them); absent while warming up", NULL},
    {"pct_change", RTP_OPT_LIST, NULL, 0, OFF(pct_change),
     "medium[,high]: alert when |percent move vs the previous value| >= medium; high severity from high "
     "(default 2 x medium); unset: rule off", NULL},
    {"volume_spike", RTP_OPT_DOUBLE, "0", 0, OFF(volume_spike),
     "alert when volume > this percent of the mean of the previous `window` volumes; 0: off", NULL},
    {"zscore", RTP_OPT_DOUBLE, "0", 0, OFF(zscore),
     "alert when |z| >= this, z of the return vs mean and sample std of the previous `window` returns; 0: off",
     NULL},
    {"robust_zscore", RTP_OPT_DOUBLE, "0", 0, OFF(robust_zscore),
     "alert when |0.6745 (r - median) / MAD| >= this over the previous `window` returns; 0: off", NULL},
    {"rsi", RTP_OPT_LIST, NULL, 0, OFF(rsi),
     "overbought,oversold: alert when rsi_field >= overbought or <= oversold; unset: rule off", NULL},
    {"window", RTP_OPT_INT, "20", 0, OFF(window),
     "previous records the zscore, robust_zscore and volume_spike rules compare with (2..1000)", NULL},
    {"min_pct", RTP_OPT_DOUBLE, "0", 0, OFF(min_pct),
     "zscore and robust_zscore alerts also need |percent move| >= this (quiets pegged currencies)", NULL},
    {"cooldown", RTP_OPT_DURATION, "0s", 0, OFF(cooldown_ms),
     "after an alert, no other alert of the same series and rule until this much event time has passed", NULL},
    {"annotate", RTP_OPT_BOOL, "false", 0, OFF(annotate),
     "also mark each record: anomaly (bool), and when true anomaly_rules and anomaly_series", NULL},
    {"alert_tag", RTP_OPT_STR, "alerts", 0, OFF(alert_tag), "tag of the alert records", NULL},
    {"max_series", RTP_OPT_INT, "100000", 0, OFF(max_series),
     "series kept; past it the least recently updated one is forgotten", NULL},
    RTP_OPT_END};

/* ---- configuration ---------------------------------------------------------- */

static int parse_numbers(anomaly_ctx *c, const char *opt, const rtp_strlist *l, double *out, size_t min,
                         size_t max)
{
    if (l->n < min || l->n > max) {
        rtp_config_error(c->ins, opt, "expected %zu%s number%s, got %zu", min, max > min ? " or 2" : "",
                         max > 1 ? "s" : "", l->n);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        if (rtp_parse_double(l->v[i], strlen(l->v[i]), &out[i]) < 0 || !isfinite(out[i]) || out[i] <= 0) {
            rtp_config_error(c->ins, opt, "'%s' is not a positive number", l->v[i]);
            return -1;
        }
    return 0;
}

static int parse_pct_rule(anomaly_ctx *c)
{
    double t[2];
    if (c->pct_change.n == 0) return 0;
    if (parse_numbers(c, "pct_change", &c->pct_change, t, 1, 2) < 0) return -1;
    c->pct_medium = t[0];
    c->pct_high = c->pct_change.n == 2 ? t[1] : 2 * t[0];
    if (c->pct_high < c->pct_medium) {
        rtp_config_error(c->ins, "pct_change", "the high threshold (%g) is below the medium one (%g)",
                         c->pct_high, c->pct_medium);
        return -1;
    }
    c->rules |= BIT(R_PCT);
    return 0;
}

static int parse_rsi_rule(anomaly_ctx *c)
{
    double t[2];
    if (c->rsi.n == 0) return 0;
    if (parse_numbers(c, "rsi", &c->rsi, t, 2, 2) < 0) return -1;
    if (!(t[0] > 50 && t[0] <= 100 && t[1] < 50)) {
        rtp_config_error(c->ins, "rsi", "expected overbought in (50, 100] then oversold in (0, 50), got %g,%g",
                         t[0], t[1]);
        return -1;
    }
    c->rsi_hi = t[0];
    c->rsi_lo = t[1];
    c->rules |= BIT(R_RSI);
    return 0;
}

/* A rule given as one number: 0 disables it, anything else must be positive. */
static int parse_single_rule(anomaly_ctx *c, const char *opt, double v, enum rule r)
{
    if (!isfinite(v) || v < 0) {
        rtp_config_error(c->ins, opt, "must be a positive number (0: off), not %g", v);
        return -1;
    }
    if (v > 0) c->rules |= BIT(r);
    return 0;
}

static int parse_rules(anomaly_ctx *c)
{
    if (parse_pct_rule(c) < 0 || parse_rsi_rule(c) < 0 ||
        parse_single_rule(c, "volume_spike", c->volume_spike, R_VOLUME) < 0 ||
        parse_single_rule(c, "zscore", c->zscore, R_Z) < 0 ||
        parse_single_rule(c, "robust_zscore", c->robust_zscore, R_ROBUST) < 0)
        return -1;
    if (!c->rules) {
        rtp_config_error(c->ins, "pct_change",
                         "no rule enabled: set pct_change, volume_spike, zscore, robust_zscore or rsi");
        return -1;
    }
    return 0;
}

static int check_limits(anomaly_ctx *c)
{
    if (c->window < 2 || c->window > ANOM_MAX_WINDOW) {
        rtp_config_error(c->ins, "window", "must be between 2 and %d, not %lld", ANOM_MAX_WINDOW,
                         (long long)c->window);
        return -1;
    }
    if (!isfinite(c->min_pct) || c->min_pct < 0) {
        rtp_config_error(c->ins, "min_pct", "must be a percentage >= 0, not %g", c->min_pct);
        return -1;
    }
    if (c->max_series < 1) {
        rtp_config_error(c->ins, "max_series", "must be at least 1, not %lld", (long long)c->max_series);
        return -1;
    }
    if (c->cooldown_ms < 0 || c->cooldown_ms > INT64_MAX / 1000000) {
        rtp_config_error(c->ins, "cooldown", "out of range");
        return -1;
    }
    if (!c->alert_tag[0]) {
        rtp_config_error(c->ins, "alert_tag", "must not be empty");
        return -1;
    }
    return 0;
}

static rtp_key *intern_list(const rtp_strlist *l)
{
    rtp_key *k = rtp_xcalloc(l->n ? l->n : 1, sizeof *k);
    for (size_t i = 0; i < l->n; i++) k[i] = rtp_key_cstr(l->v[i]);
    return k;
}

static int resolve_fields(anomaly_ctx *c)
{
    if (c->value_field.n == 0) {
        rtp_config_error(c->ins, "value_field", "names no field");
        return -1;
    }
    c->all_values = strcmp(c->value_field.v[0], "*") == 0;
    if (c->all_values && c->value_field.n > 1) {
        rtp_config_error(c->ins, "value_field", "'*' already means every numeric field: list no other");
        return -1;
    }
    if ((c->rules & BIT(R_RSI)) && c->rsi_field.n == 0) {
        rtp_config_error(c->ins, "rsi_field", "the rsi rule needs a field to read");
        return -1;
    }
    c->keys = intern_list(&c->key);
    c->values = intern_list(&c->value_field);
    c->rsi_keys = intern_list(&c->rsi_field);
    c->excluded = intern_list(&c->exclude);
    c->volume_key = rtp_key_cstr(c->volume_field);
    return 0;
}

static void make_metrics(anomaly_ctx *c)
{
    char name[64];
    for (int r = 0; r < R_COUNT; r++) {
        if (!(c->rules & BIT(r))) continue;
        snprintf(name, sizeof name, "alerts_%s", rule_names[r]);
        c->m_alerts[r] = rtp_metric_counter(c->ins, name, "alerts emitted by this rule");
    }
    c->m_bad = rtp_metric_counter(c->ins, "bad_values",
                                  "values skipped: missing, null, non-numeric, NaN/Inf, price <= 0, volume < 0");
    c->m_suppressed = rtp_metric_counter(c->ins, "alerts_suppressed", "alerts held back by cooldown");
    c->m_evicted = rtp_metric_counter(c->ins, "series_evicted", "series forgotten past max_series");
    c->m_series = rtp_metric_gauge(c->ins, "series", "series held");
}

static void intern_output_keys(anomaly_ctx *c)
{
    c->k_series = rtp_key_cstr("series");
    c->k_rule = rtp_key_cstr("rule");
    c->k_value = rtp_key_cstr("value");
    c->k_threshold = rtp_key_cstr("threshold");
    c->k_score = rtp_key_cstr("score");
    c->k_severity = rtp_key_cstr("severity");
    c->k_time = rtp_key_cstr("time");
    c->k_detected = rtp_key_cstr("detected_at");
    c->k_anomaly = rtp_key_cstr("anomaly");
    c->k_anomaly_rules = rtp_key_cstr("anomaly_rules");
    c->k_anomaly_series = rtp_key_cstr("anomaly_series");
}

static int anomaly_init(rtp_instance *ins, void *ctx)
{
    anomaly_ctx *c = ctx;
    c->ins = ins;
    if (parse_rules(c) < 0 || check_limits(c) < 0 || resolve_fields(c) < 0) return -1;
    c->cooldown_ns = c->cooldown_ms * 1000000;
    bool ringed = c->rules & (BIT(R_Z) | BIT(R_ROBUST) | BIT(R_VOLUME));
    c->ring_len = ringed ? (uint32_t)c->window : 0;
    c->scratch = rtp_xcalloc((size_t)c->window, sizeof *c->scratch);
    c->series = rtp_map_new(sizeof(series) + c->ring_len * sizeof(double), (size_t)c->max_series, NULL, NULL);
    intern_output_keys(c);
    make_metrics(c);
    return 0;
}

static void anomaly_destroy(rtp_instance *ins, void *ctx)
{
    anomaly_ctx *c = ctx;
    rtp_map_free(c->series);
    free(c->scratch);
    free(c->keys);
    free(c->values);
    free(c->rsi_keys);
    free(c->excluded);
    free(c->kclass);
}

/* ---- series -------------------------------------------------------------- */

static series *series_get(anomaly_ctx *c, pass *p, enum series_kind kind, rtp_key field)
{
    char *suffix = p->key + p->klen;
    suffix[0] = (char)kind;
    memcpy(suffix + 1, &field, sizeof field);
    bool created = false;
    series *s = rtp_map_get(c->series, p->key, p->klen + KEY_SUFFIX, &created);
    if (created && c->ring_len) anom_window_init(&s->w, s->ring, c->ring_len);
    return s;
}

/* A field's number when it is an int or a finite double. Strings, times,
 * bools and nulls are not values of a series. */
static bool read_number(const rtp_field *f, double *x)
{
    return f && f->type != RTP_TIME && rtp_field_number(f, x) && isfinite(*x);
}

static bool key_listed(rtp_key k, const rtp_key *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == k) return true;
    return false;
}

/* Names that hold a time (an epoch column is an int, but not a price). */
static bool time_like(const char *name)
{
    static const char *const names[] = {"date", "time", "datetime", "ts"};
    static const char *const prefixes[] = {"timestamp", "epoch"};
    static const char *const suffixes[] = {"_time", "_at", "_ts", "_date"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcasecmp(name, names[i]) == 0) return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0) return true;
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t m = strlen(suffixes[i]);
        if (n > m && strcasecmp(name + n - m, suffixes[i]) == 0) return true;
    }
    return false;
}

static bool classify(const anomaly_ctx *c, rtp_key k)
{
    if (key_listed(k, c->keys, c->key.n) || key_listed(k, c->rsi_keys, c->rsi_field.n) ||
        key_listed(k, c->excluded, c->exclude.n) || k == c->volume_key)
        return false;
    return !time_like(rtp_key_name(k, NULL));
}

/* value_field = *: whether field k is a series, decided once per field name. */
static bool is_value_field(anomaly_ctx *c, rtp_key k)
{
    if (k >= c->nkclass) {
        size_t n = (size_t)k * 2 + 64;
        uint8_t *grown = rtp_xrealloc(c->kclass, n);
        memset(grown + c->nkclass, 0, n - c->nkclass);
        c->kclass = grown;
        c->nkclass = n;
    }
    if (!c->kclass[k]) c->kclass[k] = classify(c, k) ? 1 : 2;
    return c->kclass[k] == 1;
}

/* ---- alerts ---------------------------------------------------------------- */

static int64_t wall_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Cooldown, on event time: a later alert of the same series and rule waits
 * until cooldown has passed since the last one emitted. An event time that
 * goes backwards is inside the cooldown. */
static bool cooling_down(const anomaly_ctx *c, const series *s, enum rule r, int64_t t)
{
    if (c->cooldown_ns <= 0 || !(s->alerted & BIT(r))) return false;
    int64_t last = s->last_alert[r];
    return t < last || (uint64_t)t - (uint64_t)last < (uint64_t)c->cooldown_ns;
}

static void copy_keys(const anomaly_ctx *c, rtp_batch *a, rtp_record *o, const rtp_record *r)
{
    for (size_t i = 0; i < c->key.n; i++) {
        const rtp_field *f = rtp_record_get(r, c->keys[i]); /* present: the key was built from it */
        rtp_field *g = rtp_record_add(a, o, c->keys[i]);
        *g = *f;
        if (f->type == RTP_STRING) g->v.s = rtp_batch_strdup(a, f->v.s, f->len); /* src may die first */
    }
}

static void note_flagged(pass *p, rtp_key field)
{
    size_t len;
    const char *name = rtp_key_name(field, &len);
    if (p->nflagged + len + 1 >= FLAGGED_CAP) return; /* a record with that many alerts lists the first */
    if (p->nflagged) p->flagged[p->nflagged++] = ',';
    memcpy(p->flagged + p->nflagged, name, len);
    p->nflagged += len;
}

typedef struct finding {
    enum rule rule;
    rtp_key field; /* the series' field: value, volume or RSI field */
    double value, threshold, score;
    anom_severity severity;
} finding;

static void write_alert(anomaly_ctx *c, pass *p, const finding *fd)
{
    if (!p->alerts) {
        p->alerts = rtp_filter_derive(c->ins, p->src, c->alert_tag);
        p->now = wall_clock_ns();
    }
    rtp_batch *a = p->alerts;
    rtp_record *o = rtp_batch_append(a, (uint32_t)c->key.n + 9);
    o->time = p->r->time;
    copy_keys(c, a, o, p->r);
    size_t len;
    const char *name = rtp_key_name(fd->field, &len); /* interned names live as long as the process */
    const char *sev = anom_severity_name(fd->severity);
    rtp_record_set_str_ref(a, o, c->k_series, name, len);
    rtp_record_set_str_ref(a, o, c->k_rule, rule_names[fd->rule], strlen(rule_names[fd->rule]));
    rtp_record_set_double(a, o, c->k_value, fd->value);
    rtp_record_set_double(a, o, c->k_threshold, fd->threshold);
    rtp_record_set_double(a, o, c->k_score, fd->score);
    rtp_record_set_str_ref(a, o, c->k_severity, sev, strlen(sev));
    rtp_record_set_time(a, o, c->k_time, p->r->time);
    rtp_record_set_time(a, o, c->k_detected, p->now);
}

/* Emits the finding unless its series and rule are cooling down. */
static void alert(anomaly_ctx *c, pass *p, series *s, const finding *fd)
{
    int64_t t = p->r->time;
    if (cooling_down(c, s, fd->rule, t)) {
        rtp_metric_add(c->m_suppressed, 1);
        return;
    }
    s->alerted |= (uint8_t)BIT(fd->rule);
    s->last_alert[fd->rule] = t;
    write_alert(c, p, fd);
    rtp_metric_add(c->m_alerts[fd->rule], 1);
    p->fired |= BIT(fd->rule);
}

/* ---- rules on a value series ----------------------------------------------- */

static bool rule_pct(const anomaly_ctx *c, double pct, finding *fd)
{
    double a = fabs(pct);
    if (a < c->pct_medium) return false;
    *fd = (finding){R_PCT, 0, pct, c->pct_medium, a / c->pct_medium, a >= c->pct_high ? ANOM_HIGH : ANOM_MEDIUM};
    return true;
}

/* zscore and robust_zscore: |z| >= threshold, and |pct| >= min_pct. */
static bool rule_z(const anomaly_ctx *c, enum rule r, double z, double pct, finding *fd)
{
    double t = r == R_Z ? c->zscore : c->robust_zscore;
    if (fabs(z) < t || fabs(pct) < c->min_pct) return false;
    double score = fabs(z) / t;
    *fd = (finding){r, 0, z, t, score, anom_score_severity(score, false)};
    return true;
}

static void report(anomaly_ctx *c, pass *p, series *s, rtp_key field, finding *fd, bool *any)
{
    fd->field = field;
    unsigned before = p->fired;
    alert(c, p, s, fd);
    if (p->fired != before) *any = true;
}

static void evaluate_return(anomaly_ctx *c, pass *p, series *s, rtp_key field, double ret)
{
    double pct = 100 * ret, z;
    finding fd;
    bool any = false;
    if ((c->rules & BIT(R_PCT)) && rule_pct(c, pct, &fd)) report(c, p, s, field, &fd, &any);
    if ((c->rules & BIT(R_Z)) && anom_zscore(&s->w, ret, &z) && rule_z(c, R_Z, z, pct, &fd))
        report(c, p, s, field, &fd, &any);
    if ((c->rules & BIT(R_ROBUST)) && anom_robust_zscore(&s->w, ret, c->scratch, &z) &&
        rule_z(c, R_ROBUST, z, pct, &fd))
        report(c, p, s, field, &fd, &any);
    if (any) note_flagged(p, field);
}

static void check_value(anomaly_ctx *c, pass *p, rtp_key field, const rtp_field *f)
{
    double x, ret;
    if (!read_number(f, &x) || !isnormal(x) || x <= 0) {
        rtp_metric_add(c->m_bad, 1); /* the series does not see it */
        return;
    }
    series *s = series_get(c, p, KIND_VALUE, field);
    if (!s->has_prev) {
        s->prev = x;
        s->has_prev = true;
        return;
    }
    if (!anom_simple_return(s->prev, x, &ret)) {
        /* both prices are fine but their ratio overflows (1e-300 then 1e300):
         * count it and restart from x, or the series would be stuck for ever */
        rtp_metric_add(c->m_bad, 1);
        s->prev = x;
        return;
    }
    evaluate_return(c, p, s, field, ret);
    if (c->rules & (BIT(R_Z) | BIT(R_ROBUST))) anom_window_push(&s->w, ret);
    s->prev = x;
}

static void check_values(anomaly_ctx *c, pass *p)
{
    const rtp_record *r = p->r;
    if (!c->all_values) {
        for (size_t i = 0; i < c->value_field.n; i++) check_value(c, p, c->values[i], rtp_record_get(r, c->values[i]));
        return;
    }
    /* *: nulls and strings in a numeric column (the ECB's N/A) are gaps, not errors */
    for (uint32_t i = 0; i < r->nfields; i++) {
        const rtp_field *f = &r->fields[i];
        if ((f->type == RTP_INT || f->type == RTP_DOUBLE) && is_value_field(c, f->key)) check_value(c, p, f->key, f);
    }
}

/* ---- volume and RSI --------------------------------------------------------- */

static void check_volume(anomaly_ctx *c, pass *p)
{
    double v;
    if (!read_number(rtp_record_get(p->r, c->volume_key), &v) || v < 0) {
        rtp_metric_add(c->m_bad, 1);
        return;
    }
    series *s = series_get(c, p, KIND_VOLUME, c->volume_key);
    double mean = anom_window_full(&s->w) ? s->w.sum / s->w.n : 0;
    /* mean 0: a series of zero volumes (indices) has no spike to measure */
    if (mean > 0 && v > c->volume_spike / 100 * mean) {
        double ratio = 100 * v / mean, score = ratio / c->volume_spike;
        finding fd = {R_VOLUME, c->volume_key, ratio, c->volume_spike, score, anom_score_severity(score, false)};
        bool any = false;
        report(c, p, s, c->volume_key, &fd, &any);
        if (any) note_flagged(p, c->volume_key);
    }
    anom_window_push(&s->w, v);
}

static void check_rsi(anomaly_ctx *c, pass *p, rtp_key field)
{
    const rtp_field *f = rtp_record_get(p->r, field);
    double x;
    if (!f || f->type == RTP_NULL) return; /* not there yet: the indicator is warming up */
    if (!read_number(f, &x) || x < 0 || x > 100) {
        rtp_metric_add(c->m_bad, 1);
        return;
    }
    if (x < c->rsi_hi && x > c->rsi_lo) return;
    double score = anom_rsi_score(x, c->rsi_hi, c->rsi_lo);
    finding fd = {R_RSI, field, x, x >= c->rsi_hi ? c->rsi_hi : c->rsi_lo, score, anom_score_severity(score, true)};
    bool any = false;
    report(c, p, series_get(c, p, KIND_RSI, field), field, &fd, &any);
    if (any) note_flagged(p, field);
}

/* ---- records ----------------------------------------------------------------- */

static void rules_text(unsigned fired, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int r = 0; r < R_COUNT; r++)
        if (fired & BIT(r)) n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "", rule_names[r]);
}

static void annotate(anomaly_ctx *c, pass *p)
{
    rtp_record_set_bool(p->src, p->r, c->k_anomaly, p->fired != 0);
    if (!p->fired) return;
    char rules[96];
    rules_text(p->fired, rules, sizeof rules);
    rtp_record_set_str(p->src, p->r, c->k_anomaly_rules, rules, strlen(rules));
    rtp_record_set_str(p->src, p->r, c->k_anomaly_series, p->flagged, p->nflagged);
}

static void check_record(anomaly_ctx *c, pass *p)
{
    p->fired = 0;
    p->nflagged = 0;
    int klen = rtp_record_key(p->r, c->keys, c->key.n, p->key, KEY_CAP - KEY_SUFFIX);
    if (klen < 0) {
        rtp_metric_add(c->m_bad, 1); /* a key field is missing, null or too long */
    } else {
        p->klen = (size_t)klen;
        if (c->rules & (BIT(R_PCT) | BIT(R_Z) | BIT(R_ROBUST))) check_values(c, p);
        if (c->rules & BIT(R_VOLUME)) check_volume(c, p);
        if (c->rules & BIT(R_RSI))
            for (size_t i = 0; i < c->rsi_field.n; i++) check_rsi(c, p, c->rsi_keys[i]);
    }
    if (c->annotate) annotate(c, p);
}

static void anomaly_process(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    anomaly_ctx *c = ctx;
    pass p = {.src = b};
    size_t n = rtp_batch_count(b);
    for (size_t i = 0; i < n; i++) {
        p.r = rtp_batch_record(b, i);
        if (!(p.r->flags & RTP_RECORD_DROPPED)) check_record(c, &p);
    }
    uint64_t ev = rtp_map_evictions(c->series);
    rtp_metric_add(c->m_evicted, ev - c->evictions_seen);
    c->evictions_seen = ev;
    rtp_metric_set(c->m_series, (int64_t)rtp_map_count(c->series));
}

RTP_PLUGIN_DEFINE(.kind = RTP_FILTER, .name = "anomaly",
                  .description = "per-series alert rules: percent moves, volume spikes, z-scores (plain and "
                                 "robust), RSI extremes; alerts are records under alert_tag",
                  .options = anomaly_options, .ctx_size = sizeof(anomaly_ctx), .init = anomaly_init,
                  .process = anomaly_process, .destroy = anomaly_destroy);
