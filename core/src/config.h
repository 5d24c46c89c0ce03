/* The pipeline file: INI read with libinih into sections of key/value pairs.
 *
 * This layer knows nothing of plugins: it reads, substitutes ${VAR} and
 * ${VAR:-default}, joins continuation lines, and remembers which keys were
 * consumed so that validation can name every key nobody asked for. */
#ifndef RTP_CONFIG_H
#define RTP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "rtproc/plugin.h"

typedef struct config_kv {
    char *key;
    char *value;
    bool used;
} config_kv;

typedef enum section_kind { SEC_SERVICE, SEC_PLUGINS, SEC_INPUT, SEC_FILTER, SEC_OUTPUT } section_kind;

typedef struct config_section {
    char *header; /* "input.prices" as written */
    section_kind kind;
    char *name; /* "prices" (the header itself for service/plugins) */
    config_kv *kv;
    size_t n_kv;
} config_section;

typedef struct rtp_config {
    char *path;
    config_section *sec;
    size_t n_sec;
} rtp_config;

/* Reads a pipeline from a file or from memory. On error returns NULL and
 * prints the reason (file, line, section, key) to stderr. */
rtp_config *rtp_config_load(const char *path);
rtp_config *rtp_config_parse(const char *text, const char *name);
void rtp_config_free(rtp_config *cfg);

const config_section *rtp_config_find(const rtp_config *cfg, section_kind kind);
/* The value of key, marking it used; NULL when absent. */
const char *rtp_config_get(const config_section *sec, const char *key);

/* Substitutes ${VAR} and ${VAR:-default} from the environment. Returns a new
 * string, or NULL with *bad_var set to the name of an unset variable that has
 * no default (malloc'd; the caller frees it). */
char *rtp_config_expand(const char *value, char **bad_var);

#endif
