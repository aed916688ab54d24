/*
 * test_parts.c: the part interface and the middleware API a part uses. Two
 * recording parts in a real server: every hook runs at its point of the
 * lifecycle, in list order (stop, drained, thread_stop and free in reverse);
 * a failed start stops the parts started before it; the options of a part
 * live in rdl_server_opts_t and reach its install; the app and admin chains
 * are separate; request slots start NULL and are handed out up to
 * RDL_REQ_SLOTS; response headers can be replaced and removed before the head.
 */
#define _GNU_SOURCE             /* strcasestr */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "redline/runtime.h"

/* ---- the record of hooks ------------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char events[2048];

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    char one[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one, sizeof(one), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    size_t n = strlen(events);
    snprintf(events + n, sizeof(events) - n, "%s ", one);
    pthread_mutex_unlock(&mu);
}

static int count_of(const char *word)
{
    int n = 0;
    pthread_mutex_lock(&mu);
    for (const char *p = events; (p = strstr(p, word)) != NULL; p += strlen(word))
        n++;
    pthread_mutex_unlock(&mu);
    return n;
}

/* Whether a comes before b in the record (both present). */
static bool before(const char *a, const char *b)
{
    pthread_mutex_lock(&mu);
    const char *pa = strstr(events, a), *pb = strstr(events, b);
    pthread_mutex_unlock(&mu);
    return pa && pb && pa < pb;
}

/* ---- a recording part ------------------------------------------------------ */

typedef struct rec_opts {
    int64_t tag;                /* set by the test, read by install */
    bool fail_start;
} rec_opts_t;

typedef struct rec {
    const char *name;
    int slot;
    int64_t tag;
} rec_t;

static int rec_enter(rdl_req_t *req, void *arg)
{
    rec_t *r = arg;
    if (rdl_req_slot(req, r->slot) != NULL)
        note("%s:dirty", r->name);               /* a slot starts NULL on every request */
    rdl_req_slot_set(req, r->slot, (void *)r->name);
    note("%s:enter", r->name);
    return 0;
}

static void rec_before_send(rdl_req_t *req, void *arg)
{
    rec_t *r = arg;
    rdl_resp_header_remove(req, "X-Gone");
    rdl_resp_header_set(req, "X-Part", r->name);
}

static void rec_leave(rdl_req_t *req, void *arg)
{
    rec_t *r = arg;
    note("%s:leave:%s", r->name, (const char *)rdl_req_slot(req, r->slot));
}

static void rec_defaults(void *opts)
{
    ((rec_opts_t *)opts)->tag = 7;
}

static int rec_install(rdl_server_t *srv, const char *name, void *opts, void **state)
{
    rec_t *r = calloc(1, sizeof(*r));
    if (!(*state = r))
        return RDL_ENOMEM;
    r->name = name;
    r->tag = ((rec_opts_t *)opts)->tag;
    r->slot = rdl_server_req_slot(srv);
    note("%s:install:%lld", name, (long long)r->tag);
    rdl_middleware_t mw = { name, rec_enter, rec_before_send, rec_leave, r };
    int rc = r->slot < 0 ? r->slot : rdl_server_use(srv, &mw);
    if (rc == 0 && strcmp(name, "a") == 0)
        rc = rdl_server_admin_use(srv, &mw);     /* a alone watches the admin listener */
    return rc;
}

static int a_install(rdl_server_t *srv, void *opts, void **state)
{
    return rec_install(srv, "a", opts, state);
}

static int b_install(rdl_server_t *srv, void *opts, void **state)
{
    return rec_install(srv, "b", opts, state);
}

static const rdl_part_t part_a, part_b;

static int rec_start(rdl_server_t *srv, void *state, rdl_error_t *err)
{
    rec_t *r = state;
    note("%s:start", r->name);
    const rdl_part_t *self = strcmp(r->name, "a") == 0 ? &part_a : &part_b;
    assert_ptr_equal(rdl_server_part_state(srv, self), r);
    return r->tag == 99 ? rdl_error_set(err, RDL_EINVAL, 0, 0, "rec", "told to fail") : 0;
}

static void rec_run(rdl_server_t *srv, void *state, uv_loop_t *ctl)
{
    (void)srv;
    assert_non_null(ctl);
    note("%s:run", ((rec_t *)state)->name);
}

static void rec_thread_start(rdl_server_t *srv, void *state, const rdl_part_thread_t *t)
{
    (void)srv;
    assert_non_null(t->loop);
    note("%s:tstart:%s", ((rec_t *)state)->name, t->admin ? "admin" : "app");
}

static void rec_thread_stop(rdl_server_t *srv, void *state, const rdl_part_thread_t *t)
{
    (void)srv;
    note("%s:tstop:%s", ((rec_t *)state)->name, t->admin ? "admin" : "app");
}

static void rec_drained(rdl_server_t *srv, void *state)
{
    (void)srv;
    note("%s:drained", ((rec_t *)state)->name);
}

static void rec_stop(rdl_server_t *srv, void *state)
{
    (void)srv;
    note("%s:stop", ((rec_t *)state)->name);
}

static void rec_free(rdl_server_t *srv, void *state)
{
    (void)srv;
    rec_t *r = state;
    if (!r)
        return;
    note("%s:free", r->name);
    free(r);
}

static const rdl_part_t part_a = {
    .name = "a", .opts_size = sizeof(rec_opts_t), .defaults = rec_defaults,
    .install = a_install, .start = rec_start, .run = rec_run,
    .thread_start = rec_thread_start, .thread_stop = rec_thread_stop,
    .drained = rec_drained, .stop = rec_stop, .free = rec_free,
};

static const rdl_part_t part_b = {
    .name = "b", .opts_size = sizeof(rec_opts_t), .defaults = rec_defaults,
    .install = b_install, .start = rec_start, .run = rec_run,
    .thread_start = rec_thread_start, .thread_stop = rec_thread_stop,
    .drained = rec_drained, .stop = rec_stop, .free = rec_free,
};

static const rdl_part_t *const parts_ab[] = { &part_a, &part_b, NULL };

/* ---- a server on its own thread --------------------------------------------- */

static rdl_server_t *srv;
static pthread_t run_tid;
static int run_rc;

static void *run_main(void *arg)
{
    (void)arg;
    rdl_error_t err;
    memset(&err, 0, sizeof(err));
    run_rc = rdl_server_run(srv, &err);
    return NULL;
}

static void h_hello(rdl_req_t *req, void *arg)
{
    (void)arg;
    rdl_resp_header(req, "X-Gone", "1");
    rdl_resp_header(req, "X-Part", "handler");
    rdl_resp_header(req, "x-gone", "2");
    rdl_resp_header(req, "X-Kept", "yes");
    assert_int_equal(rdl_resp_header_set(req, "X-Kept", "bad\r\nvalue"), RDL_EINVAL);
    rdl_resp_send(req, 200, "text/plain", "hi\n", 3);
}

static void opts_ab(rdl_server_opts_t *o, int64_t tag_b)
{
    rdl_server_opts_default(o);
    assert_int_equal(rdl_server_opts_parts(o, parts_ab), 0);
    o->listen = "127.0.0.1:0";
    o->admin_listen = "127.0.0.1:0";
    o->threads = 2;
    o->drain_delay_ms = 0;
    rec_opts_t *b = rdl_server_opts_part(o, &part_b);
    assert_non_null(b);
    assert_int_equal(b->tag, 7);                    /* the part's default */
    b->tag = tag_b;
}

static bool get(const char *addr, const char *path, char *out, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    bool ok = write(fd, req, (size_t)n) == n;
    size_t len = 0;
    ssize_t r;
    while (ok && len + 1 < cap && (r = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(fd);
    return ok && len > 0;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_lifecycle_order(void **state)
{
    (void)state;
    events[0] = '\0';
    rdl_server_opts_t o;
    opts_ab(&o, 8);
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    assert_int_equal(rdl_server_route(srv, "GET", "/hello", h_hello, NULL), 0);
    assert_int_equal(pthread_create(&run_tid, NULL, run_main, NULL), 0);
    for (int i = 0; i < 500 && !rdl_server_ready(srv); i++)
        usleep(10000);
    assert_true(rdl_server_ready(srv));

    char resp[2048];
    assert_true(get(rdl_server_addr(srv), "/hello", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "200 OK"));
    assert_null(strcasestr(resp, "X-Gone"));            /* both removed, whatever their case */
    assert_non_null(strstr(resp, "X-Part: a\r\n"));     /* set by b, then by a (outermost) */
    assert_null(strstr(resp, "X-Part: handler"));
    assert_null(strstr(resp, "X-Part: b"));
    assert_non_null(strstr(resp, "X-Kept: yes\r\n"));   /* a refused set leaves the old value */
    assert_true(get(rdl_server_admin_addr(srv), "/healthz", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "200 OK"));

    rdl_server_shutdown(srv);
    pthread_join(run_tid, NULL);
    assert_int_equal(run_rc, 0);
    rdl_server_free(srv);
    srv = NULL;

    assert_int_equal(count_of(":dirty"), 0);
    assert_true(before("a:install:7", "b:install:8"));  /* the options reached install */
    assert_true(before("b:install", "a:start"));
    assert_true(before("a:start", "b:start"));
    assert_true(before("b:start", "a:run"));
    assert_true(before("a:run", "b:run"));
    assert_true(before("b:run", "a:tstart"));
    assert_int_equal(count_of("a:tstart:app"), 2);
    assert_int_equal(count_of("a:tstart:admin"), 1);
    assert_int_equal(count_of("b:tstop:"), 3);
    /* the app chain: a then b, leaves inward out, each with its own slot */
    assert_true(before("a:enter", "b:enter"));
    assert_true(before("b:leave:b", "a:leave:a"));
    /* the admin chain: a alone */
    assert_int_equal(count_of("a:enter"), 2);
    assert_int_equal(count_of("b:enter"), 1);
    assert_true(before("b:drained", "a:drained"));
    assert_true(before("a:drained", "b:stop"));
    assert_true(before("b:stop", "a:stop"));
    assert_true(before("a:stop", "b:free"));
    assert_true(before("b:free", "a:free"));
}

/* b's start fails: the run fails, a (started) stops, b does not; free frees both. */
static void test_failed_start_stops_the_started(void **state)
{
    (void)state;
    events[0] = '\0';
    rdl_server_opts_t o;
    opts_ab(&o, 99);
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    rdl_error_t err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(rdl_server_run(srv, &err), RDL_EINVAL);
    assert_string_equal(err.key, "rec");
    rdl_server_free(srv);
    srv = NULL;
    assert_true(before("b:start", "a:stop"));
    assert_int_equal(count_of("b:stop"), 0);
    assert_int_equal(count_of(":run"), 0);
    assert_int_equal(count_of(":free"), 2);
}

static const rdl_part_t part_big = { .name = "big", .opts_size = RDL_PART_OPTS_BYTES + 1 };
static const rdl_part_t part_none = { .name = "none" };

static void test_opts_parts_refused(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    assert_non_null(rdl_server_opts_part(&o, &rdl_part_log));
    assert_null(rdl_server_opts_part(&o, &part_a));             /* not listed */
    assert_int_equal(rdl_server_opts_parts(&o, NULL), RDL_EINVAL);
    const rdl_part_t *const big[] = { &part_big, NULL };
    assert_int_equal(rdl_server_opts_parts(&o, big), RDL_EINVAL);
    const rdl_part_t *many[RDL_PARTS_MAX + 2];
    for (int i = 0; i <= RDL_PARTS_MAX; i++)
        many[i] = &part_none;
    many[RDL_PARTS_MAX + 1] = NULL;
    assert_int_equal(rdl_server_opts_parts(&o, many), RDL_EINVAL);
    assert_ptr_equal(o.parts, rdl_parts_default);               /* unchanged */
    assert_non_null(rdl_server_opts_part(&o, &rdl_part_log));
    const rdl_part_t *const none[] = { &part_none, NULL };
    assert_int_equal(rdl_server_opts_parts(&o, none), 0);
    assert_null(rdl_server_opts_part(&o, &part_none));          /* a part without options */
    assert_null(rdl_server_opts_part(&o, &rdl_part_log));
}

/* The default parts take some slots; the rest are handed out, then RDL_EBUSY. */
static void test_slots_run_out(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    const rdl_part_t *const none[] = { NULL };
    assert_int_equal(rdl_server_opts_parts(&o, none), 0);
    rdl_server_t *s = NULL;
    assert_int_equal(rdl_server_new(&o, &s), 0);
    for (int i = 0; i < RDL_REQ_SLOTS; i++)
        assert_int_equal(rdl_server_req_slot(s), i);
    assert_int_equal(rdl_server_req_slot(s), RDL_EBUSY);
    assert_null(rdl_server_part_state(s, &rdl_part_log));
    rdl_server_free(s);
}

/* The parts' keys write their own options; enum keys are words parsed once, at load. */
static void test_part_keys(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    rdl_config_t *cfg = NULL;
    rdl_error_t err;
    assert_int_equal(rdl_config_new(&cfg), 0);
    assert_int_equal(rdl_server_opts_config(&o, cfg), 0);
    rdl_log_part_opts_t *lo = rdl_server_opts_part(&o, &rdl_part_log);
    rdl_route_part_opts_t *ro = rdl_server_opts_part(&o, &rdl_part_route);
    rdl_access_log_part_opts_t *ao = rdl_server_opts_part(&o, &rdl_part_access_log);
    assert_int_equal(lo->level, RDL_LOG_INFO);
    assert_int_equal(rdl_config_set(cfg, "log.level", "ERROR", &err), 0);
    assert_int_equal(lo->level, RDL_LOG_ERROR);
    assert_int_equal(rdl_config_set(cfg, "log.sink", "stderr", &err), 0);
    assert_int_equal(lo->sink, RDL_LOG_STDERR);
    assert_int_equal(rdl_config_set(cfg, "log.policy", "drop", &err), 0);
    assert_int_equal(lo->policy, RDL_LOG_DROP);
    assert_int_not_equal(rdl_config_set(cfg, "log.sink", "syslog", &err), 0);
    assert_string_equal(err.key, "log.sink");
    assert_int_equal(lo->sink, RDL_LOG_STDERR);                 /* a refused word changes nothing */
    assert_int_equal(rdl_config_set(cfg, "routes.file", "/tmp/r.yaml", &err), 0);
    assert_string_equal(ro->file, "/tmp/r.yaml");
    assert_int_equal(rdl_config_set(cfg, "log.access", "false", &err), 0);
    assert_false(ao->enabled);
    assert_int_equal(rdl_config_set(cfg, "server.threads", "3", &err), 0);
    assert_int_equal(o.threads, 3);
    rdl_config_free(cfg);

    /* a list without the log part has no log.* keys */
    const rdl_part_t *const only_metrics[] = { &rdl_part_metrics, NULL };
    assert_int_equal(rdl_server_opts_parts(&o, only_metrics), 0);
    assert_int_equal(rdl_config_new(&cfg), 0);
    assert_int_equal(rdl_server_opts_config(&o, cfg), 0);
    assert_int_not_equal(rdl_config_set(cfg, "log.level", "debug", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "metrics.max_series", "5", &err), 0);
    assert_int_equal(((rdl_metrics_part_opts_t *)rdl_server_opts_part(&o, &rdl_part_metrics))->max_series, 5);
    rdl_config_free(cfg);
}

/* "warning", accepted by log.level as documented, starts a logger at warn. */
static void test_log_level_warning(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    const rdl_part_t *const only_log[] = { &rdl_part_log, NULL };
    assert_int_equal(rdl_server_opts_parts(&o, only_log), 0);
    o.listen = "127.0.0.1:0";
    o.admin_listen = "";
    o.threads = 1;
    o.drain_delay_ms = 0;
    rdl_config_t *cfg = NULL;
    rdl_error_t err;
    assert_int_equal(rdl_config_new(&cfg), 0);
    assert_int_equal(rdl_server_opts_config(&o, cfg), 0);
    assert_int_equal(rdl_config_set(cfg, "log.level", "warning", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "log.sink", "file", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "log.file", "/dev/null", &err), 0);
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    rdl_server_shutdown(srv);                           /* run starts, then stops at once */
    assert_int_equal(rdl_server_run(srv, &err), 0);
    assert_int_equal(rdl_log_level(rdl_server_logger(srv)), RDL_LOG_WARN);
    rdl_server_free(srv);
    srv = NULL;
    rdl_config_free(cfg);
}

/* A part whose check refuses tag 99, as a part refuses what only it can judge. */
static int rec_check(const void *opts, rdl_error_t *err)
{
    return ((const rec_opts_t *)opts)->tag == 99
               ? rdl_error_set(err, RDL_EINVAL, 0, 0, "rec.tag", "told to refuse") : 0;
}

static const rdl_part_t part_checked = {
    .name = "checked", .opts_size = sizeof(rec_opts_t), .defaults = rec_defaults,
    .check = rec_check,
};

/*
 * rdl_server_opts_check runs the parts' checks at load (issue 15: OTEL_*
 * values and a log file in a missing directory used to be refused only when
 * the server started): the error names the variable or key.
 */
static void test_opts_check(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    rdl_error_t err;
    const rdl_part_t *const checked[] = { &part_none, &part_checked, NULL };

    assert_int_equal(rdl_server_opts_check(NULL, &err), RDL_EINVAL);
    rdl_server_opts_default(&o);
    assert_int_equal(rdl_server_opts_check(&o, &err), 0);
    assert_int_equal(rdl_server_opts_parts(&o, checked), 0);
    assert_int_equal(rdl_server_opts_check(&o, NULL), 0);
    ((rec_opts_t *)rdl_server_opts_part(&o, &part_checked))->tag = 99;
    assert_int_equal(rdl_server_opts_check(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "rec.tag");

    static const struct { const char *var, *value; } vars[] = {
        { "OTEL_TRACES_SAMPLER", "bogus" },
        { "OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318" },
        { "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc" },
        { "OTEL_BSP_MAX_QUEUE_SIZE", "lots" },
        { "OTEL_PROPAGATORS", "bogus" },
        { "OTEL_RESOURCE_ATTRIBUTES", "novalue" },
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        rdl_server_opts_default(&o);
        setenv(vars[i].var, vars[i].value, 1);
        int rc = rdl_server_opts_check(&o, &err);
        unsetenv(vars[i].var);
        if (rc != RDL_EINVAL || strcmp(err.key, vars[i].var) != 0)
            fail_msg("%s=%s: rc %d key '%s' msg '%s'", vars[i].var, vars[i].value, rc, err.key, err.msg);
        rdl_trace_part_opts_t *to = rdl_server_opts_part(&o, &rdl_part_trace);
        to->enabled = false;            /* tracing off: its variables are not read */
        setenv(vars[i].var, vars[i].value, 1);
        rc = rdl_server_opts_check(&o, &err);
        unsetenv(vars[i].var);
        assert_int_equal(rc, 0);
    }

    rdl_server_opts_default(&o);
    rdl_trace_part_opts_t *to = rdl_server_opts_part(&o, &rdl_part_trace);
    to->endpoint = "collector:4318";
    assert_int_equal(rdl_server_opts_check(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "tracing.endpoint");
    to->endpoint = "";
    to->propagators = "tracecontext,nope";
    assert_int_equal(rdl_server_opts_check(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "tracing.propagators");
    to->propagators = "";

    rdl_log_part_opts_t *lo = rdl_server_opts_part(&o, &rdl_part_log);
    lo->sink = RDL_LOG_FILE;
    lo->file = "";
    assert_int_equal(rdl_server_opts_check(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "log.file");
    lo->file = "/nonexistent-redline-dir/sub/x.log";
    assert_int_equal(rdl_server_opts_check(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "log.file");
    assert_non_null(strstr(err.msg, "/nonexistent-redline-dir/sub"));
    lo->file = "/dev/null/x.log";               /* its "directory" is a device */
    assert_int_equal(rdl_server_opts_check(&o, &err), RDL_EINVAL);
    assert_non_null(strstr(err.msg, "not a directory"));
    lo->file = "x.log";                         /* the working directory */
    assert_int_equal(rdl_server_opts_check(&o, &err), 0);
    lo->file = "/tmp/redline-test-parts.log";
    assert_int_equal(rdl_server_opts_check(&o, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_order),
        cmocka_unit_test(test_failed_start_stops_the_started),
        cmocka_unit_test(test_opts_parts_refused),
        cmocka_unit_test(test_slots_run_out),
        cmocka_unit_test(test_part_keys),
        cmocka_unit_test(test_log_level_warning),
        cmocka_unit_test(test_opts_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
