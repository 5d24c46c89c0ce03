#ifndef RTP_LOG_H
#define RTP_LOG_H

#include <stdbool.h>

#include "rtproc/plugin.h"

void rtp_log_configure(rtp_log_level level, bool json);
/* "error", "warn", ... -> level; -1 when unknown. */
int rtp_log_level_parse(const char *s);

#endif
