#ifndef RTP_OPTIONS_INTERNAL_H
#define RTP_OPTIONS_INTERNAL_H

#include <stdio.h>

#include "config.h"
#include "rtproc/options.h"

/* Stores every option of `table` found in `sec` (or its default) into base.
 * Reports the first problem as "[section] key: why" on stderr and returns -1. */
int rtp_options_apply(const rtp_option *table, const config_section *sec, void *base);
/* Frees what apply allocated (strings, lists) inside base. */
void rtp_options_release(const rtp_option *table, void *base);
/* After every table has had its say: any key nobody consumed is an error,
 * with the closest known name suggested. */
int rtp_options_check_unused(const config_section *sec, const rtp_option *const *tables, size_t n);

void rtp_options_print_help(FILE *out, const rtp_option *table);
void rtp_options_print_schema(FILE *out, const rtp_option *table);
const char *rtp_opt_type_name(rtp_opt_type t);

#endif
