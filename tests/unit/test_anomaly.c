/* filter_anomaly's arithmetic: returns, rings, z-scores, medians and MAD,
 * severities; checked against hand-computed values and brute force. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "../../plugins/filter_anomaly/anomaly_stats.c"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sorted_median(const double *v, size_t n)
{
    double *s = malloc(n * sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static void fill(anom_window *w, double *storage, uint32_t cap, const double *v, size_t n)
{
    anom_window_init(w, storage, cap);
    for (size_t i = 0; i < n; i++) anom_window_push(w, v[i]);
}

Test(returns, simple_return_and_rejections)
{
    double r = 42;
    cr_assert(anom_simple_return(100, 105, &r));
    cr_assert_float_eq(r, 0.05, 1e-15);
    cr_assert(anom_simple_return(1.2010, 1.0280, &r));
    cr_assert_float_eq(r * 100, -14.404662781, 1e-8, "the franc on 2015-01-15");
    r = 42;
    cr_assert_not(anom_simple_return(0, 1, &r));
    cr_assert_not(anom_simple_return(1, 0, &r));
    cr_assert_not(anom_simple_return(-1, 1, &r));
    cr_assert_not(anom_simple_return(NAN, 1, &r));
    cr_assert_not(anom_simple_return(1, INFINITY, &r));
    cr_assert_not(anom_simple_return(1e-300, 1e300, &r), "an overflowing ratio is not a return");
    cr_assert_eq(r, 42, "a refused return leaves the output alone");
}

Test(window, ring_keeps_the_last_cap_values)
{
    double st[3], v[] = {1, 2, 3, 4, 5};
    anom_window w;
    fill(&w, st, 3, v, 2);
    cr_assert_not(anom_window_full(&w));
    cr_assert_float_eq(w.sum, 3, 0);
    anom_window_push(&w, 3);
    anom_window_push(&w, 4);
    anom_window_push(&w, 5);
    cr_assert(anom_window_full(&w));
    cr_assert_float_eq(w.sum, 12, 0);
    cr_assert_float_eq(w.sumsq, 9 + 16 + 25, 0);
}

Test(window, running_sums_do_not_drift)
{
    /* a million pushes of values with very different magnitudes, then the
     * sums must equal a recomputation from the ring */
    double st[20];
    anom_window w;
    anom_window_init(&w, st, 20);
    srand(7);
    for (int i = 0; i < 1000003; i++) anom_window_push(&w, (i % 97 == 0 ? 1e6 : 1e-4) * (rand() / (double)RAND_MAX - 0.5));
    double s = 0, q = 0;
    for (int i = 0; i < 20; i++) s += st[i], q += st[i] * st[i];
    cr_assert_float_eq(w.sum, s, 1e-9 * (fabs(s) + 1e-3));
    cr_assert_float_eq(w.sumsq, q, 1e-9 * q);
}

Test(zscore, against_hand_computation)
{
    /* previous returns 1..5: mean 3, sample sd sqrt(2.5) */
    double st[5], v[] = {1, 2, 3, 4, 5}, z = 0;
    anom_window w;
    fill(&w, st, 5, v, 5);
    cr_assert(anom_zscore(&w, 10, &z));
    cr_assert_float_eq(z, 7 / sqrt(2.5), 1e-12);
    cr_assert(anom_zscore(&w, 3, &z));
    cr_assert_float_eq(z, 0, 1e-15);
}

Test(zscore, not_before_the_window_is_full)
{
    double st[5], v[] = {1, 2, 3, 4}, z = 42;
    anom_window w;
    fill(&w, st, 5, v, 4);
    cr_assert_not(anom_zscore(&w, 10, &z));
    cr_assert_eq(z, 42);
}

Test(zscore, constant_series_gives_no_z)
{
    double st[20], z = 42;
    anom_window w;
    anom_window_init(&w, st, 20);
    for (int i = 0; i < 50; i++) anom_window_push(&w, 0.0); /* the BGN peg: every return 0 */
    cr_assert_not(anom_zscore(&w, 0.0, &z));
    cr_assert_not(anom_zscore(&w, 0.01, &z));
    /* equal non-zero returns: the running sums leave rounding noise, not variance */
    anom_window_init(&w, st, 20);
    for (int i = 0; i < 57; i++) anom_window_push(&w, 0.001 * 1.1);
    cr_assert_not(anom_zscore(&w, 0.5, &z));
    cr_assert_eq(z, 42);
}

Test(median, odd_even_duplicates_and_brute_force)
{
    double a[] = {5, 1, 4, 2, 3};
    cr_assert_float_eq(anom_median(a, 5), 3, 0);
    double b[] = {4, 1, 3, 2};
    cr_assert_float_eq(anom_median(b, 4), 2.5, 0);
    double c[] = {7};
    cr_assert_float_eq(anom_median(c, 1), 7, 0);
    double d[] = {2, 2, 2, 1, 2, 2};
    cr_assert_float_eq(anom_median(d, 6), 2, 0);
    srand(11);
    double v[1000], copy[1000];
    for (int trial = 0; trial < 300; trial++) {
        size_t n = 1 + (size_t)rand() % 1000;
        for (size_t i = 0; i < n; i++) v[i] = trial % 3 ? rand() % 7 : rand() / (double)RAND_MAX; /* many ties */
        memcpy(copy, v, n * sizeof *v);
        cr_assert_float_eq(anom_median(copy, n), sorted_median(v, n), 0, "n=%zu trial=%d", n, trial);
    }
}

Test(robust_zscore, against_hand_computation)
{
    /* window 1,2,3,4,100: median 3, deviations 2,1,0,1,97 -> MAD 1 */
    double st[5], scratch[5], v[] = {1, 2, 3, 4, 100}, z = 0;
    anom_window w;
    fill(&w, st, 5, v, 5);
    cr_assert(anom_robust_zscore(&w, 13, scratch, &z));
    cr_assert_float_eq(z, 0.6745 * 10, 1e-12);
    cr_assert_float_eq(st[4], 100, 0, "the ring itself is not reordered");
    cr_assert(anom_robust_zscore(&w, -7, scratch, &z));
    cr_assert_float_eq(z, -0.6745 * 10, 1e-12);
}

Test(robust_zscore, mad_zero_gives_no_z)
{
    /* more than half the window at the median (a peg with a few moves) */
    double st[6], scratch[6], v[] = {0, 0, 0, 0, 0.01, -0.02}, z = 42;
    anom_window w;
    fill(&w, st, 6, v, 6);
    cr_assert_not(anom_robust_zscore(&w, 0.5, scratch, &z));
    cr_assert_eq(z, 42);
    double st2[4], s2[4], u[] = {1, 2, 3};
    fill(&w, st2, 4, u, 3);
    cr_assert_not(anom_robust_zscore(&w, 9, s2, &z), "not before the window is full");
}

Test(severity, scores_and_names)
{
    cr_assert_str_eq(anom_severity_name(anom_score_severity(1.0, false)), "medium");
    cr_assert_str_eq(anom_severity_name(anom_score_severity(1.49, false)), "medium");
    cr_assert_str_eq(anom_severity_name(anom_score_severity(1.5, false)), "high");
    cr_assert_str_eq(anom_severity_name(anom_score_severity(1.2, true)), "low");
    cr_assert_str_eq(anom_severity_name(anom_score_severity(2.0, true)), "medium");
    cr_assert_float_eq(anom_rsi_score(70, 70, 30), 1, 1e-15);
    cr_assert_float_eq(anom_rsi_score(90, 70, 30), 2, 1e-15);
    cr_assert_float_eq(anom_rsi_score(30, 70, 30), 1, 1e-15);
    cr_assert_float_eq(anom_rsi_score(0, 70, 30), 2.5, 1e-15);
}
