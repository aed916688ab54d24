/*
 * main.c: coursed's command line. It exists to put the pieces together in the
 * order the lifecycle needs: settings (defaults < file < environment < flags,
 * rejected with the key and place when wrong), the data directory and store,
 * the routes, then the runtime until SIGTERM; and to take them apart again so
 * the process exits clean under LeakSanitizer. `coursed check-config` stops
 * after the settings and the routes file, so a deployment can validate them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "redline/route.h"
#include "redline/runtime.h"
#include "store.h"
#include "handlers.h"
#include "stats.h"

/* The runtime's keys the listen flags stand for (declared by rdl_server_opts_config). */
#define KEY_LISTEN "server.listen"
#define KEY_ADMIN_LISTEN "server.admin_listen"
#define KEY_DATA_DIR "coursed.data_dir"
#define KEY_ROUTES "routes.file"

#define EXIT_USAGE 2

static void usage(FILE *out, const rdl_config_t *cfg)
{
    fputs("usage: coursed [serve] [--config FILE] [--listen HOST:PORT] [--admin-listen HOST:PORT]\n"
          "               [--data-dir DIR] [--routes FILE] [--upstream NAME=URL]... [--set KEY=VALUE]...\n"
          "       coursed warmup [same flags]   run the start-up checks once, exit 0 or 1\n"
          "       coursed check-config [same flags]   (or --check-config) validate the settings\n"
          "                                     and the routes file, then exit 0 or 2\n"
          "       coursed help | --help\n"
          "\n"
          "coursed is redline's reference service: course enrollment on SQLite.\n"
          "Upstreams: recommend (weak: course suggestions) and payment (strong:\n"
          "authorises enrollments); each is used only when its url is set.\n"
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
typedef enum { FLAG_KEY, FLAG_SET, FLAG_CONFIG, FLAG_UPSTREAM } flag_kind_t;

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
    { "--upstream", FLAG_UPSTREAM, NULL },
};

/* What apply_flag writes to. */
typedef struct settings {
    rdl_config_t *cfg;
    rdl_upstreams_t *ups;
    rdl_server_opts_t *opts;    /* checked once all is loaded */
    const char *file;           /* the YAML file loaded (--config, REDLINE_CONFIG), or NULL */
} settings_t;

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
    settings_t *set = arg;
    rdl_config_t *cfg = set->cfg;
    const char *key = flag->key;
    rdl_error_t err;
    char path[128];
    rdl_error_clear(&err);
    if (flag->kind == FLAG_CONFIG)
        return 0;
    if (flag->kind == FLAG_UPSTREAM) {
        if (rdl_upstreams_set_flag(set->ups, cfg, value, &err) == 0)
            return 0;
        fail_error(&err);
        return EXIT_USAGE;
    }
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

/* The REDLINE_* variables coursed reads itself, beside the configuration keys' own. */
static const char *const own_env[] = { "REDLINE_CONFIG", NULL };

/*
 * Settings in order of precedence, then what only the whole can judge (the
 * parts' checks: OTEL_* variables, the log file's directory), so that every
 * configuration error stops coursed here with exit status 2, before the
 * server starts. Returns 0, or the exit status after a message.
 */
static int configure(settings_t *set, int argc, char **argv, int first)
{
    rdl_config_t *cfg = set->cfg;
    const char *file = getenv("REDLINE_CONFIG");
    rdl_error_t err;
    set->file = NULL;
    rdl_error_clear(&err);
    int rc = walk_flags(argc, argv, first, find_config, &file);
    if (rc)
        return rc;
    if (rdl_config_check_env(cfg, own_env, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    if (file && *file && rdl_config_load_file(cfg, file, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    if (file && *file)
        set->file = file;
    if (rdl_config_apply_env(cfg, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    rc = walk_flags(argc, argv, first, apply_flag, set);
    if (rc)
        return rc;
    if (rdl_upstreams_finish(set->ups, &err) || rdl_server_opts_check(set->opts, &err)) {
        fail_error(&err);
        return EXIT_USAGE;
    }
    return 0;
}

/*
 * `coursed check-config`: what configure accepted, plus the routes file read
 * with the route part's own loader and limits, since a broken one would
 * otherwise stop only a starting server. Nothing is opened or created (no
 * listener, database, thread or data directory). Exit 0 with one line on
 * stdout, or 2 with the error as configure prints it.
 */
static int check_config(const settings_t *set)
{
    const rdl_route_part_opts_t *o = rdl_server_opts_part(set->opts, &rdl_part_route);
    if (o && o->file && o->file[0]) {
        rdl_route_table_t *t = NULL;
        rdl_error_t err;
        rdl_error_clear(&err);
        if (rdl_route_part_load(o, &t, &err)) {
            fail_error(&err);
            return EXIT_USAGE;
        }
        rdl_route_table_unref(t);
    }
    printf("configuration ok: %s\n", set->file ? set->file : "defaults");
    return 0;
}

/* Start-up step: open SQLite on this thread and run a first query. */
static void count_course(const store_course_t *c, void *arg)
{
    ++*(int *)arg;
}

static int first_query(rdl_server_t *srv, void *arg)
{
    int n = 0;
    return store_list_courses(arg, count_course, &n) == 0 ? 0 : 1;
}

/*
 * `coursed warmup`: the checks a new pod runs before it takes traffic, once,
 * as an init container would: the database opens and answers, and each
 * configured upstream resolves and accepts its warm connections. One JSON
 * line per check; exit 0 when all pass, 1 otherwise.
 */
static int warmup(const char *data_dir, bool seed, rdl_upstreams_t *ups)
{
    rdl_error_t err;
    rdl_error_clear(&err);
    int failed = 0;
    store_t *st = NULL;
    int rc = make_dirs(data_dir, &err);
    if (!rc)
        rc = store_open(data_dir, seed, &st, &err);
    if (!rc)
        rc = first_query(NULL, st) ? RDL_EIO : 0;
    store_close(st);
    char text[1024];
    const char *detail = rc ? rdl_error_format(&err, text, sizeof(text)) : data_dir;
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_printf(&b, "{\"check\":\"sqlite\",\"ok\":%s,\"detail\":", rc ? "false" : "true");
    rdl_json_str(&b, detail, strlen(detail));
    rdl_buf_puts(&b, "}\n");
    fputs(b.data, stdout);
    rdl_buf_close(&b);
    failed |= rc != 0;
    failed |= rdl_upstreams_warmup(ups, stdout) != 0;
    return failed ? 1 : 0;
}

static int serve(rdl_server_opts_t *opts, const char *data_dir, bool seed, uint64_t space_probe_ms,
                 rdl_upstreams_t *ups)
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
    rdl_upstream_t *rec = rdl_upstreams_get(ups, "recommend");
    rdl_upstream_t *pay = rdl_upstreams_get(ups, "payment");
    handlers_t h = { .st = st, .recommend = rec && rec->configured,
                     .payment = pay && pay->configured, .space_probe_ms = space_probe_ms };
    if (!rc)
        rc = handlers_register(srv, &h, &err);
    if (!rc && (rc = rdl_server_on_startup(srv, "sqlite", first_query, st)) != 0)
        rdl_error_set(&err, rc, 0, 0, "", "cannot add the start-up step: %s", rdl_strerror(rc));
    if (!rc && (h.recommend || h.payment) && (rc = rdl_server_upstreams(srv, ups)) != 0)
        rdl_error_set(&err, rc, 0, 0, "upstreams", "cannot attach the upstreams: %s", rdl_strerror(rc));
    if (!rc)
        rc = stats_init(st, &err);
    if (!rc)
        rc = rdl_server_run(srv, &err);
    if (rc < 0)
        fail_error(&err);
    /* The server joins its pool first: no worker uses the store after this. */
    rdl_server_free(srv);
    stats_close();
    store_close(st);
    return rc < 0 ? 1 : rc;
}

int main(int argc, char **argv)
{
    rdl_server_opts_t opts;
    char *data_dir = "./var";
    bool seed = true;
    uint64_t space_probe_ms = 5000;
    const rdl_cfg_key_t keys[] = {
        { KEY_DATA_DIR, RDL_CFG_STRING, &data_dir, 0, 0, "REDLINE_DATA_DIR",
          "directory of the SQLite database (created if missing)", NULL },
        { "coursed.seed", RDL_CFG_BOOL, &seed, 0, 0, NULL,
          "insert the six reference courses when the database has none", NULL },
        { "coursed.space_probe", RDL_CFG_DURATION, &space_probe_ms, 0, 3600000, NULL,
          "while the disk is full, how often a write is tried (0: only enrollments)", NULL },
    };
    rdl_config_t *cfg = NULL;
    rdl_upstreams_t *ups = NULL;
    int rc = rdl_config_new(&cfg);
    if (!rc)
        rc = rdl_upstreams_new(&ups);
    if (rc) {
        fprintf(stderr, "coursed: %s\n", rdl_strerror(rc));
        rdl_config_free(cfg);
        return 1;
    }
    rdl_server_opts_default(&opts);
    opts.service = "coursed";
    if ((rc = rdl_server_opts_config(&opts, cfg)) != 0 ||
        (rc = rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]))) != 0 ||
        (rc = rdl_upstreams_declare(ups, cfg, "recommend", RDL_UPSTREAM_WEAK)) != 0 ||
        (rc = rdl_upstreams_declare(ups, cfg, "payment", RDL_UPSTREAM_STRONG)) != 0) {
        fprintf(stderr, "coursed: declaring configuration keys: %s\n", rdl_strerror(rc));
        rdl_config_free(cfg);
        rdl_upstreams_free(ups);
        return 1;
    }

    bool warm = argc > 1 && strcmp(argv[1], "warmup") == 0;
    bool check = argc > 1 && (strcmp(argv[1], "check-config") == 0 ||
                              strcmp(argv[1], "--check-config") == 0);
    int first = argc > 1 && (strcmp(argv[1], "serve") == 0 || warm || check) ? 2 : 1;
    bool help = argc > 1 && strcmp(argv[1], "help") == 0;
    for (int i = first; i < argc && !help; i++)
        help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    if (help) {
        usage(stdout, cfg);
        rdl_config_free(cfg);
        rdl_upstreams_free(ups);
        return 0;
    }
    settings_t set = { cfg, ups, &opts, NULL };
    rc = configure(&set, argc, argv, first);
    if (!rc && check)
        rc = check_config(&set);
    else if (!rc)
        rc = warm ? warmup(data_dir, seed, ups) : serve(&opts, data_dir, seed, space_probe_ms, ups);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
    return rc;
}
