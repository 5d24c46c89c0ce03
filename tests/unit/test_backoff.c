/* rtp_backoff_ms: the waits double from the first one up to the cap, and
 * each is drawn from the upper half of its step. */
#include <criterion/criterion.h>

#include "rtproc/backoff.h"

Test(backoff, doubles_up_to_the_cap_within_the_upper_half)
{
    srand(7);
    for (int round = 0; round < 200; round++) {
        uint64_t step = 100;
        for (unsigned a = 0; a < 12; a++) {
            uint64_t w = rtp_backoff_ms(a, 100, 2000);
            cr_assert(w >= step / 2 && w <= step, "attempt %u: %llu ms outside [%llu, %llu]", a,
                      (unsigned long long)w, (unsigned long long)(step / 2), (unsigned long long)step);
            step = step * 2 > 2000 ? 2000 : step * 2;
        }
    }
}

Test(backoff, jitter_spreads_the_waits)
{
    srand(7);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t w = rtp_backoff_ms(20, 100, 1000);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    cr_assert(lo < 600 && hi > 900, "waits between %llu and %llu ms: no spread", (unsigned long long)lo,
              (unsigned long long)hi);
}

Test(backoff, a_zero_cap_means_no_wait)
{
    cr_assert_eq(rtp_backoff_ms(0, 100, 0), 0);
    cr_assert_eq(rtp_backoff_ms(5, 100, 0), 0);
}
