/* Throughput of the CSV hot path on the stock files: tokenize every row,
 * then tokenize and classify every cell the way in_csv does for untyped
 * columns, then parse the date column. The files are read once and walked
 * again and again until at least 5M rows went through.
 *
 *   bench_csv_parse [DATA_DIR] [MIN_ROWS]
 *
 * Prints rows/s, MB/s and CPU seconds per phase; asserts nothing. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../plugins/in_csv/csv_parse.c"
#include "rtproc/text.h"
#include "rtproc/timefmt.h"

#ifndef RTP_DATA_DIR
#define RTP_DATA_DIR "../shared/data"
#endif

#define MAX_FILES 16

typedef struct file {
    char name[256];
    char *data;
    size_t len;
} file;

typedef struct totals {
    uint64_t rows, cells, bytes, numbers, dates;
    uint64_t checksum; /* keeps the compiler from dropping the work */
} totals;

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load(const char *path, file *f) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->data = malloc((size_t)n);
    f->len = fread(f->data, 1, (size_t)n, fp);
    fclose(fp);
    return f->len == (size_t)n ? 0 : -1;
}

static size_t load_dir(const char *dir, file *files) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_FILES) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".csv") != 0) continue;
        char path[1536];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(files[n].name, sizeof files[n].name, "%.200s", e->d_name);
        if (load(path, &files[n]) == 0) n++;
    }
    closedir(d);
    return n;
}

enum phase { TOKENIZE, CLASSIFY, DATES };

static void run_file(const csv_parser *p, const file *f, enum phase ph, const rtp_timefmt *tf,
                     totals *t) {
    size_t off = 0;
    csv_row row;
    bool header = true;
    for (;;) {
        unsigned flags = CSV_EOF | (off == 0 ? CSV_BOF : 0);
        csv_status st = csv_next_row(p, f->data, f->len, off, flags, &row);
        if (st == CSV_END) break;
        off = row.end;
        t->rows++;
        t->cells += row.ncells;
        if (header || st != CSV_ROW) {
            header = false;
            continue;
        }
        if (ph == CLASSIFY) {
            for (uint32_t i = 0; i < row.ncells; i++) {
                int64_t iv;
                double dv;
                rtp_type ty = rtp_classify_number(row.cells[i].p, row.cells[i].len, &iv, &dv);
                t->numbers += ty != RTP_STRING;
                t->checksum += (uint64_t)ty + (ty == RTP_INT ? (uint64_t)iv : 0) +
                               (ty == RTP_DOUBLE ? (uint64_t)(int64_t)dv : 0);
            }
        } else if (ph == DATES) {
            /* the date is the first or second column in these files */
            for (uint32_t i = 0; i < 2 && i < row.ncells; i++) {
                int64_t ns;
                if (rtp_timefmt_parse(tf, row.cells[i].p, row.cells[i].len, &ns) == 0) {
                    t->dates++;
                    t->checksum += (uint64_t)ns;
                    break;
                }
            }
        } else {
            t->checksum += row.cells[0].len;
        }
    }
    t->bytes += f->len;
}

static void run_phase(const char *label, enum phase ph, const file *files, size_t nfiles,
                      uint64_t min_rows) {
    csv_cell cells[CSV_DEFAULT_MAX_CELLS];
    csv_parser p;
    csv_parser_init(&p, ',', '"', cells, CSV_DEFAULT_MAX_CELLS);
    const char *err;
    rtp_timefmt *tf = rtp_timefmt_new("%Y-%m-%d", &err);
    totals t = {0};
    double wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
    int passes = 0;
    while (t.rows < min_rows) {
        for (size_t i = 0; i < nfiles; i++) run_file(&p, &files[i], ph, tf, &t);
        passes++;
    }
    double wall = now(CLOCK_MONOTONIC) - wall0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("%-22s %3d passes  %9" PRIu64 " rows  %8.0f MB  %6.3f s CPU  %6.3f s wall  "
           "%6.2f M rows/s  %7.1f MB/s",
           label, passes, t.rows, (double)t.bytes / 1e6, cpu, wall, (double)t.rows / cpu / 1e6,
           (double)t.bytes / cpu / 1e6);
    if (ph == CLASSIFY)
        printf("  %.1f ns/cell (%" PRIu64 " cells, %" PRIu64 " numeric)",
               cpu * 1e9 / (double)t.cells, t.cells, t.numbers);
    if (ph == DATES) printf("  %" PRIu64 " dates", t.dates);
    printf("  [%" PRIu64 "]\n", t.checksum % 1000);
    rtp_timefmt_free(tf);
}

/* Per-call cost of the number and date parsers on typical cells, apart
 * from the tokenizer. */
static void micro(void) {
    static const char *const cells[] = {"15.07", "8407500", "69.0842", "0.42388", "2013-02-08",
                                        "AAL", "1675209659999", "16029.59961"};
    const char *err;
    rtp_timefmt *tf = rtp_timefmt_new("%Y-%m-%d", &err);
    const int reps = 20000000;
    uint64_t sum = 0;
    for (size_t k = 0; k < sizeof cells / sizeof cells[0]; k++) {
        size_t len = strlen(cells[k]);
        double c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < reps; i++) {
            int64_t iv = 0;
            double dv = 0;
            /* the volatile length keeps the call inside the loop */
            volatile size_t vlen = len;
            sum += (uint64_t)rtp_classify_number(cells[k], vlen, &iv, &dv) + (uint64_t)iv;
        }
        double c1 = now(CLOCK_PROCESS_CPUTIME_ID);
        printf("classify %-16s %5.1f ns\n", cells[k], (c1 - c0) * 1e9 / reps);
    }
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < reps; i++) {
        int64_t ns = 0;
        volatile size_t vlen = 10;
        rtp_timefmt_parse(tf, "2013-02-08", vlen, &ns);
        sum += (uint64_t)ns;
    }
    double c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    printf("timefmt  %%Y-%%m-%%d 2013-02-08 %5.1f ns  [%" PRIu64 "]\n", (c1 - c0) * 1e9 / reps,
           sum % 1000);
    rtp_timefmt_free(tf);
}

int main(int argc, char **argv) {
    const char *data = argc > 1 ? argv[1] : RTP_DATA_DIR;
    uint64_t min_rows = argc > 2 ? strtoull(argv[2], NULL, 10) : 5000000;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/stocks", data);
    file files[MAX_FILES];
    size_t n = load_dir(dir, files);
    if (n == 0) {
        fprintf(stderr, "bench_csv_parse: no CSV files in %s\n", dir);
        return 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += files[i].len;
    printf("%zu files, %.1f MB from %s\n", n, (double)bytes / 1e6, dir);
    run_phase("tokenize", TOKENIZE, files, n, min_rows);
    run_phase("tokenize+classify", CLASSIFY, files, n, min_rows);
    run_phase("tokenize+date", DATES, files, n, min_rows);
    micro();
    for (size_t i = 0; i < n; i++) free(files[i].data);
    return 0;
}
