/* rtp_map: open-addressing hash of entries threaded on an LRU list.
 *
 * An entry is one allocation: list links, hash, key bytes and the value,
 * so a lookup touches the slot array and one entry. Deleted slots hold a
 * tombstone until the table is rebuilt on growth. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtproc/map.h"
#include "util.h"

typedef struct entry {
    struct entry *prev, *next; /* LRU: head is the least recently used */
    uint32_t hash;
    uint32_t len;
    max_align_t value[]; /* value_size bytes, then the key bytes */
} entry;

#define TOMBSTONE ((entry *)1)

struct rtp_map {
    entry **slots;
    size_t n_slots, count, used; /* used: live + tombstones */
    size_t value_size, max_entries;
    entry *head, *tail;
    entry *last; /* the entry the previous get returned: records come in runs of one key */
    rtp_map_evict_fn on_evict;
    void *user;
    uint64_t evictions;
};

static char *key_of(const rtp_map *m, entry *e)
{
    return (char *)e->value + m->value_size;
}

rtp_map *rtp_map_new(size_t value_size, size_t max_entries, rtp_map_evict_fn on_evict, void *user)
{
    rtp_map *m = rtp_xcalloc(1, sizeof *m);
    m->value_size = (value_size + 15) & ~(size_t)15;
    m->max_entries = max_entries;
    m->on_evict = on_evict;
    m->user = user;
    m->n_slots = 64;
    m->slots = rtp_xcalloc(m->n_slots, sizeof *m->slots);
    return m;
}

static size_t slot_of(const rtp_map *m, const void *key, size_t len, uint32_t h)
{
    size_t mask = m->n_slots - 1, tomb = SIZE_MAX;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        entry *e = m->slots[i];
        if (!e) return tomb != SIZE_MAX ? tomb : i;
        if (e == TOMBSTONE) {
            if (tomb == SIZE_MAX) tomb = i;
        } else if (e->hash == h && e->len == len && memcmp(key_of(m, e), key, len) == 0) {
            return i;
        }
    }
}

static void unlink_entry(rtp_map *m, entry *e)
{
    if (e->prev) e->prev->next = e->next; else m->head = e->next;
    if (e->next) e->next->prev = e->prev; else m->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_tail(rtp_map *m, entry *e)
{
    e->prev = m->tail;
    e->next = NULL;
    if (m->tail) m->tail->next = e; else m->head = e;
    m->tail = e;
}

static void rehash(rtp_map *m, size_t n_slots)
{
    free(m->slots);
    m->n_slots = n_slots;
    m->slots = rtp_xcalloc(n_slots, sizeof *m->slots);
    m->used = m->count;
    for (entry *e = m->head; e; e = e->next) {
        size_t mask = n_slots - 1, i = e->hash & mask;
        while (m->slots[i]) i = (i + 1) & mask;
        m->slots[i] = e;
    }
}

static void delete_at(rtp_map *m, size_t slot, bool notify)
{
    entry *e = m->slots[slot];
    if (e == m->last) m->last = NULL;
    if (notify && m->on_evict) m->on_evict(e->value, key_of(m, e), e->len, m->user);
    unlink_entry(m, e);
    m->slots[slot] = TOMBSTONE;
    m->count--;
    free(e);
}

void *rtp_map_get(rtp_map *m, const void *key, size_t len, bool *created)
{
    entry *last = m->last; /* already the most recently used: nothing to move */
    if (last && last->len == len && memcmp(key_of(m, last), key, len) == 0) {
        if (created) *created = false;
        return last->value;
    }
    uint32_t h = rtp_hash(key, len);
    size_t i = slot_of(m, key, len, h);
    entry *e = m->slots[i];
    if (e && e != TOMBSTONE) {
        unlink_entry(m, e);
        push_tail(m, e);
        m->last = e;
        if (created) *created = false;
        return e->value;
    }
    if (m->max_entries && m->count >= m->max_entries) {
        entry *old = m->head;
        delete_at(m, slot_of(m, key_of(m, old), old->len, old->hash), true);
        m->evictions++;
    }
    if ((m->used + 1) * 4 > m->n_slots * 3) {
        rehash(m, m->count * 2 + 2 > m->n_slots / 2 ? m->n_slots * 2 : m->n_slots);
    }
    e = rtp_xcalloc(1, sizeof *e + m->value_size + len);
    e->hash = h;
    e->len = (uint32_t)len;
    memcpy(key_of(m, e), key, len);
    i = slot_of(m, key, len, h);
    if (!m->slots[i]) m->used++;
    m->slots[i] = e;
    m->count++;
    push_tail(m, e);
    m->last = e;
    if (created) *created = true;
    return e->value;
}

void *rtp_map_find(const rtp_map *m, const void *key, size_t len)
{
    entry *e = m->slots[slot_of(m, key, len, rtp_hash(key, len))];
    return e && e != TOMBSTONE ? e->value : NULL;
}

void rtp_map_remove(rtp_map *m, const void *key, size_t len)
{
    size_t i = slot_of(m, key, len, rtp_hash(key, len));
    if (m->slots[i] && m->slots[i] != TOMBSTONE) delete_at(m, i, false);
}

size_t rtp_map_count(const rtp_map *m)
{
    return m->count;
}

uint64_t rtp_map_evictions(const rtp_map *m)
{
    return m->evictions;
}

void rtp_map_each(rtp_map *m, bool (*fn)(void *, const char *, size_t, void *), void *arg)
{
    for (entry *e = m->head, *next; e; e = next) {
        next = e->next;
        if (fn(e->value, key_of(m, e), e->len, arg))
            delete_at(m, slot_of(m, key_of(m, e), e->len, e->hash), true);
    }
}

void rtp_map_free(rtp_map *m)
{
    if (!m) return;
    for (entry *e = m->head, *next; e; e = next) {
        next = e->next;
        if (m->on_evict) m->on_evict(e->value, key_of(m, e), e->len, m->user);
        free(e);
    }
    free(m->slots);
    free(m);
}

static int field_text(const rtp_field *f, char *buf, size_t cap)
{
    switch (f->type) {
    case RTP_STRING:
        if (f->len > cap) return -1;
        memcpy(buf, f->v.s, f->len);
        return (int)f->len;
    case RTP_INT: return snprintf(buf, cap, "%" PRId64, f->v.i);
    case RTP_TIME: return snprintf(buf, cap, "%" PRId64, f->v.t);
    case RTP_DOUBLE: return snprintf(buf, cap, "%.17g", f->v.d);
    case RTP_BOOL: return snprintf(buf, cap, "%s", f->v.b ? "true" : "false");
    default: return -1;
    }
}

int rtp_record_key(const rtp_record *r, const rtp_key *keys, size_t n, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        const rtp_field *f = rtp_record_get(r, keys[i]);
        if (!f || f->type == RTP_NULL) return -1;
        if (i) {
            if (len >= cap) return -1;
            buf[len++] = '\x1f';
        }
        int k = field_text(f, buf + len, cap - len);
        if (k < 0 || (size_t)k >= cap - len + (f->type == RTP_STRING)) return -1;
        len += (size_t)k;
    }
    return (int)len;
}
