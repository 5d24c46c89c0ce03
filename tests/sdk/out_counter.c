/* out_counter: an output plugin built out of tree, the way a third party
 * builds one:
 *
 *   cc -shared -fPIC $(pkg-config --cflags rtproc) -o out_counter.so out_counter.c
 *
 * It includes nothing of rtproc but <rtproc/rtproc.h>. It counts the records
 * it is given, acknowledges every batch at once, and on stop writes the count
 * (a decimal number and a newline) to the file named by its `path` option.
 * tests/sdk/test_sdk.sh loads it with [plugins] path = .../out_counter.so. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <rtproc/rtproc.h>

typedef struct counter_ctx {
    char *path; /* option: set by the engine, freed by the engine */
    uint64_t records;
    uint64_t batches;
} counter_ctx;

static const rtp_option counter_options[] = {
    {"path", RTP_OPT_STR, NULL, RTP_OPT_REQUIRED, offsetof(counter_ctx, path),
     "file the record count is written to when the pipeline stops", NULL},
    RTP_OPT_END};

static int counter_init(rtp_instance *ins, void *ctx)
{
    counter_ctx *c = ctx;
    if (!c->path[0]) {
        rtp_config_error(ins, "path", "must not be empty");
        return -1;
    }
    return 0;
}

static void counter_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    counter_ctx *c = ctx;
    c->records += rtp_batch_count(b);
    c->batches++;
    rtp_output_done(ins, b, RTP_OK); /* exactly once per batch */
}

/* stop runs once, after the drain; a short blocking write is fine here. */
static void counter_stop(rtp_instance *ins, void *ctx)
{
    counter_ctx *c = ctx;
    FILE *f = fopen(c->path, "w");
    if (!f) {
        rtp_error(ins, "cannot write %s", c->path);
        return;
    }
    fprintf(f, "%llu\n", (unsigned long long)c->records);
    if (fclose(f) != 0) rtp_error(ins, "cannot write %s", c->path);
    rtp_info(ins, "%llu records in %llu batches", (unsigned long long)c->records,
             (unsigned long long)c->batches);
}

RTP_PLUGIN_DEFINE(.kind = RTP_OUTPUT, .name = "counter",
                  .description = "counts records and writes the count to a file at stop (SDK example)",
                  .options = counter_options, .ctx_size = sizeof(counter_ctx), .init = counter_init,
                  .write = counter_write, .stop = counter_stop);
