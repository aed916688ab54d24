/*
 * main.c: coursed's command line. It exists to put the pieces together in the
 * order the lifecycle needs: settings (defaults < file < environment < flags,
 * rejected with the key and place when wrong), the data directory and store,
 * the routes, then the runtime until SIGTERM; and to take them apart again so
 * the process exits clean under LeakSanitizer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "redline/runtime.h"
#include "store.h"
#include "handlers.h"

/* The runtime's keys the listen flags stand for (declared by rdl_server_opts_config). */
#define KEY_LISTEN "server.listen"
#define KEY_ADMIN_LISTEN "server.admin_listen"
#define KEY_DATA_DIR "coursed.data_dir"
#define KEY_ROUTES "routes.file"

#define EXIT_USAGE 2

static void usage(FILE *out, const rdl_config_t *cfg)
{
    fputs("usage: coursed [serve] [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT]\n"
          "               [--data-dir DIR] [--routes FILE] [--set KEY=VALUE]...\n"
          "       coursed help | --help\n"
          "\n"
          "coursed is redline's reference service: course enrollment on SQLite.\n"
          "Settings come from the defaults, then the YAML file named by --config (or\n"
          "REDLINE_CONFIG), then REDLINE_* environment variables, then flags; each\n"
          "overrides the one before. --set takes any key below.\n"
          "\n"
          "configuration keys:\n", out);
    rdl_config_usage(cfg, out);
}

static int fail_usage(const char *what, const char *arg)
{
    fprintf(stderr, "coursed: %s '%s'\ncoursed: run 'coursed --help' for usage\n", what, arg);
    return EXIT_USAGE;
}

static int fail_error(const rdl_error_t *err)
{
    char text[1024];
    fprintf(stderr, "coursed: %s\n", rdl_error_format(err, text, sizeof(text)));
    return 1;
}

/* The flags; each takes a value ("--flag VALUE" or "--flag=VALUE"). */
typedef enum { FLAG_KEY, FLAG_SET, FLAG_CONFIG } flag_kind_t;

typedef struct flag {
    const char *name;
    flag_kind_t kind;
    const char *key;            /* FLAG_KEY: the configuration key it sets */
} flag_t;

static const flag_t flags[] = {
    { "--listen", FLAG_KEY, KEY_LISTEN },
    { "--admin-listen", FLAG_KEY, KEY_ADMIN_LISTEN },
    { "--data-dir", FLAG_KEY, KEY_DATA_DIR },
    { "--routes", FLAG_KEY, KEY_ROUTES },
    { "--set", FLAG_SET, NULL },
    { "--config", FLAG_CONFIG, NULL },
};

static const flag_t *flag_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

typedef int (*flag_fn)(const flag_t *flag, const char *value, void *arg);

/* Calls apply for each flag in order: 0, or EXIT_USAGE after a message. */
static int walk_flags(int argc, char **argv, int first, flag_fn apply, void *arg)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        const flag_t *f = flag_find(a, eq ? (size_t)(eq - a) : strlen(a));
        if (!f)
            return fail_usage("unknown argument", a);
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc)
                return fail_usage("missing value after", a);
            value = argv[++i];
        }
        int rc = apply(f, value, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static int find_config(const flag_t *flag, const char *value, void *arg)
{
    if (flag->kind == FLAG_CONFIG)
        *(const char **)arg = value;
    return 0;
}

static int apply_flag(const flag_t *flag, const char *value, void *arg)
{
    rdl_config_t *cfg = arg;
    const char *key = flag->key;
    rdl_error_t err;
    char path[128];
    rdl_error_clear(&err);
    if (flag->kind == FLAG_CONFIG)
        return 0;
    if (flag->kind == FLAG_SET) {
        const char *eq = strchr(value, '=');
        if (!eq || eq == value || (size_t)(eq - value) >= sizeof(path))
            return fail_usage("--set expects KEY=VALUE, got", value);
        memcpy(path, value, (size_t)(eq - value));
        path[eq - value] = '\0';
        key = path;
        value = eq + 1;
    }
    if (rdl_config_set(cfg, key, value, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    return 0;
}

/* mkdir -p: every missing component, 0750. */
static int make_dirs(const char *dir, rdl_error_t *err)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, KEY_DATA_DIR,
                             "expected a directory path of 1 to %zu bytes", sizeof(path) - 1);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return rdl_error_set(err, RDL_EIO, 0, 0, KEY_DATA_DIR, "cannot create %s: %s",
                                 path, strerror(errno));
        path[i] = saved;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return rdl_error_set(err, RDL_EIO, 0, 0, KEY_DATA_DIR, "%s is not a directory", dir);
    return 0;
}

/* Settings in order of precedence. Returns 0, or the exit status after a message. */
static int configure(rdl_config_t *cfg, int argc, char **argv, int first)
{
    const char *file = getenv("REDLINE_CONFIG");
    rdl_error_t err;
    rdl_error_clear(&err);
    int rc = walk_flags(argc, argv, first, find_config, &file);
    if (rc)
        return rc;
    if (file && *file && rdl_config_load_file(cfg, file, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    if (rdl_config_apply_env(cfg, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    return walk_flags(argc, argv, first, apply_flag, cfg);
}

static int serve(rdl_server_opts_t *opts, const char *data_dir, bool seed)
{
    rdl_error_t err;
    rdl_error_clear(&err);
    store_t *st = NULL;
    rdl_server_t *srv = NULL;
    int rc = make_dirs(data_dir, &err);
    if (!rc)
        rc = store_open(data_dir, seed, &st, &err);
    if (!rc && (rc = rdl_server_new(opts, &srv)) != 0)
        rdl_error_set(&err, rc, 0, 0, "", "cannot create the server: %s", rdl_strerror(rc));
    if (!rc)
        rc = handlers_register(srv, st, &err);
    if (!rc)
        rc = rdl_server_run(srv, &err);
    if (rc < 0)
        fail_error(&err);
    /* The server joins its pool first: no worker uses the store after this. */
    rdl_server_free(srv);
    store_close(st);
    return rc < 0 ? 1 : rc;
}

int main(int argc, char **argv)
{
    rdl_server_opts_t opts;
    char *data_dir = "./var";
    bool seed = true;
    const rdl_cfg_key_t keys[] = {
        { KEY_DATA_DIR, RDL_CFG_STRING, &data_dir, 0, 0, "REDLINE_DATA_DIR",
          "directory of the SQLite database (created if missing)" },
        { "coursed.seed", RDL_CFG_BOOL, &seed, 0, 0, NULL,
          "insert the six reference courses when the database has none" },
    };
    rdl_config_t *cfg = NULL;
    int rc = rdl_config_new(&cfg);
    if (rc) {
        fprintf(stderr, "coursed: %s\n", rdl_strerror(rc));
        return 1;
    }
    rdl_server_opts_default(&opts);
    opts.service = "coursed";
    if ((rc = rdl_server_opts_config(&opts, cfg)) != 0 ||
        (rc = rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]))) != 0) {
        fprintf(stderr, "coursed: declaring configuration keys: %s\n", rdl_strerror(rc));
        rdl_config_free(cfg);
        return 1;
    }

    int first = argc > 1 && strcmp(argv[1], "serve") == 0 ? 2 : 1;
    bool help = argc > 1 && strcmp(argv[1], "help") == 0;
    for (int i = first; i < argc && !help; i++)
        help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    if (help) {
        usage(stdout, cfg);
        rdl_config_free(cfg);
        return 0;
    }
    rc = configure(cfg, argc, argv, first);
    if (!rc)
        rc = serve(&opts, data_dir, seed);
    rdl_config_free(cfg);
    return rc;
}
