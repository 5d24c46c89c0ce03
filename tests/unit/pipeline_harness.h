/* In-process pipelines for unit tests: one loop, an engine built from
 * pipeline text (plugins registered with rtp_loader_add_static or found on
 * disk), and a teardown that closes whatever is still open. Included by
 * the tests that run plugins inside the engine. */
#ifndef RTP_TEST_PIPELINE_HARNESS_H
#define RTP_TEST_PIPELINE_HARNESS_H

#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "engine.h"
#include "loader.h"
#include "log.h"

static uv_loop_t loop;
static rtp_engine eng;
static rtp_config *harness_cfg;

static inline void harness_close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static inline void harness_init(void)
{
    rtp_log_configure(RTP_LOG_WARN, false);
    uv_loop_init(&loop);
}

/* Suite .fini, or between two pipelines of one test; does nothing when no
 * pipeline was built since the last call. */
static inline void harness_fini(void)
{
    if (!harness_cfg) return;
    uv_walk(&loop, harness_close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    rtp_engine_free(&eng);
    uv_loop_close(&loop);
    rtp_config_free(harness_cfg);
    harness_cfg = NULL;
}

/* 0 when the pipeline builds; config errors print on stderr. */
static inline int harness_build(const char *text)
{
    memset(&eng, 0, sizeof eng);
    harness_cfg = rtp_config_parse(text, "test.conf");
    cr_assert_not_null(harness_cfg, "pipeline text should parse");
    return rtp_engine_build(&eng, harness_cfg, &loop);
}

#endif
