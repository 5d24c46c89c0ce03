/* The metrics registry: counters and gauges owned by instances.
 *
 * One registry for the whole process, written only from the loop thread, so
 * a metric is a plain integer and adding to it costs nothing worth measuring.
 * Exported in Prometheus text format (rtp_metrics_write_prometheus) and
 * summarised in the log when the engine stops. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "metrics.h"
#include "rtproc/json.h"
#include "util.h"

struct rtp_metric {
    char *name;
    const char *help;
    bool gauge;
    const rtp_instance *ins;
    int64_t value;
    rtp_metric *next;
};

static rtp_metric *head, *tail;

static rtp_metric *metric_new(rtp_instance *ins, const char *name, const char *help, bool gauge)
{
    rtp_metric *m = rtp_xcalloc(1, sizeof *m);
    m->name = rtp_xstrdup(name);
    m->help = help;
    m->gauge = gauge;
    m->ins = ins;
    if (tail)
        tail->next = m;
    else
        head = m;
    tail = m;
    return m;
}

rtp_metric *rtp_metric_counter(rtp_instance *ins, const char *name, const char *help)
{
    return metric_new(ins, name, help, false);
}

rtp_metric *rtp_metric_gauge(rtp_instance *ins, const char *name, const char *help)
{
    return metric_new(ins, name, help, true);
}

void rtp_metric_add(rtp_metric *m, uint64_t v)
{
    m->value += (int64_t)v;
}

void rtp_metric_set(rtp_metric *m, int64_t v)
{
    m->value = v;
}

int64_t rtp_metric_value(const rtp_metric *m)
{
    return m->value;
}

static const char *kind_name(rtp_kind k)
{
    return k == RTP_INPUT ? "input" : k == RTP_FILTER ? "filter" : "output";
}

static void write_labels(rtp_sbuf *out, const rtp_metric *m)
{
    char buf[512];
    int n = m->ins ? snprintf(buf, sizeof buf, "{kind=\"%s\",instance=\"%s\",plugin=\"%s\"}",
                              kind_name(m->ins->kind), m->ins->name, m->ins->plugin->name)
                   : 0;
    if (n > 0) rtp_sbuf_append(out, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Prometheus wants HELP/TYPE once per name, so metrics are grouped by name
 * in order of first appearance. */
void rtp_metrics_write_prometheus(rtp_sbuf *out)
{
    for (rtp_metric *m = head; m; m = m->next) {
        bool first = true;
        for (rtp_metric *p = head; p != m; p = p->next)
            if (strcmp(p->name, m->name) == 0) first = false;
        if (!first) continue;
        char line[512];
        int n = snprintf(line, sizeof line, "# HELP rtproc_%s %s\n# TYPE rtproc_%s %s\n", m->name,
                         m->help ? m->help : m->name, m->name, m->gauge ? "gauge" : "counter");
        rtp_sbuf_append(out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        for (rtp_metric *q = m; q; q = q->next) {
            if (strcmp(q->name, m->name) != 0) continue;
            n = snprintf(line, sizeof line, "rtproc_%s", q->name);
            rtp_sbuf_append(out, line, (size_t)n);
            write_labels(out, q);
            n = snprintf(line, sizeof line, " %" PRId64 "\n", q->value);
            rtp_sbuf_append(out, line, (size_t)n);
        }
    }
}

/* One log line per instance with every metric it owns that is not zero. */
void rtp_metrics_log_summary(void)
{
    for (rtp_metric *m = head; m; m = m->next) {
        if (!m->ins) continue;
        bool first = true;
        for (rtp_metric *p = head; p != m; p = p->next)
            if (p->ins == m->ins) first = false;
        if (!first) continue;
        rtp_sbuf sb = {0};
        for (rtp_metric *q = m; q; q = q->next) {
            if (q->ins != m->ins || q->gauge) continue;
            char item[160];
            int n = snprintf(item, sizeof item, "%s%s=%" PRId64, sb.len ? " " : "", q->name, q->value);
            rtp_sbuf_append(&sb, item, (size_t)n < sizeof item ? (size_t)n : sizeof item - 1);
        }
        rtp_sbuf_append(&sb, "", 1);
        rtp_info(m->ins, "metrics: %s", sb.data);
        rtp_sbuf_free(&sb);
    }
}

void rtp_metrics_free_all(void)
{
    for (rtp_metric *m = head, *next; m; m = next) {
        next = m->next;
        free(m->name);
        free(m);
    }
    head = tail = NULL;
}
