/* Small core pieces: tag matching, rings, batches and their arena,
 * interned keys. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "match.h"
#include "ring.h"

Test(match, wildcards)
{
    cr_assert(rtp_match("*", "anything.at.all"));
    cr_assert(rtp_match("*", ""));
    cr_assert(rtp_match("stocks", "stocks"));
    cr_assert_not(rtp_match("stocks", "stocks.aapl"));
    cr_assert(rtp_match("stocks.*", "stocks.aapl"));
    cr_assert_not(rtp_match("stocks.*", "stocks"));
    cr_assert(rtp_match("*.aapl", "stocks.aapl"));
    cr_assert(rtp_match("a*b*c", "aXXbYYc"));
    cr_assert_not(rtp_match("a*b*c", "aXXbYY"));
    cr_assert(rtp_match("error.*", "error.prices"));
    cr_assert(rtp_match("**", "x"));
}

Test(ring, fifo_wraps_and_grows)
{
    rtp_ring r;
    rtp_ring_init(&r, 4);
    long next_in = 1, next_out = 1;
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < round % 13; i++) rtp_ring_push(&r, (void *)next_in++);
        for (int i = 0; i < round % 7 && rtp_ring_count(&r); i++)
            cr_assert_eq((long)rtp_ring_pop(&r), next_out++);
    }
    while (rtp_ring_count(&r)) cr_assert_eq((long)rtp_ring_pop(&r), next_out++);
    cr_assert_eq(next_in, next_out);
    cr_assert_null(rtp_ring_pop(&r));
    rtp_ring_push(&r, (void *)2);
    rtp_ring_push_front(&r, (void *)1);
    cr_assert_eq((long)rtp_ring_pop(&r), 1);
    cr_assert_eq((long)rtp_ring_pop(&r), 2);
    rtp_ring_free(&r);
}

Test(intern, same_bytes_same_key)
{
    rtp_key a = rtp_key_cstr("close");
    cr_assert_neq(a, 0);
    cr_assert_eq(rtp_key_intern("close!", 5), a);
    cr_assert_neq(rtp_key_cstr("open"), a);
    size_t len;
    cr_assert_str_eq(rtp_key_name(a, &len), "close");
    cr_assert_eq(len, 5);
    char name[32];
    rtp_key keys[2000];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "field_%d", i);
        keys[i] = rtp_key_cstr(name);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "field_%d", i);
        cr_assert_eq(rtp_key_cstr(name), keys[i]);
    }
}

Test(batch, records_fields_and_arena)
{
    rtp_batch *b = rtp_batch_create("t");
    rtp_key k1 = rtp_key_cstr("a"), k2 = rtp_key_cstr("b"), k3 = rtp_key_cstr("c");
    rtp_record *first = NULL;
    for (int i = 0; i < 10000; i++) {
        rtp_record *r = rtp_batch_append(b, 1);
        if (!first) first = r;
        rtp_record_set_int(b, r, k1, i);
        rtp_record_set_double(b, r, k2, i * 0.5);
        rtp_record_set_str(b, r, k3, "hello", 5);
        rtp_record_set_int(b, r, k1, -i); /* replaces, does not append */
    }
    cr_assert_eq(rtp_batch_count(b), 10000);
    cr_assert_eq(rtp_batch_record(b, 0), first, "records never move");
    rtp_record *r = rtp_batch_record(b, 9999);
    cr_assert_eq(r->nfields, 3);
    cr_assert_eq(rtp_record_get(r, k1)->v.i, -9999);
    double d;
    cr_assert(rtp_field_number(rtp_record_get(r, k2), &d));
    cr_assert_float_eq(d, 4999.5, 1e-9);
    cr_assert_not(rtp_field_number(rtp_record_get(r, k3), &d));
    cr_assert_eq(memcmp(rtp_record_get(r, k3)->v.s, "hello", 5), 0);
    cr_assert_null(rtp_batch_record(b, 10000));
    rtp_batch_unref(b);
}

Test(batch, compact_removes_dropped_records_in_order)
{
    rtp_batch *b = rtp_batch_create("t");
    rtp_key k = rtp_key_cstr("v");
    for (int i = 0; i < 100; i++) {
        rtp_record *r = rtp_batch_append(b, 1);
        rtp_record_set_int(b, r, k, i);
        if (i % 3 == 0) r->flags |= RTP_RECORD_DROPPED;
    }
    cr_assert_eq(rtp_batch_compact(b), 34);
    cr_assert_eq(rtp_batch_count(b), 66);
    int64_t prev = -1;
    for (size_t i = 0; i < rtp_batch_count(b); i++) {
        int64_t v = rtp_record_get(rtp_batch_record(b, i), k)->v.i;
        cr_assert(v % 3 != 0 && v > prev);
        prev = v;
    }
    rtp_batch_unref(b);
}

Test(batch, held_buffers_live_as_long_as_the_batch)
{
    rtp_buf *buf = rtp_buf_new(16);
    memcpy(rtp_buf_data(buf), "zero-copy bytes", 16);
    rtp_batch *b = rtp_batch_create("t");
    rtp_batch_hold(b, buf);
    rtp_batch_hold(b, buf); /* idempotent */
    rtp_record *r = rtp_batch_append(b, 1);
    rtp_key k = rtp_key_cstr("s");
    rtp_record_set_str_ref(b, r, k, rtp_buf_data(buf), 9);
    rtp_buf_unref(buf); /* the batch keeps it alive */
    cr_assert_eq(memcmp(rtp_record_get(r, k)->v.s, "zero-copy", 9), 0);
    cr_assert_geq(b->mem, 16);
    rtp_batch *copy = rtp_batch_create("c");
    rtp_record *rc = rtp_batch_copy_record(copy, r);
    rtp_batch_unref(b);
    cr_assert_eq(memcmp(rtp_record_get(rc, k)->v.s, "zero-copy", 9), 0, "copies own their strings");
    rtp_batch_unref(copy);
}
