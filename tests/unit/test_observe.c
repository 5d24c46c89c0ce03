/* Metrics in Prometheus text format, and the log's rate limiting. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "rtproc/json.h"
#include "rtproc/plugin.h"

Test(metrics, prometheus_text_groups_by_name, .fini = rtp_metrics_free_all)
{
    rtp_metric *a = rtp_metric_counter(NULL, "records_out", "records emitted");
    rtp_metric *g = rtp_metric_gauge(NULL, "queue_batches", "waiting");
    rtp_metric *b = rtp_metric_counter(NULL, "records_out", "records emitted");
    rtp_metric_add(a, 5);
    rtp_metric_add(a, 7);
    rtp_metric_set(g, -3);
    rtp_metric_add(b, 1);
    cr_assert_eq(rtp_metric_value(a), 12);
    rtp_sbuf sb = {0};
    rtp_metrics_write_prometheus(&sb);
    rtp_sbuf_append(&sb, "", 1);
    cr_assert_str_eq(sb.data, "# HELP rtproc_records_out records emitted\n"
                              "# TYPE rtproc_records_out counter\n"
                              "rtproc_records_out 12\n"
                              "rtproc_records_out 1\n"
                              "# HELP rtproc_queue_batches waiting\n"
                              "# TYPE rtproc_queue_batches gauge\n"
                              "rtproc_queue_batches -3\n");
    rtp_sbuf_free(&sb);
}

static void redirect_info(void)
{
    cr_redirect_stderr();
    rtp_log_configure(RTP_LOG_INFO, false);
}

Test(log, levels_filter_and_repeats_are_limited, .init = redirect_info)
{
    rtp_debug(NULL, "hidden %d", 1);
    for (int i = 0; i < 100; i++) rtp_warn(NULL, "the same warning %d", i);
    rtp_log(NULL, RTP_LOG_ERROR, "different");
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char line[512];
    int warnings = 0, errors = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_null(strstr(line, "hidden"));
        warnings += strstr(line, "the same warning") != NULL;
        errors += strstr(line, "[error] [engine] different") != NULL;
    }
    cr_assert_eq(warnings, 5, "only a burst of 5 per second gets through, got %d", warnings);
    cr_assert_eq(errors, 1);
}

Test(log, json_lines_are_valid_and_escaped, .init = cr_redirect_stderr)
{
    rtp_log_configure(RTP_LOG_INFO, true);
    rtp_info(NULL, "quote \" and newline\n");
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, f));
    rtp_json_error err;
    cr_assert_eq(rtp_json_validate(line, strlen(line), &err), 0, "%s", line);
    cr_assert_not_null(strstr(line, "\"msg\":\"quote \\\" and newline\\n\""));
    cr_assert_not_null(strstr(line, "\"level\":\"info\",\"instance\":\"engine\""));
    rtp_log_configure(RTP_LOG_INFO, false);
}
