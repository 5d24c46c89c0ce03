/* out_null: counts records and acknowledges them at once.
 *
 * The cheapest possible sink, for benchmarks of everything upstream and for
 * pipelines whose only purpose is a side effect of their filters. */
#include <rtproc/rtproc.h>

typedef struct null_ctx {
    rtp_metric *records;
} null_ctx;

static int null_init(rtp_instance *ins, void *ctx)
{
    null_ctx *c = ctx;
    c->records = rtp_metric_counter(ins, "records_discarded", "records counted and discarded");
    return 0;
}

static void null_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    null_ctx *c = ctx;
    rtp_metric_add(c->records, rtp_batch_count(b));
    rtp_output_done(ins, b, RTP_OK);
}

RTP_PLUGIN_DEFINE(.kind = RTP_OUTPUT, .name = "null",
                  .description = "discards records and acknowledges them (benchmarks)",
                  .ctx_size = sizeof(null_ctx), .init = null_init, .write = null_write);
