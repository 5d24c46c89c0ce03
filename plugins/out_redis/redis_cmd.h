/* out_redis: key templates and the Redis commands made from a record. */
#ifndef OUT_REDIS_CMD_H
#define OUT_REDIS_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rtproc/rtproc.h>

enum { MODE_HASH, MODE_STREAM, MODE_PUBLISH, MODE_LIST };

/* A key or channel template, "ticker:{symbol}": literal text and fields. */
typedef struct tpl_part {
    bool field;
    rtp_key key;   /* field */
    char *text;    /* literal */
    size_t len;
} tpl_part;

typedef struct redis_tpl {
    tpl_part *parts;
    size_t n;
} redis_tpl;

/* 0, or -1 with *err set (unclosed brace, empty field name). */
int redis_tpl_parse(redis_tpl *t, const char *s, const char **err);
void redis_tpl_free(redis_tpl *t);
/* Appends the key for r; -1 and *missing (the field's name) when a field
 * of the template is missing or null. */
int redis_tpl_render(const redis_tpl *t, const rtp_record *r, rtp_sbuf *out, const char **missing);

/* Up to two commands for one record (HSET + PEXPIRE, LPUSH + LTRIM). */
#define REDIS_MAX_ARGS 1024
typedef struct redis_cmd {
    int argc;
    const char *argv[REDIS_MAX_ARGS];
    size_t argvlen[REDIS_MAX_ARGS];
} redis_cmd;

typedef struct redis_cmd_conf {
    int mode;
    const redis_tpl *key;
    int64_t ttl_ms;
    int64_t max_len;
} redis_cmd_conf;

/* Builds command `which` (0: the write, 1: its companion, when
 * redis_cmd_count says there are two) for r into cmd; text it needs is
 * kept in scratch, which must not change until the command is sent.
 * Returns 0, or -1 with *why set: the record is to be rejected. */
int redis_cmd_build(const redis_cmd_conf *rc, const rtp_record *r, int which, redis_cmd *cmd, rtp_sbuf *scratch,
                    const char **why);
int redis_cmd_count(const redis_cmd_conf *rc);

#endif
