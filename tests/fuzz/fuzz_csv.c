/* libFuzzer target for the CSV tokenizer.
 *
 * The first input byte picks where the rest is cut in two chunks; the
 * input's length picks the delimiter and the quote. The rest is tokenized twice: whole,
 * then as the two chunks with the unfinished row carried over the way in_csv
 * does. Both runs must give the same rows, offsets must only move forward,
 * every cell must lie inside its row, and every buffer is allocated to its
 * exact size so the sanitizer sees any read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/in_csv/csv_parse.c"

#define MAX_CELLS 16

static uint64_t mix(uint64_t h, const void *p, size_t n) { /* FNV-1a */
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001B3ull;
    return h;
}

static void check(int ok) {
    if (!ok) abort();
}

/* Folds one row into h, checking it on the way. */
static uint64_t fold_row(const csv_parser *p, csv_status st, const csv_row *row, const char *buf,
                         size_t base, uint64_t h) {
    uint64_t head[4] = {(uint64_t)st, base + row->start, base + row->end, row->ncells};
    h = mix(h, head, sizeof head);
    if (st == CSV_BAD_ROW) {
        check(row->error != NULL);
        return h;
    }
    check(row->ncells >= 1 && row->ncells <= p->max_cells && row->error == NULL);
    for (uint32_t i = 0; i < row->ncells; i++) {
        const csv_cell *c = &row->cells[i];
        check(c->p >= buf + row->start && c->p + c->len <= buf + row->end);
        char *text = malloc(c->len + 1);
        size_t n = csv_unescape(p, c, text);
        check(n <= c->len && ((c->flags & CSV_ESCAPED) || n == c->len));
        h = mix(h, &c->flags, sizeof c->flags);
        h = mix(h, &n, sizeof n);
        h = mix(h, text, n);
        free(text);
    }
    return h;
}

static char *copy_exact(const char *a, size_t na, const char *b, size_t nb) {
    char *buf = malloc(na + nb + 1); /* +1: malloc(0) may return NULL */
    if (na > 0) memcpy(buf, a, na);
    if (nb > 0) memcpy(buf + na, b, nb);
    return buf;
}

/* Tokenizes data[0..n) fed as data[0..cut) then the rest. */
static uint64_t tokenize(const csv_parser *p, const char *data, size_t n, size_t cut) {
    char *buf = copy_exact(data, cut, NULL, 0);
    size_t len = cut, base = 0, off = 0;
    uint64_t h = 0xCBF29CE484222325ull;
    int fed_all = cut == n;
    for (;;) {
        unsigned flags = (fed_all ? CSV_EOF : 0) | (base + off == 0 ? CSV_BOF : 0);
        csv_row row;
        csv_status st = csv_next_row(p, buf, len, off, flags, &row);
        if (st == CSV_END) break;
        if (st == CSV_NEED_MORE) {
            check(!fed_all);
            char *grown = copy_exact(buf + off, len - off, data + cut, n - cut);
            free(buf);
            buf = grown;
            len = len - off + (n - cut);
            base += off;
            off = 0;
            fed_all = 1;
            continue;
        }
        check(row.start >= off && row.end > row.start && row.end <= len);
        h = fold_row(p, st, &row, buf, base, h);
        off = row.end;
    }
    free(buf);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static const char delims[] = {',', ';', '\t', '|'};
    static const int quotes[] = {'"', '\'', CSV_NO_QUOTE, '"'};
    static csv_cell cells[MAX_CELLS];
    csv_parser p;
    if (csv_parser_init(&p, delims[size & 3], quotes[(size >> 2) & 3], cells, MAX_CELLS))
        abort();
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    size_t cut = n * data[0] / 255;
    uint64_t whole = tokenize(&p, text, n, n);
    check(tokenize(&p, text, n, cut) == whole);
    return 0;
}
