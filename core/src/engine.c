/* The engine's life: build instances from the pipeline file, start them,
 * run the loop, drain on a signal or when a finite input ends, stop.
 *
 * Everything a configuration can get wrong is found in rtp_engine_build,
 * before any plugin starts: unknown sections and keys, bad values, missing
 * plugins, and whatever each plugin's init rejects. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "options.h"
#include "util.h"

#define IC(f) offsetof(instance_conf, f)

static const rtp_option input_options[] = {
    {"plugin", RTP_OPT_STR, NULL, 0, IC(plugin), "plugin to run (default: the instance name)", NULL},
    {"tag", RTP_OPT_STR, NULL, 0, IC(tag), "tag of the records it makes (default: the instance name)", NULL},
    {"mem_limit", RTP_OPT_SIZE, "16M", 0, IC(mem_limit),
     "memory of batches not yet acknowledged; past it the input is paused until half is delivered", NULL},
    RTP_OPT_END};

static const rtp_option filter_options[] = {
    {"plugin", RTP_OPT_STR, NULL, 0, IC(plugin), "plugin to run (default: the instance name)", NULL},
    {"match", RTP_OPT_LIST, "*", 0, IC(match), "tag patterns of the records it sees ('*' is a wildcard)", NULL},
    RTP_OPT_END};

static const rtp_option output_options[] = {
    {"plugin", RTP_OPT_STR, NULL, 0, IC(plugin), "plugin to run (default: the instance name)", NULL},
    {"match", RTP_OPT_LIST, "*", 0, IC(match), "tag patterns of the records it receives ('*' is a wildcard)", NULL},
    {"retry_limit", RTP_OPT_INT, "-1", 0, IC(retry_limit),
     "retries of a failed batch before it goes to the error route; -1 retries for ever", NULL},
    {"retry_max_wait", RTP_OPT_DURATION, "30s", 0, IC(retry_max_wait),
     "longest wait between retries (waits double from 1s, with jitter)", NULL},
    {"max_inflight", RTP_OPT_INT, "1", 0, IC(max_inflight), "batches handed to the plugin at once", NULL},
    RTP_OPT_END};

const rtp_option *rtp_instance_options(rtp_kind kind)
{
    return kind == RTP_INPUT ? input_options : kind == RTP_FILTER ? filter_options : output_options;
}

/* ---- SDK: instances ------------------------------------------------------ */

const char *rtp_instance_name(const rtp_instance *ins)
{
    return ins->name;
}

const char *rtp_instance_tag(const rtp_instance *ins)
{
    return ins->conf.tag ? ins->conf.tag : ins->name;
}

struct uv_loop_s *rtp_instance_loop(rtp_instance *ins)
{
    return ins->eng->loop;
}

void *rtp_instance_ctx(rtp_instance *ins)
{
    return ins->ctx;
}

void rtp_config_error(rtp_instance *ins, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rtproc: [%s] %s: %s\n", ins->sec->header, key ? key : "-", msg);
    ins->eng->config_failed = true;
}

/* ---- building ------------------------------------------------------------ */

static rtp_kind kind_of(section_kind k)
{
    return k == SEC_INPUT ? RTP_INPUT : k == SEC_FILTER ? RTP_FILTER : RTP_OUTPUT;
}

static void make_metrics(rtp_instance *ins)
{
    inst_metrics *m = &ins->m;
    if (ins->kind == RTP_INPUT) {
        m->out = rtp_metric_counter(ins, "records_out", "records emitted");
        m->bytes = rtp_metric_counter(ins, "bytes_in", "bytes read");
        m->batches = rtp_metric_counter(ins, "batches_out", "batches emitted");
        m->errored = rtp_metric_counter(ins, "records_errored", "records sent to the error route");
        m->inflight_mem = rtp_metric_gauge(ins, "inflight_bytes", "memory of unacknowledged batches");
        m->paused = rtp_metric_gauge(ins, "paused", "1 while held back by backpressure");
    } else if (ins->kind == RTP_FILTER) {
        m->in = rtp_metric_counter(ins, "records_in", "records seen");
        m->out = rtp_metric_counter(ins, "records_out", "records passed on");
        m->dropped = rtp_metric_counter(ins, "records_dropped", "records removed");
    } else {
        m->in = rtp_metric_counter(ins, "records_in", "records handed to the plugin");
        m->out = rtp_metric_counter(ins, "records_out", "records delivered");
        m->batches = rtp_metric_counter(ins, "batches_out", "batches delivered");
        m->errored = rtp_metric_counter(ins, "records_errored", "records sent to the error route");
        m->retries = rtp_metric_counter(ins, "retries", "batch retries");
        m->queue = rtp_metric_gauge(ins, "queue_batches", "batches waiting for the plugin");
    }
}

static int check_conf(rtp_instance *ins)
{
    const char *h = ins->sec->header;
    if (ins->kind == RTP_INPUT && ins->conf.mem_limit == 0) {
        fprintf(stderr, "rtproc: [%s] mem_limit: must be more than 0\n", h);
        return -1;
    }
    if (ins->kind == RTP_OUTPUT && ins->conf.max_inflight < 1) {
        fprintf(stderr, "rtproc: [%s] max_inflight: must be at least 1\n", h);
        return -1;
    }
    if (ins->kind != RTP_INPUT && ins->conf.match.n == 0) {
        fprintf(stderr, "rtproc: [%s] match: no pattern given\n", h);
        return -1;
    }
    return 0;
}

static rtp_instance *instance_new(rtp_engine *eng, const config_section *sec)
{
    rtp_instance *ins = rtp_xcalloc(1, sizeof *ins);
    ins->eng = eng;
    ins->sec = sec;
    ins->kind = kind_of(sec->kind);
    ins->name = rtp_xstrdup(sec->name);
    ins->prefix = rtp_xasprintf("%s:%s", rtp_kind_name(ins->kind), sec->name);
    if (rtp_options_apply(rtp_instance_options(ins->kind), sec, &ins->conf) < 0) return ins;
    const char *pname = ins->conf.plugin ? ins->conf.plugin : sec->name;
    ins->plugin = rtp_loader_find(ins->kind, pname);
    if (!ins->plugin) {
        fprintf(stderr, "rtproc: [%s] plugin: cannot use %s plugin '%s'\n", sec->header,
                rtp_kind_name(ins->kind), pname);
        return ins;
    }
    ins->ctx = rtp_xcalloc(1, ins->plugin->ctx_size ? ins->plugin->ctx_size : 1);
    return ins;
}

static int instance_configure(rtp_instance *ins)
{
    if (!ins->plugin) return -1;
    const rtp_option *tables[] = {rtp_instance_options(ins->kind), ins->plugin->options};
    if (rtp_options_apply(ins->plugin->options, ins->sec, ins->ctx) < 0) return -1;
    if (rtp_options_check_unused(ins->sec, tables, 2) < 0) return -1;
    if (ins->kind == RTP_INPUT && !ins->conf.tag) ins->conf.tag = rtp_xstrdup(ins->name);
    uint32_t own = rtp_plugin_default_max_inflight(ins->plugin);
    if (own && !rtp_config_get(ins->sec, "max_inflight")) ins->conf.max_inflight = own;
    return check_conf(ins);
}

static void add_instance(rtp_engine *eng, rtp_instance *ins)
{
    rtp_instance ***arr = ins->kind == RTP_INPUT    ? &eng->inputs
                          : ins->kind == RTP_FILTER ? &eng->filters
                                                    : &eng->outputs;
    size_t *n = ins->kind == RTP_INPUT ? &eng->n_inputs : ins->kind == RTP_FILTER ? &eng->n_filters : &eng->n_outputs;
    *arr = rtp_xrealloc(*arr, (*n + 1) * sizeof **arr);
    ins->index = (unsigned)*n;
    (*arr)[(*n)++] = ins;
}

static int build_instances(rtp_engine *eng)
{
    for (size_t i = 0; i < eng->cfg->n_sec; i++) {
        const config_section *sec = &eng->cfg->sec[i];
        if (sec->kind == SEC_SERVICE || sec->kind == SEC_PLUGINS) continue;
        rtp_instance *ins = instance_new(eng, sec);
        add_instance(eng, ins);
        if (instance_configure(ins) < 0) return -1;
    }
    if (eng->n_inputs == 0) {
        fprintf(stderr, "rtproc: %s: no [input.NAME] section: nothing to run\n", eng->cfg->path);
        return -1;
    }
    if (eng->n_outputs == 0) {
        fprintf(stderr, "rtproc: %s: no [output.NAME] section: records would go nowhere\n", eng->cfg->path);
        return -1;
    }
    return 0;
}

static int init_instances(rtp_engine *eng)
{
    rtp_instance **all[] = {eng->outputs, eng->filters, eng->inputs};
    const size_t n[] = {eng->n_outputs, eng->n_filters, eng->n_inputs};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < n[k]; i++) {
            rtp_instance *ins = all[k][i];
            make_metrics(ins);
            if (ins->kind == RTP_OUTPUT) {
                rtp_ring_init(&ins->queue, 64);
                uv_timer_init(eng->loop, &ins->retry_timer);
                ins->retry_timer.data = ins;
            }
            ins->initialised = true; /* destroy follows init, even a failed one */
            if (ins->plugin->init && ins->plugin->init(ins, ins->ctx) < 0) {
                if (!eng->config_failed)
                    fprintf(stderr, "rtproc: [%s]: plugin %s failed to initialise\n", ins->sec->header,
                            ins->plugin->name);
                return -1;
            }
        }
    }
    return 0;
}

static void warn_unrouted_inputs(rtp_engine *eng)
{
    for (size_t i = 0; i < eng->n_inputs; i++) {
        if (rtp_route_for(eng, eng->inputs[i]->conf.tag)->n_outputs == 0)
            rtp_warn(eng->inputs[i], "no output matches tag '%s': its records will be dropped",
                     eng->inputs[i]->conf.tag);
    }
}

int rtp_engine_build(rtp_engine *eng, rtp_config *cfg, uv_loop_t *loop)
{
    memset(eng, 0, sizeof *eng);
    eng->cfg = cfg;
    eng->loop = loop;
    eng->grace_ms = 5000;
    rtp_ring_init(&eng->ingress, 256);
    rtp_pump_init(eng);
    eng->unrouted = rtp_metric_counter(NULL, "records_unrouted", "records no output matched");
    if (build_instances(eng) < 0) return -1;
    if (init_instances(eng) < 0) return -1;
    warn_unrouted_inputs(eng);
    return 0;
}

/* ---- running ------------------------------------------------------------- */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, close_cb);
}

static size_t undelivered(const rtp_engine *eng)
{
    size_t n = 0;
    for (size_t i = 0; i < eng->n_inputs; i++)
        for (const rtp_ack *a = eng->inputs[i]->ack_head; a; a = a->next) n++;
    return n;
}

static void stop_all(rtp_instance **arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rtp_instance *ins = arr[i];
        if (ins->started && !ins->stopped && ins->plugin->stop) ins->plugin->stop(ins, ins->ctx);
        ins->stopped = true;
    }
}

/* Stopped plugins get this long to finish what they have in flight (a write
 * to a dead peer in the thread pool cannot be cancelled); past it the loop is
 * stopped and the process exits without waiting for them. */
#define HARD_STOP_MS 3000

static void on_hard_stop(uv_timer_t *t)
{
    rtp_engine *eng = t->data;
    rtp_error(NULL, "plugins did not finish stopping within %d ms; exiting without them", HARD_STOP_MS);
    eng->hard_stopped = true;
    uv_stop(eng->loop);
}

static void teardown(rtp_engine *eng)
{
    if (eng->state >= ENG_STOPPING) return;
    size_t left = undelivered(eng);
    if (left)
        rtp_warn(NULL, "stopping with %zu batches not acknowledged; inputs that checkpoint will "
                       "replay them on the next run", left);
    stop_all(eng->inputs, eng->n_inputs);
    stop_all(eng->filters, eng->n_filters);
    stop_all(eng->outputs, eng->n_outputs);
    eng->state = ENG_STOPPING;
    close_handle((uv_handle_t *)&eng->grace_timer);
    close_handle((uv_handle_t *)&eng->sigint);
    close_handle((uv_handle_t *)&eng->sigterm);
    close_handle((uv_handle_t *)&eng->pump);
    for (size_t i = 0; i < eng->n_outputs; i++) close_handle((uv_handle_t *)&eng->outputs[i]->retry_timer);
    uv_timer_init(eng->loop, &eng->hard_stop);
    eng->hard_stop.data = eng;
    uv_timer_start(&eng->hard_stop, on_hard_stop, HARD_STOP_MS, 0);
    uv_unref((uv_handle_t *)&eng->hard_stop);
    rtp_metrics_log_summary();
}

static void flush_all(rtp_instance **arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rtp_instance *ins = arr[i];
        if (ins->started && !ins->stopped && ins->plugin->flush) ins->plugin->flush(ins, ins->ctx);
    }
}

static void flush_outputs(rtp_engine *eng)
{
    flush_all(eng->outputs, eng->n_outputs);
}

static bool orphans_pending(const rtp_engine *eng)
{
    for (const rtp_ack *a = eng->orphans; a; a = a->next)
        if (a->pending) return true;
    return false;
}

void rtp_engine_check_drained(rtp_engine *eng)
{
    if (eng->state != ENG_DRAINING) return;
    if (rtp_ring_count(&eng->ingress)) return;
    for (size_t i = 0; i < eng->n_inputs; i++)
        if (eng->inputs[i]->pending_errors) return;
    if (!eng->filters_flushed) {
        /* every batch emitted so far has been through the filters: now they
         * may emit what they hold, which is routed like the rest */
        eng->filters_flushed = true;
        flush_all(eng->filters, eng->n_filters);
        rtp_engine_wake(eng);
        return;
    }
    if (undelivered(eng) == 0 && !orphans_pending(eng)) {
        rtp_info(NULL, "drained: every batch delivered");
        teardown(eng);
        return;
    }
    for (size_t i = 0; i < eng->n_outputs; i++)
        if (rtp_ring_count(&eng->outputs[i]->queue)) return;
    flush_outputs(eng); /* only buffered batches remain: ask for them */
}

static void on_grace(uv_timer_t *t)
{
    rtp_engine *eng = t->data;
    rtp_warn(NULL, "grace period of %lld ms is over", (long long)eng->grace_ms);
    teardown(eng);
}

void rtp_engine_shutdown(rtp_engine *eng, bool with_grace)
{
    if (eng->state == ENG_DRAINING && with_grace) {
        rtp_warn(NULL, "second signal: stopping now");
        teardown(eng);
        return;
    }
    if (eng->state != ENG_RUNNING) return;
    eng->state = ENG_DRAINING;
    for (size_t i = 0; i < eng->n_inputs; i++) {
        rtp_instance *in = eng->inputs[i];
        if (!in->paused && in->plugin->pause) in->plugin->pause(in, in->ctx);
        in->paused = true;
    }
    flush_outputs(eng);
    if (with_grace) uv_timer_start(&eng->grace_timer, on_grace, (uint64_t)eng->grace_ms, 0);
    rtp_engine_wake(eng);
}

static void on_signal(uv_signal_t *s, int signum)
{
    rtp_engine *eng = s->data;
    rtp_info(NULL, "%s: draining (grace %lld ms)", signum == SIGINT ? "SIGINT" : "SIGTERM",
             (long long)eng->grace_ms);
    rtp_engine_shutdown(eng, true);
}

static int start_all(rtp_instance **arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rtp_instance *ins = arr[i];
        ins->started = true;
        if (ins->plugin->start && ins->plugin->start(ins, ins->ctx) < 0) {
            rtp_error(ins, "failed to start");
            return -1;
        }
        rtp_debug(ins, "started (plugin %s)", ins->plugin->name);
    }
    return 0;
}

int rtp_engine_run(rtp_engine *eng)
{
    uv_timer_init(eng->loop, &eng->grace_timer);
    eng->grace_timer.data = eng;
    uv_signal_init(eng->loop, &eng->sigint);
    uv_signal_init(eng->loop, &eng->sigterm);
    eng->sigint.data = eng->sigterm.data = eng;
    uv_signal_start(&eng->sigint, on_signal, SIGINT);
    uv_signal_start(&eng->sigterm, on_signal, SIGTERM);
    if (start_all(eng->outputs, eng->n_outputs) < 0 || start_all(eng->filters, eng->n_filters) < 0 ||
        start_all(eng->inputs, eng->n_inputs) < 0) {
        eng->exit_code = 1;
        teardown(eng);
    } else {
        rtp_engine_wake(eng);
    }
    uv_run(eng->loop, UV_RUN_DEFAULT);
    return eng->exit_code;
}

/* ---- freeing ------------------------------------------------------------- */

static void instance_free(rtp_instance *ins)
{
    if (ins->initialised && ins->plugin->destroy) ins->plugin->destroy(ins, ins->ctx);
    for (rtp_ack *a = ins->ack_head, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    rtp_batch_unref(ins->pending_errors);
    rtp_batch_unref(ins->reject_batch);
    if (ins->queue.slot) {
        rtp_batch *b;
        while ((b = rtp_ring_pop(&ins->queue)) != NULL) rtp_batch_unref(b);
        rtp_ring_free(&ins->queue);
        free(ins->fails);
    }
    if (ins->plugin) rtp_options_release(ins->plugin->options, ins->ctx);
    rtp_options_release(rtp_instance_options(ins->kind), &ins->conf);
    free(ins->ctx);
    free(ins->name);
    free(ins->prefix);
    free(ins);
}

void rtp_engine_free(rtp_engine *eng)
{
    for (rtp_ack *a = eng->orphans, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    rtp_batch *b;
    while ((b = rtp_ring_pop(&eng->ingress)) != NULL) rtp_batch_unref(b);
    rtp_ring_free(&eng->ingress);
    rtp_instance **all[] = {eng->inputs, eng->filters, eng->outputs};
    const size_t n[] = {eng->n_inputs, eng->n_filters, eng->n_outputs};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < n[k]; i++) instance_free(all[k][i]);
        free(all[k]);
    }
    rtp_routes_free(eng);
}

/* ---- --dry-run ----------------------------------------------------------- */

static void print_list(FILE *out, const rtp_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) fprintf(out, "%s%s", i ? "," : "", l->v[i]);
}

void rtp_engine_print_plan(rtp_engine *eng, FILE *out)
{
    fprintf(out, "pipeline %s is valid:\n", eng->cfg->path);
    for (size_t i = 0; i < eng->n_inputs; i++)
        fprintf(out, "  input  %-16s plugin %-12s tag %s\n", eng->inputs[i]->name,
                eng->inputs[i]->plugin->name, eng->inputs[i]->conf.tag);
    for (size_t i = 0; i < eng->n_filters; i++) {
        fprintf(out, "  filter %-16s plugin %-12s match ", eng->filters[i]->name, eng->filters[i]->plugin->name);
        print_list(out, &eng->filters[i]->conf.match);
        fputc('\n', out);
    }
    for (size_t i = 0; i < eng->n_outputs; i++) {
        fprintf(out, "  output %-16s plugin %-12s match ", eng->outputs[i]->name, eng->outputs[i]->plugin->name);
        print_list(out, &eng->outputs[i]->conf.match);
        fputc('\n', out);
    }
    for (size_t i = 0; i < eng->n_inputs; i++) {
        const route *r = rtp_route_for(eng, eng->inputs[i]->conf.tag);
        fprintf(out, "  route  %s:", r->tag);
        for (size_t f = 0; f < r->n_filters; f++) fprintf(out, " %s ->", r->filters[f]->name);
        for (size_t o = 0; o < r->n_outputs; o++) fprintf(out, "%s %s", o ? "," : "", r->outputs[o]->name);
        fprintf(out, "%s\n", r->n_outputs ? "" : " (no output: dropped)");
    }
}
