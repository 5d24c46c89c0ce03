/* rtp_map: lookups, LRU eviction with its callback, removal, iteration,
 * and series keys built from records. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "rtproc/map.h"

typedef struct val {
    int64_t n;
} val;

static int evicted[100000];
static size_t n_evicted;

static void on_evict(void *v, const char *key, size_t len, void *user)
{
    (void)key;
    (void)len;
    (void)user;
    evicted[n_evicted++] = (int)((val *)v)->n;
}

Test(map, get_creates_once_and_finds)
{
    rtp_map *m = rtp_map_new(sizeof(val), 0, NULL, NULL);
    char key[32];
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(key, sizeof key, "SYM%d", i);
        bool created;
        val *v = rtp_map_get(m, key, (size_t)n, &created);
        cr_assert(created);
        cr_assert_eq(v->n, 0, "values start zeroed");
        v->n = i;
    }
    cr_assert_eq(rtp_map_count(m), 50000);
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(key, sizeof key, "SYM%d", i);
        val *v = rtp_map_find(m, key, (size_t)n);
        cr_assert_not_null(v);
        cr_assert_eq(v->n, i);
    }
    cr_assert_null(rtp_map_find(m, "nope", 4));
    rtp_map_free(m);
}

Test(map, least_recently_used_is_evicted_first)
{
    n_evicted = 0;
    rtp_map *m = rtp_map_new(sizeof(val), 3, on_evict, NULL);
    for (int i = 1; i <= 3; i++) ((val *)rtp_map_get(m, &i, sizeof i, NULL))->n = i;
    int one = 1, four = 4;
    rtp_map_get(m, &one, sizeof one, NULL); /* 1 is now the most recent: 2 goes first */
    ((val *)rtp_map_get(m, &four, sizeof four, NULL))->n = 4;
    cr_assert_eq(n_evicted, 1);
    cr_assert_eq(evicted[0], 2);
    cr_assert_eq(rtp_map_count(m), 3);
    cr_assert_eq(rtp_map_evictions(m), 1);
    rtp_map_free(m); /* the rest are reported too */
    cr_assert_eq(n_evicted, 4);
}

static bool remove_even(void *v, const char *key, size_t len, void *arg)
{
    (void)key;
    (void)len;
    (*(int *)arg)++;
    return ((val *)v)->n % 2 == 0;
}

Test(map, remove_and_iterate_survive_churn)
{
    n_evicted = 0;
    rtp_map *m = rtp_map_new(sizeof(val), 0, on_evict, NULL);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 1000; i++) ((val *)rtp_map_get(m, &i, sizeof i, NULL))->n = i;
        for (int i = 0; i < 1000; i += 3) rtp_map_remove(m, &i, sizeof i);
    }
    cr_assert_eq(rtp_map_count(m), 666);
    cr_assert_eq(n_evicted, 0, "remove does not call the callback");
    int visited = 0;
    rtp_map_each(m, remove_even, &visited);
    cr_assert_eq(visited, 666);
    cr_assert_eq(rtp_map_count(m), 333);
    int two = 2, five = 5;
    cr_assert_null(rtp_map_find(m, &two, sizeof two));
    cr_assert_not_null(rtp_map_find(m, &five, sizeof five));
    rtp_map_free(m);
}

Test(map, series_keys_from_records)
{
    rtp_batch *b = rtp_batch_create("t");
    rtp_record *r = rtp_batch_append(b, 3);
    rtp_key sym = rtp_key_cstr("symbol"), ex = rtp_key_cstr("exchange"), none = rtp_key_cstr("none");
    rtp_record_set_str(b, r, sym, "AAPL", 4);
    rtp_record_set_int(b, r, ex, 42);
    char buf[64];
    rtp_key one[] = {sym}, two[] = {sym, ex}, missing[] = {sym, none};
    cr_assert_eq(rtp_record_key(r, one, 1, buf, sizeof buf), 4);
    cr_assert_eq(memcmp(buf, "AAPL", 4), 0);
    cr_assert_eq(rtp_record_key(r, two, 2, buf, sizeof buf), 7);
    cr_assert_eq(memcmp(buf, "AAPL\x1f" "42", 7), 0);
    cr_assert_eq(rtp_record_key(r, missing, 2, buf, sizeof buf), -1);
    cr_assert_eq(rtp_record_key(r, two, 2, buf, 5), -1, "a key that does not fit is refused");
    rtp_batch_unref(b);
}
