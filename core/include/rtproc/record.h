/* rtproc — records, fields, batches.
 *
 * A record is a short array of typed fields plus an event time. Field names are
 * interned into small integers once (rtp_key_intern), so hot loops compare
 * integers instead of strings. Records travel in batches; a batch owns an arena
 * from which records, fields and copied strings are carved, so the hot path
 * does no per-record malloc and freeing a batch is one walk over a few blocks.
 *
 * Strings in a field are views (pointer + length), not NUL-terminated. They
 * point either into the batch arena or into a buffer the batch holds
 * (rtp_batch_hold), which is how an input hands out zero-copy views into what
 * it read. */
#ifndef RTPROC_RECORD_H
#define RTPROC_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "version.h"

typedef uint32_t rtp_key;

typedef enum rtp_type {
    RTP_NULL = 0,
    RTP_BOOL,
    RTP_INT,    /* int64_t */
    RTP_DOUBLE, /* double */
    RTP_STRING, /* view: s + len */
    RTP_TIME    /* int64_t nanoseconds since the Unix epoch, UTC */
} rtp_type;

typedef struct rtp_field {
    rtp_key key;
    uint32_t len; /* RTP_STRING only */
    uint8_t type; /* rtp_type */
    union {
        bool b;
        int64_t i;
        double d;
        int64_t t;
        const char *s;
    } v;
} rtp_field;

#define RTP_RECORD_DROPPED 1u /* set by a filter: the record leaves the batch */

typedef struct rtp_record {
    int64_t time;      /* event time, ns since epoch; 0 when unknown */
    rtp_field *fields; /* nfields used, cap allocated (arena memory) */
    uint32_t nfields;
    uint32_t cap;
    uint32_t flags;
} rtp_record;

typedef struct rtp_batch rtp_batch;
typedef struct rtp_buf rtp_buf;

/* ---- interned field names ------------------------------------------------ */

/* Interns a name; the same bytes always give the same key. Owned by the loop
 * thread, like every other SDK call unless it says otherwise. */
RTP_API rtp_key rtp_key_intern(const char *name, size_t len);
RTP_API rtp_key rtp_key_cstr(const char *name);
RTP_API const char *rtp_key_name(rtp_key key, size_t *len);

/* ---- batches ------------------------------------------------------------- */

RTP_API size_t rtp_batch_count(const rtp_batch *b);
/* Frees a batch that was never handed to the engine (NULL is fine). */
RTP_API void rtp_batch_free(rtp_batch *b);
RTP_API rtp_record *rtp_batch_record(rtp_batch *b, size_t i);
RTP_API const char *rtp_batch_tag(const rtp_batch *b);

/* A new empty record at the end of the batch, with room for nfields fields
 * (it grows past that when needed). The pointer stays valid for the batch's
 * life: records are never moved. */
RTP_API rtp_record *rtp_batch_append(rtp_batch *b, uint32_t nfields);

/* Arena memory that lives as long as the batch (8-byte aligned). */
RTP_API void *rtp_batch_alloc(rtp_batch *b, size_t size);
RTP_API const char *rtp_batch_strdup(rtp_batch *b, const char *s, size_t len);

/* Bytes of input the batch stands for (for metrics and memory limits). */
RTP_API void rtp_batch_add_bytes(rtp_batch *b, size_t bytes);

/* ---- reference-counted buffers for zero-copy strings --------------------- */

RTP_API rtp_buf *rtp_buf_new(size_t size);
RTP_API char *rtp_buf_data(rtp_buf *buf);
RTP_API size_t rtp_buf_size(const rtp_buf *buf);
RTP_API void rtp_buf_ref(rtp_buf *buf);
RTP_API void rtp_buf_unref(rtp_buf *buf);
/* The batch keeps buf alive until the batch itself is freed. */
RTP_API void rtp_batch_hold(rtp_batch *b, rtp_buf *buf);

/* ---- fields -------------------------------------------------------------- */

/* Appends a field (no check for an existing key: inputs build records from
 * scratch). Returns the new field, to fill. */
RTP_API rtp_field *rtp_record_add(rtp_batch *b, rtp_record *r, rtp_key key);
/* Replaces the field with that key, or appends it. */
RTP_API rtp_field *rtp_record_put(rtp_batch *b, rtp_record *r, rtp_key key);
RTP_API rtp_field *rtp_record_get(const rtp_record *r, rtp_key key);
/* Room for extra more fields without growing (a filter about to add them). */
RTP_API void rtp_record_reserve(rtp_batch *b, rtp_record *r, uint32_t extra);

RTP_API void rtp_record_set_null(rtp_batch *b, rtp_record *r, rtp_key k);
RTP_API void rtp_record_set_bool(rtp_batch *b, rtp_record *r, rtp_key k, bool v);
RTP_API void rtp_record_set_int(rtp_batch *b, rtp_record *r, rtp_key k, int64_t v);
RTP_API void rtp_record_set_double(rtp_batch *b, rtp_record *r, rtp_key k, double v);
RTP_API void rtp_record_set_time(rtp_batch *b, rtp_record *r, rtp_key k, int64_t ns);
/* Copies the string into the batch arena. */
RTP_API void rtp_record_set_str(rtp_batch *b, rtp_record *r, rtp_key k, const char *s, size_t len);
/* Stores the view as is: the bytes must outlive the batch (arena or held buffer). */
RTP_API void rtp_record_set_str_ref(rtp_batch *b, rtp_record *r, rtp_key k, const char *s, size_t len);

/* Numeric view of a field: ints and doubles (and times, in seconds) convert;
 * anything else, or a missing field, returns false. */
RTP_API bool rtp_field_number(const rtp_field *f, double *out);

#endif
