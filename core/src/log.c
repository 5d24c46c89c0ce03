/* Logging: one line per message on stderr, text or JSON.
 *
 * A sink that fails every record would otherwise print a line per record at a
 * million records a second; repeated messages are limited per (instance,
 * format string): a few per second get through, the rest are counted and the
 * count is printed when the next one passes. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "log.h"
#include "rtproc/json.h"
#include "util.h"

#define BURST 5
#define WINDOW_NS 1000000000ull
#define SLOTS 128

static rtp_log_level max_level = RTP_LOG_INFO;
static bool json_format;

typedef struct limit_slot {
    const void *ins;
    const char *fmt;
    uint64_t window_start;
    unsigned count;
    unsigned suppressed;
} limit_slot;

static limit_slot slots[SLOTS];

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void rtp_log_configure(rtp_log_level level, bool json)
{
    max_level = level;
    json_format = json;
}

int rtp_log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof *level_names); i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    if (strcmp(s, "warning") == 0) return RTP_LOG_WARN;
    return -1;
}

bool rtp_log_enabled(rtp_log_level level)
{
    return level <= max_level;
}

/* Returns how many earlier messages were suppressed (to report), or -1 when
 * this one is to be suppressed too. */
static long rate_limit(const void *ins, const char *fmt)
{
    uintptr_t h = ((uintptr_t)ins >> 4) ^ ((uintptr_t)fmt >> 2);
    limit_slot *s = &slots[h % SLOTS];
    uint64_t now = rtp_now_ns();
    if (s->ins != ins || s->fmt != fmt) {
        *s = (limit_slot){ins, fmt, now, 0, 0};
    } else if (now - s->window_start >= WINDOW_NS) {
        s->window_start = now;
        s->count = 0;
    }
    if (++s->count > BURST) {
        s->suppressed++;
        return -1;
    }
    long n = s->suppressed;
    s->suppressed = 0;
    return n;
}

static void timestamp(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void emit_line(const rtp_instance *ins, rtp_log_level level, const char *msg)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    const char *who = ins ? ins->prefix : "engine";
    if (!json_format) {
        fprintf(stderr, "%s [%5s] [%s] %s\n", ts, level_names[level], who, msg);
        return;
    }
    rtp_sbuf sb = {0};
    rtp_sbuf_append(&sb, "{\"time\":\"", 9);
    rtp_sbuf_append(&sb, ts, strlen(ts));
    rtp_sbuf_append(&sb, "\",\"level\":\"", 11);
    rtp_sbuf_append(&sb, level_names[level], strlen(level_names[level]));
    rtp_sbuf_append(&sb, "\",\"instance\":", 13);
    rtp_json_write_string(&sb, who, strlen(who));
    rtp_sbuf_append(&sb, ",\"msg\":", 7);
    rtp_json_write_string(&sb, msg, strlen(msg));
    rtp_sbuf_append(&sb, "}\n", 2);
    fwrite(sb.data, 1, sb.len, stderr);
    rtp_sbuf_free(&sb);
}

void rtp_log(const rtp_instance *ins, rtp_log_level level, const char *fmt, ...)
{
    if (level > max_level) return;
    long suppressed = rate_limit(ins, fmt);
    if (suppressed < 0) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (suppressed > 0) {
        char note[96];
        snprintf(note, sizeof note, "(%ld similar messages suppressed)", suppressed);
        emit_line(ins, level, note);
    }
    emit_line(ins, level, msg);
}
