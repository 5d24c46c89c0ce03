/* Option tables: validation, storage, help and schema from one declaration.
 *
 * Values are parsed into the plugin's context at the offsets its table gives,
 * the way Fluent Bit's config_map does, so a plugin reads ctx->path instead of
 * looking strings up. Every failure names the section and the key. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rtproc/json.h"
#include "util.h"

const char *rtp_opt_type_name(rtp_opt_type t)
{
    static const char *const names[] = {"string",   "int",  "double", "bool",  "size",
                                        "duration", "list", "enum",   "prefix"};
    return (unsigned)t < RTP_ARRAY_LEN(names) ? names[t] : "?";
}

/* ---- scalar parsers -------------------------------------------------------- */

int rtp_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < RTP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = false, 0;
    }
    return -1;
}

/* A non-negative decimal number followed by a unit from `units`. */
static int parse_scaled(const char *s, const char *const *units, const double *scale, size_t n,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0 || !isdigit((unsigned char)*s)) return -1;
    while (*end == ' ') end++;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(end, units[i]) == 0) {
            *out = v * scale[i];
            return 0;
        }
    }
    return -1;
}

int rtp_parse_size(const char *s, uint64_t *out, const char **err)
{
    static const char *const units[] = {"", "b", "k", "kb", "m", "mb", "g", "gb"};
    static const double scale[] = {1, 1, 1024.0, 1024.0, 1048576.0, 1048576.0, 1073741824.0,
                                   1073741824.0};
    double v;
    if (parse_scaled(s, units, scale, RTP_ARRAY_LEN(units), &v) < 0 || v > 9.0e18) {
        *err = "expected a size such as 512, 64k, 4M or 1G";
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int rtp_parse_duration_ms(const char *s, int64_t *out, const char **err)
{
    static const char *const units[] = {"ms", "s", "m", "h", "d"};
    static const double scale[] = {1, 1000, 60000, 3600000, 86400000};
    double v;
    if (strcmp(s, "0") == 0) return *out = 0, 0; /* zero needs no unit; any other number does */
    if (parse_scaled(s, units, scale, RTP_ARRAY_LEN(units), &v) < 0 || v > 9.0e15) {
        *err = "expected a duration with a unit such as 500ms, 5s, 1.5m, 1h or 2d";
        return -1;
    }
    *out = (int64_t)llround(v);
    return 0;
}

static int parse_enum(const char *s, const char *choices, int *out)
{
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        size_t n = strcspn(p, "|");
        if (strlen(s) == n && strncasecmp(s, p, n) == 0) return *out = idx, 0;
        p += n + (p[n] == '|');
    }
    return -1;
}

static void list_parse(const char *s, rtp_strlist *out)
{
    out->n = 0;
    out->v = NULL;
    while (*s) {
        size_t n = strcspn(s, ",");
        const char *a = s, *b = s + n;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            out->v = rtp_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
            out->v[out->n++] = rtp_xstrndup(a, (size_t)(b - a));
        }
        s += n + (s[n] == ',');
    }
}

/* ---- storing into a context ---------------------------------------------- */

static int store(const rtp_option *o, const char *text, void *base, const char **why)
{
    void *dst = (char *)base + o->offset;
    char *end;
    switch (o->type) {
    case RTP_OPT_STR:
        free(*(char **)dst);
        *(char **)dst = rtp_xstrdup(text);
        return 0;
    case RTP_OPT_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || errno) return *why = "expected an integer", -1;
        *(int64_t *)dst = v;
        return 0;
    }
    case RTP_OPT_DOUBLE: {
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v)) return *why = "expected a number", -1;
        *(double *)dst = v;
        return 0;
    }
    case RTP_OPT_BOOL:
        if (rtp_parse_bool(text, (bool *)dst) < 0) return *why = "expected true or false", -1;
        return 0;
    case RTP_OPT_SIZE: return rtp_parse_size(text, (uint64_t *)dst, why);
    case RTP_OPT_DURATION: return rtp_parse_duration_ms(text, (int64_t *)dst, why);
    case RTP_OPT_LIST: {
        rtp_strlist *l = dst;
        for (size_t i = 0; i < l->n; i++) free(l->v[i]);
        free(l->v);
        list_parse(text, l);
        return 0;
    }
    case RTP_OPT_ENUM:
        if (parse_enum(text, o->choices, (int *)dst) < 0) return *why = "expected one of", -1;
        return 0;
    case RTP_OPT_PREFIX: break; /* handled by apply_prefix */
    }
    return *why = "unknown option type", -1;
}

/* Claims every key under the option's prefix ("rdkafka.security.protocol"
 * -> "security.protocol"); the plugin validates the names itself. */
static void apply_prefix(const rtp_option *o, const config_section *sec, void *base)
{
    rtp_kvlist *l = (rtp_kvlist *)((char *)base + o->offset);
    size_t plen = strlen(o->name);
    for (size_t i = 0; i < sec->n_kv; i++) {
        config_kv *kv = &sec->kv[i];
        if (strncmp(kv->key, o->name, plen) != 0 || !kv->key[plen]) continue;
        kv->used = true;
        l->keys = rtp_xrealloc(l->keys, (l->n + 1) * sizeof *l->keys);
        l->values = rtp_xrealloc(l->values, (l->n + 1) * sizeof *l->values);
        l->keys[l->n] = rtp_xstrdup(kv->key + plen);
        l->values[l->n++] = rtp_xstrdup(kv->value);
    }
}

int rtp_options_apply(const rtp_option *table, const config_section *sec, void *base)
{
    for (const rtp_option *o = table; o && o->name; o++) {
        if (o->type == RTP_OPT_PREFIX) {
            apply_prefix(o, sec, base);
            continue;
        }
        const char *text = rtp_config_get(sec, o->name);
        bool given = text != NULL;
        if (!text) text = o->def;
        if (!text) {
            if (o->flags & RTP_OPT_REQUIRED) {
                fprintf(stderr, "rtproc: [%s] %s: required option is missing (%s)\n",
                        sec->header, o->name, o->desc);
                return -1;
            }
            continue;
        }
        const char *why = NULL;
        if (store(o, text, base, &why) < 0) {
            fprintf(stderr, "rtproc: [%s] %s: invalid value '%s'%s: %s%s%s\n", sec->header,
                    o->name, text, given ? "" : " (default)", why,
                    o->type == RTP_OPT_ENUM ? " " : "", o->type == RTP_OPT_ENUM ? o->choices : "");
            return -1;
        }
    }
    return 0;
}

void rtp_options_release(const rtp_option *table, void *base)
{
    for (const rtp_option *o = table; o && o->name; o++) {
        void *dst = (char *)base + o->offset;
        if (o->type == RTP_OPT_STR) {
            free(*(char **)dst);
            *(char **)dst = NULL;
        } else if (o->type == RTP_OPT_LIST) {
            rtp_strlist *l = dst;
            for (size_t i = 0; i < l->n; i++) free(l->v[i]);
            free(l->v);
            l->v = NULL;
            l->n = 0;
        } else if (o->type == RTP_OPT_PREFIX) {
            rtp_kvlist *l = dst;
            for (size_t i = 0; i < l->n; i++) {
                free(l->keys[i]);
                free(l->values[i]);
            }
            free(l->keys);
            free(l->values);
            memset(l, 0, sizeof *l);
        }
    }
}

/* ---- unknown keys ---------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 64;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

int rtp_options_check_unused(const config_section *sec, const rtp_option *const *tables, size_t n)
{
    for (size_t k = 0; k < sec->n_kv; k++) {
        if (sec->kv[k].used) continue;
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t t = 0; t < n; t++) {
            for (const rtp_option *o = tables[t]; o && o->name; o++) {
                size_t d = edit_distance(sec->kv[k].key, o->name);
                if (d < best_d) best_d = d, best = o->name;
            }
        }
        if (best)
            fprintf(stderr, "rtproc: [%s] %s: unknown option; did you mean '%s'?\n", sec->header,
                    sec->kv[k].key, best);
        else
            fprintf(stderr, "rtproc: [%s] %s: unknown option (see rtproc --help-plugin)\n",
                    sec->header, sec->kv[k].key);
        return -1;
    }
    return 0;
}

/* ---- help and schema ------------------------------------------------------ */

void rtp_options_print_help(FILE *out, const rtp_option *table)
{
    for (const rtp_option *o = table; o && o->name; o++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", o->name, o->type == RTP_OPT_PREFIX ? "*" : "");
        fprintf(out, "  %-18s %-9s", name, rtp_opt_type_name(o->type));
        if (o->flags & RTP_OPT_REQUIRED)
            fprintf(out, " required");
        else if (o->def)
            fprintf(out, " default: %s", o->def);
        fprintf(out, "\n      %s\n", o->desc ? o->desc : "");
        if (o->type == RTP_OPT_ENUM) fprintf(out, "      one of: %s\n", o->choices);
    }
}

static void json_str(FILE *out, const char *s)
{
    rtp_sbuf sb = {0};
    rtp_json_write_string(&sb, s, strlen(s));
    fwrite(sb.data, 1, sb.len, out);
    rtp_sbuf_free(&sb);
}

void rtp_options_print_schema(FILE *out, const rtp_option *table)
{
    fputc('[', out);
    for (const rtp_option *o = table; o && o->name; o++) {
        fprintf(out, "%s{\"name\":", o == table ? "" : ",");
        json_str(out, o->name);
        fprintf(out, ",\"type\":\"%s\",\"required\":%s", rtp_opt_type_name(o->type),
                (o->flags & RTP_OPT_REQUIRED) ? "true" : "false");
        if (o->def) {
            fputs(",\"default\":", out);
            json_str(out, o->def);
        }
        if (o->choices) {
            fputs(",\"choices\":", out);
            json_str(out, o->choices);
        }
        fputs(",\"description\":", out);
        json_str(out, o->desc ? o->desc : "");
        fputc('}', out);
    }
    fputc(']', out);
}
