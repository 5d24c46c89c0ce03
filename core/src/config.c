/* Reading the pipeline file.
 *
 * Debian's libinih is built with INI_MAX_LINE 200 and no line numbers in the
 * handler; two facts this file lives with. A line over 200 characters is an
 * error at that line, and we say why (write the value on indented
 * continuation lines instead). A key that appears again in the same section is
 * indistinguishable from a continuation line, so both append to the value,
 * separated by a space: a repeated key then fails validation of its value
 * rather than silently replacing the first. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define INI_LINE_LIMIT 200

typedef struct parse_state {
    rtp_config *cfg;
    char *error; /* first semantic error, reported after parsing */
} parse_state;

static const struct {
    const char *prefix;
    section_kind kind;
} section_kinds[] = {
    {"input.", SEC_INPUT},
    {"filter.", SEC_FILTER},
    {"output.", SEC_OUTPUT},
};

static int classify(const char *header, section_kind *kind, const char **name)
{
    if (strcmp(header, "service") == 0 || strcmp(header, "plugins") == 0) {
        *kind = header[0] == 's' ? SEC_SERVICE : SEC_PLUGINS;
        *name = header;
        return 0;
    }
    for (size_t i = 0; i < RTP_ARRAY_LEN(section_kinds); i++) {
        size_t n = strlen(section_kinds[i].prefix);
        if (strncmp(header, section_kinds[i].prefix, n) == 0 && header[n]) {
            *kind = section_kinds[i].kind;
            *name = header + n;
            return 0;
        }
    }
    return -1;
}

static config_section *find_section(rtp_config *cfg, const char *header)
{
    for (size_t i = 0; i < cfg->n_sec; i++)
        if (strcmp(cfg->sec[i].header, header) == 0) return &cfg->sec[i];
    return NULL;
}

static void add_section(parse_state *st, const char *header)
{
    rtp_config *cfg = st->cfg;
    if (st->error) return;
    if (find_section(cfg, header)) {
        st->error = rtp_xasprintf("section [%s] appears twice: give each instance its own name, "
                                  "e.g. [%s2]", header, header);
        return;
    }
    section_kind kind;
    const char *name;
    if (classify(header, &kind, &name) < 0) {
        st->error = rtp_xasprintf("section [%s]: unknown section; expected [service], [plugins], "
                                  "[input.NAME], [filter.NAME] or [output.NAME]", header);
        return;
    }
    cfg->sec = rtp_xrealloc(cfg->sec, (cfg->n_sec + 1) * sizeof *cfg->sec);
    config_section *s = &cfg->sec[cfg->n_sec++];
    *s = (config_section){.header = rtp_xstrdup(header), .kind = kind, .name = rtp_xstrdup(name)};
}

/* libinih calls the handler only for keys, so a section with none (an
 * instance happy with every default) would not exist; the headers are
 * collected here first, in file order, the way inih reads them. */
static void scan_headers(parse_state *st, const char *text)
{
    if (strncmp(text, "\xEF\xBB\xBF", 3) == 0) text += 3; /* inih skips a BOM too */
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p != '[') continue;
        const char *close = p + 1 + strcspn(p + 1, "]\n;");
        if (*close != ']') continue;
        const char *a = p + 1, *b = close;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        char *header = rtp_xstrndup(a, (size_t)(b - a));
        add_section(st, header);
        free(header);
    }
}

static void add_value(config_section *s, const char *key, const char *value)
{
    for (size_t i = 0; i < s->n_kv; i++) {
        if (strcmp(s->kv[i].key, key) == 0) {
            char *joined = rtp_xasprintf("%s %s", s->kv[i].value, value);
            free(s->kv[i].value);
            s->kv[i].value = joined;
            return;
        }
    }
    s->kv = rtp_xrealloc(s->kv, (s->n_kv + 1) * sizeof *s->kv);
    s->kv[s->n_kv++] = (config_kv){rtp_xstrdup(key), rtp_xstrdup(value), false};
}

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
    parse_state *st = user;
    if (!section[0]) {
        if (!st->error) st->error = rtp_xasprintf("key '%s' appears before any [section]", key);
        return 1;
    }
    config_section *s = find_section(st->cfg, section);
    if (!s) return 1; /* reported by scan_headers */
    char *bad = NULL;
    char *expanded = rtp_config_expand(value, &bad);
    if (!expanded) {
        if (!st->error)
            st->error = rtp_xasprintf("[%s] %s: environment variable '%s' is not set "
                                      "(use ${%s:-default} to give a default)",
                                      section, key, bad, bad);
        free(bad);
        return 1;
    }
    add_value(s, key, expanded);
    free(expanded);
    return 1;
}

/* libinih reads a long line in pieces and reports the piece after the
 * first as a line of its own, so overlong lines are found here first. */
static int find_long_line(const char *text, size_t *len)
{
    int lineno = 1;
    for (const char *p = text; *p; lineno++) {
        size_t n = strcspn(p, "\n");
        *len = n && p[n - 1] == '\r' ? n - 1 : n;
        if (*len > INI_LINE_LIMIT - 2) return lineno;
        p += n + (p[n] == '\n');
    }
    return 0;
}

static void report_line(const char *name, const char *text, int lineno)
{
    const char *p = text;
    for (int i = 1; i < lineno && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    size_t len = p ? strcspn(p, "\n") : 0;
    if (len && p[len - 1] == '\r') len--;
    fprintf(stderr, "rtproc: %s:%d: syntax error: '%.*s' (expected [section] or key = value)\n", name,
            lineno, (int)(len > 120 ? 120 : len), p ? p : "");
}

rtp_config *rtp_config_parse(const char *text, const char *name)
{
    parse_state st = {rtp_xcalloc(1, sizeof(rtp_config)), NULL};
    st.cfg->path = rtp_xstrdup(name);
    size_t long_len;
    int long_line = find_long_line(text, &long_len);
    if (long_line) {
        fprintf(stderr, "rtproc: %s:%d: line is %zu characters, over the limit of %d: split the value "
                        "over indented continuation lines\n", name, long_line, long_len, INI_LINE_LIMIT - 2);
        rtp_config_free(st.cfg);
        return NULL;
    }
    scan_headers(&st, text);
    int rc = st.error ? 0 : ini_parse_string(text, on_entry, &st);
    if (rc != 0 || st.error) {
        if (rc > 0)
            report_line(name, text, rc);
        else if (rc < 0)
            fprintf(stderr, "rtproc: %s: cannot parse\n", name);
        if (st.error) fprintf(stderr, "rtproc: %s: %s\n", name, st.error);
        free(st.error);
        rtp_config_free(st.cfg);
        return NULL;
    }
    return st.cfg;
}

rtp_config *rtp_config_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rtproc: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *text = rtp_xmalloc(cap);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) text = rtp_xrealloc(text, cap *= 2);
    }
    fclose(f);
    text[len] = 0;
    rtp_config *cfg = memchr(text, 0, len) ? NULL : rtp_config_parse(text, path);
    if (memchr(text, 0, len)) fprintf(stderr, "rtproc: %s: contains a NUL byte\n", path);
    free(text);
    return cfg;
}

void rtp_config_free(rtp_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n_sec; i++) {
        config_section *s = &cfg->sec[i];
        for (size_t k = 0; k < s->n_kv; k++) {
            free(s->kv[k].key);
            free(s->kv[k].value);
        }
        free(s->kv);
        free(s->header);
        free(s->name);
    }
    free(cfg->sec);
    free(cfg->path);
    free(cfg);
}

const config_section *rtp_config_find(const rtp_config *cfg, section_kind kind)
{
    for (size_t i = 0; i < cfg->n_sec; i++)
        if (cfg->sec[i].kind == kind) return &cfg->sec[i];
    return NULL;
}

const char *rtp_config_get(const config_section *sec, const char *key)
{
    if (!sec) return NULL;
    for (size_t i = 0; i < sec->n_kv; i++) {
        if (strcmp(sec->kv[i].key, key) == 0) {
            ((config_kv *)&sec->kv[i])->used = true;
            return sec->kv[i].value;
        }
    }
    return NULL;
}

/* ${NAME} or ${NAME:-default}; a '$' not followed by '{' is literal. */
char *rtp_config_expand(const char *v, char **bad_var)
{
    size_t cap = strlen(v) + 64, len = 0;
    char *out = rtp_xmalloc(cap);
    while (*v) {
        const char *close = v[0] == '$' && v[1] == '{' ? strchr(v + 2, '}') : NULL;
        const char *piece = v;
        size_t plen = 1;
        if (close) {
            const char *name = v + 2;
            const char *dflt = strstr(name, ":-");
            size_t nlen = (dflt && dflt < close ? dflt : close) - name;
            char *var = rtp_xstrndup(name, nlen);
            const char *val = getenv(var);
            bool has_default = dflt && dflt < close;
            if (val && (*val || !has_default)) {
                piece = val;
                plen = strlen(val);
            } else if (has_default) {
                piece = dflt + 2;
                plen = (size_t)(close - piece);
            } else {
                free(out);
                *bad_var = var;
                return NULL;
            }
            free(var);
            v = close + 1;
        } else {
            v++;
        }
        if (len + plen + 1 > cap) out = rtp_xrealloc(out, cap = (len + plen + 1) * 2);
        memcpy(out + len, piece, plen);
        len += plen;
    }
    out[len] = 0;
    return out;
}
