/* Routing, fan-out and acknowledgement: what happens to a batch between the
 * input that emits it and the input's ack callback.
 *
 * Nothing here runs inside a plugin callback's stack: emit and done only
 * queue work and wake the pump (an idle handle), which routes, hands batches
 * to outputs and delivers acknowledgements. An output that completes inside
 * write, or an input that emits inside ack, therefore never re-enters the
 * engine. */
#include <stdlib.h>
#include <string.h>

#include <rtproc/backoff.h>
#include <rtproc/options.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "match.h"
#include "util.h"

static rtp_key key_error, key_raw, key_instance;

static void on_pump(uv_idle_t *h);

/* Tags are few and stable, so a linear cache of who matches each one beats
 * matching patterns for every batch. */
const route *rtp_route_for(rtp_engine *eng, const char *tag)
{
    for (size_t i = 0; i < eng->n_routes; i++)
        if (strcmp(eng->routes[i].tag, tag) == 0) return &eng->routes[i];
    eng->routes = rtp_xrealloc(eng->routes, (eng->n_routes + 1) * sizeof *eng->routes);
    route *r = &eng->routes[eng->n_routes++];
    *r = (route){.tag = rtp_xstrdup(tag)};
    r->filters = rtp_xcalloc(eng->n_filters + 1, sizeof *r->filters);
    r->outputs = rtp_xcalloc(eng->n_outputs + 1, sizeof *r->outputs);
    for (size_t i = 0; i < eng->n_filters; i++)
        if (rtp_match_any(&eng->filters[i]->conf.match, tag)) r->filters[r->n_filters++] = eng->filters[i];
    for (size_t i = 0; i < eng->n_outputs; i++)
        if (rtp_match_any(&eng->outputs[i]->conf.match, tag)) r->outputs[r->n_outputs++] = eng->outputs[i];
    return r;
}

void rtp_routes_free(rtp_engine *eng)
{
    for (size_t i = 0; i < eng->n_routes; i++) {
        free(eng->routes[i].tag);
        free(eng->routes[i].filters);
        free(eng->routes[i].outputs);
    }
    free(eng->routes);
    eng->routes = NULL;
    eng->n_routes = 0;
}

static void metric_add(rtp_metric *m, uint64_t v)
{
    if (m) rtp_metric_add(m, v);
}

void rtp_engine_wake(rtp_engine *eng)
{
    if (!eng->pump_active && eng->state < ENG_STOPPING) {
        eng->pump_active = true;
        uv_idle_start(&eng->pump, on_pump);
    }
}

/* ---- acknowledgement tokens ---------------------------------------------- */

static void ack_charge(rtp_ack *ack, rtp_batch *b)
{
    rtp_instance *in = ack->input;
    if (b->charged || !in) return;
    b->charged = true;
    ack->mem += b->mem;
    in->inflight_mem += b->mem;
    rtp_metric_set(in->m.inflight_mem, (int64_t)in->inflight_mem);
    if (!in->paused && in->inflight_mem >= in->conf.mem_limit) {
        in->paused = true;
        rtp_metric_set(in->m.paused, 1);
        rtp_debug(in, "paused: %zu bytes in flight (mem_limit %llu)", in->inflight_mem,
                  (unsigned long long)in->conf.mem_limit);
        if (in->plugin->pause) in->plugin->pause(in, in->ctx);
    }
}

static rtp_ack *ack_new(rtp_instance *in, uint64_t cookie)
{
    rtp_ack *ack = rtp_xcalloc(1, sizeof *ack);
    ack->input = in;
    ack->cookie = cookie;
    if (in->ack_tail)
        in->ack_tail->next = ack;
    else
        in->ack_head = ack;
    in->ack_tail = ack;
    return ack;
}

void rtp_ack_release(rtp_engine *eng, rtp_ack *ack)
{
    if (--ack->pending == 0) rtp_engine_wake(eng);
}

static void free_done_orphans(rtp_engine *eng)
{
    for (rtp_ack **p = &eng->orphans; *p;) {
        rtp_ack *a = *p;
        if (a->pending == 0) {
            *p = a->next;
            free(a);
        } else {
            p = &a->next;
        }
    }
}

/* Hands completed tokens back to their inputs, oldest first, and resumes
 * inputs that have credit again. */
static void deliver_acks(rtp_engine *eng)
{
    free_done_orphans(eng);
    for (size_t i = 0; i < eng->n_inputs; i++) {
        rtp_instance *in = eng->inputs[i];
        rtp_ack *ack;
        while ((ack = in->ack_head) && ack->pending == 0) {
            in->ack_head = ack->next;
            if (!in->ack_head) in->ack_tail = NULL;
            in->inflight_mem -= ack->mem;
            if (ack->cookie != UINT64_MAX && in->plugin->ack) in->plugin->ack(in, in->ctx, ack->cookie);
            free(ack);
        }
        rtp_metric_set(in->m.inflight_mem, (int64_t)in->inflight_mem);
        if (in->paused && eng->state == ENG_RUNNING && in->inflight_mem < in->conf.mem_limit / 2) {
            in->paused = false;
            rtp_metric_set(in->m.paused, 0);
            rtp_debug(in, "resumed");
            if (in->plugin->resume) in->plugin->resume(in, in->ctx);
        }
    }
}

/* ---- routing ------------------------------------------------------------- */

static void enqueue(rtp_engine *eng, rtp_batch *b, rtp_ack *ack)
{
    b->ack = ack;
    ack->pending++; /* the routing hold, released once fanned out */
    ack_charge(ack, b);
    rtp_ring_push(&eng->ingress, b);
    rtp_engine_wake(eng);
}

static void run_filters(const route *r, rtp_batch *b)
{
    for (size_t i = 0; i < r->n_filters && b->n; i++) {
        rtp_instance *f = r->filters[i];
        if (f->index < b->next_stage) continue;
        b->next_stage = f->index + 1;
        size_t n_in = b->n;
        metric_add(f->m.in, n_in);
        f->plugin->process(f, f->ctx, b);
        size_t gone = rtp_batch_compact(b);
        metric_add(f->m.dropped, gone);
        metric_add(f->m.out, b->n);
    }
}

void rtp_route_batch(rtp_engine *eng, rtp_batch *b)
{
    const route *r = rtp_route_for(eng, b->tag);
    run_filters(r, b);
    ack_charge(b->ack, b); /* derived and error batches: now that they are full */
    size_t fanned = 0;
    for (size_t i = 0; i < r->n_outputs && b->n; i++) {
        rtp_instance *out = r->outputs[i];
        if (out == b->error_from) continue; /* never feed an output its own failures */
        rtp_batch_ref(b);
        b->ack->pending++;
        rtp_ring_push(&out->queue, b);
        rtp_metric_set(out->m.queue, (int64_t)rtp_ring_count(&out->queue));
        fanned++;
    }
    if (b->n && !fanned) {
        rtp_metric_add(eng->unrouted, b->n);
        rtp_debug(NULL, "no output matches tag '%s': %zu records dropped", b->tag, b->n);
    }
    rtp_ack_release(eng, b->ack);
    rtp_batch_unref(b);
}

/* ---- outputs ------------------------------------------------------------- */

static void kick_output(rtp_instance *out)
{
    rtp_batch *b;
    while (!out->backing_off && out->inflight < out->conf.max_inflight &&
           (b = rtp_ring_pop(&out->queue)) != NULL) {
        out->inflight++;
        rtp_metric_set(out->m.queue, (int64_t)rtp_ring_count(&out->queue));
        metric_add(out->m.in, b->n);
        out->plugin->write(out, out->ctx, b);
    }
}

void rtp_route_kick_outputs(rtp_engine *eng)
{
    for (size_t i = 0; i < eng->n_outputs; i++) kick_output(eng->outputs[i]);
}

static void flush_input_errors(rtp_engine *eng, rtp_instance *in)
{
    rtp_batch *e = in->pending_errors;
    if (!e) return;
    in->pending_errors = NULL;
    e->next_stage = (unsigned)eng->n_filters; /* error records skip the filters */
    enqueue(eng, e, ack_new(in, UINT64_MAX));
}

static void on_pump(uv_idle_t *h)
{
    rtp_engine *eng = h->data;
    for (int round = 0; round < 64; round++) {
        for (size_t i = 0; i < eng->n_inputs; i++) flush_input_errors(eng, eng->inputs[i]);
        rtp_batch *b;
        bool worked = false;
        while ((b = rtp_ring_pop(&eng->ingress)) != NULL) {
            rtp_route_batch(eng, b);
            worked = true;
        }
        rtp_route_kick_outputs(eng);
        deliver_acks(eng);
        if (!worked && rtp_ring_count(&eng->ingress) == 0) break;
    }
    if (rtp_ring_count(&eng->ingress) == 0) {
        eng->pump_active = false;
        uv_idle_stop(&eng->pump);
    }
    rtp_engine_check_drained(eng);
}

void rtp_pump_init(rtp_engine *eng)
{
    key_error = rtp_key_cstr("error");
    key_raw = rtp_key_cstr("raw");
    key_instance = rtp_key_cstr("instance");
    uv_idle_init(eng->loop, &eng->pump);
    eng->pump.data = eng;
}

/* ---- SDK: inputs --------------------------------------------------------- */

rtp_batch *rtp_input_batch(rtp_instance *ins)
{
    return rtp_batch_create(ins->conf.tag);
}

void rtp_input_emit(rtp_instance *ins, rtp_batch *b, uint64_t cookie)
{
    rtp_engine *eng = ins->eng;
    if (eng->state >= ENG_STOPPING) {
        rtp_batch_unref(b);
        return;
    }
    flush_input_errors(eng, ins);
    rtp_batch_compact(b);
    metric_add(ins->m.out, b->n);
    metric_add(ins->m.bytes, b->bytes);
    metric_add(ins->m.batches, 1);
    enqueue(eng, b, ack_new(ins, cookie));
}

bool rtp_input_paused(const rtp_instance *ins)
{
    return ins->paused || ins->eng->state != ENG_RUNNING;
}

void rtp_input_error(rtp_instance *ins, const char *reason, const void *raw, size_t len)
{
    if (!ins->pending_errors) {
        char *tag = rtp_xasprintf("error.%s", ins->name);
        ins->pending_errors = rtp_batch_create(tag);
        free(tag);
    }
    rtp_batch *e = ins->pending_errors;
    rtp_record *r = rtp_batch_append(e, 3);
    rtp_record_set_str(e, r, key_error, reason, strlen(reason));
    rtp_record_set_str(e, r, key_raw, raw, len);
    rtp_record_set_str(e, r, key_instance, ins->name, strlen(ins->name));
    metric_add(ins->m.errored, 1);
    rtp_engine_wake(ins->eng);
}

/* exit_on_eof is the one plugin key the engine reads: it is how a pipeline
 * says an input is finite, so the run waits for every such input. */
static bool ends_the_run(const rtp_instance *in)
{
    const char *v = rtp_config_get(in->sec, "exit_on_eof");
    bool b = false;
    return v && rtp_parse_bool(v, &b) == 0 && b;
}

static const rtp_instance *unfinished_finite_input(const rtp_engine *eng)
{
    for (size_t i = 0; i < eng->n_inputs; i++)
        if (!eng->inputs[i]->finished && ends_the_run(eng->inputs[i])) return eng->inputs[i];
    return NULL;
}

void rtp_input_finished(rtp_instance *ins, bool exit)
{
    ins->finished = true;
    const rtp_instance *other = exit ? unfinished_finite_input(ins->eng) : NULL;
    if (other)
        rtp_info(ins, "input finished; the run ends once [%s] has finished too", other->prefix);
    else
        rtp_info(ins, "input finished%s", exit ? "; the run ends once everything is delivered" : "");
    if (exit && !other) rtp_engine_shutdown(ins->eng, false);
    rtp_engine_wake(ins->eng);
}

/* ---- SDK: filters -------------------------------------------------------- */

rtp_batch *rtp_filter_derive(rtp_instance *ins, rtp_batch *src, const char *tag)
{
    rtp_batch *d = rtp_batch_create(tag);
    d->next_stage = ins->index + 1;
    /* Queued now so the token is held; routed (and charged for) after the
     * filter returns and the batch is full. */
    d->ack = src->ack;
    src->ack->pending++;
    rtp_ring_push(&ins->eng->ingress, d);
    rtp_engine_wake(ins->eng);
    return d;
}

rtp_batch *rtp_filter_batch(rtp_instance *ins, const char *tag)
{
    return rtp_batch_create(tag);
}

void rtp_filter_emit(rtp_instance *ins, rtp_batch *b)
{
    rtp_engine *eng = ins->eng;
    if (eng->state >= ENG_STOPPING || b->n == 0) {
        rtp_batch_unref(b);
        return;
    }
    rtp_ack *ack = rtp_xcalloc(1, sizeof *ack);
    ack->next = eng->orphans;
    eng->orphans = ack;
    b->next_stage = ins->index + 1;
    enqueue(eng, b, ack);
}

/* ---- SDK: outputs -------------------------------------------------------- */

/* A failure of an error record itself is only logged: sending it on again
 * could bounce records between two outputs that both match error.* for ever. */
static bool is_error_batch(const rtp_batch *b)
{
    return strncmp(b->tag, "error.", 6) == 0;
}

static rtp_batch *error_batch_for(rtp_instance *out, rtp_batch *src)
{
    char *tag = rtp_xasprintf("error.%s", out->name);
    rtp_batch *e = rtp_batch_create(tag);
    free(tag);
    e->error_from = out;
    e->next_stage = (unsigned)out->eng->n_filters;
    e->ack = src->ack;
    src->ack->pending++; /* the routing hold */
    return e;
}

static void add_error_record(rtp_instance *out, rtp_batch *e, const rtp_record *src, const char *why)
{
    metric_add(out->m.errored, 1);
    if (!e) {
        rtp_error(out, "an error record failed too; dropped: %s", why);
        return;
    }
    rtp_record *r = rtp_batch_copy_record(e, src);
    rtp_record_set_str(e, r, key_error, why, strlen(why));
    rtp_record_set_str(e, r, key_instance, out->name, strlen(out->name));
}

static void route_error_batch(rtp_instance *out, rtp_batch *e)
{
    if (!e) return;
    rtp_ring_push(&out->eng->ingress, e);
    rtp_engine_wake(out->eng);
}

void rtp_output_reject(rtp_instance *out, rtp_batch *b, size_t i, const char *reason)
{
    if (out->reject_src != b) {
        route_error_batch(out, out->reject_batch);
        out->reject_batch = is_error_batch(b) ? NULL : error_batch_for(out, b);
        out->reject_src = b;
    }
    if (i < b->n) add_error_record(out, out->reject_batch, b->recs[i], reason);
}

static void on_retry_timer(uv_timer_t *t)
{
    rtp_instance *out = t->data;
    out->backing_off = false;
    rtp_engine_wake(out->eng);
}

static void schedule_retry(rtp_instance *out, rtp_batch *b, int attempt)
{
    out->retries++;
    metric_add(out->m.retries, 1);
    uint64_t wait = rtp_backoff_ms((unsigned)out->retries - 1, 1000, (uint64_t)out->conf.retry_max_wait);
    rtp_warn(out, "delivery failed; retry %d in %llu ms", attempt, (unsigned long long)wait);
    rtp_ring_push_front(&out->queue, b);
    out->backing_off = true;
    uv_timer_start(&out->retry_timer, on_retry_timer, wait, 0);
}

/* Retries are counted per batch: with max_inflight > 1, another batch's
 * success must not reset the count of one that keeps failing, or it would
 * never reach retry_limit. At most max_inflight batches are here at once. */
struct retry_count {
    const rtp_batch *b;
    int n;
};

static int *retry_count_of(rtp_instance *out, const rtp_batch *b)
{
    for (size_t i = 0; i < out->n_fails; i++)
        if (out->fails[i].b == b) return &out->fails[i].n;
    out->fails = rtp_xrealloc(out->fails, (out->n_fails + 1) * sizeof *out->fails);
    out->fails[out->n_fails] = (struct retry_count){b, 0};
    return &out->fails[out->n_fails++].n;
}

/* The batch is done with this output (delivered or given up): forget it. */
static int retry_count_forget(rtp_instance *out, const rtp_batch *b)
{
    for (size_t i = 0; i < out->n_fails; i++) {
        if (out->fails[i].b != b) continue;
        int n = out->fails[i].n;
        out->fails[i] = out->fails[--out->n_fails];
        return n;
    }
    return 0;
}

void rtp_output_done(rtp_instance *out, rtp_batch *b, rtp_status status)
{
    rtp_engine *eng = out->eng;
    out->inflight--;
    if (eng->state >= ENG_STOPPING) {
        rtp_batch_unref(b);
        return;
    }
    if (out->reject_src == b) {
        route_error_batch(out, out->reject_batch);
        out->reject_batch = out->reject_src = NULL;
    }
    if (status == RTP_RETRY) {
        int *n = retry_count_of(out, b);
        if (out->conf.retry_limit < 0 || *n < out->conf.retry_limit) {
            schedule_retry(out, b, ++*n);
            return;
        }
    }
    int retried = retry_count_forget(out, b);
    if (status != RTP_OK) {
        rtp_error(out, "giving up on a batch of %zu records after %d retries: sent to error.%s",
                  b->n, retried, out->name);
        rtp_batch *e = is_error_batch(b) ? NULL : error_batch_for(out, b);
        for (size_t i = 0; i < b->n; i++) add_error_record(out, e, b->recs[i], "delivery failed");
        route_error_batch(out, e);
    } else {
        metric_add(out->m.out, b->n);
        metric_add(out->m.batches, 1);
    }
    out->retries = 0;
    rtp_ack_release(eng, b->ack);
    rtp_batch_unref(b);
    rtp_engine_wake(eng);
}
