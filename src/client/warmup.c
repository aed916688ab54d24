/*
 * warmup.c: the cold-start checks run once, outside a server (an init
 * container's `redline warmup`). It exists so that a pod whose dependencies
 * cannot be reached fails before it is scheduled traffic, with a report that
 * names what failed, using the very client code the server will use.
 */
#include <string.h>

#include "redline/client.h"

typedef struct warm_wait {
    bool done;
    rdl_call_result_t res;
} warm_wait_t;

static void on_warm(const rdl_call_result_t *res, void *arg)
{
    warm_wait_t *w = arg;
    w->done = true;
    w->res = *res;
}

static void report_line(FILE *out, const rdl_upstream_t *up, bool ok, const char *detail,
                        uint64_t ms)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_puts(&b, "{\"check\":");
    char name[64];
    snprintf(name, sizeof(name), "upstream:%s", up->name);
    rdl_json_str(&b, name, strlen(name));
    rdl_buf_printf(&b, ",\"ok\":%s,\"url\":", ok ? "true" : "false");
    rdl_json_str(&b, up->opts.url, strlen(up->opts.url));
    rdl_buf_printf(&b, ",\"ms\":%llu,\"detail\":", (unsigned long long)ms);
    rdl_json_str(&b, detail, strlen(detail));
    rdl_buf_puts(&b, "}\n");
    fputs(b.data, out);
    fflush(out);
    rdl_buf_close(&b);
}

static bool check_one(rdl_client_t *c, uv_loop_t *loop, rdl_upstream_t *up, FILE *out)
{
    rdl_error_t err;
    rdl_error_clear(&err);
    uint64_t t0 = rdl_now_ns();
    if (rdl_upstream_resolve(up, &err) != 0) {
        report_line(out, up, false, err.msg, (rdl_now_ns() - t0) / 1000000);
        return false;
    }
    warm_wait_t w = { 0 };
    int n = up->opts.warm_connections > 0 ? (int)up->opts.warm_connections : 1;
    uint64_t timeout = up->opts.connect_timeout_ms + up->opts.timeout_ms;
    int rc = rdl_client_warm(c, up, n, timeout, on_warm, &w);
    while (rc == 0 && !w.done)
        uv_run(loop, UV_RUN_ONCE);
    char detail[160];
    int e = rc ? rc : w.res.err;
    if (e)
        snprintf(detail, sizeof(detail), "GET %s: %s", up->opts.warm_path, rdl_strerror(e));
    else
        snprintf(detail, sizeof(detail), "%d connections opened, last status %d", n, w.res.status);
    report_line(out, up, e == 0, detail, (rdl_now_ns() - t0) / 1000000);
    return e == 0;
}

int rdl_upstreams_warmup(rdl_upstreams_t *ups, FILE *report)
{
    uv_loop_t loop;
    rdl_client_t *c = NULL;
    int failed = 0;
    if (uv_loop_init(&loop) != 0)
        return rdl_upstreams_count(ups) ? rdl_upstreams_count(ups) : 1;
    if (rdl_client_new(&loop, ups, &c) != 0) {
        uv_loop_close(&loop);
        return rdl_upstreams_count(ups) ? rdl_upstreams_count(ups) : 1;
    }
    for (int i = 0; i < rdl_upstreams_count(ups); i++) {
        rdl_upstream_t *up = rdl_upstreams_at(ups, i);
        if (up->configured && !check_one(c, &loop, up, report))
            failed++;
    }
    rdl_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);      /* lets the client's handles close */
    uv_loop_close(&loop);
    return failed;
}
