/* filter_window: keyed event-time windows with aggregates.
 *
 * Every record is assigned, by its event time, to the windows of its key:
 * epoch-aligned tumbling or hopping windows, or a session that grows while
 * records come within `gap`. A window closes, and becomes one output record,
 * when the watermark (the highest event time seen, by key or overall, minus
 * allowed_lateness) reaches its end. What arrives for a closed window is late:
 * counted and sent on under late_tag.
 *
 * State: a map from key to its open windows (sorted by start), plus one heap
 * of every open window ordered by end, which finds at once what the global
 * watermark closes and which window max_windows evicts. Windows are recycled
 * through a free list, so the hot path allocates nothing: per record one key
 * build, one map lookup (skipped while the key repeats) and one accumulator
 * update per aggregate and window. See docs/window.md for the decisions. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <rtproc/rtproc.h>

#include "window_agg.h"

enum { TYPE_TUMBLING, TYPE_HOPPING, TYPE_SESSION };
enum { WM_KEY, WM_GLOBAL };

#define NS_PER_MS INT64_C(1000000)
#define OUT_BATCH 4096    /* records per emitted batch */
#define KEY_MAX 1024      /* bytes of a composite key's text */
#define MAX_OVERLAP 10000 /* hopping windows one record may fall in */

typedef struct keystate keystate;

typedef struct window {
    struct window *next; /* the key's open windows by start; or the free list */
    keystate *key;
    int64_t start, end; /* [start, end) in ns; a session ends at last event + gap */
    size_t heap_at;
    uint64_t seq; /* creation order: equal ends leave the heap in a fixed order */
    int64_t records;
    wa_state agg[]; /* one per aggregate */
} window;

struct keystate {
    window *open;       /* sorted by start, hence by end (same size, or disjoint sessions) */
    int64_t max_time;   /* highest event time of the key */
    int64_t sealed;     /* end of the last window emitted: what ends before is late */
    uint64_t active_ms; /* loop time of the key's last record, for idle_timeout */
    rtp_field *fields;  /* the key fields as they came; strings live after them */
    uint32_t nfields;
};

typedef struct win_ctx {
    /* options */
    rtp_strlist key;
    int type;
    int64_t size_ms, slide_ms, gap_ms, lateness_ms, idle_ms;
    char *aggregate;
    char *tag;
    char *late_tag;
    int watermark;
    bool pass;
    int64_t max_windows, max_keys;

    rtp_instance *ins;
    const char *out_tag;
    rtp_key *keys;
    wa_list aggs;
    const rtp_field **vals; /* the current record's field for each aggregate */
    rtp_key k_start, k_end;
    int64_t size, step, gap, lateness; /* ns; step is size for tumbling windows */

    rtp_map *map; /* its last-key shortcut serves runs of one key */
    int64_t max_time; /* highest event time of all keys (watermark = global) */

    window **heap; /* every open window, min-heap by end */
    size_t n_open, heap_cap;
    window *free_list;
    size_t win_bytes;
    uint64_t seq;

    rtp_batch *src;  /* batch being processed: closed windows are derived from it */
    rtp_batch *out;  /* batch of closed windows being filled */
    rtp_batch *late; /* batch of late records being filled */
    bool evicting;   /* windows closed now count as evicted */
    bool sweeping;   /* idle sweep: removed keys are not evictions */
    bool destroying; /* keys leave without emitting anything */
    uint64_t sweep_now;
    uv_timer_t idle_timer;
    bool timer_on;

    rtp_metric *m_emitted, *m_evicted, *m_late, *m_no_time, *m_no_key, *m_keys_evicted;
    rtp_metric *g_open, *g_keys;
} win_ctx;

#define OFF(f) offsetof(win_ctx, f)
static const rtp_option window_options[] = {
    {"key", RTP_OPT_LIST, NULL, 0, OFF(key),
     "fields whose values make the key (composite when several); empty: one key for every record", NULL},
    {"type", RTP_OPT_ENUM, "tumbling", 0, OFF(type),
     "tumbling (size), hopping (size, slide) or session (gap) windows", "tumbling|hopping|session"},
    {"size", RTP_OPT_DURATION, NULL, 0, OFF(size_ms),
     "window length of tumbling and hopping windows, aligned to the Unix epoch", NULL},
    {"slide", RTP_OPT_DURATION, NULL, 0, OFF(slide_ms),
     "hopping windows: distance between window starts (at most size)", NULL},
    {"gap", RTP_OPT_DURATION, NULL, 0, OFF(gap_ms),
     "session windows: a key's session ends after this long without records", NULL},
    {"aggregate", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, OFF(aggregate),
     "name=function(field), ... with count, sum, min, max, avg, first, last, stddev; count() counts records",
     NULL},
    {"tag", RTP_OPT_STR, NULL, 0, OFF(tag), "tag of the window records (default: the instance name)", NULL},
    {"late_tag", RTP_OPT_STR, "late", 0, OFF(late_tag),
     "tag under which late records go on, unchanged; empty: they are only counted", NULL},
    {"allowed_lateness", RTP_OPT_DURATION, "0s", 0, OFF(lateness_ms),
     "how far the watermark trails the highest event time: out-of-order records within it still count",
     NULL},
    {"watermark", RTP_OPT_ENUM, "key", 0, OFF(watermark),
     "key: each key's own event time closes its windows (files sorted per key); global: the highest of all",
     "key|global"},
    {"idle_timeout", RTP_OPT_DURATION, "0s", 0, OFF(idle_ms),
     "close the windows of a key without records for this long (processing time) and forget it; 0: never",
     NULL},
    {"pass", RTP_OPT_BOOL, "false", 0, OFF(pass),
     "let the input records go on as well; false: the filter consumes them", NULL},
    {"max_windows", RTP_OPT_INT, "100000", 0, OFF(max_windows),
     "open windows of all keys; past it the window that ends first is emitted early (windows_evicted)",
     NULL},
    {"max_keys", RTP_OPT_INT, "100000", 0, OFF(max_keys),
     "keys remembered; past it the least recently seen key's windows are emitted and the key forgotten",
     NULL},
    RTP_OPT_END};

/* ---- emitting ---------------------------------------------------------------- */

/* A batch for window records: derived from the batch being processed (so it
 * is acknowledged with it), or the filter's own from a timer or a flush. */
static rtp_batch *out_batch(win_ctx *c);

static void out_done(win_ctx *c)
{
    if (c->out && !c->src) rtp_filter_emit(c->ins, c->out);
    c->out = NULL;
}

static rtp_batch *out_batch(win_ctx *c)
{
    if (c->out && rtp_batch_count(c->out) >= OUT_BATCH) out_done(c);
    if (!c->out) c->out = c->src ? rtp_filter_derive(c->ins, c->src, c->out_tag) : rtp_filter_batch(c->ins, c->out_tag);
    return c->out;
}

static void copy_field(rtp_batch *b, rtp_record *r, const rtp_field *f)
{
    if (f->type == RTP_STRING) {
        rtp_record_set_str(b, r, f->key, f->v.s, f->len);
        return;
    }
    rtp_field *o = rtp_record_add(b, r, f->key);
    o->type = f->type;
    o->len = 0;
    o->v = f->v;
}

static void emit_window(win_ctx *c, const window *w)
{
    rtp_batch *b = out_batch(c);
    const keystate *ks = w->key;
    rtp_record *r = rtp_batch_append(b, ks->nfields + 2 + (uint32_t)c->aggs.n);
    r->time = w->start; /* labelled by start, like pandas: chained windows stay in the right bucket */
    for (uint32_t i = 0; i < ks->nfields; i++) copy_field(b, r, &ks->fields[i]);
    rtp_field *f = rtp_record_add(b, r, c->k_start);
    f->type = RTP_TIME;
    f->v.t = w->start;
    f = rtp_record_add(b, r, c->k_end);
    f->type = RTP_TIME;
    f->v.t = w->end;
    for (size_t i = 0; i < c->aggs.n; i++) wa_emit(&c->aggs.v[i], &w->agg[i], b, r);
}

/* Late records go on unchanged; their strings are copied because the
 * batch they point into may be freed before the derived one. */
static void route_late(win_ctx *c, const rtp_record *r)
{
    rtp_metric_add(c->m_late, 1);
    if (!c->late_tag[0]) return;
    if (!c->late) c->late = rtp_filter_derive(c->ins, c->src, c->late_tag);
    rtp_record *o = rtp_batch_append(c->late, r->nfields);
    o->time = r->time;
    for (uint32_t i = 0; i < r->nfields; i++) copy_field(c->late, o, &r->fields[i]);
}

/* ---- the heap of open windows, by end ----------------------------------------- */

static bool ends_before(const window *a, const window *b)
{
    return a->end < b->end || (a->end == b->end && a->seq < b->seq);
}

static void heap_set(win_ctx *c, size_t i, window *w)
{
    c->heap[i] = w;
    w->heap_at = i;
}

static void heap_up(win_ctx *c, size_t i)
{
    window *w = c->heap[i];
    while (i > 0 && ends_before(w, c->heap[(i - 1) / 2])) {
        heap_set(c, i, c->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(c, i, w);
}

static void heap_down(win_ctx *c, size_t i)
{
    window *w = c->heap[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= c->n_open) break;
        if (k + 1 < c->n_open && ends_before(c->heap[k + 1], c->heap[k])) k++;
        if (!ends_before(c->heap[k], w)) break;
        heap_set(c, i, c->heap[k]);
        i = k;
    }
    heap_set(c, i, w);
}

static void heap_push(win_ctx *c, window *w)
{
    if (c->n_open == c->heap_cap) {
        c->heap_cap = c->heap_cap ? c->heap_cap * 2 : 64;
        c->heap = rtp_xrealloc(c->heap, c->heap_cap * sizeof *c->heap);
    }
    heap_set(c, c->n_open++, w);
    heap_up(c, c->n_open - 1);
}

static void heap_remove(win_ctx *c, const window *w)
{
    size_t i = w->heap_at;
    window *last = c->heap[--c->n_open];
    if (i == c->n_open) return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, last->heap_at);
}

/* ---- windows --------------------------------------------------------------------- */

static window *window_new(win_ctx *c, keystate *ks, int64_t start, int64_t end)
{
    window *w = c->free_list;
    if (w) {
        c->free_list = w->next;
    } else {
        w = rtp_xcalloc(1, c->win_bytes);
    }
    w->key = ks;
    w->start = start;
    w->end = end;
    w->records = 0;
    w->seq = c->seq++;
    heap_push(c, w);
    return w;
}

static void window_recycle(win_ctx *c, window *w)
{
    for (size_t i = 0; i < c->aggs.n; i++) wa_reset(&w->agg[i]);
    w->next = c->free_list;
    c->free_list = w;
}

static void unlink_window(keystate *ks, const window *w)
{
    for (window **pp = &ks->open; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            return;
        }
}

static void window_close(win_ctx *c, window *w)
{
    if (!c->destroying) {
        emit_window(c, w);
        rtp_metric_add(c->m_emitted, 1);
        if (c->evicting) rtp_metric_add(c->m_evicted, 1);
    }
    keystate *ks = w->key;
    if (w->end > ks->sealed) ks->sealed = w->end;
    unlink_window(ks, w);
    heap_remove(c, w);
    window_recycle(c, w);
}

static void close_key(win_ctx *c, keystate *ks)
{
    while (ks->open) window_close(c, ks->open);
}

/* The record's values, fetched once, go into every window it falls in. */
static void window_take(win_ctx *c, window *w, int64_t t)
{
    w->records++;
    for (size_t i = 0; i < c->aggs.n; i++) wa_add(&c->aggs.v[i], &w->agg[i], c->vals[i], t);
}

/* ---- keys -------------------------------------------------------------------------- */

/* The key fields are copied into one block: records die with their batch,
 * the key lives as long as its windows. */
static void key_init(win_ctx *c, keystate *ks, const rtp_record *r)
{
    size_t bytes = c->key.n * sizeof(rtp_field);
    for (size_t i = 0; i < c->key.n; i++) {
        const rtp_field *f = rtp_record_get(r, c->keys[i]);
        if (f->type == RTP_STRING) bytes += f->len;
    }
    ks->fields = rtp_xmalloc(bytes ? bytes : 1);
    char *strings = (char *)(ks->fields + c->key.n);
    for (size_t i = 0; i < c->key.n; i++) {
        ks->fields[i] = *rtp_record_get(r, c->keys[i]);
        if (ks->fields[i].type != RTP_STRING) continue;
        memcpy(strings, ks->fields[i].v.s, ks->fields[i].len);
        ks->fields[i].v.s = strings;
        strings += ks->fields[i].len;
    }
    ks->nfields = (uint32_t)c->key.n;
    ks->max_time = INT64_MIN;
    ks->sealed = INT64_MIN;
}

/* rtp_map calls this before a key leaves: LRU eviction (max_keys), the idle
 * sweep, or rtp_map_free at destroy. */
static void key_leave(void *value, const char *id, size_t len, void *user)
{
    win_ctx *c = user;
    keystate *ks = value;
    if (!c->sweeping && !c->destroying) {
        rtp_metric_add(c->m_keys_evicted, 1);
        c->evicting = true;
    }
    close_key(c, ks);
    c->evicting = false;
    free(ks->fields);
}

static keystate *key_state(win_ctx *c, const rtp_record *r)
{
    char id[KEY_MAX];
    int len = rtp_record_key(r, c->keys, c->key.n, id, sizeof id);
    if (len < 0) return NULL;
    bool created;
    keystate *ks = rtp_map_get(c->map, id, (size_t)len, &created);
    if (created) key_init(c, ks, r);
    return ks;
}

/* ---- assigning records ---------------------------------------------------------- */

typedef enum { TAKEN, LATE, BAD_TIME } take_result;

static int64_t sub_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_sub_overflow(a, b, &r) ? INT64_MIN : r;
}

/* Windows ending at or before this are closed. */
static int64_t watermark(const win_ctx *c, const keystate *ks)
{
    return sub_sat(c->watermark == WM_GLOBAL ? c->max_time : ks->max_time, c->lateness);
}

/* The open window of ks starting at s, opened when missing. *pos walks the
 * key's sorted list forward as the starts asked for grow. */
static window *find_or_open(win_ctx *c, keystate *ks, window ***pos, int64_t s)
{
    window **pp = *pos;
    while (*pp && (*pp)->start < s) pp = &(*pp)->next;
    if (!*pp || (*pp)->start != s) {
        window *w = window_new(c, ks, s, s + c->size);
        w->next = *pp;
        *pp = w;
    }
    *pos = &(*pp)->next;
    return *pp;
}

/* Tumbling and hopping: every window containing t that is still open. The
 * record is late only when all of them closed already. */
static take_result take_fixed(win_ctx *c, keystate *ks, int64_t t)
{
    int64_t newest;
    int64_t n = wa_assign(t, c->size, c->step, &newest);
    if (n == 0) return BAD_TIME;
    int64_t closed = watermark(c, ks) > ks->sealed ? watermark(c, ks) : ks->sealed;
    if (newest + c->size <= closed) return LATE;
    window **pos = &ks->open;
    for (int64_t j = n - 1; j >= 0; j--) {
        int64_t s = newest - j * c->step;
        if (s + c->size > closed) window_take(c, find_or_open(c, ks, &pos, s), t);
    }
    return TAKEN;
}

static void session_absorb(win_ctx *c, window *into, window **pp)
{
    window *w = *pp;
    for (size_t i = 0; i < c->aggs.n; i++) wa_merge(&c->aggs.v[i], &into->agg[i], &w->agg[i]);
    into->records += w->records;
    if (w->end > into->end) into->end = w->end;
    *pp = w->next;
    heap_remove(c, w);
    window_recycle(c, w);
}

/* Sessions: t joins every open session it is within gap of (start - gap <
 * t < last + gap), merging them when it bridges two; otherwise it opens one.
 * It is late when it falls before the end of a session already emitted (it
 * would have joined it) or when its own session [t, t + gap) is closed. */
static take_result take_session(win_ctx *c, keystate *ks, int64_t t)
{
    int64_t end;
    if (t < INT64_MIN + c->gap || __builtin_add_overflow(t, c->gap, &end)) return BAD_TIME;
    if (t < ks->sealed) return LATE;
    window *into = NULL;
    for (window **pp = &ks->open; *pp && (*pp)->start - c->gap < t;) {
        if (t >= (*pp)->end) {
            pp = &(*pp)->next;
        } else if (!into) {
            into = *pp;
            pp = &(*pp)->next;
        } else {
            session_absorb(c, into, pp);
        }
    }
    if (!into) {
        if (end <= watermark(c, ks)) return LATE;
        into = window_new(c, ks, t, end);
        window **pp = &ks->open;
        while (*pp && (*pp)->start < t) pp = &(*pp)->next;
        into->next = *pp;
        *pp = into;
    }
    if (t < into->start) into->start = t;
    if (end > into->end) into->end = end;
    heap_down(c, into->heap_at); /* its end only grew */
    window_take(c, into, t);
    return TAKEN;
}

/* t may move the watermark: close what it passed, in order of end. */
static void advance(win_ctx *c, keystate *ks, int64_t t)
{
    if (t > ks->max_time) ks->max_time = t;
    if (c->watermark == WM_GLOBAL) {
        if (t <= c->max_time) return;
        c->max_time = t;
        int64_t wm = watermark(c, ks);
        while (c->n_open && c->heap[0]->end <= wm) window_close(c, c->heap[0]);
        return;
    }
    int64_t wm = watermark(c, ks);
    while (ks->open && ks->open->end <= wm) window_close(c, ks->open);
}

/* Past max_windows, the window that would close first goes now. */
static void enforce_limit(win_ctx *c)
{
    c->evicting = true;
    while (c->n_open > (size_t)c->max_windows) window_close(c, c->heap[0]);
    c->evicting = false;
}

static void take(win_ctx *c, const rtp_record *r, uint64_t now)
{
    if (r->time == 0) {
        rtp_metric_add(c->m_no_time, 1);
        return;
    }
    keystate *ks = key_state(c, r);
    if (!ks) {
        rtp_metric_add(c->m_no_key, 1);
        return;
    }
    ks->active_ms = now;
    for (size_t i = 0; i < c->aggs.n; i++)
        c->vals[i] = c->aggs.v[i].has_field ? rtp_record_get(r, c->aggs.v[i].in) : NULL;
    take_result res = c->type == TYPE_SESSION ? take_session(c, ks, r->time) : take_fixed(c, ks, r->time);
    if (res == BAD_TIME) {
        rtp_metric_add(c->m_no_time, 1);
        return;
    }
    if (res == LATE) {
        route_late(c, r);
        return;
    }
    advance(c, ks, r->time);
    if (c->n_open > (size_t)c->max_windows) enforce_limit(c);
}

static void update_gauges(win_ctx *c)
{
    rtp_metric_set(c->g_open, (int64_t)c->n_open);
    rtp_metric_set(c->g_keys, (int64_t)rtp_map_count(c->map));
}

static void window_process(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    win_ctx *c = ctx;
    uint64_t now = uv_now(rtp_instance_loop(ins));
    c->src = b;
    size_t n = rtp_batch_count(b);
    for (size_t i = 0; i < n; i++) {
        rtp_record *r = rtp_batch_record(b, i);
        take(c, r, now);
        if (!c->pass) r->flags |= RTP_RECORD_DROPPED;
    }
    c->src = c->out = c->late = NULL; /* derived batches go on when process returns */
    update_gauges(c);
}

/* ---- idle keys, flush --------------------------------------------------------------- */

static bool sweep_key(void *value, const char *id, size_t len, void *arg)
{
    win_ctx *c = arg;
    const keystate *ks = value;
    return c->sweep_now - ks->active_ms >= (uint64_t)c->idle_ms;
}

static void on_idle_timer(uv_timer_t *t)
{
    win_ctx *c = t->data;
    c->sweeping = true;
    c->sweep_now = uv_now(rtp_instance_loop(c->ins));
    rtp_map_each(c->map, sweep_key, c); /* key_leave emits the windows */
    c->sweeping = false;
    out_done(c);
    update_gauges(c);
}

/* The engine drains: every open window goes out, in order of end. */
static void window_flush(rtp_instance *ins, void *ctx)
{
    win_ctx *c = ctx;
    while (c->n_open) window_close(c, c->heap[0]);
    out_done(c);
    update_gauges(c);
}

/* ---- configuration ------------------------------------------------------------------- */

static int to_ns(rtp_instance *ins, const char *name, int64_t ms, int64_t *ns)
{
    if (ms < 0 || ms > INT64_MAX / NS_PER_MS) {
        rtp_config_error(ins, name, "must be between 0 and 292 years");
        return -1;
    }
    *ns = ms * NS_PER_MS;
    return 0;
}

static int refuse(rtp_instance *ins, const char *key, const char *why)
{
    rtp_config_error(ins, key, "%s", why);
    return -1;
}

/* Each type takes its own durations and refuses the others, so a session
 * configured with `size` is an error instead of a silent surprise. */
static int check_type(win_ctx *c, rtp_instance *ins)
{
    if (c->type == TYPE_SESSION) {
        if (c->gap_ms <= 0) return refuse(ins, "gap", "session windows need gap");
        if (c->size_ms || c->slide_ms) return refuse(ins, c->size_ms ? "size" : "slide", "not used by session windows");
        return 0;
    }
    if (c->size_ms <= 0) return refuse(ins, "size", "tumbling and hopping windows need size");
    if (c->gap_ms) return refuse(ins, "gap", "only session windows have a gap");
    if (c->type == TYPE_TUMBLING && c->slide_ms) return refuse(ins, "slide", "only hopping windows slide");
    if (c->type == TYPE_HOPPING) {
        if (c->slide_ms <= 0) return refuse(ins, "slide", "hopping windows need slide");
        if (c->slide_ms > c->size_ms) return refuse(ins, "slide", "must not exceed size (records would fall between windows)");
        if (c->size_ms / c->slide_ms > MAX_OVERLAP) return refuse(ins, "slide", "size / slide is over 10000 windows per record");
    }
    return 0;
}

static int check_durations(win_ctx *c, rtp_instance *ins)
{
    int64_t slide = 0, idle = 0;
    if (to_ns(ins, "size", c->size_ms, &c->size) < 0 || to_ns(ins, "slide", c->slide_ms, &slide) < 0 ||
        to_ns(ins, "gap", c->gap_ms, &c->gap) < 0 || to_ns(ins, "allowed_lateness", c->lateness_ms, &c->lateness) < 0 ||
        to_ns(ins, "idle_timeout", c->idle_ms, &idle) < 0)
        return -1;
    c->step = c->type == TYPE_HOPPING ? slide : c->size;
    return 0;
}

static bool is_key_field(const win_ctx *c, rtp_key k)
{
    for (size_t i = 0; i < c->key.n; i++)
        if (c->keys[i] == k) return true;
    return false;
}

/* Output names must not collide: a record holds each field once. */
static int check_names(win_ctx *c, rtp_instance *ins)
{
    for (size_t i = 0; i < c->aggs.n; i++) {
        rtp_key out = c->aggs.v[i].out;
        if (out == c->k_start || out == c->k_end || is_key_field(c, out)) {
            rtp_config_error(ins, "aggregate", "output '%s' is also a key field or window_start/window_end",
                             rtp_key_name(out, NULL));
            return -1;
        }
    }
    return 0;
}

static int parse_options(win_ctx *c, rtp_instance *ins)
{
    char err[300];
    if (wa_parse(c->aggregate, &c->aggs, err, sizeof err) < 0) {
        rtp_config_error(ins, "aggregate", "%s", err);
        return -1;
    }
    c->keys = rtp_xcalloc(c->key.n ? c->key.n : 1, sizeof *c->keys);
    for (size_t i = 0; i < c->key.n; i++) c->keys[i] = rtp_key_cstr(c->key.v[i]);
    c->k_start = rtp_key_cstr("window_start");
    c->k_end = rtp_key_cstr("window_end");
    if (check_type(c, ins) < 0 || check_durations(c, ins) < 0 || check_names(c, ins) < 0) return -1;
    if (c->max_windows < 1) return refuse(ins, "max_windows", "must be at least 1");
    if (c->max_keys < 1) return refuse(ins, "max_keys", "must be at least 1");
    return 0;
}

static void make_metrics(win_ctx *c, rtp_instance *ins)
{
    c->m_emitted = rtp_metric_counter(ins, "windows_emitted", "window records emitted");
    c->m_evicted = rtp_metric_counter(ins, "windows_evicted", "windows emitted early: max_windows or max_keys");
    c->m_late = rtp_metric_counter(ins, "late_records", "records for windows already closed");
    c->m_no_time = rtp_metric_counter(ins, "no_time", "records without a usable event time, skipped");
    c->m_no_key = rtp_metric_counter(ins, "no_key", "records missing a key field, skipped");
    c->m_keys_evicted = rtp_metric_counter(ins, "keys_evicted", "keys forgotten to stay within max_keys");
    c->g_open = rtp_metric_gauge(ins, "open_windows", "windows open now");
    c->g_keys = rtp_metric_gauge(ins, "open_keys", "keys remembered now");
}

static int window_init(rtp_instance *ins, void *ctx)
{
    win_ctx *c = ctx;
    c->ins = ins;
    if (parse_options(c, ins) < 0) return -1;
    c->out_tag = c->tag ? c->tag : rtp_instance_name(ins);
    c->vals = rtp_xcalloc(c->aggs.n, sizeof *c->vals);
    c->win_bytes = sizeof(window) + c->aggs.n * sizeof(wa_state);
    c->map = rtp_map_new(sizeof(keystate), (size_t)c->max_keys, key_leave, c);
    c->max_time = INT64_MIN;
    make_metrics(c, ins);
    return 0;
}

static int window_start(rtp_instance *ins, void *ctx)
{
    win_ctx *c = ctx;
    if (c->idle_ms <= 0) return 0;
    /* A quarter of the timeout keeps a key at most 25% past it. */
    uint64_t every = (uint64_t)c->idle_ms / 4;
    every = every < 1 ? 1 : every > 1000 ? 1000 : every;
    uv_timer_init(rtp_instance_loop(ins), &c->idle_timer);
    c->idle_timer.data = c;
    uv_timer_start(&c->idle_timer, on_idle_timer, every, every);
    c->timer_on = true;
    return 0;
}

static void window_stop(rtp_instance *ins, void *ctx)
{
    win_ctx *c = ctx;
    if (c->timer_on) uv_close((uv_handle_t *)&c->idle_timer, NULL);
    c->timer_on = false;
}

static void free_windows(win_ctx *c, window *w)
{
    while (w) {
        window *next = w->next;
        for (size_t i = 0; i < c->aggs.n; i++) wa_free(&w->agg[i]);
        free(w);
        w = next;
    }
}

static void window_destroy(rtp_instance *ins, void *ctx)
{
    win_ctx *c = ctx;
    c->destroying = true;
    if (c->map) rtp_map_free(c->map); /* key_leave recycles the open windows */
    free_windows(c, c->free_list);
    free(c->heap);
    free(c->vals);
    free(c->keys);
    wa_list_free(&c->aggs);
}

RTP_PLUGIN_DEFINE(.kind = RTP_FILTER, .name = "window",
                  .description = "keyed event-time windows (tumbling, hopping, session) with aggregates",
                  .options = window_options, .ctx_size = sizeof(win_ctx), .init = window_init,
                  .start = window_start, .stop = window_stop, .process = window_process,
                  .flush = window_flush, .destroy = window_destroy);
