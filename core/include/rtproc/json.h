/* rtproc — JSON codec for records (RFC 8259).
 *
 * The parser validates strictly (UTF-8 included) and turns one JSON object into
 * the fields of a record: numbers that are integers and fit become RTP_INT,
 * others RTP_DOUBLE; nested objects are flattened to dotted names
 * ({"a":{"b":1}} -> a.b) or kept as JSON text; arrays are kept as JSON text.
 * docs/json.md lists every choice (duplicates, lone surrogates, BOM, ranges).
 *
 * Wherever an rtp_json_error * is taken, NULL is allowed. */
#ifndef RTPROC_JSON_H
#define RTPROC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "version.h"

/* A growable byte buffer (used by every writer in the SDK). Start from
 * {0}; data is not NUL-terminated; capacity doubles. Running out of memory
 * aborts, like every allocation of the engine. */
typedef struct rtp_sbuf {
    char *data;
    size_t len;
    size_t cap;
} rtp_sbuf;

RTP_API void rtp_sbuf_reserve(rtp_sbuf *sb, size_t extra);
RTP_API void rtp_sbuf_append(rtp_sbuf *sb, const void *p, size_t n);
RTP_API void rtp_sbuf_free(rtp_sbuf *sb);

typedef struct rtp_json_error {
    size_t offset;   /* byte offset of the problem */
    const char *msg; /* static text */
} rtp_json_error;

/* Arrays and objects nest at most this deep; deeper is an error. */
#define RTP_JSON_MAX_DEPTH 512

enum {
    RTP_JSON_NESTED_AS_TEXT = 1u, /* keep nested objects as JSON text */
    RTP_JSON_ZERO_COPY = 2u       /* s outlives the batch: strings without escapes, and
                                     array / object text, point into s, not copied */
};

/* Validates any JSON text (one value, optional surrounding white space).
 * 0 when valid, -1 with err filled otherwise. Numbers are checked against the
 * grammar only: 1e400 is valid here, though no record can hold it. */
RTP_API int rtp_json_validate(const char *s, size_t len, rtp_json_error *err);

/* Parses one JSON object into fields appended to r. 0, or -1 with err filled
 * (r may then hold part of the fields; callers drop such a record).
 * A name seen twice (or already in r) keeps the last value, in the place of
 * the first; a number beyond the double range is an error; an empty nested
 * object adds no field. Names are interned: call it where rtp_key_intern may
 * be called (the loop thread). */
RTP_API int rtp_json_parse_record(rtp_batch *b, rtp_record *r, const char *s, size_t len,
                                  unsigned flags, rtp_json_error *err);

typedef struct rtp_json_write_opts {
    const char *time_key; /* non-NULL: add the event time under this name */
    const char *tag_key;  /* non-NULL: add tag under this name */
    const char *tag;
} rtp_json_write_opts;

/* Appends the record as one JSON object (no newline). Strings are escaped so
 * the output is valid UTF-8 JSON whatever they hold (bad bytes become U+FFFD);
 * NaN and infinities become null; times become RFC 3339 UTC strings with
 * milliseconds. opts may be NULL. The time and tag members come first (null
 * for a time of 0, unknown, or a NULL tag) and replace record fields of the
 * same name. */
RTP_API void rtp_json_write_record(rtp_sbuf *out, const rtp_record *r,
                                   const rtp_json_write_opts *opts);
/* Appends s as a quoted JSON string, escaped as above. */
RTP_API void rtp_json_write_string(rtp_sbuf *out, const char *s, size_t len);
/* Shortest text that reads back as the same double (first of %.15g, %.16g,
 * %.17g that does, in the "C" locale). It always holds a '.' or an exponent,
 * so integral values read back as doubles: 3.0, 1e+300. NaN, infinities: null. */
RTP_API void rtp_json_write_double(rtp_sbuf *out, double d);

#endif
