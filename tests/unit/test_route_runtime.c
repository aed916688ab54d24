/*
 * test_route_runtime.c: the coloring middleware inside a real server. Rules
 * reloaded again and again while two clients send requests: every request
 * sees one table whole (its color, its request header operation and its
 * response header operation agree), nothing races (the TSan run) and nothing
 * leaks (the ASan run); a refused file keeps the rules in use and says where;
 * a fault delay suspends the chain and resumes it, an abort answers, a delay
 * past the request deadline or a client gone during the delay is cleaned up.
 * A slow reload (a large file) holds up neither the admin plane, even with
 * /debug/routes asked throughout, nor SIGTERM; a FIFO in place of the file is
 * refused at once; a file over its rule, regex or size limit is refused with
 * the limit named, the rules in use stay.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "redline/runtime.h"
#include "redline/metrics.h"
#include "redline/route.h"

static char routes_path[64];

static const char rules_fmt[] =
    "routes:\n"
    "  - name: slow\n    match: [{uri: {prefix: /slow}}]\n"
    "    fault: {delay: {fixedDelay: %s}}\n"
    "  - name: teapot\n    match: [{uri: {prefix: /teapot}}]\n"
    "    fault: {abort: {httpStatus: 418}}\n"
    "  - name: main\n    subset: %s\n"
    "    headers:\n"
    "      request: {set: {x-route: %s}}\n"
    "      response: {set: {x-color: %s}}\n";

static void write_rules(const char *color, const char *delay)
{
    char tmp[80];
    snprintf(tmp, sizeof(tmp), "%s.tmp", routes_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, rules_fmt, delay, color, color, color);
    fclose(f);
    assert_int_equal(rename(tmp, routes_path), 0);
}

/* The handler reports what the middleware gave it: ctx color and the request header. */
static void h_echo(rdl_req_t *req, void *arg)
{
    char body[160];
    size_t n = 0;
    const char *xr = rdl_req_header(req, "x-route", &n);
    const char *color = rdl_req_ctx(req)->color;
    int len = snprintf(body, sizeof(body), "color=%s xroute=%.*s", color ? color : "-",
                       (int)(xr ? n : 1), xr ? xr : "-");
    rdl_resp_send(req, 200, "text/plain", body, (size_t)len);
}

static rdl_server_t *srv;
static pthread_t run_tid;
static int run_rc;

static void *run_main(void *arg)
{
    (void)arg;
    run_rc = rdl_server_run(srv, NULL);
    return NULL;
}

/* admin: an admin listener too; max_rules: 0 keeps the default. */
static void start_with(uint64_t request_timeout_ms, bool admin, int64_t max_rules)
{
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.admin_listen = admin ? "127.0.0.1:0" : "";
    o.threads = 2;
    o.drain_delay_ms = 0;
    rdl_log_part_opts_t *lo = rdl_server_opts_part(&o, &rdl_part_log);
    rdl_access_log_part_opts_t *ao = rdl_server_opts_part(&o, &rdl_part_access_log);
    rdl_route_part_opts_t *ro = rdl_server_opts_part(&o, &rdl_part_route);
    ao->enabled = false;
    lo->level = RDL_LOG_ERROR;
    o.request_timeout_ms = request_timeout_ms;
    ro->file = routes_path;
    ro->watch_ms = 0;
    if (max_rules)
        ro->max_rules = max_rules;
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    assert_int_equal(rdl_server_route(srv, "GET", "/{rest...}", h_echo, NULL), 0);
    assert_int_equal(pthread_create(&run_tid, NULL, run_main, NULL), 0);
    for (int i = 0; i < 500 && !rdl_server_ready(srv); i++)
        usleep(10000);
    assert_true(rdl_server_ready(srv));
}

static void start(uint64_t request_timeout_ms)
{
    start_with(request_timeout_ms, false, 0);
}

static void stop(void)
{
    rdl_server_shutdown(srv);
    pthread_join(run_tid, NULL);
    rdl_server_free(srv);
    srv = NULL;
}

static int dial_to(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int dial(void)
{
    return dial_to(rdl_server_addr(srv));
}

/* One request with Connection: close to addr; the whole response into out (NUL-terminated). */
static bool get_at(const char *addr, const char *path, char *out, size_t cap)
{
    int fd = dial_to(addr);
    if (fd < 0)
        return false;
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

static bool get(const char *path, char *out, size_t cap)
{
    return get_at(rdl_server_addr(srv), path, out, cap);
}

/* ---- reload under load ----------------------------------------------------------- */

static atomic_int inconsistent, answered;

static void *client(void *arg)
{
    (void)arg;
    char resp[2048];
    for (int i = 0; i < 150; i++) {
        if (!get("/x", resp, sizeof(resp)))
            continue;
        const char *body = strstr(resp, "\r\n\r\n");
        const char *h = strstr(resp, "x-color: ");
        char want[96];
        bool ok = body && h;
        if (ok) {
            char color[16] = "";
            sscanf(h + 9, "%15[a-z]", color);
            snprintf(want, sizeof(want), "color=%s xroute=%s", color, color);
            ok = strcmp(body + 4, want) == 0 && (!strcmp(color, "blue") || !strcmp(color, "green"));
        }
        if (!ok)
            atomic_fetch_add(&inconsistent, 1);
        atomic_fetch_add(&answered, 1);
    }
    return NULL;
}

static void reload_under_load(void **state)
{
    write_rules("blue", "10ms");
    start(5000);
    pthread_t c[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&c[i], NULL, client, NULL), 0);
    rdl_error_t err;
    for (int i = 0; i < 40; i++) {
        write_rules(i % 2 ? "blue" : "green", "10ms");
        assert_int_equal(rdl_server_reload_routes(srv, &err), 0);
        usleep(2000);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(c[i], NULL);
    assert_int_equal(atomic_load(&inconsistent), 0);
    assert_int_equal(atomic_load(&answered), 300);
    rdl_server_route_stats_t s;
    rdl_server_route_stats(srv, &s);
    assert_int_equal(s.reloads, 41);
    assert_int_equal(s.reload_failures, 0);
    assert_int_equal(s.decisions, 300);

    /* a refused file: the rules in use stay, err says where */
    FILE *f = fopen(routes_path, "w");
    fputs("routes:\n  - name: main\n    subset: [a, b]\n", f);
    fclose(f);
    assert_int_equal(rdl_server_reload_routes(srv, &err), RDL_EINVAL);
    assert_int_equal(err.line, 3);
    assert_int_equal(err.column, 14);
    assert_string_equal(err.key, "routes[0].subset");
    char resp[2048];
    assert_true(get("/x", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "x-color: blue"));
    rdl_server_route_stats(srv, &s);
    assert_int_equal(s.reload_failures, 1);
    /* the counters are metrics of the default registry while the server lives */
    rdl_buf_t b;
    rdl_buf_init(&b);
    assert_int_equal(rdl_metrics_expose(NULL, RDL_FMT_TEXT, &b), 0);
    assert_non_null(strstr(b.data, "\nredline_route_reload_failures_total 1\n"));
    assert_non_null(strstr(b.data, "\nredline_route_reloads_total 41\n"));
    assert_non_null(strstr(b.data, "\nredline_route_decisions_total 301\n"));
    rdl_buf_close(&b);
    stop();
    rdl_buf_init(&b);
    assert_int_equal(rdl_metrics_expose(NULL, RDL_FMT_TEXT, &b), 0);
    assert_null(strstr(b.data, "redline_route_"));           /* removed with the server */
    rdl_buf_close(&b);
}

/* ---- faults --------------------------------------------------------------------- */

static uint64_t ms_now(void)
{
    return rdl_now_ns() / 1000000u;
}

static void faults(void **state)
{
    write_rules("blue", "150ms");
    start(5000);
    char resp[2048];
    uint64_t t0 = ms_now();
    assert_true(get("/slow", resp, sizeof(resp)));
    assert_true(ms_now() - t0 >= 140);
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    assert_non_null(strstr(resp, "color=default xroute=-"));     /* the handler ran after the delay */
    assert_true(get("/teapot", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "HTTP/1.1 418"));
    assert_non_null(strstr(resp, "fault filter abort"));
    /* a client that leaves during the delay: the timer is closed with the exchange */
    int fd = dial();
    assert_true(fd >= 0);
    const char req[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    usleep(20000);
    close(fd);
    usleep(200000);
    assert_true(get("/x", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "x-color: blue"));
    rdl_server_route_stats_t s;
    rdl_server_route_stats(srv, &s);
    assert_int_equal(s.delays, 2);
    assert_int_equal(s.aborts, 1);
    stop();

    /* a delay past the request deadline: the runtime answers 503, the timer goes with it */
    write_rules("blue", "2s");
    start(100);
    t0 = ms_now();
    assert_true(get("/slow", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "HTTP/1.1 503"));
    assert_true(ms_now() - t0 < 1500);
    stop();
}

/* ---- slow reloads, FIFOs and limits ---------------------------------------------- */

/*
 * A routes file that takes long to parse (every route compiles a regex) and
 * is refused at its very end, so the small table in use stays and
 * /debug/routes stays cheap: what is measured is only whether a reload holds
 * up the admin plane and the control loop. Sized for about a second of parse.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLOW_ROUTES 5000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLOW_ROUTES 5000
#endif
#endif
#ifndef SLOW_ROUTES
#define SLOW_ROUTES 20000
#endif

static void write_slow_rules(void)
{
    char tmp[80];
    snprintf(tmp, sizeof(tmp), "%s.tmp", routes_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs("routes:\n", f);
    for (int i = 0; i < SLOW_ROUTES; i++)
        fprintf(f, "  - name: r%d\n    match: [{headers: {x-user: {regex: \"u%d-[a-z]+[0-9]{2,4}\"}}}]\n"
                "    subset: v1\n", i, i);
    fputs("  - name: main\n    subset: [a, b]\n", f);          /* refused here, at the end */
    fclose(f);
    assert_int_equal(rename(tmp, routes_path), 0);
}

/* How long GET path on the admin plane took, in ms; UINT64_MAX when it failed. */
static uint64_t admin_get_ms(const char *path)
{
    char resp[4096];
    uint64_t t0 = ms_now();
    if (!get_at(rdl_server_admin_addr(srv), path, resp, sizeof(resp)) ||
        !strstr(resp, "HTTP/1.1 200"))
        return UINT64_MAX;
    return ms_now() - t0;
}

static atomic_bool reload_done;

static void *reloader(void *arg)
{
    rdl_error_t err;
    *(int *)arg = rdl_server_reload_routes(srv, &err);
    atomic_store(&reload_done, true);
    return NULL;
}

static void *debug_reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&reload_done)) {
        admin_get_ms("/debug/routes");
        usleep(5000);
    }
    return NULL;
}

static void probes_answer_during_slow_reload(void **state)
{
    write_rules("blue", "10ms");
    start_with(5000, true, 3 * SLOW_ROUTES + 10);
    write_slow_rules();
    atomic_store(&reload_done, false);
    int rc = 0;
    pthread_t rt, dt;
    uint64_t t0 = ms_now(), worst = 0;
    int probes = 0;
    assert_int_equal(pthread_create(&rt, NULL, reloader, &rc), 0);
    assert_int_equal(pthread_create(&dt, NULL, debug_reader, NULL), 0);
    while (!atomic_load(&reload_done)) {
        uint64_t ms = admin_get_ms("/healthz");
        worst = ms > worst ? ms : worst;
        probes++;
        usleep(10000);
    }
    uint64_t took = ms_now() - t0;
    pthread_join(rt, NULL);
    pthread_join(dt, NULL);
    print_message("slow reload: %llu ms, %d probes, slowest /healthz %llu ms\n",
                  (unsigned long long)took, probes, (unsigned long long)worst);
    assert_int_equal(rc, RDL_EINVAL);
    assert_true(worst < 100);
    assert_true(probes >= 5);                 /* the reload was slow enough to test anything */
    char resp[2048];
    assert_true(get("/x", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "x-color: blue"));           /* the rules in use stayed */
    stop();
}

static void sigterm_during_slow_sighup_reload(void **state)
{
    write_rules("blue", "10ms");
    start_with(5000, true, 3 * SLOW_ROUTES + 10);
    write_slow_rules();
    rdl_server_route_stats_t s;
    rdl_server_route_stats(srv, &s);
    uint64_t failures = s.reload_failures;
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    uint64_t t0 = ms_now(), worst = 0;
    while (ms_now() - t0 < 300) {                     /* the parse is under way */
        uint64_t ms = admin_get_ms("/healthz");
        worst = ms > worst ? ms : worst;
        usleep(10000);
    }
    rdl_server_route_stats(srv, &s);
    assert_int_equal(s.reload_failures, failures);   /* still parsing: SIGTERM lands during it */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    t0 = ms_now();
    while (rdl_server_ready(srv) && ms_now() - t0 < 1000)
        usleep(2000);
    uint64_t unready = ms_now() - t0;
    print_message("SIGTERM during a slow reload: not ready after %llu ms; slowest /healthz %llu ms\n",
                  (unsigned long long)unready, (unsigned long long)worst);
    assert_true(unready < 100);                      /* the control loop kept turning */
    assert_true(worst < 100);
    pthread_join(run_tid, NULL);
    assert_int_equal(run_rc, 0);                     /* drained as usual */
    rdl_server_route_stats(srv, &s);
    assert_int_equal(s.reload_failures, failures + 1);   /* the parse ran to its end, refused */
    rdl_server_free(srv);
    srv = NULL;
}

static void fifo_in_place_is_refused_at_once(void **state)
{
    write_rules("blue", "10ms");
    start_with(5000, true, 0);
    unlink(routes_path);
    assert_int_equal(mkfifo(routes_path, 0600), 0);
    rdl_error_t err;
    uint64_t t0 = ms_now();
    assert_int_equal(rdl_server_reload_routes(srv, &err), RDL_EIO);
    assert_true(ms_now() - t0 < 100);
    assert_string_equal(err.file, routes_path);
    /* the same through SIGHUP: nothing blocks, the probes answer, the rules stay */
    rdl_server_route_stats_t s;
    rdl_server_route_stats(srv, &s);
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    t0 = ms_now();
    uint64_t worst = 0;
    while (ms_now() - t0 < 300) {
        uint64_t ms = admin_get_ms("/healthz");
        worst = ms > worst ? ms : worst;
        usleep(10000);
    }
    assert_true(worst < 100);
    rdl_server_route_stats_t s2;
    rdl_server_route_stats(srv, &s2);
    assert_int_equal(s2.reload_failures, s.reload_failures + 1);
    char resp[2048];
    assert_true(get("/x", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "x-color: blue"));
    unlink(routes_path);
    stop();
}

/* n short-form routes of one match block and one subset: 3n rules. */
static char *many_routes(int n, const char *regex)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_puts(&b, "routes:\n");
    for (int i = 0; i < n; i++)
        rdl_buf_printf(&b, "  - name: r%d\n    match: [{headers: {x-u: {regex: \"%s%d\"}}}]\n"
                       "    subset: v1\n", i, regex, i);
    return b.data;
}

static void limits_refuse_with_the_limit_named(void **state)
{
    static const struct {
        int routes;
        const char *regex;
        size_t max_rules, max_regex_bytes;
        const char *why;            /* NULL: accepted */
        int line;
    } cases[] = {
        { 3, "a", 9, 0, NULL, 0 },
        { 4, "a", 9, 0, "more than 9 rules", 11 },          /* the 4th route crosses it */
        { 3334, "a", 0, 0, "the limit is routes.max_rules", 10002 },  /* the default: 10000 */
        { 3333, "a", 0, 0, NULL, 0 },
        { 2, "[a-z]{1,200}", 0, 1000, "the limit is routes.max_regex_bytes", 0 },
        { 2, "a", 0, 1u << 20, NULL, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *yaml = many_routes(cases[i].routes, cases[i].regex);
        rdl_route_opts_t o = { .max_rules = cases[i].max_rules,
                               .max_regex_bytes = cases[i].max_regex_bytes };
        rdl_route_table_t *t = NULL;
        rdl_error_t err;
        int rc = rdl_route_load_string(&o, "limits.yaml", yaml, strlen(yaml), &t, &err);
        print_message("case %zu: rc %d %s\n", i, rc, rc ? err.msg : "");
        if (!cases[i].why) {
            assert_int_equal(rc, 0);
            rdl_route_table_unref(t);
        } else {
            char msg[1400];
            assert_int_equal(rc, RDL_EINVAL);
            assert_null(t);
            rdl_error_format(&err, msg, sizeof(msg));
            assert_non_null(strstr(msg, cases[i].why));
            assert_non_null(strstr(msg, "limits.yaml:"));
            if (cases[i].line)
                assert_int_equal(err.line, cases[i].line);
        }
        free(yaml);
    }
    /* the file size: refused before it is read */
    FILE *f = fopen(routes_path, "w");
    assert_non_null(f);
    char *yaml = many_routes(10, "a");
    fputs(yaml, f);
    fclose(f);
    free(yaml);
    rdl_route_opts_t o = { .max_file_bytes = 64 };
    rdl_route_table_t *t = NULL;
    rdl_error_t err;
    assert_int_equal(rdl_route_load_file(&o, routes_path, &t, &err), RDL_EINVAL);
    assert_string_equal(err.file, routes_path);
    assert_non_null(strstr(err.msg, "limit of 64 bytes"));

    /* in a server, with the default limit: refused, named in /debug/routes, the rules stay */
    write_rules("blue", "10ms");
    start_with(5000, true, 0);
    f = fopen(routes_path, "w");
    yaml = many_routes(3334, "a");
    fputs(yaml, f);
    fclose(f);
    free(yaml);
    assert_int_equal(rdl_server_reload_routes(srv, &err), RDL_EINVAL);
    assert_non_null(strstr(err.msg, "more than 10000 rules"));
    char resp[8192];
    assert_true(get_at(rdl_server_admin_addr(srv), "/debug/routes", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "the limit is routes.max_rules"));
    assert_true(get("/x", resp, sizeof(resp)));
    assert_non_null(strstr(resp, "x-color: blue"));
    stop();
}

static int setup(void **state)
{
    snprintf(routes_path, sizeof(routes_path), "/tmp/rdl-routes-%d.yaml", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    unlink(routes_path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reload_under_load),
        cmocka_unit_test(faults),
        cmocka_unit_test(probes_answer_during_slow_reload),
        cmocka_unit_test(sigterm_during_slow_sighup_reload),
        cmocka_unit_test(fifo_in_place_is_refused_at_once),
        cmocka_unit_test(limits_refuse_with_the_limit_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
