/* rtproc — the plugin interface.
 *
 * A plugin is a shared object that exports one symbol, `rtproc_plugin`, a
 * struct rtp_plugin (use RTP_PLUGIN_DEFINE). The host reads abi_major and
 * abi_minor before anything else and refuses a plugin built for another major.
 *
 * Every callback runs on the engine's event loop thread. A callback must not
 * block: register libuv handles on rtp_instance_loop() and return.
 *
 * Lifecycle of an instance:
 *   options parsed into a zeroed context of ctx_size bytes (the option table's
 *   offsets point into it) -> init -> start -> ... -> stop -> destroy.
 * stop must close the plugin's libuv handles; destroy frees what init made.
 * destroy is called after every init, also one that failed, so it must cope
 * with a context that init filled only in part (it starts zeroed). */
#ifndef RTPROC_PLUGIN_H
#define RTPROC_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "record.h"
#include "version.h"

typedef struct rtp_instance rtp_instance;
struct uv_loop_s;

typedef enum rtp_kind { RTP_INPUT = 1, RTP_FILTER = 2, RTP_OUTPUT = 3 } rtp_kind;

/* What an output says of a batch it was given. */
typedef enum rtp_status {
    RTP_OK = 0,    /* delivered durably: acknowledge */
    RTP_RETRY = 1, /* transient failure: the engine retries with backoff */
    RTP_ERROR = 2  /* permanent failure: the batch goes to the error route */
} rtp_status;

typedef struct rtp_plugin {
    uint32_t abi_major; /* RTP_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;
    rtp_kind kind;
    const char *name; /* "csv" for in_csv.so */
    const char *description;
    const rtp_option *options; /* terminated by an entry with name == NULL */
    size_t ctx_size;           /* bytes of context; option offsets point into it */

    int (*init)(rtp_instance *ins, void *ctx);  /* 0, or -1 after rtp_config_error */
    int (*start)(rtp_instance *ins, void *ctx); /* 0, or -1 after logging why */
    void (*stop)(rtp_instance *ins, void *ctx);
    void (*destroy)(rtp_instance *ins, void *ctx);

    /* inputs */
    void (*pause)(rtp_instance *ins, void *ctx);
    void (*resume)(rtp_instance *ins, void *ctx);
    /* Called once per emitted batch, in emission order, when every output it
     * reached delivered it (or sent it to the error route). */
    void (*ack)(rtp_instance *ins, void *ctx, uint64_t cookie);

    /* filters: change records in place, mark drops, derive new batches. */
    void (*process)(rtp_instance *ins, void *ctx, rtp_batch *b);

    /* outputs: take the batch; call rtp_output_done(ins, b, status) exactly
     * once, now or later. The batch is read-only (shared by fan-out). */
    void (*write)(rtp_instance *ins, void *ctx, rtp_batch *b);
    /* Outputs: write out anything buffered now. Filters: emit what they hold
     * (open windows) with rtp_filter_emit. Called when the engine drains
     * (a signal, or an input with exit_on_eof finished), for filters once
     * every batch emitted before has been through them. */
    void (*flush)(rtp_instance *ins, void *ctx);

    /* ABI 1.1: outputs: max_inflight when the section does not set it (0: 1).
     * A sink that pipelines or groups commits wants more than one batch. */
    uint32_t default_max_inflight;
} rtp_plugin;

#define RTP_PLUGIN_DEFINE(...)                                                 \
    RTP_API const rtp_plugin rtproc_plugin = {.abi_major = RTP_ABI_MAJOR,      \
                                              .abi_minor = RTP_ABI_MINOR,      \
                                              __VA_ARGS__}

/* ---- instances ----------------------------------------------------------- */

RTP_API const char *rtp_instance_name(const rtp_instance *ins); /* "prices" */
RTP_API const char *rtp_instance_tag(const rtp_instance *ins);  /* inputs */
RTP_API struct uv_loop_s *rtp_instance_loop(rtp_instance *ins);
RTP_API void *rtp_instance_ctx(rtp_instance *ins);

/* Reports a configuration problem found by init, naming section and key;
 * init then returns -1 and the process exits with status 2 before start. */
RTP_API void rtp_config_error(rtp_instance *ins, const char *key, const char *fmt, ...)
    RTP_PRINTF(3, 4);

/* ---- inputs -------------------------------------------------------------- */

/* A new batch tagged with the input's tag. */
RTP_API rtp_batch *rtp_input_batch(rtp_instance *ins);
/* Hands the batch to the engine (which owns it from now on). cookie comes
 * back through the plugin's ack callback once the batch is delivered.
 * An empty batch is acknowledged at once. */
RTP_API void rtp_input_emit(rtp_instance *ins, rtp_batch *b, uint64_t cookie);
/* True while the engine wants this input to hold back (backpressure). The
 * pause/resume callbacks announce the changes; this is for polling. */
RTP_API bool rtp_input_paused(const rtp_instance *ins);
/* Sends raw bytes that could not be turned into a record to the error route
 * (tag error.<instance>) as a record {error, raw, instance}. The bytes are
 * copied. Delivery of the error record is acknowledged with the batch that
 * the next rtp_input_emit hands over, so call this before emitting. */
RTP_API void rtp_input_error(rtp_instance *ins, const char *reason, const void *raw, size_t len);
/* The input has nothing more to read. With exit set, the engine shuts down
 * gracefully once everything emitted has been delivered, and once every
 * other input whose section sets exit_on_eof = true has finished too. */
RTP_API void rtp_input_finished(rtp_instance *ins, bool exit);

/* ---- filters ------------------------------------------------------------- */

/* A new batch under another tag, acknowledged together with src: the input
 * that made src is told only when both are delivered. The engine routes it
 * through the filters after this one, then to the outputs. */
RTP_API rtp_batch *rtp_filter_derive(rtp_instance *ins, rtp_batch *src, const char *tag);

/* A batch the filter makes on its own (a window closed by a timer or at
 * flush), not derived from one it is processing. rtp_filter_emit routes it
 * through the filters after this one and to the outputs. Its records were
 * already acknowledged at their source, so nothing is acknowledged for it:
 * state a filter holds is lost when the process dies. */
RTP_API rtp_batch *rtp_filter_batch(rtp_instance *ins, const char *tag);
RTP_API void rtp_filter_emit(rtp_instance *ins, rtp_batch *b);

/* ---- outputs ------------------------------------------------------------- */

RTP_API void rtp_output_done(rtp_instance *ins, rtp_batch *b, rtp_status status);
/* Record i of b was refused by the sink: it goes to the error route
 * (error.<instance>) with the reason; the rest of the batch is unaffected. */
RTP_API void rtp_output_reject(rtp_instance *ins, rtp_batch *b, size_t i, const char *reason);

/* ---- logging ------------------------------------------------------------- */

typedef enum rtp_log_level {
    RTP_LOG_ERROR = 0,
    RTP_LOG_WARN,
    RTP_LOG_INFO,
    RTP_LOG_DEBUG,
    RTP_LOG_TRACE
} rtp_log_level;

/* Writes one line to stderr with the instance prefix ("[input:prices]").
 * The same format string from the same instance is printed at most a few
 * times a second; the rest are counted and summarised. ins may be NULL. */
RTP_API void rtp_log(const rtp_instance *ins, rtp_log_level level, const char *fmt, ...)
    RTP_PRINTF(3, 4);
RTP_API bool rtp_log_enabled(rtp_log_level level);

#define rtp_error(ins, ...) rtp_log((ins), RTP_LOG_ERROR, __VA_ARGS__)
#define rtp_warn(ins, ...) rtp_log((ins), RTP_LOG_WARN, __VA_ARGS__)
#define rtp_info(ins, ...) rtp_log((ins), RTP_LOG_INFO, __VA_ARGS__)
#define rtp_debug(ins, ...)                                                    \
    do {                                                                       \
        if (rtp_log_enabled(RTP_LOG_DEBUG)) rtp_log((ins), RTP_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

/* ---- metrics ------------------------------------------------------------- */

typedef struct rtp_metric rtp_metric;

/* A counter or gauge owned by the instance, exported as
 * rtproc_<name>{kind="input",instance="prices",plugin="csv"}. */
RTP_API rtp_metric *rtp_metric_counter(rtp_instance *ins, const char *name, const char *help);
RTP_API rtp_metric *rtp_metric_gauge(rtp_instance *ins, const char *name, const char *help);
RTP_API void rtp_metric_add(rtp_metric *m, uint64_t v);
RTP_API void rtp_metric_set(rtp_metric *m, int64_t v);
RTP_API int64_t rtp_metric_value(const rtp_metric *m);

struct rtp_sbuf;
/* Every metric of the process in Prometheus text exposition format. */
RTP_API void rtp_metrics_write_prometheus(struct rtp_sbuf *out);

#endif
