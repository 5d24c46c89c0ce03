/* libFuzzer target: the pipeline file parser, ${VAR} expansion and option
 * validation against a table holding one option of every type. Whatever the
 * bytes, parsing must fail cleanly or give sections whose values apply.
 * Run with -close_fd_mask=2: every rejected input prints its reason. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "options.h"

typedef struct fuzz_ctx {
    char *s;
    int64_t i;
    double d;
    bool b;
    uint64_t size;
    int64_t dur;
    rtp_strlist list;
    int e;
} fuzz_ctx;

#define O(f) offsetof(fuzz_ctx, f)
static const rtp_option table[] = {
    {"path", RTP_OPT_STR, NULL, 0, O(s), "", NULL},
    {"count", RTP_OPT_INT, "1", 0, O(i), "", NULL},
    {"ratio", RTP_OPT_DOUBLE, NULL, 0, O(d), "", NULL},
    {"flag", RTP_OPT_BOOL, NULL, 0, O(b), "", NULL},
    {"limit", RTP_OPT_SIZE, "1M", 0, O(size), "", NULL},
    {"every", RTP_OPT_DURATION, NULL, 0, O(dur), "", NULL},
    {"match", RTP_OPT_LIST, NULL, 0, O(list), "", NULL},
    {"format", RTP_OPT_ENUM, NULL, 0, O(e), "", "json|raw"},
    RTP_OPT_END};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("FUZZ_SET", "value", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    if (strlen(text) == size) {
        rtp_config *cfg = rtp_config_parse(text, "fuzz.conf");
        for (size_t i = 0; cfg && i < cfg->n_sec; i++) {
            fuzz_ctx ctx = {0};
            const rtp_option *tables[] = {table};
            if (rtp_options_apply(table, &cfg->sec[i], &ctx) == 0)
                rtp_options_check_unused(&cfg->sec[i], tables, 1);
            rtp_options_release(table, &ctx);
        }
        rtp_config_free(cfg);
    }
    free(text);
    return 0;
}
