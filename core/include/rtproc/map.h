/* rtproc — keyed state for per-series plugins.
 *
 * Indicators, anomaly rules and windows all keep state per series (a symbol,
 * a currency pair, a user) and must bound it. rtp_map maps byte-string keys
 * to fixed-size values allocated by the map, keeps them in least-recently-used
 * order and evicts the oldest past max_entries, telling the plugin first.
 * Values never move while they are in the map. */
#ifndef RTPROC_MAP_H
#define RTPROC_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "version.h"

typedef struct rtp_map rtp_map;

/* Called before an entry leaves the map (eviction or rtp_map_free), so the
 * plugin can emit or free what the value points to. */
typedef void (*rtp_map_evict_fn)(void *value, const char *key, size_t len, void *user);

/* max_entries 0: unbounded. Values start zeroed. */
RTP_API rtp_map *rtp_map_new(size_t value_size, size_t max_entries, rtp_map_evict_fn on_evict, void *user);
RTP_API void rtp_map_free(rtp_map *m);
/* The value for key, created (zeroed; *created set) when absent. Marks it
 * most recently used; may evict the least recently used entry. */
RTP_API void *rtp_map_get(rtp_map *m, const void *key, size_t len, bool *created);
/* The value for key or NULL, without changing the LRU order. */
RTP_API void *rtp_map_find(const rtp_map *m, const void *key, size_t len);
RTP_API void rtp_map_remove(rtp_map *m, const void *key, size_t len);
RTP_API size_t rtp_map_count(const rtp_map *m);
RTP_API uint64_t rtp_map_evictions(const rtp_map *m);
/* Visits entries from least to most recently used. fn may not change the
 * map, except by returning true to remove the visited entry (after its
 * evict callback ran). */
RTP_API void rtp_map_each(rtp_map *m, bool (*fn)(void *value, const char *key, size_t len, void *arg), void *arg);

/* Builds the series key of a record from one or more fields (their text,
 * separated by 0x1f) into buf; returns its length, or -1 when a key field is
 * missing or null or the key does not fit. */
RTP_API int rtp_record_key(const rtp_record *r, const rtp_key *keys, size_t n, char *buf, size_t cap);

#endif
