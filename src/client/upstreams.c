/*
 * upstreams.c: the declared upstreams. It exists so that every dependency a
 * service calls is written down in one place (configuration), with its role
 * and its limits, and checked at start-up: a typo in a URL or a breaker
 * threshold stops the process with the key and what was expected, instead of
 * surfacing as a failed call in production.
 */
#include <libfyaml.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "redline/client.h"
#include "client/internal.h"
#include "config/internal.h"
#include "util/yaml.h"

#define INJECTORS_MAX 12
#define UPSTREAM_KEYS 25
#define UPSTREAMS_MAX_FILE (4u << 20)    /* the configuration file's limit */

struct rdl_upstreams {
    rdl_upstream_t *ups[RDL_UPSTREAMS_MAX];
    int n;
    char *paths[RDL_UPSTREAMS_MAX][UPSTREAM_KEYS];  /* key strings the config points to */
    cl_injector_t inj[INJECTORS_MAX];
    int ninj;
    rdl_breaker_change_fn on_change;
    void *on_change_arg;
};

/* Breakers are built before anyone subscribes: they call through here. */
static void on_change(rdl_breaker_t *b, int from, int to, void *arg)
{
    rdl_upstreams_t *ups = arg;
    if (ups->on_change)
        ups->on_change(b, from, to, ups->on_change_arg);
}

void rdl_upstreams_on_change(rdl_upstreams_t *ups, rdl_breaker_change_fn fn, void *arg)
{
    ups->on_change_arg = arg;
    ups->on_change = fn;
}

int rdl_upstreams_new(rdl_upstreams_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : RDL_ENOMEM;
}

void rdl_upstreams_free(rdl_upstreams_t *ups)
{
    if (!ups)
        return;
    for (int i = 0; i < ups->n; i++) {
        rdl_upstream_t *up = ups->ups[i];
        rdl_breaker_free(up->breaker);
        rdl_bulkhead_free(up->bulkhead);
        for (int s = 0; s < up->nsubsets; s++)
            free(up->subset_urls[s]);
        for (int k = 0; k < UPSTREAM_KEYS; k++)
            free(ups->paths[i][k]);
        free(up);
    }
    free(ups);
}

/*
 * The words of the ENUM keys. roles and windows sit at their enum's value, so
 * the loader's index is the value; a breaker starts in one of four of its
 * states (open and half_open are its own), mapped by initial_states.
 */
static const char *const roles[] = { "strong", "weak", NULL };
static const char *const windows[] = { "count", "time", NULL };
static const char *const breaker_states[] = { "closed", "disabled", "metrics_only", "forced_open",
                                              NULL };
/* ENUM keys store an int: the enums the loader writes must be int-sized. */
_Static_assert(sizeof(rdl_upstream_role_t) == sizeof(int), "role is written as an int");
_Static_assert(sizeof(rdl_window_type_t) == sizeof(int), "window is written as an int");
static const rdl_breaker_state_t initial_states[] = { RDL_BREAKER_CLOSED, RDL_BREAKER_DISABLED,
                                                      RDL_BREAKER_METRICS_ONLY,
                                                      RDL_BREAKER_FORCED_OPEN };

static void opts_default(rdl_upstream_opts_t *o, rdl_upstream_role_t role)
{
    memset(o, 0, sizeof(*o));
    o->url = "";
    o->role = role;
    o->subsets = "";
    o->connect_timeout_ms = 1000;
    o->timeout_ms = 2000;
    o->pool_size = 16;
    o->warm_connections = 2;
    o->warm_path = "/";
    o->breaker_window = RDL_WINDOW_COUNT;
    o->breaker_window_size = 20;
    o->breaker_minimum_calls = 10;
    o->breaker_failure_rate = 50;
    o->breaker_slow_rate = 100;
    o->breaker_slow_call_ms = 1000;
    o->breaker_half_open_calls = 3;
    o->breaker_wait_open_ms = 5000;
    o->breaker_wait_multiplier = 1;
    o->breaker_state = 0;                   /* closed */
    o->max_concurrent = 64;
    o->retry_attempts = 2;
    o->retry_base_ms = 25;
    o->retry_cap_ms = 250;
    o->retry_budget = 0.2;
    o->retry_min_per_sec = 5;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof(((rdl_upstream_t *)0)->name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_' || name[i] == '-'))
            return false;
    return true;
}

int rdl_upstreams_declare(rdl_upstreams_t *ups, rdl_config_t *cfg, const char *name,
                          rdl_upstream_role_t role)
{
    if (!valid_name(name))
        return RDL_EINVAL;
    if (rdl_upstreams_get(ups, name))
        return RDL_EEXIST;
    if (ups->n == RDL_UPSTREAMS_MAX)
        return RDL_EBUSY;
    rdl_upstream_t *up = calloc(1, sizeof(*up));
    if (!up)
        return RDL_ENOMEM;
    snprintf(up->name, sizeof(up->name), "%s", name);
    up->role = role;
    opts_default(&up->opts, role);
    rdl_upstream_opts_t *o = &up->opts;
    rdl_cfg_key_t keys[UPSTREAM_KEYS] = {
        { "url", RDL_CFG_STRING, &o->url, 0, 0, NULL, "base URL http://host:port (empty: not used)", NULL },
        { "role", RDL_CFG_ENUM, &o->role, 0, 0, NULL, "strong (failure fails the request) or weak (fallback)", roles },
        { "subsets", RDL_CFG_STRING, &o->subsets, 0, 0, NULL, "per-subset base URLs: name=url,name=url", NULL },
        { "timeouts.connect", RDL_CFG_DURATION, &o->connect_timeout_ms, 1, 600000, NULL, "connect timeout", NULL },
        { "timeouts.request", RDL_CFG_DURATION, &o->timeout_ms, 0, 3600000, NULL,
          "per-attempt timeout within the request deadline (0 = deadline only)", NULL },
        { "pool.size", RDL_CFG_INT, &o->pool_size, 1, 10000, NULL, "keep-alive connections per I/O thread", NULL },
        { "pool.warm", RDL_CFG_INT, &o->warm_connections, 0, 10000, NULL, "connections opened per I/O thread at start-up", NULL },
        { "pool.warm_path", RDL_CFG_STRING, &o->warm_path, 0, 0, NULL, "path the warm-up requests GET", NULL },
        { "breaker.window", RDL_CFG_ENUM, &o->breaker_window, 0, 0, NULL, "count or time", windows },
        { "breaker.window_size", RDL_CFG_INT, &o->breaker_window_size, 1, 65536, NULL, "calls (count) or seconds (time, <= 512)", NULL },
        { "breaker.minimum_calls", RDL_CFG_INT, &o->breaker_minimum_calls, 1, 1000000, NULL, "calls before a rate counts", NULL },
        { "breaker.failure_rate", RDL_CFG_DOUBLE, &o->breaker_failure_rate, 0, 100, NULL, "percent failed that opens", NULL },
        { "breaker.slow_rate", RDL_CFG_DOUBLE, &o->breaker_slow_rate, 0, 100, NULL, "percent slow that opens", NULL },
        { "breaker.slow_call", RDL_CFG_DURATION, &o->breaker_slow_call_ms, 1, 3600000, NULL, "a call this long is slow", NULL },
        { "breaker.half_open_calls", RDL_CFG_INT, &o->breaker_half_open_calls, 1, 4095, NULL, "trial calls when half-open", NULL },
        { "breaker.wait_open", RDL_CFG_DURATION, &o->breaker_wait_open_ms, 1, 3600000, NULL, "open -> half-open after", NULL },
        { "breaker.wait_multiplier", RDL_CFG_DOUBLE, &o->breaker_wait_multiplier, 1, 100, NULL,
          "wait growth per consecutive opening (1 = fixed)", NULL },
        { "breaker.wait_open_max", RDL_CFG_DURATION, &o->breaker_wait_open_max_ms, 0, 86400000, NULL, "cap on the grown wait (0 = none)", NULL },
        { "breaker.state", RDL_CFG_ENUM, &o->breaker_state, 0, 0, NULL,
          "closed, disabled, metrics_only or forced_open", breaker_states },
        { "bulkhead.max_concurrent", RDL_CFG_INT, &o->max_concurrent, 1, 1000000, NULL, "calls in flight at most", NULL },
        { "retry.attempts", RDL_CFG_INT, &o->retry_attempts, 1, 10, NULL, "calls in all, first included (1 = no retry)", NULL },
        { "retry.base", RDL_CFG_DURATION, &o->retry_base_ms, 0, 60000, NULL, "backoff base (full jitter)", NULL },
        { "retry.cap", RDL_CFG_DURATION, &o->retry_cap_ms, 0, 600000, NULL, "backoff cap", NULL },
        { "retry.budget", RDL_CFG_DOUBLE, &o->retry_budget, 0, 1, NULL, "retries per first attempt at most", NULL },
        { "retry.min_per_sec", RDL_CFG_DOUBLE, &o->retry_min_per_sec, 0, 100000, NULL, "retries a second always allowed", NULL },
    };
    int i = ups->n;
    for (int k = 0; k < UPSTREAM_KEYS; k++) {
        size_t len = strlen(name) + strlen(keys[k].path) + 12;
        ups->paths[i][k] = malloc(len);
        if (!ups->paths[i][k]) {
            for (int j = 0; j < k; j++) {
                free(ups->paths[i][j]);
                ups->paths[i][j] = NULL;
            }
            free(up);
            return RDL_ENOMEM;
        }
        snprintf(ups->paths[i][k], len, "upstreams.%s.%s", name, keys[k].path);
        keys[k].path = ups->paths[i][k];
    }
    ups->ups[ups->n++] = up;
    int rc = rdl_config_add(cfg, keys, UPSTREAM_KEYS);
    return rc;
}

int rdl_upstreams_set_flag(rdl_upstreams_t *ups, rdl_config_t *cfg, const char *arg,
                           rdl_error_t *err)
{
    const char *eq = strchr(arg, '=');
    char name[RDL_UPSTREAM_NAME_MAX], key[96];
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "--upstream", "expected NAME=URL, got '%s'", arg);
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = '\0';
    if (!rdl_upstreams_get(ups, name)) {
        char known[256] = "";
        for (int i = 0; i < ups->n; i++) {
            size_t l = strlen(known);
            snprintf(known + l, sizeof(known) - l, "%s%s", i ? ", " : "", ups->ups[i]->name);
        }
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "--upstream",
                             "no upstream named '%s' (declared: %s)", name, known[0] ? known : "none");
    }
    snprintf(key, sizeof(key), "upstreams.%s.url", name);
    return rdl_config_set(cfg, key, eq + 1, err);
}

typedef struct names {
    char (*names)[RDL_UPSTREAM_NAME_MAX];
    int max, n;
    const char *path;
    bool seen;                  /* the first document was read: later ones are not the file's */
} names_t;

/* The keys of the first document's upstreams: mapping. */
static int names_of(rdl__yaml_t *y, struct fy_node *root, void *arg)
{
    names_t *nm = arg;
    if (nm->seen)
        return 0;
    nm->seen = true;
    struct fy_node *map = root && fy_node_is_mapping(root) ? rdl__yaml_get(root, "upstreams") : NULL;
    if (map && !fy_node_is_mapping(map))
        return rdl__yaml_fail(y, map, "upstreams", "%s: expected a mapping of upstream names",
                              nm->path);
    void *it = NULL;
    struct fy_node_pair *pair;
    while (map && (pair = fy_node_mapping_iterate(map, &it)) != NULL) {
        size_t len = 0;
        struct fy_node *key = fy_node_pair_key(pair);
        const char *k = key && fy_node_is_scalar(key) ? fy_node_get_scalar(key, &len) : NULL;
        if (!k || len == 0 || len >= RDL_UPSTREAM_NAME_MAX)
            return rdl__yaml_fail(y, key, "upstreams", "%s: upstream names are 1..47 characters",
                                  nm->path);
        if (nm->n == nm->max) {
            int line = 0, column = 0;
            rdl__yaml_mark(key, &line, &column);
            return rdl_error_set(y->err, RDL_EBUSY, line, column, "upstreams",
                                 "%s: more than %d upstreams", nm->path, nm->max);
        }
        memcpy(nm->names[nm->n], k, len);
        nm->names[nm->n][len] = '\0';
        nm->n++;
    }
    return 0;
}

int rdl_upstreams_names_in_file(const char *path, char names[][RDL_UPSTREAM_NAME_MAX], int max, rdl_error_t *err)
{
    rdl_error_t local;
    char *text = NULL;
    size_t len = 0;
    rdl_arena_t arena;
    if (!err)
        err = &local;
    int rc = rdl_read_file(path, UPSTREAMS_MAX_FILE, &text, &len, err);
    if (rc)
        return rc;
    rdl_arena_init(&arena, 1024);
    rdl__yaml_t y = { .err = err, .input = text, .input_len = len, .arena = &arena,
                      .what = "configuration", .invalid = "not valid YAML" };
    names_t nm = { .names = names, .max = max, .path = path };
    rc = rdl__yaml_each_document(&y, names_of, &nm);
    if (rc)
        snprintf(err->file, sizeof(err->file), "%s", path);
    rdl_arena_close(&arena);
    free(text);
    return rc ? rc : nm.n;
}

int rdl_upstreams_load_file(rdl_config_t *cfg, const char *file, rdl_error_t *err)
{
    return rdl__config_load_section(cfg, file, "upstreams", err);
}

/* A host name's or an IPv6 literal's characters (no userinfo, no percent-encoding). */
static bool host_chars(const char *h, size_t n, bool v6)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        bool ok = v6 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                        c == ':' || c == '.')
                     : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        c == '.' || c == '-' || c == '_');
        if (!ok)
            return false;
    }
    return true;
}

/* Splits "http://host:port/prefix" enough to resolve it; only http is spoken. */
static int parse_url(const char *url, char *host, size_t hostlen, int *port)
{
    if (strncmp(url, "http://", 7) != 0)
        return RDL_EINVAL;
    const char *h = url + 7, *end = h + strcspn(h, "/?#");
    const char *colon = NULL, *hs = h, *he;
    bool v6 = *h == '[';
    if (v6) {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb || (rb + 1 < end && rb[1] != ':'))
            return RDL_EINVAL;
        colon = rb + 1 < end ? rb + 1 : NULL;
        hs = h + 1;
        he = rb;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        he = colon ? colon : end;
    }
    if (!host_chars(hs, (size_t)(he - hs), v6) || (size_t)(he - hs) >= hostlen)
        return RDL_EINVAL;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = 80;
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (e != end || p < 1 || p > 65535 || colon[1] < '0' || colon[1] > '9')
            return RDL_EINVAL;
        *port = (int)p;
    }
    return 0;
}

/* "expected <what>, got '<value>'" for upstreams.<name>.<key>. */
static int key_error(rdl_error_t *err, const rdl_upstream_t *up, const char *key,
                     const char *what, const char *value)
{
    char k[128];
    snprintf(k, sizeof(k), "upstreams.%s.%s", up->name, key);
    return rdl_error_set(err, RDL_EINVAL, 0, 0, k, "expected %s, got '%s'", what, value);
}

static int parse_subsets(rdl_upstream_t *up, rdl_error_t *err)
{
    const char *s = up->opts.subsets;
    while (s && *s) {
        const char *comma = s + strcspn(s, ",");
        const char *eq = memchr(s, '=', (size_t)(comma - s));
        if (!eq || eq == s || (size_t)(eq - s) >= sizeof(up->subset_names[0]) ||
            up->nsubsets == RDL_SUBSETS_MAX)
            return key_error(err, up, "subsets", "name=url[,name=url] (up to 8)",
                             up->opts.subsets);
        char host[256];
        int port;
        char *url = strndup(eq + 1, (size_t)(comma - eq - 1));
        if (!url)
            return RDL_ENOMEM;
        if (parse_url(url, host, sizeof(host), &port) != 0) {
            int rc = key_error(err, up, "subsets", "http://host[:port] URLs", url);
            free(url);
            return rc;
        }
        memcpy(up->subset_names[up->nsubsets], s, (size_t)(eq - s));
        up->subset_names[up->nsubsets][eq - s] = '\0';
        up->subset_urls[up->nsubsets++] = url;
        s = *comma ? comma + 1 : comma;
    }
    return 0;
}

static int finish_one(rdl_upstreams_t *ups, rdl_upstream_t *up, rdl_error_t *err)
{
    rdl_upstream_opts_t *o = &up->opts;
    up->role = o->role;
    up->configured = o->url && o->url[0];
    if (!up->configured)
        return 0;
    if (parse_url(o->url, up->host, sizeof(up->host), &up->port) != 0)
        return key_error(err, up, "url", "http://host[:port][/prefix]", o->url);
    int rc = parse_subsets(up, err);
    if (rc)
        return rc;
    if (o->warm_path[0] != '/')
        return key_error(err, up, "pool.warm_path", "a path starting with '/'",
                         o->warm_path);
    rdl_breaker_opts_t bo;
    rdl_breaker_opts_default(&bo);
    bo.window_type = o->breaker_window;
    bo.window_size = (uint32_t)o->breaker_window_size;
    if (bo.window_type == RDL_WINDOW_TIME && bo.window_size > 512) {
        char n[24];
        snprintf(n, sizeof(n), "%u", bo.window_size);
        return key_error(err, up, "breaker.window_size", "at most 512 seconds for a time window", n);
    }
    bo.minimum_calls = (uint32_t)o->breaker_minimum_calls;
    bo.failure_rate = o->breaker_failure_rate;
    bo.slow_rate = o->breaker_slow_rate;
    bo.slow_call_ns = o->breaker_slow_call_ms * 1000000ull;
    bo.permitted_half_open = (uint32_t)o->breaker_half_open_calls;
    bo.wait_open_ns = o->breaker_wait_open_ms * 1000000ull;
    bo.wait_multiplier = o->breaker_wait_multiplier;
    bo.wait_open_max_ns = o->breaker_wait_open_max_ms * 1000000ull;
    bo.automatic_half_open = true;
    bo.initial = initial_states[o->breaker_state];
    bo.on_change = on_change;
    bo.on_change_arg = ups;
    if ((rc = rdl_breaker_new(up->name, &bo, &up->breaker)) != 0 ||
        (rc = rdl_bulkhead_new(o->max_concurrent, &up->bulkhead)) != 0)
        return rdl_error_set(err, rc, 0, 0, up->name, "cannot build the breaker: %s", rdl_strerror(rc));
    rdl_retry_policy_default(&up->retry);
    up->retry.max_attempts = (uint32_t)o->retry_attempts;
    up->retry.base_ns = o->retry_base_ms * 1000000ull;
    up->retry.cap_ns = o->retry_cap_ms * 1000000ull;
    rdl_retry_budget_init(&up->budget, o->retry_budget, o->retry_min_per_sec, NULL, NULL);
    return 0;
}

int rdl_upstreams_finish(rdl_upstreams_t *ups, rdl_error_t *err)
{
    for (int i = 0; i < ups->n; i++) {
        int rc = finish_one(ups, ups->ups[i], err);
        if (rc)
            return rc;
    }
    return 0;
}

int rdl_upstreams_add_injector(rdl_upstreams_t *ups, rdl_inject_fn fn, void *arg)
{
    if (!fn)
        return RDL_EINVAL;
    if (ups->ninj == INJECTORS_MAX)
        return RDL_EBUSY;
    ups->inj[ups->ninj++] = (cl_injector_t){ fn, arg };
    return 0;
}

const cl_injector_t *rdl__client_injectors(const rdl_upstreams_t *ups, int *n)
{
    *n = ups->ninj;
    return ups->inj;
}

rdl_upstream_t *rdl_upstreams_get(rdl_upstreams_t *ups, const char *name)
{
    for (int i = 0; ups && i < ups->n; i++)
        if (strcmp(ups->ups[i]->name, name) == 0)
            return ups->ups[i];
    return NULL;
}

int rdl_upstreams_count(const rdl_upstreams_t *ups)
{
    return ups ? ups->n : 0;
}

rdl_upstream_t *rdl_upstreams_at(rdl_upstreams_t *ups, int i)
{
    return i >= 0 && i < ups->n ? ups->ups[i] : NULL;
}

const char *rdl_upstream_base_url(const rdl_upstream_t *up, const char *subset)
{
    for (int i = 0; subset && i < up->nsubsets; i++)
        if (strcmp(up->subset_names[i], subset) == 0)
            return up->subset_urls[i];
    return up->opts.url;
}

int rdl_upstream_resolve(const rdl_upstream_t *up, rdl_error_t *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(up->host, NULL, &hints, &ai);
    if (ai)
        freeaddrinfo(ai);
    if (gai != 0)
        return rdl_error_set(err, RDL_ENOENT, 0, 0, up->name, "cannot resolve '%s': %s", up->host,
                             gai_strerror(gai));
    return 0;
}
