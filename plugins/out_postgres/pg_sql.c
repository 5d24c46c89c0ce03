/* SQL text for out_postgres.
 *
 * Nothing from the configuration or the data is ever spliced into SQL as
 * is: names become quoted identifiers (embedded double quotes doubled),
 * declared types must pass a small grammar that cannot express anything but
 * a type, and values only travel inside COPY data, escaped for COPY's text
 * format. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "out_postgres.h"

static void put(rtp_sbuf *sb, const char *s)
{
    rtp_sbuf_append(sb, s, strlen(s));
}

/* ---- identifiers and types --------------------------------------------- */

void pg_quote_ident(rtp_sbuf *sb, const char *name, size_t len)
{
    rtp_sbuf_append(sb, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '"') rtp_sbuf_append(sb, "\"", 1);
        rtp_sbuf_append(sb, &name[i], 1);
    }
    rtp_sbuf_append(sb, "\"", 1);
}

/* One part of a dotted name: "quoted ""x""" or bare text up to a dot.
 * Returns the position after it, or NULL on a malformed quoted part. */
static const char *table_part(const char *s, rtp_sbuf *out)
{
    if (*s != '"') {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        if (len == 0) return NULL;
        pg_quote_ident(out, s, len);
        return s + len;
    }
    rtp_sbuf raw = {0};
    for (s++;; s++) {
        if (*s == '\0') {
            rtp_sbuf_free(&raw);
            return NULL;
        }
        if (*s == '"' && s[1] != '"') break;
        if (*s == '"') s++;
        rtp_sbuf_append(&raw, s, 1);
    }
    pg_quote_ident(out, raw.data ? raw.data : "", raw.len);
    rtp_sbuf_free(&raw);
    return s + 1;
}

/* `table` or `schema.table`; either part may be written "quoted" to hold
 * a dot. Names are kept exactly (no folding to lower case). */
int pg_parse_table(const char *spec, rtp_sbuf *quoted, const char **err)
{
    const char *s = table_part(spec, quoted);
    if (s && *s == '.') {
        rtp_sbuf_append(quoted, ".", 1);
        s = table_part(s + 1, quoted);
    }
    if (!s || *s != '\0') {
        *err = "expected table or schema.table (a part may be \"quoted\")";
        return -1;
    }
    return 0;
}

static bool is_word(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* A declared type goes into CREATE TABLE as text, so it must be a type and
 * nothing else: words separated by single spaces or dots ("double
 * precision", "pg_catalog.int8"), modifiers of digits in parentheses
 * ("numeric(12,4)", "timestamp(3) with time zone") and trailing "[]".
 * No quotes, operators, semicolons or calls: it cannot carry SQL. */
bool pg_type_ok(const char *t)
{
    if (!is_word(*t)) return false;
    while (*t) {
        if (is_word(*t)) {
            t++;
        } else if ((*t == ' ' || *t == '.') && is_word(t[1])) {
            t++;
        } else if (*t == '(') {
            t++;
            for (int n = 0;; n++) {
                if (!(*t >= '0' && *t <= '9')) return false;
                while (*t >= '0' && *t <= '9') t++;
                if (*t == ')') break;
                if (*t != ',' || n > 0) return false;
                t++;
            }
            t++;
            if (*t == ' ' && is_word(t[1])) t++;
        } else if (t[0] == '[' && t[1] == ']') {
            t += 2;
        } else {
            return false;
        }
    }
    return true;
}

/* ---- statements ---------------------------------------------------------- */

static void col_list(rtp_sbuf *sb, const pg_ctx *c)
{
    for (size_t i = 0; i < c->ncols; i++) {
        if (i) put(sb, ", ");
        pg_quote_ident(sb, c->cols[i].column, strlen(c->cols[i].column));
    }
}

static void key_list(rtp_sbuf *sb, const pg_ctx *c)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        const char *k = c->cols[c->keys[i]].column;
        if (i) put(sb, ", ");
        pg_quote_ident(sb, k, strlen(k));
    }
}

static bool is_key(const pg_ctx *c, size_t col)
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (c->keys[i] == col) return true;
    return false;
}

static char *finish(rtp_sbuf *sb)
{
    rtp_sbuf_append(sb, "", 1);
    return sb->data;
}

/* Run on every new connection (a restarted server loses temporary tables).
 * The staging table has the target's column types and no constraints, so
 * type errors show in the COPY and constraint errors in the INSERT; ON
 * COMMIT DELETE ROWS empties it after each transaction without the catalog
 * churn of creating and dropping a table per batch. */
static char *setup_sql(const pg_ctx *c)
{
    rtp_sbuf sb = {0};
    if (c->create_table) {
        put(&sb, "CREATE TABLE IF NOT EXISTS ");
        put(&sb, c->target);
        put(&sb, " (");
        for (size_t i = 0; i < c->ncols; i++) {
            if (i) put(&sb, ", ");
            pg_quote_ident(&sb, c->cols[i].column, strlen(c->cols[i].column));
            put(&sb, " ");
            put(&sb, c->cols[i].type);
        }
        if (c->nkeys) {
            put(&sb, ", PRIMARY KEY (");
            key_list(&sb, c);
            put(&sb, ")");
        }
        put(&sb, ");\n");
    }
    if (c->nkeys) {
        put(&sb, "CREATE TEMPORARY TABLE IF NOT EXISTS rtproc_stage ON COMMIT DELETE ROWS AS SELECT ");
        col_list(&sb, c);
        put(&sb, " FROM ");
        put(&sb, c->target);
        put(&sb, " WITH NO DATA;");
    }
    return sb.len ? finish(&sb) : NULL;
}

/* Upsert: rows of one transaction that share a key are reduced to the
 * last one written (ctid order is COPY order in the fresh staging table),
 * because ON CONFLICT DO UPDATE may not touch a row twice. Sorting by key
 * also makes concurrent writers lock rows in the same order. */
static char *merge_sql(const pg_ctx *c)
{
    rtp_sbuf sb = {0};
    put(&sb, "INSERT INTO ");
    put(&sb, c->target);
    put(&sb, " (");
    col_list(&sb, c);
    put(&sb, ") SELECT DISTINCT ON (");
    key_list(&sb, c);
    put(&sb, ") ");
    col_list(&sb, c);
    put(&sb, " FROM pg_temp.rtproc_stage ORDER BY ");
    key_list(&sb, c);
    put(&sb, ", ctid DESC ON CONFLICT (");
    key_list(&sb, c);
    put(&sb, ") DO ");
    bool first = true;
    for (size_t i = 0; i < c->ncols; i++) {
        if (is_key(c, i)) continue;
        const char *col = c->cols[i].column;
        put(&sb, first ? "UPDATE SET " : ", ");
        pg_quote_ident(&sb, col, strlen(col));
        put(&sb, " = EXCLUDED.");
        pg_quote_ident(&sb, col, strlen(col));
        first = false;
    }
    if (first) put(&sb, "NOTHING");
    put(&sb, ";\nCOMMIT");
    return finish(&sb);
}

void pg_build_sql(pg_ctx *c)
{
    rtp_sbuf sb = {0};
    put(&sb, c->nkeys ? "BEGIN;\nCOPY pg_temp.rtproc_stage (" : "COPY ");
    if (!c->nkeys) {
        put(&sb, c->target);
        put(&sb, " (");
    }
    col_list(&sb, c);
    put(&sb, ") FROM STDIN");
    c->sql_copy = finish(&sb);
    c->sql_setup = setup_sql(c);
    c->sql_merge = c->nkeys ? merge_sql(c) : NULL;
}

/* ---- COPY text format ---------------------------------------------------- */

static void put_escaped(rtp_sbuf *out, const char *s, size_t len)
{
    rtp_sbuf_reserve(out, len);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        rtp_sbuf_append(out, s + run, i - run);
        rtp_sbuf_append(out, esc, 2);
        run = i + 1;
    }
    rtp_sbuf_append(out, s + run, len - run);
}

static void put_int(rtp_sbuf *out, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    rtp_sbuf_append(out, p, (size_t)(tmp + sizeof tmp - p));
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm): no
 * gmtime_r, no locale, valid for any int64 nanosecond time. */
static void civil(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ISO 8601 in UTC with microseconds, PostgreSQL's own precision. */
static void put_time(rtp_sbuf *out, int64_t ns)
{
    int64_t us = ns / 1000 - (ns % 1000 < 0);
    int64_t secs = us / 1000000 - (us % 1000000 < 0);
    int64_t frac = us - secs * 1000000;
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    int64_t sod = secs - days * 86400;
    int64_t y;
    int m, d;
    civil(days, &y, &m, &d);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ", (long long)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)frac);
    rtp_sbuf_append(out, buf, (size_t)n);
}

static void put_double(rtp_sbuf *out, double v)
{
    if (isnan(v))
        put(out, "NaN");
    else if (isinf(v))
        put(out, v > 0 ? "Infinity" : "-Infinity");
    else
        rtp_json_write_double(out, v); /* shortest text that reads back the same */
}

static void put_field(rtp_sbuf *out, const rtp_field *f)
{
    switch (f ? f->type : RTP_NULL) {
    case RTP_NULL: rtp_sbuf_append(out, "\\N", 2); break;
    case RTP_BOOL: rtp_sbuf_append(out, f->v.b ? "t" : "f", 1); break;
    case RTP_INT: put_int(out, f->v.i); break;
    case RTP_DOUBLE: put_double(out, f->v.d); break;
    case RTP_TIME: put_time(out, f->v.t); break;
    default: put_escaped(out, f->v.s, f->len); break;
    }
}

/* Rows lo..hi-1 of b, one line each, columns separated by tabs; a missing
 * or null field is \N (NULL). */
void pg_format_rows(const pg_ctx *c, rtp_sbuf *out, rtp_batch *b, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        const rtp_record *r = rtp_batch_record(b, i);
        for (size_t k = 0; k < c->ncols; k++) {
            if (k) rtp_sbuf_append(out, "\t", 1);
            put_field(out, rtp_record_get(r, c->cols[k].field));
        }
        rtp_sbuf_append(out, "\n", 1);
    }
}
