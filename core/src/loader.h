/* Finding and loading plugin shared objects. */
#ifndef RTP_LOADER_H
#define RTP_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "rtproc/plugin.h"

/* Directories searched, in order, for <in|filter|out>_<name>.so. */
void rtp_loader_add_dir(const char *dir);
/* Loads one object (from [plugins] path or a search). Prints why on failure. */
const rtp_plugin *rtp_loader_load(const char *path);
/* Registers a descriptor linked into the process (tests). */
void rtp_loader_add_static(const rtp_plugin *p);
/* A loaded plugin of that kind and name, loading it from the directories on
 * first use; NULL after printing why. */
const rtp_plugin *rtp_loader_find(rtp_kind kind, const char *name);
/* Loads every object in the directories (for --list-plugins and --schema);
 * returns how many failed to load (each said why). */
size_t rtp_loader_load_all(void);
size_t rtp_loader_count(void);
const rtp_plugin *rtp_loader_get(size_t i, const char **path);
void rtp_loader_unload_all(void);

/* An output's own default max_inflight, 0 when it has none. Read only from
 * plugins built for ABI 1.1 or later: older descriptors end before it. */
uint32_t rtp_plugin_default_max_inflight(const rtp_plugin *p);

const char *rtp_kind_name(rtp_kind kind);   /* "input" */
const char *rtp_kind_prefix(rtp_kind kind); /* "in" */

#endif
