/* filter_anomaly — rings, returns, z-scores and medians (see anomaly_stats.h). */
#include "anomaly_stats.h"

#include <float.h>
#include <math.h>
#include <string.h>

void anom_window_init(anom_window *w, double *storage, uint32_t cap)
{
    memset(w, 0, sizeof *w);
    w->v = storage;
    w->cap = cap;
}

static void window_resum(anom_window *w)
{
    double s = 0, q = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        s += w->v[i];
        q += w->v[i] * w->v[i];
    }
    w->sum = s;
    w->sumsq = q;
}

void anom_window_push(anom_window *w, double x)
{
    if (w->n == w->cap) {
        double old = w->v[w->head];
        w->sum -= old;
        w->sumsq -= old * old;
    } else {
        w->n++;
    }
    w->v[w->head] = x;
    w->sum += x;
    w->sumsq += x * x;
    if (++w->head == w->cap) {
        w->head = 0;
        window_resum(w); /* drop whatever rounding the subtractions left */
    }
}

bool anom_simple_return(double prev, double cur, double *ret)
{
    if (!isfinite(prev) || !isfinite(cur) || prev <= 0 || cur <= 0) return false;
    double r = cur / prev - 1.0; /* a subnormal prev can overflow the quotient */
    if (!isfinite(r)) return false;
    *ret = r;
    return true;
}

bool anom_zscore(const anom_window *w, double x, double *z)
{
    if (!anom_window_full(w) || w->n < 2) return false;
    double n = w->n;
    double mean = w->sum / n;
    double ss = w->sumsq - w->sum * mean; /* n times the population variance */
    /* sumsq - sum*mean cancels badly when the values are (nearly) equal; its
     * rounding error is a few n·eps·sumsq, so anything below that is a
     * constant series, not a tiny variance to divide by. */
    if (!(ss > 8.0 * n * DBL_EPSILON * w->sumsq)) return false;
    double sd = sqrt(ss / (n - 1));
    double v = (x - mean) / sd;
    if (!isfinite(v)) return false;
    *z = v;
    return true;
}

static void swap(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* Puts the k-th smallest of v[lo..hi] at v[k], smaller ones before it and
 * larger ones after (Hoare's selection with a median-of-three pivot). */
static void select_kth(double *v, size_t lo, size_t hi, size_t k)
{
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo]) swap(&v[mid], &v[lo]);
        if (v[hi] < v[lo]) swap(&v[hi], &v[lo]);
        if (v[hi] < v[mid]) swap(&v[hi], &v[mid]);
        double pivot = v[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                swap(&v[i], &v[j]);
                i++;
                if (j == 0) break;
                j--;
            }
        }
        /* now v[lo..j] <= pivot <= v[i..hi], and j < i */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return; /* v[j+1..i-1] all equal the pivot */
    }
}

double anom_median(double *v, size_t n)
{
    size_t k = n / 2;
    select_kth(v, 0, n - 1, k);
    if (n % 2) return v[k];
    /* even n: the mean of the two middle values; the lower one is the
     * largest of v[0..k), all of which are <= v[k] after the selection */
    double lower = v[0];
    for (size_t i = 1; i < k; i++)
        if (v[i] > lower) lower = v[i];
    return (lower + v[k]) / 2;
}

bool anom_robust_zscore(const anom_window *w, double x, double *scratch, double *z)
{
    if (!anom_window_full(w) || w->n == 0) return false;
    size_t n = w->n;
    memcpy(scratch, w->v, n * sizeof *scratch);
    double med = anom_median(scratch, n);
    for (size_t i = 0; i < n; i++) scratch[i] = fabs(w->v[i] - med);
    double mad = anom_median(scratch, n);
    if (!(mad > 0)) return false; /* more than half the window equals the median */
    double v = 0.6745 * (x - med) / mad;
    if (!isfinite(v)) return false;
    *z = v;
    return true;
}

const char *anom_severity_name(anom_severity s)
{
    static const char *const names[] = {"low", "medium", "high"};
    return names[s];
}

anom_severity anom_score_severity(double score, bool rsi)
{
    anom_severity s = score >= ANOM_HIGH_SCORE ? ANOM_HIGH : ANOM_MEDIUM;
    return rsi ? (anom_severity)(s - 1) : s;
}

double anom_rsi_score(double rsi, double hi, double lo)
{
    if (rsi >= hi) return (rsi - 50) / (hi - 50);
    return (50 - rsi) / (50 - lo);
}
