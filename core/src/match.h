#ifndef RTP_MATCH_H
#define RTP_MATCH_H

#include <stdbool.h>

#include "rtproc/options.h"

bool rtp_match(const char *pattern, const char *tag);
bool rtp_match_any(const rtp_strlist *patterns, const char *tag);

#endif
