/* bad_abi: a plugin that claims to be built for the next ABI major.
 *
 * The descriptor is spelled out field by field instead of through
 * RTP_PLUGIN_DEFINE, which always stamps the current version. rtproc must
 * refuse to load it, exit with status 2 and name the file and both ABI
 * versions (tests/sdk/test_sdk.sh checks that). Its callbacks are valid, so
 * the version is the only thing wrong with it. */
#include <rtproc/rtproc.h>

static void bad_write(rtp_instance *ins, void *ctx, rtp_batch *b)
{
    (void)ctx;
    rtp_output_done(ins, b, RTP_OK);
}

RTP_API const rtp_plugin rtproc_plugin = {
    .abi_major = RTP_ABI_MAJOR + 1,
    .abi_minor = RTP_ABI_MINOR,
    .kind = RTP_OUTPUT,
    .name = "bad_abi",
    .description = "claims ABI major RTP_ABI_MAJOR + 1 and must be refused",
    .options = NULL,
    .ctx_size = 0,
    .write = bad_write,
};
