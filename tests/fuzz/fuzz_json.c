/* libFuzzer target for the JSON codec. Beyond "no crash, no leak, no hang"
 * it checks what the codec promises:
 *  - validate and parse_record agree (a valid object parses, unless a number
 *    is beyond the double range; whatever parses is valid);
 *  - whatever the writer produces, from a parsed record or from the raw
 *    bytes as a string, is valid JSON;
 *  - write -> parse gives back the same fields, types and values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "rtproc/json.h"

static void check(int ok)
{
    if (!ok) abort();
}

static int same_field(const rtp_field *a, const rtp_field *b)
{
    if (a->key != b->key || a->type != b->type) return 0;
    switch (a->type) {
    case RTP_STRING: return a->len == b->len && memcmp(a->v.s, b->v.s, a->len) == 0;
    case RTP_DOUBLE: return memcmp(&a->v.d, &b->v.d, sizeof a->v.d) == 0;
    case RTP_BOOL: return a->v.b == b->v.b;
    case RTP_NULL: return 1;
    default: return a->v.i == b->v.i;
    }
}

static void check_round_trip(rtp_batch *b, const rtp_record *r)
{
    rtp_sbuf out = {0};
    rtp_json_write_record(&out, r, NULL);
    check(rtp_json_validate(out.data, out.len, NULL) == 0);
    rtp_record *back = rtp_batch_append(b, r->nfields);
    check(rtp_json_parse_record(b, back, out.data, out.len, 0, NULL) == 0);
    check(back->nfields == r->nfields);
    for (uint32_t i = 0; i < r->nfields; i++) check(same_field(&r->fields[i], &back->fields[i]));
    rtp_sbuf_free(&out);
}

static void check_string_writer(const char *s, size_t len)
{
    rtp_sbuf out = {0};
    rtp_json_write_string(&out, s, len);
    check(rtp_json_validate(out.data, out.len, NULL) == 0);
    rtp_sbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    rtp_json_error err = {0};
    int valid = rtp_json_validate(s, size, &err) == 0;
    check(valid || (err.msg && err.offset <= size));

    rtp_batch *b = rtp_batch_create("fuzz");
    static const unsigned flag_sets[] = {0, RTP_JSON_ZERO_COPY | RTP_JSON_NESTED_AS_TEXT};
    for (size_t f = 0; f < sizeof flag_sets / sizeof *flag_sets; f++) {
        rtp_record *r = rtp_batch_append(b, 4);
        int parsed = rtp_json_parse_record(b, r, s, size, flag_sets[f], &err) == 0;
        if (parsed) {
            check(valid);
            check_round_trip(b, r);
        } else {
            check(err.msg && err.offset <= size);
            const char *p = s, *end = s + size;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
            check(!valid || p == end || *p != '{' || strcmp(err.msg, "number out of range") == 0);
        }
    }
    rtp_batch_unref(b);
    check_string_writer(s, size);
    return 0;
}
