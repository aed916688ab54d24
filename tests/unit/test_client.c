/*
 * test_client.c: upstream declarations (keys, defaults, the --upstream flag,
 * a table of malformed settings each rejected with its key), subsets, names
 * found in a file, and calls on a real libuv loop: an unconfigured upstream,
 * a refused connection that the breaker counts and then refuses, retries
 * within the budget, a round trip to a one-shot HTTP server, Istio retryOn
 * parsing, and a call's own max_attempts, retry_on and total_timeout_ms
 * against a local peer that answers 503 or too slowly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <poll.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "redline/client.h"

static rdl_upstreams_t *declared(rdl_config_t **cfg)
{
    rdl_upstreams_t *ups;
    assert_int_equal(rdl_config_new(cfg), 0);
    assert_int_equal(rdl_upstreams_new(&ups), 0);
    assert_int_equal(rdl_upstreams_declare(ups, *cfg, "recommend", RDL_UPSTREAM_WEAK), 0);
    assert_int_equal(rdl_upstreams_declare(ups, *cfg, "payment", RDL_UPSTREAM_STRONG), 0);
    return ups;
}

static void test_declare(void **state)
{
    rdl_config_t *cfg;
    rdl_upstreams_t *ups = declared(&cfg);
    assert_int_equal(rdl_upstreams_declare(ups, cfg, "payment", RDL_UPSTREAM_WEAK), RDL_EEXIST);
    assert_int_equal(rdl_upstreams_declare(ups, cfg, "Bad Name", RDL_UPSTREAM_WEAK), RDL_EINVAL);
    assert_int_equal(rdl_upstreams_declare(ups, cfg, "", RDL_UPSTREAM_WEAK), RDL_EINVAL);
    assert_int_equal(rdl_upstreams_count(ups), 2);
    rdl_error_t err;
    rdl_error_clear(&err);
    const char *yaml = "upstreams:\n  payment:\n    url: http://127.0.0.1:1\n"
                       "    breaker:\n      minimum_calls: 3\n      window: time\n";
    assert_int_equal(rdl_config_load_string(cfg, "t.yaml", yaml, strlen(yaml), &err), 0);
    assert_int_equal(rdl_upstreams_set_flag(ups, cfg, "recommend=http://[::1]:8080/api", &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    rdl_upstream_t *p = rdl_upstreams_get(ups, "payment"), *r = rdl_upstreams_get(ups, "recommend");
    assert_true(p->configured && r->configured);
    assert_int_equal(p->role, RDL_UPSTREAM_STRONG);
    assert_int_equal(r->role, RDL_UPSTREAM_WEAK);
    assert_string_equal(p->host, "127.0.0.1");
    assert_int_equal(p->port, 1);
    assert_string_equal(r->host, "::1");
    assert_int_equal(r->port, 8080);
    assert_int_equal(p->opts.breaker_minimum_calls, 3);
    assert_int_equal(p->opts.timeout_ms, 2000);         /* a default */
    assert_null(rdl_upstreams_get(ups, "nope"));
    assert_int_equal(rdl_upstreams_set_flag(ups, cfg, "nope=http://x", &err), RDL_EINVAL);
    assert_non_null(strstr(err.msg, "recommend, payment"));
    assert_int_equal(rdl_upstreams_set_flag(ups, cfg, "payment", &err), RDL_EINVAL);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

static void test_malformed_settings(void **state)
{
    static const struct {
        const char *key, *value, *named;
    } bad[] = {
        { "upstreams.payment.url", "ftp://host", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://h:0", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://h:99999", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://h:80x/", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://[::1/", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://[]5::.x", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://[]:80", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://user@host", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://h:+80", "upstreams.payment.url" },
        { "upstreams.payment.url", "http://h o:80", "upstreams.payment.url" },
        { "upstreams.payment.subsets", "blue", "upstreams.payment.subsets" },
        { "upstreams.payment.subsets", "=http://h", "upstreams.payment.subsets" },
        { "upstreams.payment.subsets", "blue=gopher://h", "upstreams.payment.subsets" },
        { "upstreams.payment.pool.warm_path", "health", "upstreams.payment.pool.warm_path" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_config_t *cfg;
        rdl_upstreams_t *ups = declared(&cfg);
        rdl_error_t err;
        rdl_error_clear(&err);
        if (strcmp(bad[i].key, "upstreams.payment.url") != 0)
            assert_int_equal(rdl_config_set(cfg, "upstreams.payment.url", "http://h:1", &err), 0);
        assert_int_equal(rdl_config_set(cfg, bad[i].key, bad[i].value, &err), 0);
        if (rdl_upstreams_finish(ups, &err) != RDL_EINVAL)
            fail_msg("%s=%s accepted", bad[i].key, bad[i].value);
        if (!strstr(err.key, bad[i].named) || !strstr(err.msg, "expected"))
            fail_msg("%s=%s: error key '%s' msg '%s'", bad[i].key, bad[i].value, err.key, err.msg);
        rdl_config_free(cfg);
        rdl_upstreams_free(ups);
    }
    /* values the declared key itself refuses */
    rdl_config_t *cfg;
    rdl_upstreams_t *ups = declared(&cfg);
    rdl_error_t err;
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.breaker.failure_rate", "101", &err),
                     RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.retry.attempts", "0", &err), RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.timeouts.connect", "soon", &err),
                     RDL_EINVAL);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.colour", "x", &err), RDL_EINVAL);
    /* the words are ENUM keys: refused when set, with the words listed */
    static const struct { const char *key, *value, *words; } words[] = {
        { "upstreams.payment.role", "medium", "one of strong, weak" },
        { "upstreams.payment.breaker.window", "sliding", "one of count, time" },
        { "upstreams.payment.breaker.state", "open",
          "one of closed, disabled, metrics_only, forced_open" },
        { "upstreams.payment.breaker.state", "half_open", "forced_open" },
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        assert_int_equal(rdl_config_set(cfg, words[i].key, words[i].value, &err), RDL_EINVAL);
        assert_string_equal(err.key, words[i].key);
        if (!strstr(err.msg, words[i].words))
            fail_msg("%s=%s: '%s'", words[i].key, words[i].value, err.msg);
    }
    /* and parsed once into the enums the breaker takes (ASCII case ignored) */
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.url", "http://h:1", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.role", "Weak", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.breaker.window", "time", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.breaker.state", "forced_open", &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    rdl_upstream_t *p = rdl_upstreams_get(ups, "payment");
    assert_int_equal(p->role, RDL_UPSTREAM_WEAK);
    assert_int_equal(p->opts.breaker_window, RDL_WINDOW_TIME);
    assert_int_equal(rdl_breaker_state(p->breaker), RDL_BREAKER_FORCED_OPEN);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

static void test_subsets_and_unconfigured(void **state)
{
    rdl_config_t *cfg;
    rdl_upstreams_t *ups = declared(&cfg);
    rdl_error_t err;
    assert_int_equal(rdl_config_set(cfg, "upstreams.recommend.url", "http://main:80", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.recommend.subsets",
                                    "blue=http://b:81,green=http://g:82/v2", &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    rdl_upstream_t *r = rdl_upstreams_get(ups, "recommend");
    assert_int_equal(r->nsubsets, 2);
    assert_string_equal(rdl_upstream_base_url(r, "blue"), "http://b:81");
    assert_string_equal(rdl_upstream_base_url(r, "green"), "http://g:82/v2");
    assert_string_equal(rdl_upstream_base_url(r, "red"), "http://main:80");
    assert_string_equal(rdl_upstream_base_url(r, NULL), "http://main:80");
    assert_false(rdl_upstreams_get(ups, "payment")->configured);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

static void test_names_in_file(void **state)
{
    char path[] = "/tmp/test_client_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = "server:\n  threads: 1\nupstreams:\n  billing:\n    url: http://a\n"
                       "  ledger:\n    role: weak\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    char names[4][RDL_UPSTREAM_NAME_MAX];
    rdl_error_t err;
    assert_int_equal(rdl_upstreams_names_in_file(path, names, 4, &err), 2);
    assert_string_equal(names[0], "billing");
    assert_string_equal(names[1], "ledger");
    assert_int_equal(rdl_upstreams_names_in_file(path, names, 1, &err), RDL_EBUSY);
    unlink(path);
    assert_true(rdl_upstreams_names_in_file("/nonexistent/x.yaml", names, 4, &err) < 0);
}

/* text into a new file named from the template path. */
static void write_temp(char *path, const char *text)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

/* Only the upstreams section is read, with the configuration loader's checks. */
static void test_load_file_section(void **state)
{
    static const struct { const char *yaml; int rc, line, column; const char *key, *says; } cases[] = {
        { "server: {threads: 3, what: [1, {x: y}]}\nupstreams:\n  billing:\n    url: http://b:81\n"
          "    role: weak\n    breaker: {state: forced_open, window: time}\nlog: {level: x}\n",
          0, 0, 0, "", "" },
        { "upstreams:\n  billing:\n    url: http://b:81\n    rol: weak\n", RDL_EINVAL, 4, 5,
          "upstreams.billing.rol", "did you mean 'upstreams.billing.role'?" },
        { "upstreams:\n  billing:\n    breaker:\n      state: open\n", RDL_EINVAL, 4, 14,
          "upstreams.billing.breaker.state", "expected one of closed, disabled" },
        { "upstreams:\n  billing: {url: http://a}\n  billing: {url: http://b}\n", RDL_EINVAL, 3, 3,
          "upstreams.billing", "duplicate key" },
        { "other: [unclosed\nupstreams:\n  billing: {url: http://a}\n", RDL_EINVAL, 0, 0, "",
          "invalid YAML" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[] = "/tmp/test_client_XXXXXX";
        write_temp(path, cases[i].yaml);
        rdl_config_t *cfg;
        rdl_upstreams_t *ups;
        rdl_error_t err;
        assert_int_equal(rdl_config_new(&cfg), 0);
        assert_int_equal(rdl_upstreams_new(&ups), 0);
        assert_int_equal(rdl_upstreams_declare(ups, cfg, "billing", RDL_UPSTREAM_STRONG), 0);
        int rc = rdl_upstreams_load_file(cfg, path, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d (%s)", i, rc, err.msg);
        if (rc == 0) {
            assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
            rdl_upstream_t *b = rdl_upstreams_get(ups, "billing");
            assert_int_equal(b->role, RDL_UPSTREAM_WEAK);
            assert_int_equal(b->port, 81);
            assert_int_equal(rdl_breaker_state(b->breaker), RDL_BREAKER_FORCED_OPEN);
        } else {
            assert_string_equal(err.file, path);
            if (cases[i].line) {
                assert_int_equal(err.line, cases[i].line);
                assert_int_equal(err.column, cases[i].column);
            }
            if (!strstr(err.key, cases[i].key) || !strstr(err.msg, cases[i].says))
                fail_msg("case %zu: key '%s' msg '%s'", i, err.key, err.msg);
        }
        unlink(path);
        rdl_config_free(cfg);
        rdl_upstreams_free(ups);
    }
}

/* Malformed files are refused with the place named, before libfyaml sees the text. */
static void test_names_in_malformed_file(void **state)
{
    static const struct { const char *yaml; int line, column; const char *says; } cases[] = {
        { "upstreams:\n\tbilling: {url: http://a}\n", 2, 1, "tab" },
        { "upstreams:\n  billing: \x01\n", 2, 12, "" },
        { "upstreams:\n  billing: \xff\xfe\n", 2, 12, "UTF-8" },
        { "upstreams: [unclosed\n", 0, 0, "not valid YAML" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[] = "/tmp/test_client_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        size_t len = strlen(cases[i].yaml);
        assert_int_equal(write(fd, cases[i].yaml, len), (ssize_t)len);
        close(fd);
        char names[4][RDL_UPSTREAM_NAME_MAX];
        rdl_error_t err;
        memset(&err, 0, sizeof(err));
        assert_true(rdl_upstreams_names_in_file(path, names, 4, &err) < 0);
        assert_string_equal(err.file, path);
        if (cases[i].line) {
            assert_int_equal(err.line, cases[i].line);
            assert_int_equal(err.column, cases[i].column);
        }
        assert_non_null(strstr(err.msg, cases[i].says));
        unlink(path);
    }
}

/* ---- calls on a loop ------------------------------------------------------------ */

typedef struct got {
    int n;
    rdl_call_result_t last;
    char body[256];
} got_t;

static void on_done(const rdl_call_result_t *res, void *arg)
{
    got_t *g = arg;
    g->n++;
    g->last = *res;
    snprintf(g->body, sizeof(g->body), "%.*s", (int)res->body_len, res->body);
    g->last.body = g->body;
}

static void run_until(uv_loop_t *loop, const got_t *g, int n)
{
    uint64_t end = rdl_now_ns() + 10ull * 1000000000ull;
    while (g->n < n && rdl_now_ns() < end)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(g->n, n);
}

static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static void test_refused_then_breaker(void **state)
{
    rdl_config_t *cfg;
    rdl_upstreams_t *ups = declared(&cfg);
    rdl_error_t err;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", closed_port());
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.url", url, &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.breaker.window_size", "2", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.breaker.minimum_calls", "2", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.retry.attempts", "2", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.retry.base", "1ms", &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    rdl_client_t *c;
    assert_int_equal(rdl_client_new(&loop, ups, &c), 0);
    got_t g = { 0 };
    rdl_call_t get = { .method = "GET", .path = "/x", .idempotent = -1 };

    /* not configured: refused at once, synchronously */
    assert_int_equal(rdl_client_call(c, rdl_upstreams_get(ups, "recommend"), NULL, &get, on_done, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.last.err, RDL_ENOENT);

    /* refused connection, retried once (GET is idempotent): two failures open the breaker */
    rdl_upstream_t *p = rdl_upstreams_get(ups, "payment");
    assert_int_equal(rdl_client_call(c, p, NULL, &get, on_done, &g), 0);
    run_until(&loop, &g, 2);
    assert_int_equal(g.last.err, RDL_EIO);
    assert_int_equal(g.last.kind, RDL_OUTCOME_CONNECT);
    assert_int_equal(g.last.attempts, 2);
    assert_int_equal(rdl_breaker_state(p->breaker), RDL_BREAKER_OPEN);

    /* open: refused without an attempt, with the wait left */
    assert_int_equal(rdl_client_call(c, p, NULL, &get, on_done, &g), 0);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.last.err, RDL_EBUSY);
    assert_true(g.last.breaker_open);
    assert_int_equal(g.last.attempts, 0);
    assert_true(g.last.retry_after_ns > 0 && g.last.retry_after_ns <= 5000ull * 1000000ull);

    /* a POST is never retried */
    rdl_breaker_reset(p->breaker);
    rdl_call_t post = { .method = "POST", .path = "/x", .body = "{}", .body_len = 2, .idempotent = -1 };
    assert_int_equal(rdl_client_call(c, p, NULL, &post, on_done, &g), 0);
    run_until(&loop, &g, 4);
    assert_int_equal(g.last.attempts, 1);

    /* a ctx already past its deadline: no attempt */
    rdl_ctx_t ctx;
    rdl_ctx_init(&ctx, 1);
    while (!rdl_ctx_done(&ctx))
        ;
    rdl_breaker_reset(p->breaker);
    assert_int_equal(rdl_client_call(c, p, &ctx, &get, on_done, &g), 0);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.last.err, RDL_ETIMEDOUT);
    assert_int_equal(g.last.attempts, 0);
    rdl_ctx_close(&ctx);

    rdl_client_stats_t st;
    rdl_client_stats(c, &st);
    assert_int_equal(st.calls, 5);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.rejected, 1);
    rdl_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

/* A one-shot HTTP server: answers one request per connection, records what came. */
typedef struct server {
    int fd, port, conns;
    char seen[2048];
} server_t;

static void *serve(void *arg)
{
    server_t *s = arg;
    for (int i = 0; i < s->conns; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        size_t n = 0;
        while (n < sizeof(s->seen) - 1 && !strstr(s->seen, "\r\n\r\n{}")) {
            ssize_t r = read(c, s->seen + n, sizeof(s->seen) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            s->seen[n] = '\0';
        }
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        ssize_t w = write(c, resp, strlen(resp));
        (void)w;
        close(c);
    }
    return NULL;
}

static void inject(const rdl_ctx_t *ctx, rdl_header_add_fn add, void *h, void *arg)
{
    add(h, "X-Test", arg);
    if (ctx && ctx->color)
        add(h, "X-Redline-Color", ctx->color);
}

static void test_round_trip(void **state)
{
    server_t s = { .conns = 1 };
    s.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    listen(s.fd, 8);
    getsockname(s.fd, (struct sockaddr *)&a, &len);
    s.port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, serve, &s);

    rdl_config_t *cfg;
    rdl_upstreams_t *ups = declared(&cfg);
    rdl_error_t err;
    char url[96];
    snprintf(url, sizeof(url), "blue=http://127.0.0.1:%d/v2", s.port);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.url", "http://127.0.0.1:1", &err), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.subsets", url, &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    assert_int_equal(rdl_upstreams_add_injector(ups, inject, "yes"), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    rdl_client_t *c;
    assert_int_equal(rdl_client_new(&loop, ups, &c), 0);
    rdl_ctx_t ctx;
    rdl_ctx_init(&ctx, 5ull * 1000000000ull);
    ctx.subset = "blue";            /* routes to the subset's URL */
    ctx.color = "canary";
    got_t g = { 0 };
    rdl_call_t post = { .method = "POST", .path = "/pay", .body = "{}", .body_len = 2, .idempotent = -1 };
    assert_int_equal(rdl_client_call(c, rdl_upstreams_get(ups, "payment"), &ctx, &post, on_done, &g), 0);
    run_until(&loop, &g, 1);
    pthread_join(t, NULL);
    close(s.fd);
    assert_int_equal(g.last.err, 0);
    assert_int_equal(g.last.status, 200);
    assert_int_equal(g.last.kind, RDL_OUTCOME_OK);
    assert_string_equal(g.body, "hello");
    assert_non_null(strstr(s.seen, "POST /v2/pay HTTP/1.1\r\n"));
    assert_non_null(strstr(s.seen, "X-Test: yes\r\n"));
    assert_non_null(strstr(s.seen, "X-Redline-Color: canary\r\n"));
    assert_non_null(strstr(s.seen, "Content-Type: application/json\r\n"));
    assert_null(strstr(s.seen, "Expect:"));
    rdl_ctx_close(&ctx);
    rdl_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

/* ---- a route's retries and timeout ------------------------------------------------ */

/* The bits a list parses to; unknown receives the skipped conditions ("" when none). */
static uint32_t parse_bits(const char *list, char *unknown)
{
    rdl_retry_on_t r;
    rdl_error_t err;
    int rc = rdl_retry_on_parse(list, &r, &err);
    assert_int_equal(rc, err.code);
    assert_true(rc == 0 || (rc == RDL_EINVAL && strcmp(err.key, "retryOn") == 0));
    strcpy(unknown, rc == 0 ? "" : err.msg);
    return r.bits;
}

static void test_retry_on_parse(void **state)
{
    char unknown[sizeof(((rdl_error_t *)0)->msg)];
    rdl_retry_on_t r;
    rdl_error_t err;
    assert_int_equal(parse_bits(NULL, unknown), 0);
    assert_int_equal(parse_bits("", unknown), 0);
    assert_string_equal(unknown, "");
    assert_int_equal(parse_bits("5xx", unknown), RDL_RETRY_ON_5XX);
    assert_int_equal(parse_bits(" gateway-error , connect-failure,reset,retriable-4xx ", unknown),
                     RDL_RETRY_ON_GATEWAY_ERROR | RDL_RETRY_ON_CONNECT_FAILURE |
                     RDL_RETRY_ON_RESET | RDL_RETRY_ON_RETRIABLE_4XX);
    assert_string_equal(unknown, "");
    assert_int_equal(parse_bits("refused-stream,5xx,,unavailable,5xxx", unknown), RDL_RETRY_ON_5XX);
    assert_string_equal(unknown, "refused-stream,unavailable,5xxx");
    /* a list longer than err.msg is cut after the last condition that fits */
    char longlist[2048] = "";
    for (int i = 0; i < 100; i++)
        strcat(longlist, "refused-stream,");
    assert_int_equal(parse_bits(longlist, unknown), 0);
    assert_true(strlen(unknown) < sizeof(unknown) && strlen(unknown) > sizeof(unknown) - 16);
    assert_int_equal(strlen(unknown) % 15, 14);
    /* err may be NULL */
    assert_int_equal(rdl_retry_on_parse("cancelled,5xx", &r, NULL), RDL_EINVAL);
    assert_int_equal(r.bits, RDL_RETRY_ON_5XX);

    /* literal status codes (Istio's retriable status codes) */
    assert_int_equal(rdl_retry_on_parse("connect-failure, 503,retriable-status-codes,429", &r, &err), 0);
    assert_int_equal(r.bits, RDL_RETRY_ON_CONNECT_FAILURE);
    assert_int_equal(r.ncodes, 2);
    assert_int_equal(r.codes[0], 503);
    assert_int_equal(r.codes[1], 429);
    assert_true(rdl_retry_on_is_set(&r));
    assert_int_equal(rdl_retry_on_parse(
        "retriable-status-codes,600,99,5030,50a,1,500,501,502,503,504,505,506,507,508", &r, &err),
        RDL_EINVAL);
    assert_int_equal(r.ncodes, RDL_RETRY_ON_MAX_CODES);
    assert_string_equal(err.msg, "600,99,5030,50a,1,508");
    assert_int_equal(rdl_retry_on_parse("retriable-status-codes", &r, &err), RDL_EINVAL);
    assert_false(rdl_retry_on_is_set(&r));
    assert_string_equal(err.msg, "retriable-status-codes");

    /* Envoy's meaning of each condition */
    static const struct { uint32_t bits; uint16_t code; int kind, status; bool retried; } cases[] = {
        { RDL_RETRY_ON_5XX, 0, RDL_OUTCOME_HTTP_5XX, 500, true },
        { RDL_RETRY_ON_5XX, 0, RDL_OUTCOME_TIMEOUT, 0, true },
        { RDL_RETRY_ON_5XX, 0, RDL_OUTCOME_CONNECT, 0, true },
        { RDL_RETRY_ON_5XX, 0, RDL_OUTCOME_HTTP_429, 429, false },
        { RDL_RETRY_ON_5XX, 0, RDL_OUTCOME_CANCELED, 0, false },
        { RDL_RETRY_ON_GATEWAY_ERROR, 0, RDL_OUTCOME_HTTP_5XX, 503, true },
        { RDL_RETRY_ON_GATEWAY_ERROR, 0, RDL_OUTCOME_HTTP_5XX, 500, false },
        { RDL_RETRY_ON_GATEWAY_ERROR, 0, RDL_OUTCOME_OTHER, 0, true },
        { RDL_RETRY_ON_CONNECT_FAILURE, 0, RDL_OUTCOME_CONNECT, 0, true },
        { RDL_RETRY_ON_CONNECT_FAILURE, 0, RDL_OUTCOME_TIMEOUT, 0, false },
        { RDL_RETRY_ON_CONNECT_FAILURE, 0, RDL_OUTCOME_HTTP_5XX, 503, false },
        { RDL_RETRY_ON_RESET, 0, RDL_OUTCOME_OTHER, 0, true },
        { RDL_RETRY_ON_RESET, 0, RDL_OUTCOME_HTTP_5XX, 502, false },
        { RDL_RETRY_ON_RETRIABLE_4XX, 0, RDL_OUTCOME_HTTP_4XX, 409, true },
        { RDL_RETRY_ON_RETRIABLE_4XX, 0, RDL_OUTCOME_HTTP_4XX, 404, false },
        { 0, 0, RDL_OUTCOME_HTTP_5XX, 503, false },
        { 0, 503, RDL_OUTCOME_HTTP_5XX, 503, true },
        { 0, 503, RDL_OUTCOME_HTTP_5XX, 502, false },
        { 0, 429, RDL_OUTCOME_HTTP_429, 429, true },
        { 0, 404, RDL_OUTCOME_HTTP_4XX, 404, true },
        { 0, 503, RDL_OUTCOME_TIMEOUT, 0, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rdl_retry_on_t on = { .bits = cases[i].bits, .codes = { cases[i].code },
                              .ncodes = cases[i].code ? 1 : 0 };
        if (rdl_retry_on_matches(&on, cases[i].kind, cases[i].status) != cases[i].retried)
            fail_msg("case %zu: bits %u code %u kind %d status %d", i, cases[i].bits, cases[i].code,
                     cases[i].kind, cases[i].status);
    }
}

/*
 * A peer on its own thread: every connection gets one answer (Connection:
 * close), after delay_ms unless the client hangs up first. Counts requests.
 */
typedef struct peer {
    int fd, port;
    int status;
    int delay_ms;
    atomic_int requests;
    atomic_bool stop;
    pthread_t thread;
} peer_t;

static void peer_answer(peer_t *p, int c)
{
    char buf[2048];
    size_t n = 0;
    while (n < sizeof(buf) - 1) {
        ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            return;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    atomic_fetch_add(&p->requests, 1);
    struct pollfd pf = { .fd = c, .events = POLLIN };
    if (p->delay_ms && poll(&pf, 1, p->delay_ms) != 0)
        return;                     /* the client gave up (or sent more): no answer */
    char resp[160];
    int len = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n"
                       "Connection: close\r\n\r\nok", p->status);
    ssize_t w = send(c, resp, (size_t)len, MSG_NOSIGNAL);
    (void)w;
}

static void *peer_run(void *arg)
{
    peer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = { .fd = p->fd, .events = POLLIN };
        if (poll(&pf, 1, 20) <= 0)
            continue;
        int c = accept(p->fd, NULL, NULL);
        if (c < 0)
            continue;
        peer_answer(p, c);
        close(c);
    }
    return NULL;
}

static void peer_start(peer_t *p, int status, int delay_ms)
{
    p->status = status;
    p->delay_ms = delay_ms;
    atomic_init(&p->requests, 0);
    atomic_init(&p->stop, false);
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    assert_int_equal(bind(p->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(p->fd, 16), 0);
    getsockname(p->fd, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_run, p), 0);
}

static void peer_stop(peer_t *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->fd);
}

/* payment at the peer: 3 attempts by default, 1 ms backoff, no breaker, a large budget. */
static rdl_upstreams_t *at_peer(rdl_config_t **cfg, const peer_t *p)
{
    rdl_upstreams_t *ups = declared(cfg);
    rdl_error_t err;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", p->port);
    assert_int_equal(rdl_config_set(*cfg, "upstreams.payment.url", url, &err), 0);
    assert_int_equal(rdl_config_set(*cfg, "upstreams.payment.retry.attempts", "3", &err), 0);
    assert_int_equal(rdl_config_set(*cfg, "upstreams.payment.retry.base", "1ms", &err), 0);
    assert_int_equal(rdl_config_set(*cfg, "upstreams.payment.retry.min_per_sec", "1000", &err), 0);
    assert_int_equal(rdl_config_set(*cfg, "upstreams.payment.breaker.state", "disabled", &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    return ups;
}

static void test_max_attempts_and_retry_on(void **state)
{
    peer_t p;
    peer_start(&p, 503, 0);
    rdl_config_t *cfg;
    rdl_upstreams_t *ups = at_peer(&cfg, &p);
    rdl_upstream_t *up = rdl_upstreams_get(ups, "payment");
    uv_loop_t loop;
    uv_loop_init(&loop);
    rdl_client_t *c;
    assert_int_equal(rdl_client_new(&loop, ups, &c), 0);
    static const struct { uint32_t max_attempts, retry_on, attempts; uint16_t code; } cases[] = {
        { 0, 0, 3, 0 },                                  /* the upstream's policy */
        { 1, 0, 1, 0 },                                  /* Istio attempts: 0 */
        { 2, 0, 2, 0 },
        { 5, 0, 5, 0 },                                  /* more than the upstream's */
        { 4, RDL_RETRY_ON_GATEWAY_ERROR, 4, 0 },         /* 503 is a gateway error */
        { 4, RDL_RETRY_ON_5XX, 4, 0 },
        { 4, RDL_RETRY_ON_CONNECT_FAILURE, 1, 0 },       /* an answer is not a connect failure */
        { 4, RDL_RETRY_ON_RESET | RDL_RETRY_ON_RETRIABLE_4XX, 1, 0 },
        { 3, 0, 3, 503 },                               /* retryOn: "503" */
        { 3, 0, 1, 500 },                               /* retryOn: "500": not this answer */
    };
    got_t g = { 0 };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int before = atomic_load(&p.requests);
        rdl_call_t get = { .method = "GET", .path = "/x", .idempotent = -1,
                           .max_attempts = cases[i].max_attempts,
                           .retry_on = { .bits = cases[i].retry_on, .codes = { cases[i].code },
                                         .ncodes = cases[i].code ? 1 : 0 } };
        assert_int_equal(rdl_client_call(c, up, NULL, &get, on_done, &g), 0);
        run_until(&loop, &g, (int)i + 1);
        assert_int_equal(g.last.err, 0);
        assert_int_equal(g.last.status, 503);
        if (g.last.attempts != cases[i].attempts)
            fail_msg("case %zu: %u attempts, expected %u", i, g.last.attempts, cases[i].attempts);
        assert_int_equal(atomic_load(&p.requests) - before, (int)cases[i].attempts);
    }
    rdl_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    peer_stop(&p);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

static void test_total_timeout(void **state)
{
    peer_t p;
    peer_start(&p, 200, 5000);                          /* far slower than any timeout here */
    rdl_config_t *cfg;
    rdl_upstreams_t *ups = at_peer(&cfg, &p);
    rdl_upstream_t *up = rdl_upstreams_get(ups, "payment");
    uv_loop_t loop;
    uv_loop_init(&loop);
    rdl_client_t *c;
    assert_int_equal(rdl_client_new(&loop, ups, &c), 0);
    got_t g = { 0 };

    /* the upstream's 2 s per attempt is cut to the total: one attempt, no retry after it */
    rdl_call_t one = { .method = "GET", .path = "/x", .idempotent = -1, .total_timeout_ms = 150 };
    assert_int_equal(rdl_client_call(c, up, NULL, &one, on_done, &g), 0);
    run_until(&loop, &g, 1);
    assert_int_equal(g.last.err, RDL_ETIMEDOUT);
    assert_int_equal(g.last.kind, RDL_OUTCOME_TIMEOUT);
    assert_int_equal(g.last.attempts, 1);
    assert_true(g.last.duration_ns >= 140ull * 1000000ull);
    assert_true(g.last.duration_ns < 1500ull * 1000000ull);

    /* 100 ms tries within 250 ms in all: retried, but never past the total */
    rdl_call_t tries = { .method = "GET", .path = "/x", .idempotent = -1, .timeout_ms = 100,
                         .total_timeout_ms = 250, .max_attempts = 10 };
    assert_int_equal(rdl_client_call(c, up, NULL, &tries, on_done, &g), 0);
    run_until(&loop, &g, 2);
    assert_int_equal(g.last.err, RDL_ETIMEDOUT);
    assert_true(g.last.attempts >= 2 && g.last.attempts <= 3);
    assert_true(g.last.duration_ns >= 240ull * 1000000ull);
    assert_true(g.last.duration_ns < 1500ull * 1000000ull);

    /* a ctx deadline shorter than the total still wins */
    rdl_ctx_t ctx;
    rdl_ctx_init(&ctx, 100ull * 1000000ull);
    rdl_call_t longer = { .method = "GET", .path = "/x", .idempotent = -1,
                          .total_timeout_ms = 3000, .max_attempts = 1 };
    assert_int_equal(rdl_client_call(c, up, &ctx, &longer, on_done, &g), 0);
    run_until(&loop, &g, 3);
    assert_int_equal(g.last.err, RDL_ETIMEDOUT);
    assert_true(g.last.duration_ns < 1500ull * 1000000ull);
    rdl_ctx_close(&ctx);

    rdl_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    peer_stop(&p);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declare),
        cmocka_unit_test(test_malformed_settings),
        cmocka_unit_test(test_subsets_and_unconfigured),
        cmocka_unit_test(test_names_in_file),
        cmocka_unit_test(test_names_in_malformed_file),
        cmocka_unit_test(test_load_file_section),
        cmocka_unit_test(test_refused_then_breaker),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_retry_on_parse),
        cmocka_unit_test(test_max_attempts_and_retry_on),
        cmocka_unit_test(test_total_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
