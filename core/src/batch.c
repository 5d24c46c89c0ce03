/* Batches: an arena, an array of record pointers, held input buffers.
 *
 * The arena hands out memory by bumping a pointer inside blocks that double in
 * size, so a batch of a few thousand records costs a handful of mallocs no
 * matter how many fields and strings it carries, and frees in one walk. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ARENA_FIRST 8192
#define ARENA_MAX (1u << 20)
#define ARENA_CLASSES 8 /* 8 KiB, 16 KiB, ... 1 MiB */
#define CACHE_BYTES (16u << 20)

/* Freed arena blocks of the standard sizes are kept for the next batch:
 * handing them back to malloc let glibc return the pages to the kernel and
 * the next batch fault them in again, which cost more than the filters that
 * filled them (600k page faults for 5M records). The cache is bounded, and
 * owned by the loop thread like every batch. */
static arena_block *block_cache[ARENA_CLASSES];
static size_t cached_bytes;

static int size_class(size_t size)
{
    int c = 0;
    for (size_t s = ARENA_FIRST; s < size && c < ARENA_CLASSES; s *= 2) c++;
    return c < ARENA_CLASSES && (size_t)ARENA_FIRST << c == size ? c : -1;
}

static arena_block *block_new(size_t size)
{
    int c = size_class(size);
    if (c >= 0 && block_cache[c]) {
        arena_block *b = block_cache[c];
        block_cache[c] = b->next;
        cached_bytes -= size;
        return b;
    }
    arena_block *b = rtp_xmalloc(sizeof *b + size);
    b->size = size;
    return b;
}

static void block_free(arena_block *b)
{
    int c = size_class(b->size);
    if (c < 0 || cached_bytes + b->size > CACHE_BYTES) {
        free(b);
        return;
    }
    b->next = block_cache[c];
    block_cache[c] = b;
    cached_bytes += b->size;
}

struct rtp_buf {
    int refs;
    size_t size;
    max_align_t data[];
};

/* ---- arena -------------------------------------------------------------- */

static void *arena_alloc(rtp_batch *b, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    arena_block *blk = b->arena;
    if (!blk || blk->size - blk->used < size) {
        size_t want = blk ? blk->size * 2 : ARENA_FIRST;
        if (want > ARENA_MAX) want = ARENA_MAX;
        if (want < size) want = size;
        arena_block *nb = block_new(want);
        nb->used = 0;
        nb->next = blk;
        b->arena = blk = nb;
        b->mem += sizeof *nb + want;
    }
    void *p = (char *)blk->data + blk->used;
    blk->used += size;
    return p;
}

void *rtp_batch_alloc(rtp_batch *b, size_t size)
{
    return arena_alloc(b, size);
}

const char *rtp_batch_strdup(rtp_batch *b, const char *s, size_t len)
{
    char *d = arena_alloc(b, len + 1);
    if (len) memcpy(d, s, len);
    d[len] = 0;
    return d;
}

/* ---- life ---------------------------------------------------------------- */

rtp_batch *rtp_batch_create(const char *tag)
{
    rtp_batch *b = rtp_xcalloc(1, sizeof *b);
    b->refs = 1;
    b->tag = rtp_batch_strdup(b, tag ? tag : "", tag ? strlen(tag) : 0);
    return b;
}

void rtp_batch_ref(rtp_batch *b)
{
    b->refs++;
}

void rtp_batch_unref(rtp_batch *b)
{
    if (!b || --b->refs > 0) return;
    for (size_t i = 0; i < b->n_held; i++) rtp_buf_unref(b->held[i]);
    free(b->held);
    free(b->recs);
    for (arena_block *blk = b->arena, *next; blk; blk = next) {
        next = blk->next;
        block_free(blk);
    }
    free(b);
}

void rtp_batch_free(rtp_batch *b)
{
    rtp_batch_unref(b);
}

size_t rtp_batch_count(const rtp_batch *b)
{
    return b->n;
}

rtp_record *rtp_batch_record(rtp_batch *b, size_t i)
{
    return i < b->n ? b->recs[i] : NULL;
}

const char *rtp_batch_tag(const rtp_batch *b)
{
    return b->tag;
}

void rtp_batch_add_bytes(rtp_batch *b, size_t bytes)
{
    b->bytes += bytes;
}

rtp_record *rtp_batch_append(rtp_batch *b, uint32_t nfields)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->recs = rtp_xrealloc(b->recs, b->cap * sizeof *b->recs);
    }
    if (nfields == 0) nfields = 4;
    rtp_record *r = arena_alloc(b, sizeof *r + nfields * sizeof(rtp_field));
    r->time = 0;
    r->fields = (rtp_field *)(r + 1);
    r->nfields = 0;
    r->cap = nfields;
    r->flags = 0;
    b->recs[b->n++] = r;
    return r;
}

size_t rtp_batch_compact(rtp_batch *b)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++)
        if (!(b->recs[i]->flags & RTP_RECORD_DROPPED)) b->recs[kept++] = b->recs[i];
    size_t gone = b->n - kept;
    b->n = kept;
    return gone;
}

/* ---- buffers ------------------------------------------------------------- */

rtp_buf *rtp_buf_new(size_t size)
{
    rtp_buf *buf = rtp_xmalloc(sizeof *buf + size + 1);
    buf->refs = 1;
    buf->size = size;
    return buf;
}

char *rtp_buf_data(rtp_buf *buf)
{
    return (char *)buf->data;
}

size_t rtp_buf_size(const rtp_buf *buf)
{
    return buf->size;
}

void rtp_buf_ref(rtp_buf *buf)
{
    buf->refs++;
}

void rtp_buf_unref(rtp_buf *buf)
{
    if (buf && --buf->refs == 0) free(buf);
}

void rtp_batch_hold(rtp_batch *b, rtp_buf *buf)
{
    for (size_t i = 0; i < b->n_held; i++)
        if (b->held[i] == buf) return;
    if (b->n_held == b->cap_held) {
        b->cap_held = b->cap_held ? b->cap_held * 2 : 4;
        b->held = rtp_xrealloc(b->held, b->cap_held * sizeof *b->held);
    }
    rtp_buf_ref(buf);
    b->held[b->n_held++] = buf;
    b->mem += buf->size;
}

/* ---- fields -------------------------------------------------------------- */

static void grow_fields(rtp_batch *b, rtp_record *r, uint32_t cap);

rtp_field *rtp_record_add(rtp_batch *b, rtp_record *r, rtp_key key)
{
    if (r->nfields == r->cap) grow_fields(b, r, r->cap ? r->cap * 2 : 4);
    rtp_field *f = &r->fields[r->nfields++];
    f->key = key;
    f->len = 0;
    f->type = RTP_NULL;
    f->v.i = 0;
    return f;
}

/* Records of one stream share their layout, so where a key was found last
 * time is where it is now: that position is tried first. Filters that add
 * twenty indicator fields and then look up "rsi_14" stop scanning for it. */
static uint8_t last_pos[1024];

rtp_field *rtp_record_get(const rtp_record *r, rtp_key key)
{
    uint32_t h = last_pos[key & 1023];
    if (h < r->nfields && r->fields[h].key == key) return &r->fields[h];
    for (uint32_t i = 0; i < r->nfields; i++) {
        if (r->fields[i].key == key) {
            last_pos[key & 1023] = (uint8_t)(i < 255 ? i : 255);
            return &r->fields[i];
        }
    }
    return NULL;
}

static void grow_fields(rtp_batch *b, rtp_record *r, uint32_t cap)
{
    rtp_field *f = arena_alloc(b, cap * sizeof *f);
    if (r->nfields) memcpy(f, r->fields, r->nfields * sizeof *f);
    r->fields = f;
    r->cap = cap;
}

void rtp_record_reserve(rtp_batch *b, rtp_record *r, uint32_t extra)
{
    if (r->nfields + extra > r->cap) grow_fields(b, r, r->nfields + extra);
}

rtp_field *rtp_record_put(rtp_batch *b, rtp_record *r, rtp_key key)
{
    rtp_field *f = rtp_record_get(r, key);
    return f ? f : rtp_record_add(b, r, key);
}

void rtp_record_set_null(rtp_batch *b, rtp_record *r, rtp_key k)
{
    rtp_field *f = rtp_record_put(b, r, k);
    f->type = RTP_NULL;
    f->v.i = 0;
}

void rtp_record_set_bool(rtp_batch *b, rtp_record *r, rtp_key k, bool v)
{
    rtp_field *f = rtp_record_put(b, r, k);
    f->type = RTP_BOOL;
    f->v.b = v;
}

void rtp_record_set_int(rtp_batch *b, rtp_record *r, rtp_key k, int64_t v)
{
    rtp_field *f = rtp_record_put(b, r, k);
    f->type = RTP_INT;
    f->v.i = v;
}

void rtp_record_set_double(rtp_batch *b, rtp_record *r, rtp_key k, double v)
{
    rtp_field *f = rtp_record_put(b, r, k);
    f->type = RTP_DOUBLE;
    f->v.d = v;
}

void rtp_record_set_time(rtp_batch *b, rtp_record *r, rtp_key k, int64_t ns)
{
    rtp_field *f = rtp_record_put(b, r, k);
    f->type = RTP_TIME;
    f->v.t = ns;
}

void rtp_record_set_str_ref(rtp_batch *b, rtp_record *r, rtp_key k, const char *s, size_t len)
{
    rtp_field *f = rtp_record_put(b, r, k);
    f->type = RTP_STRING;
    f->v.s = s;
    f->len = (uint32_t)len;
}

void rtp_record_set_str(rtp_batch *b, rtp_record *r, rtp_key k, const char *s, size_t len)
{
    rtp_record_set_str_ref(b, r, k, rtp_batch_strdup(b, s, len), len);
}

bool rtp_field_number(const rtp_field *f, double *out)
{
    if (!f) return false;
    switch (f->type) {
    case RTP_INT: *out = (double)f->v.i; return true;
    case RTP_DOUBLE: *out = f->v.d; return true;
    case RTP_TIME: *out = (double)f->v.t / 1e9; return true;
    default: return false;
    }
}

rtp_record *rtp_batch_copy_record(rtp_batch *dst, const rtp_record *src)
{
    rtp_record *r = rtp_batch_append(dst, src->nfields);
    r->time = src->time;
    for (uint32_t i = 0; i < src->nfields; i++) {
        rtp_field *f = rtp_record_add(dst, r, src->fields[i].key);
        *f = src->fields[i];
        if (f->type == RTP_STRING) f->v.s = rtp_batch_strdup(dst, f->v.s, f->len);
    }
    return r;
}
