/* rtproc — the one header a plugin includes. */
#ifndef RTPROC_H
#define RTPROC_H

#include "version.h"
#include "alloc.h"
#include "record.h"
#include "options.h"
#include "plugin.h"
#include "json.h"
#include "timefmt.h"
#include "map.h"
#include "text.h"
#include "backoff.h"

#endif
