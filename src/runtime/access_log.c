/*
 * access_log.c: the log red line in the runtime: the server's logger made
 * from the log.* settings (its counters registered as log_*_total metrics in
 * the default registry and as "log" in /debug/vars), the access-log
 * middleware, and the admin plane's /debug/loglevel and /debug/log.
 *
 * The middleware gives every request an id before anything else looks at it:
 * the caller's X-Request-ID when it is a sane token (so one id follows a
 * request across services), otherwise a fresh random one. The id lives in the
 * request's ctx, so every line written while the request is current (on the
 * I/O thread or on a pool worker) carries it without being passed, and it is
 * echoed in the response. When the exchange ends, one line records method,
 * route template, status, duration, bytes and peer; the trace and route
 * fields come from the ctx that the middleware before it filled.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <jansson.h>
#include "redline/metrics.h"
#include "redline/route.h"
#include "runtime/internal.h"

/* ---- settings -------------------------------------------------------- */

/* The words of log.level, in rdl_log_level_t's order; "warning" (last) reads as warn. */
static const char *const level_words[] = { "debug", "info", "warn", "error", "fatal", "warning",
                                           NULL };
#define LEVEL_WARNING 5
static const char *const format_words[] = { "json", NULL };
static const char *const sink_words[] = { "stdout", "stderr", "file", NULL };    /* rdl_log_sink_t */
static const char *const policy_words[] = { "block", "drop", NULL };    /* rdl_log_policy_t */

static void log_defaults(void *opts)
{
    rdl_log_part_opts_t *o = opts;
    o->level = RDL_LOG_INFO;
    o->format = 0;
    o->sink = RDL_LOG_STDOUT;
    o->file = "";
    o->max_line = RDL_LOG_MAX_LINE_DEFAULT;
    o->buffer = 256 * 1024;
    o->io_buffer = 1024 * 1024;
    o->pipe_buffer = 1024 * 1024;
    o->policy = RDL_LOG_BLOCK;
    o->sample_first = 0;
    o->sample_every = 100;
}

static int log_config(void *opts, rdl_config_t *cfg)
{
    rdl_log_part_opts_t *o = opts;
    rdl_cfg_key_t keys[] = {
        { "log.level", RDL_CFG_ENUM, &o->level, 0, 0, "REDLINE_LOG_LEVEL",
          "debug, info, warn, error or fatal (changeable at run time: PUT /debug/loglevel)",
          level_words },
        { "log.format", RDL_CFG_ENUM, &o->format, 0, 0, NULL, "json (the only format)", format_words },
        { "log.sink", RDL_CFG_ENUM, &o->sink, 0, 0, NULL, "stdout, stderr or file", sink_words },
        { "log.file", RDL_CFG_STRING, &o->file, 0, 0, NULL,
          "path for the file sink (appended; reopened on SIGHUP)", NULL },
        { "log.max_line", RDL_CFG_SIZE, &o->max_line, RDL_LOG_MAX_LINE_MIN, 1 << 20, NULL,
          "bytes per line; longer lines are cut and marked \"truncated\":true", NULL },
        { "log.buffer", RDL_CFG_SIZE, &o->buffer, 4096, (int64_t)RDL_LOG_RING_MAX, NULL,
          "per-thread ring before the writer thread (threads other than the I/O threads)", NULL },
        { "log.io_buffer", RDL_CFG_SIZE, &o->io_buffer, 4096, (int64_t)RDL_LOG_RING_MAX, NULL,
          "each I/O thread's ring, made when the thread starts: it writes a line per "
          "request, and the writer wakes for a ring at half full", NULL },
        { "log.pipe_buffer", RDL_CFG_SIZE, &o->pipe_buffer, 0, 1 << 30, NULL,
          "when the sink is a pipe (stdout in a pod): its kernel buffer, raised to this "
          "(best effort, never lowered; 0 = leave it)", NULL },
        { "log.policy", RDL_CFG_ENUM, &o->policy, 0, 0, NULL,
          "block or drop (counted) when the writer falls behind", policy_words },
        { "log.sampling.first", RDL_CFG_INT, &o->sample_first, 0, 1000000000, NULL,
          "per message and level, lines kept each second before sampling (0 = no sampling)", NULL },
        { "log.sampling.every", RDL_CFG_INT, &o->sample_every, 1, 1000000000, NULL,
          "past that, one line kept in this many", NULL },
    };
    return rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]));
}

/* An option set in code is checked as the configuration would check it. */
static bool in_range(int v, const char *const *words)
{
    int n = 0;
    while (words[n])
        n++;
    return v >= 0 && v < n;
}

/* log.* settings -> logger options; err names the key when one is wrong. */
static int log_opts_of(const char *service, const rdl_log_part_opts_t *o, rdl_log_opts_t *lo,
                       rdl_error_t *err)
{
    rdl_log_opts_default(lo);
    lo->service = service;
    if (!in_range(o->level, level_words))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.level",
                             "expected debug, info, warn, error or fatal, got %d", o->level);
    lo->level = o->level == LEVEL_WARNING ? RDL_LOG_WARN : (rdl_log_level_t)o->level;
    if (!in_range(o->format, format_words))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.format", "expected json, got %d", o->format);
    if (!in_range(o->sink, sink_words))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.sink",
                             "expected stdout, stderr or file, got %d", o->sink);
    lo->sink = (rdl_log_sink_t)o->sink;
    lo->path = o->file;
    if (lo->sink == RDL_LOG_FILE && (!o->file || !o->file[0]))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.file",
                             "expected a file path when log.sink is file");
    if (!in_range(o->policy, policy_words))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.policy", "expected block or drop, got %d",
                             o->policy);
    lo->policy = (rdl_log_policy_t)o->policy;
    lo->max_line = o->max_line ? (size_t)o->max_line : RDL_LOG_MAX_LINE_DEFAULT;
    if (lo->max_line < RDL_LOG_MAX_LINE_MIN)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.max_line", "expected at least %d bytes",
                             RDL_LOG_MAX_LINE_MIN);
    lo->ring_bytes = o->buffer ? (size_t)o->buffer : lo->ring_bytes;
    lo->pipe_bytes = (size_t)o->pipe_buffer;
    lo->sample_first = o->sample_first > 0 ? (uint32_t)o->sample_first : 0;
    lo->sample_every = o->sample_every > 0 ? (uint32_t)o->sample_every : 1;
    return 0;
}

/*
 * The file sink's directory must exist and be writable: the logger opens the
 * file only when the server starts, and a typo in the path should stop the
 * service when its configuration is loaded, not after.
 */
static int log_file_dir_ok(const char *path, rdl_error_t *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    struct stat sb;

    if (n >= sizeof(dir))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.file", "expected a path shorter than %zu bytes",
                             sizeof(dir));
    memcpy(dir, n ? path : ".", n ? n : 1);
    dir[n ? n : 1] = '\0';
    if (stat(dir, &sb) != 0)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.file", "cannot use %s: directory %s: %s",
                             path, dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.file", "cannot use %s: %s is not a directory",
                             path, dir);
    if (access(dir, W_OK | X_OK) != 0 && access(path, W_OK) != 0)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.file", "cannot use %s: %s", path,
                             strerror(errno));
    return 0;
}

/* At load (rdl_server_opts_check): what start would refuse, before the server exists. */
static int log_check(const void *opts, rdl_error_t *err)
{
    const rdl_log_part_opts_t *o = opts;
    rdl_log_opts_t lo;
    int rc = log_opts_of("", o, &lo, err);
    if (rc == 0 && lo.sink == RDL_LOG_FILE)
        rc = log_file_dir_ok(lo.path, err);
    return rc;
}

/* ---- the logger's counters as metrics and in /debug/vars -------------- */

/* The log part's state: what it registered beside the logger (srv->log). */
typedef struct rt_log_part {
    const rdl_log_part_opts_t *opts;    /* inside the server's options */
    rdl_server_t *srv;
    uv_signal_t sighup;         /* on the control loop from run to drained */
    bool watching;
    rdl_logger_t *prev;         /* the default logger it replaced */
    int collector;              /* its metrics collector id in the default registry; 0 = none */
    bool var;                   /* it published "log" in /debug/vars */
} rt_log_part_t;

static void log_collect(rdl_collect_t *c, void *arg)
{
    rdl_server_t *srv = arg;
    rdl_log_stats_t st;
    rdl_log_stats(srv->log, &st);
    static const struct { const char *name, *help; size_t off; } fams[] = {
        { "log_lines_total", "Log lines accepted.", offsetof(rdl_log_stats_t, lines) },
        { "log_dropped_total", "Log lines dropped because the writer fell behind (log.policy drop).",
          offsetof(rdl_log_stats_t, dropped) },
        { "log_sampled_total", "Log lines left out by sampling.", offsetof(rdl_log_stats_t, sampled) },
        { "log_truncated_total", "Log lines cut to log.max_line.",
          offsetof(rdl_log_stats_t, truncated) },
        { "log_write_errors_total", "Failed writes to the log sink (their lines are lost).",
          offsetof(rdl_log_stats_t, write_errors) },
        { "log_lost_total", "Log lines accepted but refused by the sink (disk full, I/O error).",
          offsetof(rdl_log_stats_t, lost) },
        { "log_written_bytes_total", "Bytes written to the log sink.",
          offsetof(rdl_log_stats_t, bytes_written) },
    };
    for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)&st + fams[i].off, sizeof(v));
        rdl_collect_family(c, RDL_METRIC_COUNTER, fams[i].name, fams[i].help);
        rdl_collect_value(c, NULL, NULL, 0, (double)v);
    }
}

static void log_var(rdl_buf_t *out, void *arg)
{
    rdl_server_t *srv = arg;
    rdl_log_stats_t st;
    rdl_log_stats(srv->log, &st);
    rdl_buf_printf(out, "{\"level\":\"%s\",\"lines\":%llu,\"dropped\":%llu,\"sampled\":%llu,"
                   "\"truncated\":%llu,\"bytes_written\":%llu,\"write_errors\":%llu,"
                   "\"lost\":%llu,\"reopens\":%llu,\"pipe_bytes\":%llu,\"ring_bytes\":%llu}",
                   rdl_log_level_name(rdl_log_level(srv->log)),
                   (unsigned long long)st.lines, (unsigned long long)st.dropped,
                   (unsigned long long)st.sampled, (unsigned long long)st.truncated,
                   (unsigned long long)st.bytes_written, (unsigned long long)st.write_errors,
                   (unsigned long long)st.lost, (unsigned long long)st.reopens, (unsigned long long)st.pipe_bytes,
                   (unsigned long long)st.ring_bytes);
}

static int log_start(rdl_server_t *srv, void *state, rdl_error_t *err)
{
    rt_log_part_t *lp = state;
    if (srv->log)
        return 0;               /* a second rdl_server_run keeps the logger */
    rdl_log_opts_t lo;
    int rc = log_opts_of(srv->opts.service, lp->opts, &lo, err);
    if (rc)
        return rc;
    rc = rdl_logger_new(&lo, &srv->log);
    if (rc == RDL_EIO)
        return rdl_error_set(err, rc, 0, 0, "log.file", "cannot open %s for appending", lo.path);
    if (rc)
        return rdl_error_set(err, rc, 0, 0, "log", "cannot start the logger: %s", rdl_strerror(rc));
    lp->prev = rdl_log_set_default(srv->log);
    /* Another server in the process may hold the names already: its figures stay. */
    int id = rdl_collector_add(NULL, log_collect, srv);
    lp->collector = id > 0 ? id : 0;
    lp->var = rdl_vars_publish("log", log_var, srv) == 0;
    return 0;
}

/* rdl_server_free: the logger lives from the first run to the end, so the last lines land. */
static void log_free(rdl_server_t *srv, void *state)
{
    rt_log_part_t *lp = state;
    if (lp && srv->log) {
        if (lp->collector)
            rdl_collector_remove(NULL, lp->collector);
        if (lp->var)
            rdl_vars_unpublish("log");
        rdl_logger_t *mine = srv->log;
        rdl_log_set_default(lp->prev);
        srv->log = NULL;
        rdl_logger_free(mine);
    }
    free(lp);
}

/* logrotate moved the file: lines after this go to a new one at the configured path. */
static void on_sighup(uv_signal_t *sig, int signum)
{
    rt_log_part_t *lp = sig->data;
    (void)signum;
    rdl_log(lp->srv->log, RDL_LOG_INFO, "SIGHUP received: reopening the log file", NULL, 0);
    rdl_log_reopen(lp->srv->log);
}

static void log_run(rdl_server_t *srv, void *state, uv_loop_t *ctl)
{
    rt_log_part_t *lp = state;
    (void)srv;
    if (lp->watching)
        return;
    uv_signal_init(ctl, &lp->sighup);
    lp->sighup.data = lp;
    uv_signal_start(&lp->sighup, on_sighup, SIGHUP);
    lp->watching = true;
}

static void log_drained(rdl_server_t *srv, void *state)
{
    rt_log_part_t *lp = state;
    (void)srv;
    if (lp->watching)
        uv_close((uv_handle_t *)&lp->sighup, NULL);
    lp->watching = false;
}

/* The access lines' ring, made on each app I/O thread before its first request. Without it
   (no memory now) the thread's first line makes one of log.buffer. */
static void log_thread_start(rdl_server_t *srv, void *state, const rdl_part_thread_t *t)
{
    rt_log_part_t *lp = state;
    if (!t->admin)
        (void)rdl_log_reserve(srv->log, (size_t)lp->opts->io_buffer);
}

rdl_logger_t *rdl_server_logger(rdl_server_t *srv)
{
    return srv->log;
}

/* ---- request ids ------------------------------------------------------ */

/* A caller's id is kept when it is a short token: no spaces, quotes or controls. */
static bool valid_request_id(const char *s, size_t n)
{
    if (n == 0 || n > RDL_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && (c == 0 || !strchr("-_.:+/=@", c)))
            return false;
    }
    return true;
}

/* 32 lowercase hex digits: as many random bits as a trace id. */
static void make_request_id(char out[RDL_REQUEST_ID_MAX + 1])
{
    uint64_t bits[2] = { rdl_rand64(), rdl_rand64() };
    rdl_hex_lower(out, bits, sizeof(bits));
    out[32] = '\0';
}

/* ---- middleware -------------------------------------------------------- */

static int access_enter(rdl_req_t *req, void *arg)
{
    (void)arg;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    size_t n = 0;
    const char *id = rdl_req_header(req, "X-Request-ID", &n);
    if (id && valid_request_id(id, n)) {
        memcpy(ctx->request_id, id, n);
        ctx->request_id[n] = '\0';
    } else {
        make_request_id(ctx->request_id);
    }
    return 0;
}

static void access_before_send(rdl_req_t *req, void *arg)
{
    (void)arg;
    rdl_resp_header(req, "X-Request-ID", rdl_req_ctx(req)->request_id);
}

static void access_leave(rdl_req_t *req, void *arg)
{
    rdl_server_t *srv = arg;
    rdl_ctx_t *ctx = rdl_req_ctx(req);
    size_t plen;
    const char *path = rdl_req_path(req, &plen);
    const char *route = rdl_req_route(req);
    rdl_log_field_t f[12];
    size_t n = 0;
    f[n++] = rdl_lf_str("method", rdl_req_method(req));
    f[n++] = rdl_lf_strn("path", path, plen);
    f[n++] = rdl_lf_str("http_route", route ? route : "");
    f[n++] = rdl_lf_int("status", rdl_req_status(req));
    f[n++] = rdl_lf_dur("duration_ms", ctx->end_ns - ctx->start_ns);
    f[n++] = rdl_lf_int("bytes_in", (int64_t)rdl_req_bytes_in(req));
    f[n++] = rdl_lf_int("bytes_out", (int64_t)rdl_req_bytes_out(req));
    f[n++] = rdl_lf_str("peer", rdl_req_peer(req));
    const rdl_route_decision_t *d = rdl__rt_route_decision(req);    /* still held: leaves run inward out */
    if (d && d->route_name)
        f[n++] = rdl_lf_str("route", d->route_name);
    if (d && d->subset)
        f[n++] = rdl_lf_str("subset", d->subset);
    if (ctx->color)
        f[n++] = rdl_lf_str("color", ctx->color);
    rdl_log_ctx_at(rdl_server_logger(srv), RDL_LOG_INFO, ctx, ctx->end_ns, "request", f, n);
}

static void access_defaults(void *opts)
{
    ((rdl_access_log_part_opts_t *)opts)->enabled = true;
}

static int access_config(void *opts, rdl_config_t *cfg)
{
    rdl_access_log_part_opts_t *o = opts;
    rdl_cfg_key_t key = { "log.access", RDL_CFG_BOOL, &o->enabled, 0, 0, NULL,
                          "one log line per request", NULL };
    return rdl_config_add(cfg, &key, 1);
}

/*
 * Admin requests get an id too, but no line: probes every few seconds are not
 * traffic. With log.access off, requests still get their id (outbound calls
 * and log lines carry it).
 */
static int access_install(rdl_server_t *srv, void *opts, void **state)
{
    const rdl_access_log_part_opts_t *o = opts;
    (void)state;
    rdl_middleware_t mw = {
        .name = "access_log",
        .enter = access_enter,
        .before_send = access_before_send,
        .leave = access_leave,
        .arg = srv,
    };
    if (!o->enabled)
        mw.leave = NULL;
    int rc = rdl_server_use(srv, &mw);
    mw.leave = NULL;
    return rc ? rc : rdl_server_admin_use(srv, &mw);
}

const rdl_part_t rdl_part_access_log = {
    .name = "access_log",
    .opts_size = sizeof(rdl_access_log_part_opts_t),
    .defaults = access_defaults,
    .config = access_config,
    .install = access_install,
};

/* ---- admin: /debug/loglevel, /debug/log -------------------------------- */

static void level_get(rdl_req_t *req, void *arg)
{
    rdl_server_t *srv = arg;
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_printf(&b, "{\"level\":\"%s\"}", rdl_log_level_name(rdl_log_level(srv->log)));
    rdl__rt_send_json(req, 200, &b);
}

/* The body is a level name ("debug", whitespace around it ignored) or {"level":"debug"}. */
bool rdl__rt_log_level_from_body(const char *body, size_t n, rdl_log_level_t *out)
{
    while (n && isspace((unsigned char)body[n - 1]))
        n--;
    while (n && isspace((unsigned char)*body)) {
        body++;
        n--;
    }
    if (n && body[0] == '{') {
        json_error_t jerr;
        json_t *doc = json_loadb(body, n, 0, &jerr);
        json_t *v = doc ? json_object_get(doc, "level") : NULL;
        bool ok = json_is_string(v) &&
                  rdl_log_parse_level(json_string_value(v), json_string_length(v), out) == 0;
        json_decref(doc);
        return ok;
    }
    return rdl_log_parse_level(body, n, out) == 0;
}

static void level_put(rdl_req_t *req, void *arg)
{
    rdl_server_t *srv = arg;
    if (!rdl__admin_authorized(req))
        return;                 /* answered 401/403 */
    size_t n;
    const char *body = rdl_req_body(req, &n);
    rdl_log_level_t level, prev = rdl_log_level(srv->log);
    if (!rdl__rt_log_level_from_body(body, n, &level)) {
        rdl_resp_error(req, 400, "invalid_level",
                       "expected a body of debug, info, warn, error or fatal "
                       "(plain, or {\"level\":\"...\"})");
        return;
    }
    rdl_log_set_level(srv->log, level);
    rdl_log_field_t f[] = { rdl_lf_str("new_level", rdl_log_level_name(level)),
                            rdl_lf_str("previous_level", rdl_log_level_name(prev)),
                            rdl_lf_str("peer", rdl_req_peer(req)) };
    /* at warn or above, a level the new filter lets through: the change is always on record */
    rdl_log(srv->log, level > RDL_LOG_WARN ? level : RDL_LOG_WARN, "log level changed", f, 3);
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_printf(&b, "{\"level\":\"%s\",\"previous\":\"%s\"}", rdl_log_level_name(level),
                   rdl_log_level_name(prev));
    rdl__rt_send_json(req, 200, &b);
}

static void log_stats(rdl_req_t *req, void *arg)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    log_var(&b, arg);
    rdl__rt_send_json(req, 200, &b);
}

static int log_install(rdl_server_t *srv, void *opts, void **state)
{
    rt_log_part_t *lp = calloc(1, sizeof(*lp));
    if (!(*state = lp))
        return RDL_ENOMEM;
    lp->opts = opts;
    lp->srv = srv;
    int rc = rdl_server_admin_route(srv, "GET", "/debug/loglevel", level_get, srv);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "PUT", "/debug/loglevel", level_put, srv);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "GET", "/debug/log", log_stats, srv);
    return rc;
}

/* The first part: its logger starts before the others' and goes after theirs. */
const rdl_part_t rdl_part_log = {
    .name = "log",
    .opts_size = sizeof(rdl_log_part_opts_t),
    .defaults = log_defaults,
    .config = log_config,
    .check = log_check,
    .install = log_install,
    .start = log_start,
    .run = log_run,
    .thread_start = log_thread_start,
    .drained = log_drained,
    .free = log_free,
};
