/*
 * test_route_runtime.c: the coloring middleware inside a real server. Rules
 * reloaded again and again while two clients send requests: every request
 * sees one table whole (its color, its request header operation and its
 * response header operation agree), nothing races (the TSan run) and nothing
 * leaks (the ASan run); a refused file keeps the rules in use and says where;
 * a fault delay suspends the chain and resumes it, an abort answers, a delay
 * past the request deadline or a client gone during the delay is cleaned up.
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
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "redline/runtime.h"
#include "redline/metrics.h"

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

static void *run_main(void *arg)
{
    (void)arg;
    rdl_server_run(srv, NULL);
    return NULL;
}

static void start(uint64_t request_timeout_ms)
{
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    o.listen = "127.0.0.1:0";
    o.admin_listen = "";
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
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    assert_int_equal(rdl_server_route(srv, "GET", "/{rest...}", h_echo, NULL), 0);
    assert_int_equal(pthread_create(&run_tid, NULL, run_main, NULL), 0);
    for (int i = 0; i < 500 && !rdl_server_ready(srv); i++)
        usleep(10000);
    assert_true(rdl_server_ready(srv));
}

static void stop(void)
{
    rdl_server_shutdown(srv);
    pthread_join(run_tid, NULL);
    rdl_server_free(srv);
    srv = NULL;
}

static int dial(void)
{
    const char *addr = rdl_server_addr(srv);
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

/* One request with Connection: close; the whole response into out (NUL-terminated). */
static bool get(const char *path, char *out, size_t cap)
{
    int fd = dial();
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
