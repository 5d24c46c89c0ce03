/* The JSON codec against Debian's libjansson, same input, same run.
 *
 *   bench_json [N_TICKS] [DATA_DIR]
 *
 * Parses N_TICKS (default 1M) generated tick objects like
 *   {"symbol":"AAPL","ts":1700000000123,"price":189.25,"volume":1200,...}
 * with rtp_json_parse_record (into batches of 1024 records, as an input does)
 * and with json_loadb; writes 1M records with rtp_json_write_record and
 * json_dumpb; then parses the FX API bodies of DATA_DIR/fx_api_samples until
 * 50 MB went through each codec. Prints MB/s, objects/s and CPU seconds per
 * codec and the ratio of throughputs; asserts nothing. */
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "batch.h"
#include "rtproc/json.h"

#ifndef RTP_DATA_DIR
#define RTP_DATA_DIR "../shared/data"
#endif

#define BATCH_RECORDS 1024
#define WRITE_SET 10000
#define WRITE_TOTAL 1000000
#define FX_BYTES (50u << 20)

/* Messages laid end to end in one buffer. */
typedef struct corpus {
    rtp_sbuf text;
    size_t *off, *len;
    size_t n, cap;
} corpus;

typedef struct meter {
    double wall, cpu;
} meter;

typedef struct result {
    double wall, cpu;
    uint64_t objects, bytes;
} result;

static uint64_t sink; /* keeps the compiler from dropping the work */

static void die(const char *what)
{
    fprintf(stderr, "bench_json: %s\n", what);
    exit(1);
}

/* ---- clocks ------------------------------------------------------------------ */

static meter meter_now(void)
{
    struct timespec ts;
    struct rusage ru;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return (meter){(double)ts.tv_sec + (double)ts.tv_nsec / 1e9, cpu};
}

static result result_since(meter m, uint64_t objects, uint64_t bytes)
{
    meter end = meter_now();
    return (result){end.wall - m.wall, end.cpu - m.cpu, objects, bytes};
}

static void print_result(const char *what, result r)
{
    printf("  %-26s %8.1f MB/s %11.0f objects/s %7.3f s CPU %7.1f ns/object\n", what,
           (double)r.bytes / 1e6 / r.cpu, (double)r.objects / r.cpu, r.cpu,
           r.cpu * 1e9 / (double)r.objects);
}

/* objects per CPU second, ours over jansson's */
static void print_ratio(result ours, result theirs)
{
    double ratio = (double)ours.objects / ours.cpu / ((double)theirs.objects / theirs.cpu);
    printf("  %-26s %8.2fx\n", "ratio ours/jansson", ratio);
}

/* ---- input ------------------------------------------------------------------- */

static void corpus_add(corpus *c, const char *s, size_t len)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->off = realloc(c->off, c->cap * sizeof *c->off);
        c->len = realloc(c->len, c->cap * sizeof *c->len);
        if (!c->off || !c->len) die("out of memory");
    }
    c->off[c->n] = c->text.len;
    c->len[c->n++] = len;
    rtp_sbuf_append(&c->text, s, len);
}

static void corpus_free(corpus *c)
{
    rtp_sbuf_free(&c->text);
    free(c->off);
    free(c->len);
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Deterministic ticks: a dozen symbols, two-decimal prices from 10 to 510
 * with a one-cent spread, millisecond timestamps. */
static void make_ticks(corpus *c, size_t n)
{
    static const char *symbols[] = {"AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA",
                                    "META", "BRK.B", "JPM",  "V",    "XOM",  "KO"};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char buf[256];
    for (size_t i = 0; i < n; i++) {
        uint64_t r = xorshift(&x);
        long cents = 1000 + (long)(r % 50000);
        int len = snprintf(buf, sizeof buf,
                           "{\"symbol\":\"%s\",\"ts\":%" PRIu64 ",\"price\":%ld.%02ld,"
                           "\"volume\":%" PRIu64 ",\"bid\":%ld.%02ld,\"ask\":%ld.%02ld}",
                           symbols[r % 12], (uint64_t)1700000000000 + i * 7, cents / 100,
                           cents % 100, (r >> 20) % 100000, (cents - 1) / 100, (cents - 1) % 100,
                           (cents + 1) / 100, (cents + 1) % 100);
        corpus_add(c, buf, (size_t)len);
    }
}

static void load_dir(corpus *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    const struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".json")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        char buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        corpus_add(c, buf, len);
    }
    closedir(d);
}

/* ---- parsing ---------------------------------------------------------------- */

static result parse_ours(const corpus *c, size_t rounds, unsigned flags)
{
    meter m = meter_now();
    rtp_batch *b = rtp_batch_create("bench");
    for (size_t k = 0; k < rounds; k++) {
        for (size_t i = 0; i < c->n; i++) {
            if (rtp_batch_count(b) == BATCH_RECORDS) {
                rtp_batch_unref(b);
                b = rtp_batch_create("bench");
            }
            rtp_record *r = rtp_batch_append(b, 8);
            rtp_json_error err;
            if (rtp_json_parse_record(b, r, c->text.data + c->off[i], c->len[i], flags, &err))
                die(err.msg);
            sink += r->nfields;
        }
    }
    rtp_batch_unref(b);
    return result_since(m, rounds * c->n, rounds * c->text.len);
}

static result validate_ours(const corpus *c, size_t rounds)
{
    meter m = meter_now();
    for (size_t k = 0; k < rounds; k++)
        for (size_t i = 0; i < c->n; i++)
            sink += (uint64_t)rtp_json_validate(c->text.data + c->off[i], c->len[i], NULL);
    return result_since(m, rounds * c->n, rounds * c->text.len);
}

static result parse_jansson(const corpus *c, size_t rounds)
{
    meter m = meter_now();
    for (size_t k = 0; k < rounds; k++) {
        for (size_t i = 0; i < c->n; i++) {
            json_error_t err;
            json_t *j = json_loadb(c->text.data + c->off[i], c->len[i], 0, &err);
            if (!j) die(err.text);
            sink += json_object_size(j);
            json_decref(j);
        }
    }
    return result_since(m, rounds * c->n, rounds * c->text.len);
}

/* ---- writing ---------------------------------------------------------------- */

static result write_ours(const corpus *c)
{
    rtp_batch *b = rtp_batch_create("bench");
    for (size_t i = 0; i < WRITE_SET; i++) {
        rtp_record *r = rtp_batch_append(b, 8);
        if (rtp_json_parse_record(b, r, c->text.data + c->off[i], c->len[i], 0, NULL)) die("parse");
    }
    rtp_sbuf out = {0};
    uint64_t bytes = 0;
    meter m = meter_now();
    for (size_t k = 0; k < WRITE_TOTAL; k++) {
        out.len = 0;
        rtp_json_write_record(&out, rtp_batch_record(b, k % WRITE_SET), NULL);
        bytes += out.len;
    }
    result res = result_since(m, WRITE_TOTAL, bytes);
    sink += out.len;
    rtp_sbuf_free(&out);
    rtp_batch_unref(b);
    return res;
}

static result write_jansson(const corpus *c)
{
    json_t **set = malloc(WRITE_SET * sizeof *set);
    if (!set) die("out of memory");
    for (size_t i = 0; i < WRITE_SET; i++) {
        set[i] = json_loadb(c->text.data + c->off[i], c->len[i], 0, NULL);
        if (!set[i]) die("jansson parse");
    }
    char out[4096];
    uint64_t bytes = 0;
    meter m = meter_now();
    for (size_t k = 0; k < WRITE_TOTAL; k++) {
        size_t n = json_dumpb(set[k % WRITE_SET], out, sizeof out, JSON_COMPACT);
        if (n == 0 || n > sizeof out) die("jansson dump");
        bytes += n;
    }
    result res = result_since(m, WRITE_TOTAL, bytes);
    for (size_t i = 0; i < WRITE_SET; i++) json_decref(set[i]);
    free(set);
    return res;
}

/* ---- main --------------------------------------------------------------------- */

static void bench_ticks(size_t n)
{
    corpus ticks = {0};
    make_ticks(&ticks, n);
    printf("tick objects: %zu objects, %.1f MB (%.0f bytes each)\n", ticks.n,
           (double)ticks.text.len / 1e6, (double)ticks.text.len / (double)ticks.n);
    result ours = parse_ours(&ticks, 1, 0);
    result zero_copy = parse_ours(&ticks, 1, RTP_JSON_ZERO_COPY);
    result valid = validate_ours(&ticks, 1);
    result theirs = parse_jansson(&ticks, 1);
    print_result("parse  ours", ours);
    print_result("parse  ours (zero-copy)", zero_copy);
    print_result("validate ours", valid);
    print_result("parse  jansson", theirs);
    print_ratio(ours, theirs);
    if (ticks.n >= WRITE_SET) {
        ours = write_ours(&ticks);
        theirs = write_jansson(&ticks);
        print_result("write  ours", ours);
        print_result("write  jansson", theirs);
        print_ratio(ours, theirs);
    }
    corpus_free(&ticks);
}

static void bench_fx(const char *data_dir)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fx_api_samples", data_dir);
    corpus fx = {0};
    load_dir(&fx, dir);
    if (fx.n == 0) {
        printf("fx_api_samples: %s not found, skipped\n", dir);
        return;
    }
    size_t rounds = FX_BYTES / fx.text.len + 1;
    printf("fx_api_samples: %zu documents, %zu bytes, parsed %zu times\n", fx.n, fx.text.len,
           rounds);
    result ours = parse_ours(&fx, rounds, 0);
    result theirs = parse_jansson(&fx, rounds);
    print_result("parse  ours", ours);
    print_result("parse  jansson", theirs);
    print_ratio(ours, theirs);
    corpus_free(&fx);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    const char *data_dir = argc > 2 ? argv[2] : RTP_DATA_DIR;
    bench_ticks(n);
    bench_fx(data_dir);
    printf("(checksum %" PRIu64 ")\n", sink);
    return 0;
}
