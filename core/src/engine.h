/* The engine's internal view of instances, routes and queues.
 *
 * Data flow, all on one libuv loop:
 *
 *   input --emit--> ingress --filters (config order, by tag)--> fan-out
 *        --> one ring per output --write--> plugin --rtp_output_done-->
 *        acknowledgement token --(in emission order)--> input's ack callback
 *
 * Memory is bounded by credit, not by queue length: each input may have at
 * most mem_limit bytes of batches that are not yet acknowledged; past that it
 * is paused, and resumed below half. Every batch in every queue belongs to
 * some input's credit (derived and error batches count against the input that
 * made their source), so the queues cannot grow past the sum of the limits. */
#ifndef RTP_ENGINE_H
#define RTP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "batch.h"
#include "config.h"
#include "ring.h"
#include "rtproc/plugin.h"

typedef struct rtp_engine rtp_engine;

/* Who matches a tag: filters in configuration order, then outputs. */
typedef struct route {
    char *tag;
    rtp_instance **filters;
    size_t n_filters;
    rtp_instance **outputs;
    size_t n_outputs;
} route;

/* Options every instance has, whatever its plugin (see instance_options). */
typedef struct instance_conf {
    char *plugin;
    char *tag;              /* inputs */
    rtp_strlist match;      /* filters and outputs */
    uint64_t mem_limit;     /* inputs */
    int64_t retry_limit;    /* outputs: -1 = retry for ever */
    int64_t retry_max_wait; /* outputs, ms */
    int64_t max_inflight;   /* outputs: batches handed to write at once */
} instance_conf;

struct rtp_ack {
    rtp_instance *input;
    uint64_t cookie;
    int pending;  /* routing holds + deliveries outstanding */
    size_t mem;   /* credit it takes from its input */
    rtp_ack *next; /* input's FIFO, in emission order */
};

typedef struct inst_metrics {
    rtp_metric *in, *out, *dropped, *errored, *bytes, *batches, *retries;
    rtp_metric *queue, *inflight_mem, *paused;
} inst_metrics;

struct rtp_instance {
    rtp_engine *eng;
    const rtp_plugin *plugin;
    rtp_kind kind;
    char *name;   /* "prices" */
    char *prefix; /* "input:prices" */
    const config_section *sec;
    instance_conf conf;
    void *ctx;
    unsigned index; /* position among its kind, config order */
    bool initialised, started, stopped;
    inst_metrics m;

    /* inputs */
    rtp_ack *ack_head, *ack_tail;
    size_t inflight_mem;
    bool paused;
    bool finished; /* called rtp_input_finished */
    rtp_batch *pending_errors; /* rtp_input_error records waiting for the next emit */

    /* outputs */
    rtp_ring queue;
    int64_t inflight;
    int retries; /* failures in a row: the backoff's step */
    struct retry_count *fails; /* batches that failed, and how often: retry_limit is per batch */
    size_t n_fails;
    bool backing_off;
    uv_timer_t retry_timer;
    rtp_batch *reject_src, *reject_batch; /* error records collected by rtp_output_reject */
};

typedef enum engine_state { ENG_RUNNING, ENG_DRAINING, ENG_STOPPING } engine_state;

struct rtp_engine {
    uv_loop_t *loop;
    rtp_config *cfg;
    rtp_instance **inputs, **filters, **outputs;
    size_t n_inputs, n_filters, n_outputs;
    rtp_ring ingress;
    uv_idle_t pump;
    bool pump_active;
    uv_signal_t sigint, sigterm;
    uv_timer_t grace_timer;
    uv_timer_t hard_stop; /* after teardown: plugins that cannot finish stopping */
    bool hard_stopped;
    int64_t grace_ms;
    engine_state state;
    bool config_failed;
    int exit_code;
    rtp_metric *unrouted;
    rtp_ack *orphans;       /* tokens of filter-made batches: no input to tell */
    bool filters_flushed;
    struct route *routes; /* per distinct tag: who matches it */
    size_t n_routes;
};

int rtp_engine_build(rtp_engine *eng, rtp_config *cfg, uv_loop_t *loop);
int rtp_engine_run(rtp_engine *eng);
void rtp_engine_free(rtp_engine *eng);
void rtp_engine_print_plan(rtp_engine *eng, FILE *out);
void rtp_engine_shutdown(rtp_engine *eng, bool with_grace);

/* route.c */
void rtp_route_batch(rtp_engine *eng, rtp_batch *b);
void rtp_route_kick_outputs(rtp_engine *eng);
void rtp_ack_release(rtp_engine *eng, rtp_ack *ack);
void rtp_engine_wake(rtp_engine *eng);
void rtp_engine_check_drained(rtp_engine *eng);
void rtp_routes_free(rtp_engine *eng);
/* The cached route of a tag (computed on first use). */
const route *rtp_route_for(rtp_engine *eng, const char *tag);
void rtp_pump_init(rtp_engine *eng);

const rtp_option *rtp_instance_options(rtp_kind kind);

#endif
