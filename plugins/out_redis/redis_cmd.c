/* Key templates and the Redis commands made from a record.
 *
 * Arguments are binary-safe (each travels with its length in RESP), so
 * values are passed as they are: no escaping, nothing a value could inject.
 * Text the command needs (numbers, the rendered key, JSON) is written into a
 * scratch buffer first and pointed to only once complete, because the
 * buffer may move while it grows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_cmd.h"

/* ---- templates ------------------------------------------------------------ */

static void tpl_add(redis_tpl *t, tpl_part p)
{
    t->parts = rtp_xrealloc(t->parts, (t->n + 1) * sizeof *t->parts);
    t->parts[t->n++] = p;
}

static void tpl_literal(redis_tpl *t, const char *s, size_t len)
{
    if (len == 0) return;
    tpl_add(t, (tpl_part){.text = rtp_xstrndup(s, len), .len = len});
}

/* "{name}" is the field's text; "{{" and "}}" are literal braces. */
int redis_tpl_parse(redis_tpl *t, const char *s, const char **err)
{
    const char *lit = s;
    while (*s) {
        if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            tpl_literal(t, lit, (size_t)(s - lit) + 1);
            s += 2;
            lit = s;
        } else if (*s == '{') {
            const char *end = strchr(s, '}');
            if (!end) return *err = "unclosed '{'", -1;
            if (end == s + 1) return *err = "empty field name in {}", -1;
            tpl_literal(t, lit, (size_t)(s - lit));
            tpl_add(t, (tpl_part){.field = true, .key = rtp_key_intern(s + 1, (size_t)(end - s - 1))});
            s = end + 1;
            lit = s;
        } else if (*s == '}') {
            return *err = "a lone '}' (write }} for a literal brace)", -1;
        } else {
            s++;
        }
    }
    tpl_literal(t, lit, (size_t)(s - lit));
    return 0;
}

void redis_tpl_free(redis_tpl *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->parts[i].text);
    free(t->parts);
    t->parts = NULL;
    t->n = 0;
}

static void field_text(rtp_sbuf *out, const rtp_field *f)
{
    char num[40];
    int n;
    switch (f->type) {
    case RTP_BOOL: rtp_sbuf_append(out, f->v.b ? "true" : "false", f->v.b ? 4 : 5); break;
    case RTP_INT:
        n = snprintf(num, sizeof num, "%lld", (long long)f->v.i);
        rtp_sbuf_append(out, num, (size_t)n);
        break;
    case RTP_DOUBLE:
        if (isnan(f->v.d) || isinf(f->v.d)) {
            n = snprintf(num, sizeof num, "%s", isnan(f->v.d) ? "nan" : f->v.d > 0 ? "inf" : "-inf");
            rtp_sbuf_append(out, num, (size_t)n);
        } else {
            rtp_json_write_double(out, f->v.d);
        }
        break;
    case RTP_TIME: rtp_sbuf_append(out, num, rtp_time_rfc3339(f->v.t, num)); break;
    case RTP_STRING: rtp_sbuf_append(out, f->v.s, f->len); break;
    default: break;
    }
}

int redis_tpl_render(const redis_tpl *t, const rtp_record *r, rtp_sbuf *out, const char **missing)
{
    for (size_t i = 0; i < t->n; i++) {
        const tpl_part *p = &t->parts[i];
        if (!p->field) {
            rtp_sbuf_append(out, p->text, p->len);
            continue;
        }
        const rtp_field *f = rtp_record_get(r, p->key);
        if (!f || f->type == RTP_NULL) {
            *missing = rtp_key_name(p->key, NULL);
            return -1;
        }
        field_text(out, f);
    }
    return 0;
}

/* ---- commands --------------------------------------------------------------- */

int redis_cmd_count(const redis_cmd_conf *rc)
{
    if (rc->mode == MODE_HASH && rc->ttl_ms > 0) return 2;
    if (rc->mode == MODE_LIST && rc->max_len > 0) return 2;
    return 1;
}

/* Arguments are recorded as offsets while scratch grows, then turned into
 * pointers once it no longer moves. */
typedef struct argbuf {
    redis_cmd *cmd;
    rtp_sbuf *sb;
    size_t off[REDIS_MAX_ARGS];
    bool in_scratch[REDIS_MAX_ARGS];
} argbuf;

static void arg_static(argbuf *a, const char *s, size_t len)
{
    int i = a->cmd->argc++;
    a->cmd->argv[i] = s;
    a->cmd->argvlen[i] = len;
    a->in_scratch[i] = false;
}

static void arg_begin(argbuf *a)
{
    int i = a->cmd->argc;
    a->off[i] = a->sb->len;
    a->in_scratch[i] = true;
}

static void arg_end(argbuf *a)
{
    int i = a->cmd->argc++;
    a->cmd->argvlen[i] = a->sb->len - a->off[i];
}

static void arg_text(argbuf *a, const char *fmt, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof num, fmt, v);
    arg_begin(a);
    rtp_sbuf_append(a->sb, num, (size_t)n);
    arg_end(a);
}

static void args_fix(argbuf *a)
{
    for (int i = 0; i < a->cmd->argc; i++)
        if (a->in_scratch[i]) a->cmd->argv[i] = a->sb->data + a->off[i];
}

/* field value pairs of the non-null fields; strings are not copied. */
static int args_fields(argbuf *a, const rtp_record *r)
{
    int added = 0;
    for (uint32_t i = 0; i < r->nfields && a->cmd->argc + 2 <= REDIS_MAX_ARGS; i++) {
        const rtp_field *f = &r->fields[i];
        if (f->type == RTP_NULL) continue;
        size_t klen;
        const char *k = rtp_key_name(f->key, &klen);
        arg_static(a, k, klen);
        if (f->type == RTP_STRING) {
            arg_static(a, f->v.s, f->len);
        } else {
            arg_begin(a);
            field_text(a->sb, f);
            arg_end(a);
        }
        added++;
    }
    return added;
}

static void arg_json(argbuf *a, const rtp_record *r)
{
    arg_begin(a);
    rtp_json_write_record(a->sb, r, NULL);
    arg_end(a);
}

#define LIT(s) s, sizeof s - 1

int redis_cmd_build(const redis_cmd_conf *rc, const rtp_record *r, int which, redis_cmd *cmd, rtp_sbuf *scratch,
                    const char **why)
{
    argbuf a = {.cmd = cmd, .sb = scratch};
    const char *missing = NULL;
    cmd->argc = 0;
    scratch->len = 0;
    static const char *const verbs[][2] = {{"HSET", "PEXPIRE"}, {"XADD", NULL}, {"PUBLISH", NULL}, {"LPUSH", "LTRIM"}};
    const char *verb = verbs[rc->mode][which];
    arg_static(&a, verb, strlen(verb));
    arg_begin(&a);
    if (redis_tpl_render(rc->key, r, scratch, &missing) < 0) {
        *why = missing;
        return -1;
    }
    arg_end(&a);
    if (which == 1) {
        if (rc->mode == MODE_HASH) {
            arg_text(&a, "%lld", (long long)rc->ttl_ms);
        } else {
            arg_static(&a, LIT("0"));
            arg_text(&a, "%lld", (long long)rc->max_len - 1);
        }
    } else if (rc->mode == MODE_HASH || rc->mode == MODE_STREAM) {
        if (rc->mode == MODE_STREAM) {
            if (rc->max_len > 0) {
                arg_static(&a, LIT("MAXLEN"));
                arg_static(&a, LIT("~"));
                arg_text(&a, "%lld", (long long)rc->max_len);
            }
            arg_static(&a, LIT("*"));
        }
        if (args_fields(&a, r) == 0) {
            *why = NULL;
            return -1;
        }
    } else {
        arg_json(&a, r);
    }
    args_fix(&a);
    return 0;
}
