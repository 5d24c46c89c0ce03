/* in_csv — an incremental RFC 4180 tokenizer.
 *
 * The tokenizer keeps no state between calls: csv_next_row(p, buf, len, off,
 * flags, &row) reads the row that starts at buf[off] and says how far it went.
 * The caller reads the file in chunks and calls it with off = row.end until
 * it answers CSV_NEED_MORE; it then keeps buf[off..len), appends the next
 * chunk and calls again from that same row start. row.end is therefore also
 * a safe checkpoint: reading again from that file offset yields the next row.
 * Nothing is allocated; cells are views into buf, valid as long as buf is.
 *
 * The grammar (RFC 4180, plus what real files need):
 *  - A row ends at LF, CRLF or a lone CR (old Mac files); the terminator is
 *    not part of any cell. Empty lines are skipped, so row.start can be past
 *    off. A last row without a line end counts only at EOF.
 *  - A cell that starts with the quote char is quoted: delimiters, CR and LF
 *    inside are data, a doubled quote stands for one (the cell then has
 *    CSV_ESCAPED and needs csv_unescape). Cell p/len exclude the quotes.
 *  - A quote char anywhere else in an unquoted cell is an ordinary byte
 *    (5'11" stays 5'11"); white space is never trimmed.
 *  - Malformed rows are CSV_BAD_ROW, never guessed at, so the caller can send
 *    the raw bytes buf[row.start..row.end) to the error route and go on at
 *    row.end: text between a closing quote and the next delimiter ("ab"c), a
 *    quote still open at EOF (the row then runs to the end of the input), or
 *    more cells than max_cells (row.ncells then still counts them all).
 *    After "ab"c the rest of that cell is read as unquoted text to find
 *    where the row ends.
 *  - With CSV_BOF, buf[off] is the first byte of the file and a UTF-8 byte
 *    order mark there is skipped.
 *  - "a,b," is three cells, the last empty; an empty unquoted cell has flags
 *    0, an empty quoted one ("") CSV_QUOTED, so a caller may tell NULL from
 *    the empty string. Cell counts differing from the header's are the
 *    caller's business.
 * A row that never ends (no line end in a huge buffer) keeps answering
 * CSV_NEED_MORE: the caller must bound its buffer. */
#ifndef RTP_CSV_PARSE_H
#define RTP_CSV_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define CSV_DEFAULT_MAX_CELLS 1024
#define CSV_NO_QUOTE (-1)

enum { CSV_QUOTED = 1u, CSV_ESCAPED = 2u };   /* csv_cell.flags */
enum { CSV_EOF = 1u, CSV_BOF = 2u };          /* csv_next_row flags */

typedef enum csv_status {
    CSV_ROW,       /* row.cells[0..ncells) hold the row, [start, end) its bytes */
    CSV_NEED_MORE, /* the row starting at off is incomplete: call again with more */
    CSV_END,       /* at EOF, nothing but empty lines was left */
    CSV_BAD_ROW    /* [start, end) is a malformed row and row.error says why */
} csv_status;

typedef struct csv_cell {
    const char *p; /* first byte, after the opening quote if quoted */
    size_t len;    /* bytes, quotes excluded, "" escapes not yet collapsed */
    unsigned flags;
} csv_cell;

typedef struct csv_row {
    csv_cell *cells; /* the parser's array; only the first min(ncells, max) are set */
    uint32_t ncells;
    size_t start;      /* offset in buf of the row's first byte */
    size_t end;        /* offset just past its line end: the next call's off */
    const char *error; /* CSV_BAD_ROW: static text; NULL otherwise */
} csv_row;

typedef struct csv_parser {
    unsigned char delim;
    int quote; /* CSV_NO_QUOTE: quote chars are ordinary bytes */
    uint32_t max_cells;
    csv_cell *cells;
    uint64_t delim_x8; /* delim repeated in every byte, for word-at-a-time scans */
} csv_parser;

/* delim: any byte but CR, LF and the quote; quote: a byte or CSV_NO_QUOTE.
 * cells: caller memory for max_cells cells (the parser writes rows there).
 * 0, or -1 when the combination makes no sense. */
int csv_parser_init(csv_parser *p, char delim, int quote, csv_cell *cells, uint32_t max_cells);

/* Reads the row that starts at buf[off] (after any empty lines). flags:
 * CSV_EOF when buf ends where the file ends; CSV_BOF when buf[off] is the
 * file's first byte. The caller may pass off == len. */
csv_status csv_next_row(const csv_parser *p, const char *buf, size_t len, size_t off,
                        unsigned flags, csv_row *row);

/* Writes the cell's text with "" collapsed to " into out (room for c->len
 * bytes) and returns its length. Works for every cell, escaped or not. */
size_t csv_unescape(const csv_parser *p, const csv_cell *c, char *out);

#endif
