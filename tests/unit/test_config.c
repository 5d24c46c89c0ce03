/* The pipeline file: sections, substitution, continuation lines and the
 * mistakes people make in it. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static rtp_config *parse(const char *text)
{
    return rtp_config_parse(text, "t.conf");
}

Test(config, sections_in_file_order_with_kinds_and_names)
{
    rtp_config *c = parse("[service]\nlog_level = debug\n[input.prices]\npath = a.csv\n"
                          "[filter.ind]\n[output.out]\nplugin = stdout\n");
    cr_assert_not_null(c);
    cr_assert_eq(c->n_sec, 4);
    cr_assert_eq(c->sec[1].kind, SEC_INPUT);
    cr_assert_str_eq(c->sec[1].name, "prices");
    cr_assert_eq(c->sec[2].kind, SEC_FILTER);
    cr_assert_eq(c->sec[2].n_kv, 0, "an empty section still exists");
    cr_assert_str_eq(rtp_config_get(&c->sec[3], "plugin"), "stdout");
    cr_assert_null(rtp_config_get(&c->sec[3], "nothing"));
    rtp_config_free(c);
}

Test(config, comments_and_inline_comments_are_ignored)
{
    rtp_config *c = parse("; a comment\n# another\n[input.a]\npath = x.csv ; why\n");
    cr_assert_not_null(c);
    cr_assert_str_eq(rtp_config_get(&c->sec[0], "path"), "x.csv");
    rtp_config_free(c);
}

Test(config, continuation_lines_join_with_a_space)
{
    rtp_config *c = parse("[output.pg]\nconninfo = host=localhost\n  dbname=market\n  user=me\n");
    cr_assert_not_null(c);
    cr_assert_str_eq(rtp_config_get(&c->sec[0], "conninfo"), "host=localhost dbname=market user=me");
    rtp_config_free(c);
}

Test(config, environment_substitution)
{
    setenv("RTP_T_DIR", "/data", 1);
    unsetenv("RTP_T_UNSET");
    setenv("RTP_T_EMPTY", "", 1);
    rtp_config *c = parse("[input.a]\npath = ${RTP_T_DIR}/x.csv\nrate = ${RTP_T_UNSET:-250}\n"
                          "tag = ${RTP_T_EMPTY:-fallback}\nmatch = $HOME and ${RTP_T_EMPTY}.\n");
    cr_assert_not_null(c);
    cr_assert_str_eq(rtp_config_get(&c->sec[0], "path"), "/data/x.csv");
    cr_assert_str_eq(rtp_config_get(&c->sec[0], "rate"), "250");
    cr_assert_str_eq(rtp_config_get(&c->sec[0], "tag"), "fallback", "empty counts as unset for :-");
    cr_assert_str_eq(rtp_config_get(&c->sec[0], "match"), "$HOME and .", "only ${...} is substituted");
    rtp_config_free(c);
}

Test(config, unset_variable_without_default_names_section_key_and_variable, .init = cr_redirect_stderr)
{
    unsetenv("RTP_T_MISSING");
    cr_assert_null(parse("[input.a]\npath = ${RTP_T_MISSING}/x\n"));
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: t.conf: [input.a] path: environment variable 'RTP_T_MISSING' is not "
                            "set (use ${RTP_T_MISSING:-default} to give a default)\n");
}

Test(config, duplicate_section_is_refused, .init = cr_redirect_stderr)
{
    cr_assert_null(parse("[input.a]\npath = 1\n[input.a]\npath = 2\n"));
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: t.conf: section [input.a] appears twice: give each instance its own "
                            "name, e.g. [input.a2]\n");
}

Test(config, unknown_section_kind_is_refused, .init = cr_redirect_stderr)
{
    cr_assert_null(parse("[inputs.a]\npath = 1\n"));
    cr_assert_null(parse("[input.]\npath = 1\n"));
}

Test(config, key_before_any_section_is_refused, .init = cr_redirect_stderr)
{
    cr_assert_null(parse("path = 1\n[input.a]\n"));
}

Test(config, line_over_libinih_limit_says_how_to_fix_it, .init = cr_redirect_stderr)
{
    char text[600];
    char value[300];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = 0;
    snprintf(text, sizeof text, "[input.a]\npath = %s\n", value);
    cr_assert_null(parse(text));
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: t.conf:2: line is 306 characters, over the limit of 198: split the "
                            "value over indented continuation lines\n");
}

Test(config, syntax_error_names_the_line, .init = cr_redirect_stderr)
{
    cr_assert_null(parse("[input.a]\npath = 1\nthis line has no equals sign\n"));
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: t.conf:3: syntax error: 'this line has no equals sign' (expected "
                            "[section] or key = value)\n");
}

Test(config, byte_order_mark_is_skipped)
{
    rtp_config *c = parse("\xEF\xBB\xBF[input.a]\npath = 1\n");
    cr_assert_not_null(c);
    cr_assert_eq(c->n_sec, 1);
    rtp_config_free(c);
}

Test(config, missing_file_is_reported, .init = cr_redirect_stderr)
{
    cr_assert_null(rtp_config_load("/nonexistent/pipeline.conf"));
    fflush(stderr);
    cr_assert_stderr_eq_str("rtproc: cannot open /nonexistent/pipeline.conf: No such file or directory\n");
}
