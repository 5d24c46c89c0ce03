/* Plugin loading.
 *
 * Our own plugins and third-party ones take the same path: dlopen, one
 * symbol (rtproc_plugin), an ABI check before any other field is read. The
 * check is the point of the exercise: a plugin built against a different
 * layout of the SDK structs must be refused with a message naming both
 * versions, not crash somewhere later (what happens to Fluent Bit plugins). */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtproc/plugin.h"
#include "util.h"

typedef struct loaded {
    const rtp_plugin *p;
    void *dl;
    char *path;
} loaded;

static loaded *plugins;
static size_t n_plugins;
static char **dirs;
static size_t n_dirs;

const char *rtp_kind_name(rtp_kind kind)
{
    return kind == RTP_INPUT ? "input" : kind == RTP_FILTER ? "filter" : "output";
}

const char *rtp_kind_prefix(rtp_kind kind)
{
    return kind == RTP_INPUT ? "in" : kind == RTP_FILTER ? "filter" : "out";
}

void rtp_loader_add_dir(const char *dir)
{
    dirs = rtp_xrealloc(dirs, (n_dirs + 1) * sizeof *dirs);
    dirs[n_dirs++] = rtp_xstrdup(dir);
}

static const char *check_descriptor(const rtp_plugin *p)
{
    if (!p->name || !p->name[0]) return "has no name";
    if (p->kind != RTP_INPUT && p->kind != RTP_FILTER && p->kind != RTP_OUTPUT)
        return "has an unknown kind";
    if (p->kind == RTP_INPUT && !p->start) return "is an input without a start callback";
    if (p->kind == RTP_FILTER && !p->process) return "is a filter without a process callback";
    if (p->kind == RTP_OUTPUT && !p->write) return "is an output without a write callback";
    if (p->options && !p->ctx_size) return "declares options but no ctx_size to store them";
    return NULL;
}

const rtp_plugin *rtp_loader_load(const char *path)
{
    for (size_t i = 0; i < n_plugins; i++)
        if (strcmp(plugins[i].path, path) == 0) return plugins[i].p;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "rtproc: cannot load plugin %s: %s\n", path, dlerror());
        return NULL;
    }
    const rtp_plugin *p = dlsym(dl, "rtproc_plugin");
    if (!p) {
        fprintf(stderr, "rtproc: %s is not an rtproc plugin: it exports no 'rtproc_plugin' symbol\n",
                path);
        dlclose(dl);
        return NULL;
    }
    if (p->abi_major != RTP_ABI_MAJOR || p->abi_minor > RTP_ABI_MINOR) {
        fprintf(stderr,
                "rtproc: refusing plugin %s: it was built for plugin ABI %u.%u, this rtproc %s "
                "provides ABI %d.%d; rebuild the plugin against this version's headers\n",
                path, p->abi_major, p->abi_minor, RTP_VERSION_STRING, RTP_ABI_MAJOR, RTP_ABI_MINOR);
        dlclose(dl);
        return NULL;
    }
    const char *bad = check_descriptor(p);
    if (bad) {
        fprintf(stderr, "rtproc: refusing plugin %s: its descriptor %s\n", path, bad);
        dlclose(dl);
        return NULL;
    }
    plugins = rtp_xrealloc(plugins, (n_plugins + 1) * sizeof *plugins);
    plugins[n_plugins++] = (loaded){p, dl, rtp_xstrdup(path)};
    rtp_debug(NULL, "loaded %s plugin '%s' (ABI %u.%u) from %s", rtp_kind_name(p->kind), p->name, p->abi_major,
              p->abi_minor, path);
    return p;
}

void rtp_loader_add_static(const rtp_plugin *p)
{
    plugins = rtp_xrealloc(plugins, (n_plugins + 1) * sizeof *plugins);
    plugins[n_plugins++] = (loaded){p, NULL, rtp_xstrdup("(static)")};
}

static const rtp_plugin *find_loaded(rtp_kind kind, const char *name)
{
    for (size_t i = 0; i < n_plugins; i++)
        if (plugins[i].p->kind == kind && strcmp(plugins[i].p->name, name) == 0) return plugins[i].p;
    return NULL;
}

const rtp_plugin *rtp_loader_find(rtp_kind kind, const char *name)
{
    const rtp_plugin *p = find_loaded(kind, name);
    if (p) return p;
    if (strchr(name, '/')) {
        fprintf(stderr, "rtproc: plugin name '%s' must not contain '/'\n", name);
        return NULL;
    }
    for (size_t d = 0; d < n_dirs; d++) {
        char *path = rtp_xasprintf("%s/%s_%s.so", dirs[d], rtp_kind_prefix(kind), name);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            p = rtp_loader_load(path);
            free(path);
            if (p && (p->kind != kind || strcmp(p->name, name) != 0)) {
                fprintf(stderr, "rtproc: %s_%s.so declares itself %s '%s'\n",
                        rtp_kind_prefix(kind), name, rtp_kind_name(p->kind), p->name);
                return NULL;
            }
            return p;
        }
        free(path);
    }
    fprintf(stderr, "rtproc: no %s plugin named '%s' (looked for %s_%s.so in", rtp_kind_name(kind),
            name, rtp_kind_prefix(kind), name);
    for (size_t d = 0; d < n_dirs; d++) fprintf(stderr, " %s", dirs[d]);
    fprintf(stderr, "%s); see rtproc --list-plugins\n", n_dirs ? "" : " no directory");
    return NULL;
}

static int is_plugin_file(const char *name)
{
    size_t n = strlen(name);
    if (n < 4 || strcmp(name + n - 3, ".so") != 0) return 0;
    return strncmp(name, "in_", 3) == 0 || strncmp(name, "out_", 4) == 0 ||
           strncmp(name, "filter_", 7) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t rtp_loader_load_all(void)
{
    size_t failed = 0;
    for (size_t d = 0; d < n_dirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir) continue;
        char **names = NULL;
        size_t n = 0;
        const struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (!is_plugin_file(e->d_name)) continue;
            names = rtp_xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = rtp_xasprintf("%s/%s", dirs[d], e->d_name);
        }
        closedir(dir);
        if (n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            const char *base = strrchr(names[i], '/') + 1;
            const char *us = strchr(base, '_');
            rtp_kind k = base[0] == 'i' ? RTP_INPUT : base[0] == 'f' ? RTP_FILTER : RTP_OUTPUT;
            char *pname = rtp_xstrndup(us + 1, strlen(us + 1) - 3);
            if (!find_loaded(k, pname) && !rtp_loader_load(names[i])) failed++;
            free(pname);
            free(names[i]);
        }
        free(names);
    }
    return failed;
}

uint32_t rtp_plugin_default_max_inflight(const rtp_plugin *p)
{
    return p->kind == RTP_OUTPUT && p->abi_minor >= 1 ? p->default_max_inflight : 0;
}

size_t rtp_loader_count(void)
{
    return n_plugins;
}

const rtp_plugin *rtp_loader_get(size_t i, const char **path)
{
    if (path) *path = plugins[i].path;
    return plugins[i].p;
}

void rtp_loader_unload_all(void)
{
    for (size_t i = 0; i < n_plugins; i++) {
        /* Under AddressSanitizer a dlclose'd object leaves unreadable frames in
         * leak reports; keeping the mapping costs nothing at exit. */
        free(plugins[i].path);
    }
    free(plugins);
    plugins = NULL;
    n_plugins = 0;
    for (size_t d = 0; d < n_dirs; d++) free(dirs[d]);
    free(dirs);
    dirs = NULL;
    n_dirs = 0;
}
