/* The CSV tokenizer: see csv_parse.h for the contract.
 *
 * Almost every byte of a CSV file is inside an unquoted cell, so the one loop
 * that matters is "find the next delimiter, CR or LF". It looks at eight
 * bytes at a time with the classic has-zero-byte trick; inside quotes only
 * the quote char matters and memchr is as fast as it gets. Because the
 * tokenizer keeps no state between calls, a row cut by the end of a chunk is
 * simply read again once the chunk has grown, which keeps every result
 * independent of where the chunks were cut. */
#include "csv_parse.h"

#include <stdbool.h>
#include <string.h>

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static const char utf8_bom[3] = {'\xEF', '\xBB', '\xBF'};

int csv_parser_init(csv_parser *p, char delim, int quote, csv_cell *cells, uint32_t max_cells) {
    unsigned char d = (unsigned char)delim;
    if (d == '\r' || d == '\n' || cells == NULL || max_cells == 0) return -1;
    if (quote != CSV_NO_QUOTE && (quote < 0 || quote > 255 || quote == d || quote == '\r' ||
                                  quote == '\n'))
        return -1;
    p->delim = d;
    p->quote = quote;
    p->cells = cells;
    p->max_cells = max_cells;
    p->delim_x8 = d * ONES;
    return 0;
}

/* ---- scanning ----------------------------------------------------------- */

static inline bool is_line_end(char c) {
    return c == '\n' || c == '\r';
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
#define SCAN_WORDS 1
/* High bit set in each byte of w equal to the pattern's. Bytes above the
 * first match may be flagged wrongly (borrows), but the lowest flag is exact,
 * and the lowest is all a scan needs. */
static inline uint64_t bytes_equal(uint64_t w, uint64_t pattern) {
    uint64_t x = w ^ pattern;
    return (x - ONES) & ~x & HIGHS;
}
#else
#define SCAN_WORDS 0
#endif

/* Offset of the first delimiter, CR or LF in buf[i..len), or len. */
static size_t scan_unquoted(const csv_parser *p, const char *buf, size_t i, size_t len) {
#if SCAN_WORDS
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        uint64_t hit = bytes_equal(w, p->delim_x8) | bytes_equal(w, '\n' * ONES) |
                       bytes_equal(w, '\r' * ONES);
        if (hit != 0) return i + ((unsigned)__builtin_ctzll(hit) >> 3);
    }
#endif
    for (; i < len; i++)
        if ((unsigned char)buf[i] == p->delim || is_line_end(buf[i])) break;
    return i;
}

static size_t skip_line_ends(const char *buf, size_t i, size_t len) {
    while (i < len && is_line_end(buf[i])) i++;
    return i;
}

/* ---- quoted cells --------------------------------------------------------- */

typedef enum quoted { QUOTED_OK, QUOTED_NEED_MORE, QUOTED_UNTERMINATED } quoted;

/* Reads the quoted cell whose opening quote is buf[i]; *after is the offset
 * just past the closing quote. A quote that is the last byte of a buffer
 * with more to come may be the first of a "" pair; taking it as closing is
 * harmless, because the row then runs to len, which without EOF is
 * CSV_NEED_MORE anyway. */
static quoted read_quoted(const csv_parser *p, const char *buf, size_t i, size_t len, bool eof,
                          csv_cell *cell, size_t *after) {
    size_t start = i + 1;
    unsigned flags = CSV_QUOTED;
    for (size_t j = start;;) {
        const char *q = memchr(buf + j, p->quote, len - j);
        if (q == NULL) return eof ? QUOTED_UNTERMINATED : QUOTED_NEED_MORE;
        size_t k = (size_t)(q - buf);
        if (k + 1 < len && (unsigned char)buf[k + 1] == p->quote) {
            flags |= CSV_ESCAPED;
            j = k + 2;
            continue;
        }
        *cell = (csv_cell){.p = buf + start, .len = k - start, .flags = flags};
        *after = k + 1;
        return QUOTED_OK;
    }
}

/* ---- rows ------------------------------------------------------------------ */

/* Skips a UTF-8 BOM at the file's start; false when too few bytes tell. A
 * BOM prefix that ends the file is data. */
static bool skip_bom(const char *buf, size_t len, size_t *i, bool eof) {
    for (size_t k = 0; k < sizeof utf8_bom; k++) {
        if (*i + k == len) return k == 0 || eof;
        if (buf[*i + k] != utf8_bom[k]) return true;
    }
    *i += sizeof utf8_bom;
    return true;
}

static void store_cell(const csv_parser *p, csv_row *row, const csv_cell *cell) {
    if (row->ncells < p->max_cells)
        p->cells[row->ncells] = *cell;
    else if (row->error == NULL)
        row->error = "too many cells";
    if (row->ncells < UINT32_MAX) row->ncells++;
}

/* Reads the cell at buf[i] into the row; *next is the offset of the byte
 * that ends it: a delimiter, a line end, or len. CSV_ROW means "go on". */
static csv_status read_cell(const csv_parser *p, const char *buf, size_t i, size_t len, bool eof,
                            csv_row *row, size_t *next) {
    csv_cell cell;
    if (i == len || (unsigned char)buf[i] != p->quote) {
        *next = scan_unquoted(p, buf, i, len);
        cell = (csv_cell){.p = buf + i, .len = *next - i, .flags = 0};
        store_cell(p, row, &cell);
        return CSV_ROW;
    }
    quoted q = read_quoted(p, buf, i, len, eof, &cell, next);
    if (q == QUOTED_NEED_MORE) return CSV_NEED_MORE;
    if (q == QUOTED_UNTERMINATED) {
        cell = (csv_cell){.p = buf + i + 1, .len = len - i - 1, .flags = CSV_QUOTED};
        store_cell(p, row, &cell);
        if (row->error == NULL) row->error = "quoted cell not closed at end of file";
        row->end = len;
        return CSV_BAD_ROW;
    }
    store_cell(p, row, &cell);
    if (*next < len && (unsigned char)buf[*next] != p->delim && !is_line_end(buf[*next])) {
        if (row->error == NULL) row->error = "text after a closing quote";
        *next = scan_unquoted(p, buf, *next, len);
    }
    return CSV_ROW;
}

/* The last cell ended at buf[next], a line end or len: where does the row? */
static csv_status end_row(const char *buf, size_t len, size_t next, bool eof, csv_row *row) {
    if (next == len) {
        if (!eof) return CSV_NEED_MORE;
        row->end = len;
    } else if (buf[next] == '\n') {
        row->end = next + 1;
    } else if (next + 1 < len) {
        row->end = next + 1 + (buf[next + 1] == '\n');
    } else {
        if (!eof) return CSV_NEED_MORE; /* a CR that may be half of a CRLF */
        row->end = len;
    }
    return row->error != NULL ? CSV_BAD_ROW : CSV_ROW;
}

csv_status csv_next_row(const csv_parser *p, const char *buf, size_t len, size_t off,
                        unsigned flags, csv_row *row) {
    bool eof = (flags & CSV_EOF) != 0;
    size_t i = off;
    if ((flags & CSV_BOF) && !skip_bom(buf, len, &i, eof)) return CSV_NEED_MORE;
    i = skip_line_ends(buf, i, len);
    *row = (csv_row){.cells = p->cells, .start = i, .end = i};
    if (i == len) return eof ? CSV_END : CSV_NEED_MORE;
    for (;;) {
        size_t next;
        csv_status st = read_cell(p, buf, i, len, eof, row, &next);
        if (st != CSV_ROW) return st;
        if (next == len || (unsigned char)buf[next] != p->delim)
            return end_row(buf, len, next, eof, row);
        i = next + 1; /* may be len: "a," at EOF ends with an empty cell */
    }
}

size_t csv_unescape(const csv_parser *p, const csv_cell *c, char *out) {
    if (!(c->flags & CSV_ESCAPED)) {
        if (c->len > 0) memcpy(out, c->p, c->len);
        return c->len;
    }
    const char *s = c->p, *end = c->p + c->len;
    char *o = out;
    while (s < end) {
        const char *q = memchr(s, p->quote, (size_t)(end - s));
        const char *stop = q != NULL ? q + 1 : end; /* keep one quote of the pair */
        memcpy(o, s, (size_t)(stop - s));
        o += stop - s;
        s = stop < end ? stop + 1 : end;
    }
    return (size_t)(o - out);
}
