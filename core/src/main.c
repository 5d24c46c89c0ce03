/* rtproc: the command line.
 *
 *   rtproc -c pipeline.conf [--dry-run]
 *
 * Exit status: 0 success, 1 runtime failure, 2 configuration error (the
 * message names the section and key). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "options.h"
#include "rtproc/json.h"
#include "util.h"

#ifndef RTP_PLUGIN_INSTALL_REL
#define RTP_PLUGIN_INSTALL_REL "../lib/rtproc/plugins"
#endif

enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

typedef struct service_conf {
    int log_level;
    int log_format;
    char *plugins_dir;
    int64_t grace;
} service_conf;

typedef struct plugins_conf {
    rtp_strlist path;
} plugins_conf;

#define SC(f) offsetof(service_conf, f)
static const rtp_option service_options[] = {
    {"log_level", RTP_OPT_ENUM, "info", 0, SC(log_level), "least severe level logged", "error|warn|info|debug|trace"},
    {"log_format", RTP_OPT_ENUM, "text", 0, SC(log_format), "log line format on stderr", "text|json"},
    {"plugins_dir", RTP_OPT_STR, NULL, 0, SC(plugins_dir), "directory searched first for plugins", NULL},
    {"grace", RTP_OPT_DURATION, "5s", 0, SC(grace),
     "on SIGINT/SIGTERM, how long outputs get to deliver what is in flight", NULL},
    RTP_OPT_END};

static const rtp_option plugins_options[] = {
    {"path", RTP_OPT_LIST, NULL, 0, offsetof(plugins_conf, path),
     "extra plugin objects to load (comma-separated paths)", NULL},
    RTP_OPT_END};

typedef struct cli {
    const char *config;
    const char *help_plugin;
    const char *log_level;
    char **dirs;
    size_t n_dirs;
    bool dry_run, list, schema;
} cli;

static void usage(FILE *out)
{
    fputs("usage: rtproc -c FILE [options]\n"
          "\n"
          "  -c, --config FILE        run the pipeline in FILE\n"
          "      --dry-run            validate the pipeline, print what would run, exit\n"
          "  -p, --plugins-dir DIR    search DIR for plugins first (repeatable)\n"
          "  -v, --log-level LEVEL    error, warn, info, debug or trace (overrides [service])\n"
          "      --list-plugins       list the plugins found\n"
          "      --help-plugin NAME   options of a plugin (csv, in_csv, stdout, ...)\n"
          "      --schema             JSON description of every plugin and option\n"
          "  -V, --version            print the version\n"
          "  -h, --help               this text\n"
          "\n"
          "exit status: 0 success, 1 runtime failure, 2 configuration error\n",
          out);
}

static int parse_cli(int argc, char **argv, cli *c)
{
    enum { OPT_DRY = 256, OPT_LIST, OPT_HELP_PLUGIN, OPT_SCHEMA };
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'},  {"dry-run", no_argument, NULL, OPT_DRY},
        {"plugins-dir", required_argument, NULL, 'p'}, {"log-level", required_argument, NULL, 'v'},
        {"list-plugins", no_argument, NULL, OPT_LIST}, {"help-plugin", required_argument, NULL, OPT_HELP_PLUGIN},
        {"schema", no_argument, NULL, OPT_SCHEMA},  {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:p:v:Vh", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': c->config = optarg; break;
        case 'p':
            c->dirs = rtp_xrealloc(c->dirs, (c->n_dirs + 1) * sizeof *c->dirs);
            c->dirs[c->n_dirs++] = optarg;
            break;
        case 'v': c->log_level = optarg; break;
        case OPT_DRY: c->dry_run = true; break;
        case OPT_LIST: c->list = true; break;
        case OPT_HELP_PLUGIN: c->help_plugin = optarg; break;
        case OPT_SCHEMA: c->schema = true; break;
        case 'V': printf("rtproc %s (plugin ABI %d.%d)\n", RTP_VERSION_STRING, RTP_ABI_MAJOR, RTP_ABI_MINOR); exit(0);
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rtproc: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!c->config && !c->list && !c->help_plugin && !c->schema) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Plugins are found without flags both in the build tree (next to the
 * binary) and once installed (relative to the binary, so any prefix works). */
static void add_default_dirs(const service_conf *svc, const cli *c)
{
    for (size_t i = 0; i < c->n_dirs; i++) rtp_loader_add_dir(c->dirs[i]);
    if (svc->plugins_dir) rtp_loader_add_dir(svc->plugins_dir);
    const char *env = getenv("RTPROC_PLUGINS_DIR");
    if (env && *env) rtp_loader_add_dir(env);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = 0;
    char *dir = rtp_xasprintf("%s/plugins", exe);
    rtp_loader_add_dir(dir);
    free(dir);
    dir = rtp_xasprintf("%s/%s", exe, RTP_PLUGIN_INSTALL_REL);
    rtp_loader_add_dir(dir);
    free(dir);
}

static int apply_service(rtp_config *cfg, const cli *c, service_conf *svc, plugins_conf *pl)
{
    static const config_section empty = {.header = "service", .kind = SEC_SERVICE};
    const config_section *s = cfg ? rtp_config_find(cfg, SEC_SERVICE) : NULL;
    const config_section *p = cfg ? rtp_config_find(cfg, SEC_PLUGINS) : NULL;
    const rtp_option *st[] = {service_options}, *pt[] = {plugins_options};
    if (rtp_options_apply(service_options, s ? s : &empty, svc) < 0) return -1;
    if (s && rtp_options_check_unused(s, st, 1) < 0) return -1;
    if (p && (rtp_options_apply(plugins_options, p, pl) < 0 || rtp_options_check_unused(p, pt, 1) < 0))
        return -1;
    if (c->log_level) {
        int lv = rtp_log_level_parse(c->log_level);
        if (lv < 0) {
            fprintf(stderr, "rtproc: --log-level: unknown level '%s'\n", c->log_level);
            return -1;
        }
        svc->log_level = lv;
    }
    rtp_log_configure((rtp_log_level)svc->log_level, svc->log_format == 1);
    return 0;
}

static int load_extra_plugins(const plugins_conf *pl)
{
    for (size_t i = 0; i < pl->path.n; i++) {
        if (!rtp_loader_load(pl->path.v[i])) {
            fprintf(stderr, "rtproc: [plugins] path: cannot use '%s'\n", pl->path.v[i]);
            return -1;
        }
    }
    return 0;
}

/* ---- catalogue commands ---------------------------------------------------- */

static void list_plugins(void)
{
    for (size_t i = 0; i < rtp_loader_count(); i++) {
        const char *path;
        const rtp_plugin *p = rtp_loader_get(i, &path);
        printf("%-7s %-14s %s\n        %s\n", rtp_kind_name(p->kind), p->name, p->description, path);
    }
}

static const rtp_plugin *lookup(const char *name)
{
    for (size_t i = 0; i < rtp_loader_count(); i++) {
        const rtp_plugin *p = rtp_loader_get(i, NULL);
        char full[256];
        snprintf(full, sizeof full, "%s_%s", rtp_kind_prefix(p->kind), p->name);
        if (strcmp(name, p->name) == 0 || strcmp(name, full) == 0) return p;
    }
    return NULL;
}

static int help_plugin(const char *name)
{
    const rtp_plugin *p = lookup(name);
    if (!p) {
        fprintf(stderr, "rtproc: no plugin named '%s' (see --list-plugins)\n", name);
        return EXIT_CONFIG;
    }
    printf("%s_%s: %s\n\n[%s.NAME] options:\n", rtp_kind_prefix(p->kind), p->name, p->description,
           rtp_kind_name(p->kind));
    rtp_options_print_help(stdout, rtp_instance_options(p->kind));
    rtp_options_print_help(stdout, p->options);
    uint32_t own = rtp_plugin_default_max_inflight(p);
    if (own) printf("\nthis plugin's default max_inflight is %u (the table above gives the engine's)\n", own);
    return 0;
}

static void print_schema(void)
{
    printf("{\"version\":\"%s\",\"abi\":\"%d.%d\",\"service\":", RTP_VERSION_STRING, RTP_ABI_MAJOR,
           RTP_ABI_MINOR);
    rtp_options_print_schema(stdout, service_options);
    printf(",\"plugins_section\":");
    rtp_options_print_schema(stdout, plugins_options);
    static const rtp_kind kinds[] = {RTP_INPUT, RTP_FILTER, RTP_OUTPUT};
    printf(",\"common\":{");
    for (size_t k = 0; k < 3; k++) {
        printf("%s\"%s\":", k ? "," : "", rtp_kind_name(kinds[k]));
        rtp_options_print_schema(stdout, rtp_instance_options(kinds[k]));
    }
    printf("},\"plugins\":[");
    for (size_t i = 0; i < rtp_loader_count(); i++) {
        const rtp_plugin *p = rtp_loader_get(i, NULL);
        printf("%s{\"kind\":\"%s\",\"name\":\"%s\",\"description\":", i ? "," : "", rtp_kind_name(p->kind),
               p->name);
        rtp_sbuf sb = {0};
        rtp_json_write_string(&sb, p->description, strlen(p->description));
        fwrite(sb.data, 1, sb.len, stdout);
        rtp_sbuf_free(&sb);
        uint32_t own = rtp_plugin_default_max_inflight(p);
        if (own) printf(",\"default_max_inflight\":%u", own);
        printf(",\"options\":");
        rtp_options_print_schema(stdout, p->options);
        printf("}");
    }
    printf("]}\n");
}

/* ---- main ------------------------------------------------------------------ */

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int run(const cli *c, rtp_config *cfg, const service_conf *svc)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rtp_engine eng;
    int rc = rtp_engine_build(&eng, cfg, &loop);
    eng.grace_ms = svc->grace;
    if (rc < 0 || eng.config_failed)
        rc = EXIT_CONFIG;
    else if (c->dry_run)
        rtp_engine_print_plan(&eng, stdout);
    else
        rc = rtp_engine_run(&eng);
    if (eng.hard_stopped) {
        /* a plugin's work is still running in another thread: freeing what it
         * uses would be worse than leaving it to the exit */
        fflush(stderr);
        _exit(rc);
    }
    /* Whatever did not run to the end still has handles open: close them
     * before the plugins free the memory they live in. */
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    rtp_engine_free(&eng);
    uv_loop_close(&loop);
    return rc;
}

int main(int argc, char **argv)
{
    cli c = {0};
    service_conf svc = {0};
    plugins_conf pl = {0};
    rtp_config *cfg = NULL;
    int rc = EXIT_CONFIG;
    if (parse_cli(argc, argv, &c) < 0) goto out;
    if (c.config && !(cfg = rtp_config_load(c.config))) goto out;
    if (apply_service(cfg, &c, &svc, &pl) < 0) goto out;
    add_default_dirs(&svc, &c);
    if (load_extra_plugins(&pl) < 0) goto out;
    if (c.list || c.help_plugin || c.schema) {
        /* a plugin that cannot load is a broken installation: say so in the status */
        rc = rtp_loader_load_all() ? EXIT_RUNTIME : 0;
        if (c.list) list_plugins();
        if (c.help_plugin && help_plugin(c.help_plugin)) rc = EXIT_CONFIG;
        if (c.schema) print_schema();
        goto out;
    }
    rc = run(&c, cfg, &svc);
out:
    rtp_options_release(service_options, &svc);
    rtp_options_release(plugins_options, &pl);
    rtp_config_free(cfg);
    rtp_loader_unload_all();
    rtp_metrics_free_all();
    free(c.dirs);
    return rc;
}
