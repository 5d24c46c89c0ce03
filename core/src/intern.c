/* Interned field names.
 *
 * Records carry field names as small integers so that a filter looking for
 * "close" in every record compares a uint32 instead of a string. Names are
 * interned once per distinct spelling and never freed: the set of field names
 * a pipeline sees is small and stable, and a stable key is what lets plugins
 * resolve their keys once in init. */
#include <stdlib.h>
#include <string.h>

#include "rtproc/record.h"
#include "util.h"

typedef struct name {
    char *s;
    size_t len;
    uint32_t hash;
} name;

static name *names;      /* by key */
static uint32_t n_names; /* key 0 is never handed out: it means "no key" */
static uint32_t *slots;  /* open addressing: key or 0 */
static uint32_t n_slots;

static void table_insert(uint32_t key)
{
    uint32_t mask = n_slots - 1;
    for (uint32_t i = names[key].hash & mask;; i = (i + 1) & mask) {
        if (!slots[i]) {
            slots[i] = key;
            return;
        }
    }
}

static void table_grow(void)
{
    free(slots);
    n_slots = n_slots ? n_slots * 2 : 256;
    slots = rtp_xcalloc(n_slots, sizeof *slots);
    for (uint32_t k = 1; k < n_names; k++) table_insert(k);
}

rtp_key rtp_key_intern(const char *s, size_t len)
{
    uint32_t h = rtp_hash(s, len);
    if (n_slots) {
        uint32_t mask = n_slots - 1;
        for (uint32_t i = h & mask; slots[i]; i = (i + 1) & mask) {
            const name *nm = &names[slots[i]];
            if (nm->hash == h && nm->len == len && memcmp(nm->s, s, len) == 0) return slots[i];
        }
    }
    if (n_names == 0) n_names = 1;
    if ((n_names + 1) * 2 > n_slots) table_grow();
    if ((n_names & (n_names - 1)) == 0) names = rtp_xrealloc(names, sizeof *names * n_names * 2);
    rtp_key key = n_names++;
    names[key] = (name){rtp_xstrndup(s, len), len, h};
    table_insert(key);
    return key;
}

rtp_key rtp_key_cstr(const char *s)
{
    return rtp_key_intern(s, strlen(s));
}

const char *rtp_key_name(rtp_key key, size_t *len)
{
    if (key == 0 || key >= n_names) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = names[key].len;
    return names[key].s;
}
