/* rtproc — declarative option tables.
 *
 * Each plugin lists its options once; the engine uses the table to validate a
 * section before anything starts, to store parsed values into the plugin's
 * context at `offset`, and to print --help-plugin and --schema. Nothing else
 * describes a plugin's configuration, so docs cannot drift from code. */
#ifndef RTPROC_OPTIONS_H
#define RTPROC_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "version.h"

typedef enum rtp_opt_type {
    RTP_OPT_STR,      /* char *            (owned by the engine)           */
    RTP_OPT_INT,      /* int64_t                                           */
    RTP_OPT_DOUBLE,   /* double                                            */
    RTP_OPT_BOOL,     /* bool: true/false, yes/no, on/off, 1/0             */
    RTP_OPT_SIZE,     /* uint64_t bytes: 512, 64k, 4M, 1G (powers of 1024)  */
    RTP_OPT_DURATION, /* int64_t milliseconds: 250ms, 5s, 1.5m, 1h, 2d, 0   */
    RTP_OPT_LIST,     /* rtp_strlist: comma-separated, items trimmed        */
    RTP_OPT_ENUM,     /* int: index of the value in `choices` ("a|b|c")    */
    RTP_OPT_PREFIX    /* rtp_kvlist: every key that starts with `name`
                         ("rdkafka."), the prefix removed, values as text   */
} rtp_opt_type;

#define RTP_OPT_REQUIRED 1u

typedef struct rtp_option {
    const char *name;
    rtp_opt_type type;
    const char *def; /* default as text; NULL: none (zero / NULL) */
    unsigned flags;
    size_t offset; /* where the parsed value goes in the context */
    const char *desc;
    const char *choices; /* RTP_OPT_ENUM: "json|raw" */
} rtp_option;

typedef struct rtp_strlist {
    size_t n;
    char **v;
} rtp_strlist;

typedef struct rtp_kvlist {
    size_t n;
    char **keys;
    char **values;
} rtp_kvlist;

#define RTP_OPT_END {0}

/* Parsers shared by the engine and plugins that read such values elsewhere.
 * Each returns 0, or -1 with a reason in err. */
RTP_API int rtp_parse_size(const char *s, uint64_t *out, const char **err);
RTP_API int rtp_parse_duration_ms(const char *s, int64_t *out, const char **err);
RTP_API int rtp_parse_bool(const char *s, bool *out);

#endif
