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
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "redline/metrics.h"
#include "runtime/internal.h"

/* ---- settings -------------------------------------------------------- */

void rt_log_opts_default(rdl_server_opts_t *o)
{
    o->log_level = "info";
    o->log_format = "json";
    o->log_sink = "stdout";
    o->log_file = "";
    o->log_max_line = RDL_LOG_MAX_LINE_DEFAULT;
    o->log_buffer = 256 * 1024;
    o->log_io_buffer = 1024 * 1024;
    o->log_pipe_buffer = 1024 * 1024;
    o->log_policy = "block";
    o->log_sample_first = 0;
    o->log_sample_every = 100;
    o->log_access = true;
}

int rt_log_opts_config(rdl_server_opts_t *o, rdl_config_t *cfg)
{
    rdl_cfg_key_t keys[] = {
        { "log.level", RDL_CFG_STRING, &o->log_level, 0, 0, "REDLINE_LOG_LEVEL",
          "debug, info, warn, error or fatal (changeable at run time: PUT /debug/loglevel)", NULL },
        { "log.format", RDL_CFG_STRING, &o->log_format, 0, 0, NULL, "json (the only format)", NULL },
        { "log.sink", RDL_CFG_STRING, &o->log_sink, 0, 0, NULL, "stdout, stderr or file", NULL },
        { "log.file", RDL_CFG_STRING, &o->log_file, 0, 0, NULL,
          "path for the file sink (appended; reopened on SIGHUP)", NULL },
        { "log.max_line", RDL_CFG_SIZE, &o->log_max_line, RDL_LOG_MAX_LINE_MIN, 1 << 20, NULL,
          "bytes per line; longer lines are cut and marked \"truncated\":true", NULL },
        { "log.buffer", RDL_CFG_SIZE, &o->log_buffer, 4096, (int64_t)RDL_LOG_RING_MAX, NULL,
          "per-thread ring before the writer thread (threads other than the I/O threads)", NULL },
        { "log.io_buffer", RDL_CFG_SIZE, &o->log_io_buffer, 4096, (int64_t)RDL_LOG_RING_MAX, NULL,
          "each I/O thread's ring, made when the thread starts: it writes a line per "
          "request, and the writer wakes for a ring at half full", NULL },
        { "log.pipe_buffer", RDL_CFG_SIZE, &o->log_pipe_buffer, 0, 1 << 30, NULL,
          "when the sink is a pipe (stdout in a pod): its kernel buffer, raised to this "
          "(best effort, never lowered; 0 = leave it)", NULL },
        { "log.policy", RDL_CFG_STRING, &o->log_policy, 0, 0, NULL,
          "block or drop (counted) when the writer falls behind", NULL },
        { "log.sampling.first", RDL_CFG_INT, &o->log_sample_first, 0, 1000000000, NULL,
          "per message and level, lines kept each second before sampling (0 = no sampling)", NULL },
        { "log.sampling.every", RDL_CFG_INT, &o->log_sample_every, 1, 1000000000, NULL,
          "past that, one line kept in this many", NULL },
        { "log.access", RDL_CFG_BOOL, &o->log_access, 0, 0, NULL, "one log line per request", NULL },
    };
    return rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]));
}

static int pick(const char *key, const char *value, const char *const *names, int n,
                const char *expected, rdl_error_t *err)
{
    for (int i = 0; i < n; i++)
        if (value && rdl_ascii_ieq(value, strlen(value), names[i], strlen(names[i])))
            return i;
    return rdl_error_set(err, RDL_EINVAL, 0, 0, key, "expected %s, got '%s'", expected,
                         value ? value : "");
}

/* log.* settings -> logger options; err names the key when one is wrong. */
static int log_opts_of(const rdl_server_opts_t *o, rdl_log_opts_t *lo, rdl_error_t *err)
{
    static const char *const formats[] = { "json" };
    static const char *const sinks[] = { "stdout", "stderr", "file" };
    static const char *const policies[] = { "block", "drop" };
    int r;

    rdl_log_opts_default(lo);
    lo->service = o->service;
    if (!o->log_level ||
        rdl_log_parse_level(o->log_level, strlen(o->log_level), &lo->level) != 0)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.level",
                             "expected debug, info, warn, error or fatal, got '%s'",
                             o->log_level ? o->log_level : "");
    if ((r = pick("log.format", o->log_format, formats, 1, "json", err)) < 0)
        return r;
    if ((r = pick("log.sink", o->log_sink, sinks, 3, "stdout, stderr or file", err)) < 0)
        return r;
    lo->sink = (rdl_log_sink_t)r;
    lo->path = o->log_file;
    if (lo->sink == RDL_LOG_FILE && (!o->log_file || !o->log_file[0]))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.file",
                             "expected a file path when log.sink is file");
    if ((r = pick("log.policy", o->log_policy, policies, 2, "block or drop", err)) < 0)
        return r;
    lo->policy = (rdl_log_policy_t)r;
    lo->max_line = o->log_max_line ? (size_t)o->log_max_line : RDL_LOG_MAX_LINE_DEFAULT;
    if (lo->max_line < RDL_LOG_MAX_LINE_MIN)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "log.max_line", "expected at least %d bytes",
                             RDL_LOG_MAX_LINE_MIN);
    lo->ring_bytes = o->log_buffer ? (size_t)o->log_buffer : lo->ring_bytes;
    lo->pipe_bytes = (size_t)o->log_pipe_buffer;
    lo->sample_first = o->log_sample_first > 0 ? (uint32_t)o->log_sample_first : 0;
    lo->sample_every = o->log_sample_every > 0 ? (uint32_t)o->log_sample_every : 1;
    return 0;
}

/* ---- the logger's counters as metrics and in /debug/vars -------------- */

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
                   "\"reopens\":%llu,\"pipe_bytes\":%llu,\"ring_bytes\":%llu}",
                   rdl_log_level_name(rdl_log_level(srv->log)),
                   (unsigned long long)st.lines, (unsigned long long)st.dropped,
                   (unsigned long long)st.sampled, (unsigned long long)st.truncated,
                   (unsigned long long)st.bytes_written, (unsigned long long)st.write_errors,
                   (unsigned long long)st.reopens, (unsigned long long)st.pipe_bytes,
                   (unsigned long long)st.ring_bytes);
}

int rt_log_start(rdl_server_t *srv, rdl_error_t *err)
{
    rdl_log_opts_t lo;
    int rc = log_opts_of(&srv->opts, &lo, err);
    if (rc)
        return rc;
    rc = rdl_log_new(&lo, &srv->log);
    if (rc == RDL_EIO)
        return rdl_error_set(err, rc, 0, 0, "log.file", "cannot open %s for appending", lo.path);
    if (rc)
        return rdl_error_set(err, rc, 0, 0, "log", "cannot start the logger: %s", rdl_strerror(rc));
    srv->prev_log = rdl_log_set_default(srv->log);
    /* Another server in the process may hold the names already: its figures stay. */
    int id = rdl_collector_add(NULL, log_collect, srv);
    srv->log_collector = id > 0 ? id : 0;
    srv->log_var = rdl_vars_publish("log", log_var, srv) == 0;
    return 0;
}

void rt_log_stop(rdl_server_t *srv)
{
    if (!srv->log)
        return;
    if (srv->log_collector)
        rdl_collector_remove(NULL, srv->log_collector);
    if (srv->log_var)
        rdl_vars_unpublish("log");
    srv->log_collector = 0;
    srv->log_var = false;
    rdl_logger_t *mine = srv->log;
    rdl_log_set_default(srv->prev_log);
    srv->log = NULL;
    rdl_log_free(mine);
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
    if (!srv->opts.log_access || req->conn->t->admin)
        return;                 /* probes every few seconds are not traffic */
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
    if (ctx->route_name)
        f[n++] = rdl_lf_str("route", ctx->route_name);
    if (ctx->subset)
        f[n++] = rdl_lf_str("subset", ctx->subset);
    if (ctx->color)
        f[n++] = rdl_lf_str("color", ctx->color);
    rdl_log_ctx_at(srv->log, RDL_LOG_INFO, ctx, ctx->end_ns, "request", f, n);
}

int rt_access_log_install(rdl_server_t *srv)
{
    rdl_middleware_t mw = {
        .name = "access_log",
        .enter = access_enter,
        .before_send = access_before_send,
        .leave = access_leave,
        .arg = srv,
    };
    return rdl_server_use(srv, &mw);
}

/* ---- admin: /debug/loglevel, /debug/log -------------------------------- */

static void level_get(rdl_req_t *req, void *arg)
{
    rdl_server_t *srv = arg;
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_printf(&b, "{\"level\":\"%s\"}", rdl_log_level_name(rdl_log_level(srv->log)));
    rt_send_json(req, 200, &b);
}

/* The body is a level name ("debug", whitespace around it ignored) or {"level":"debug"}. */
bool rt_log_level_from_body(const char *body, size_t n, rdl_log_level_t *out)
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
    size_t n;
    const char *body = rdl_req_body(req, &n);
    rdl_log_level_t level, prev = rdl_log_level(srv->log);
    if (!rt_log_level_from_body(body, n, &level)) {
        rdl_resp_error(req, 400, "invalid_level",
                       "expected a body of debug, info, warn, error or fatal "
                       "(plain, or {\"level\":\"...\"})");
        return;
    }
    rdl_log_set_level(srv->log, level);
    rdl_log_field_t f[] = { rdl_lf_str("new_level", rdl_log_level_name(level)),
                            rdl_lf_str("previous_level", rdl_log_level_name(prev)) };
    /* at a level the new filter lets through, so the change is always on record */
    rdl_log(srv->log, level > RDL_LOG_INFO ? level : RDL_LOG_INFO, "log level changed", f, 2);
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_printf(&b, "{\"level\":\"%s\",\"previous\":\"%s\"}", rdl_log_level_name(level),
                   rdl_log_level_name(prev));
    rt_send_json(req, 200, &b);
}

static void log_stats(rdl_req_t *req, void *arg)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    log_var(&b, arg);
    rt_send_json(req, 200, &b);
}

int rt_log_admin_register(rdl_server_t *srv)
{
    int rc = rdl_server_admin_route(srv, "GET", "/debug/loglevel", level_get, srv);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "PUT", "/debug/loglevel", level_put, srv);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "GET", "/debug/log", log_stats, srv);
    return rc;
}
