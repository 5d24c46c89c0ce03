/* filter_anomaly — the arithmetic of the rules, free of the SDK.
 *
 * Everything here is pure (no engine, no allocation) so that the unit tests
 * can include anomaly_stats.c and check the formulas on hand-made numbers.
 * docs/anomaly.md gives the same formulas for users. */
#ifndef RTP_ANOMALY_STATS_H
#define RTP_ANOMALY_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest window a series may keep: the robust z-score copies and
 * partially sorts the window on every record, so its cost is O(window). */
#define ANOM_MAX_WINDOW 1000

/* The last `cap` values of a series in a ring, with their running sum and
 * sum of squares for O(1) mean and variance. Running sums drift as values
 * are added and removed, so they are recomputed exactly from the ring each
 * time it wraps: the drift never outlives one window, at an amortised cost
 * of one extra addition per value. `v` points to cap doubles the caller
 * owns (in filter_anomaly, the tail of the series' map entry). */
typedef struct anom_window {
    double *v;
    uint32_t cap;
    uint32_t n;    /* values held, up to cap */
    uint32_t head; /* slot the next value goes to */
    double sum, sumsq;
} anom_window;

void anom_window_init(anom_window *w, double *storage, uint32_t cap);
void anom_window_push(anom_window *w, double x);
static inline bool anom_window_full(const anom_window *w) { return w->n == w->cap; }

/* Simple return cur/prev - 1. False (and *ret untouched) unless both prices
 * are finite and positive and the quotient is finite: such a value must not
 * reach a series' state. */
bool anom_simple_return(double prev, double cur, double *ret);

/* z = (x - mean) / s over the values in the window, s the sample standard
 * deviation (n - 1). False when the window is not full or its variance is
 * zero (or within the rounding error of the running sums), so a constant
 * series never yields an infinite or NaN z. */
bool anom_zscore(const anom_window *w, double x, double *z);

/* Median of v[0..n), n > 0. Reorders v (quickselect: O(n) on average). */
double anom_median(double *v, size_t n);

/* Iglewicz and Hoaglin's modified z = 0.6745 (x - median) / MAD, with MAD
 * the median of |v_i - median| over the window. scratch holds cap doubles.
 * False when the window is not full or MAD is zero. O(window). */
bool anom_robust_zscore(const anom_window *w, double x, double *scratch, double *z);

/* Severities, in the order they are printed. */
typedef enum anom_severity { ANOM_LOW = 0, ANOM_MEDIUM, ANOM_HIGH } anom_severity;
const char *anom_severity_name(anom_severity s);

/* The severity of a non-pct rule from its score (value / threshold, >= 1 when
 * the rule fired): medium, or high from 1.5 times the threshold. The RSI rule
 * is one step lower (low / medium): an overbought reading is a state, not an
 * abnormal move. */
#define ANOM_HIGH_SCORE 1.5
anom_severity anom_score_severity(double score, bool rsi);

/* RSI score: how far the reading is from the neutral 50, in units of the
 * threshold's distance from 50 (1 at the threshold, 2 at 90 for 70/30).
 * Positive for overbought (rsi >= hi), and for oversold (rsi <= lo) too. */
double anom_rsi_score(double rsi, double hi, double lo);

#endif
