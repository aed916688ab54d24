/*
 * outbound.c: the runtime's side of outbound calls. It exists to apply the
 * checklist's rules to every call a handler makes, so handlers do not each
 * re-invent them:
 *   - a call runs on the request's own I/O thread (one rdl_client per thread)
 *     and answers there, holding the connection like a pool task does;
 *   - a strong dependency's failure fails the request fast (503 with
 *     Retry-After), a weak one's marks the response degraded
 *     (X-Redline-Degraded, counted) and the handler answers with its fallback;
 *   - the pod is not ready before its pools are warm: one start-up step per
 *     upstream resolves the host and opens pool.warm connections on every
 *     I/O thread; /readyz lists the steps still pending;
 *   - every breaker transition is logged; /debug/upstreams shows the state,
 *     calls by outcome, transitions and degraded responses of each upstream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redline/metrics.h"
#include "redline/route.h"
#include "redline/trace.h"
#include "runtime/internal.h"

#define WARM_TIMEOUT_MS 2000
#define RT_MAX_INJECTORS 6       /* the application's; the runtime's own come on top */
#define WARM_RETRY_MIN_MS 200
#define WARM_RETRY_MAX_MS 2000

typedef struct rt_outbound rt_outbound_t;

typedef struct ob_thread {
    rt_outbound_t *ob;
    int index;
    uv_loop_t *loop;
    rdl_client_t *client;
    uv_async_t wake;
    atomic_bool want_warm;      /* the warm-up step asks this thread to warm `warming` */
} ob_thread_t;

typedef struct ob_step {
    rt_outbound_t *ob;
    rdl_upstream_t *up;
    char name[64];              /* "upstream:<name>" for /readyz */
} ob_step_t;

/* The upstreams part's state: made at install, attached (ups set) by rdl_server_upstreams. */
struct rt_outbound {
    rdl_server_t *srv;
    rdl_upstreams_t *ups;
    ob_thread_t *threads;
    int nthreads;
    ob_step_t steps[RDL_UPSTREAMS_MAX];
    _Atomic uint64_t degraded[RDL_UPSTREAMS_MAX];
    /* warm-up rendezvous between the start-up thread and the I/O threads */
    uv_mutex_t mu;
    uv_cond_t cv;
    int started;                /* I/O threads whose client exists */
    rdl_upstream_t *warming;
    int warm_pending;
    int warm_err;
    int collector;              /* id in the default metrics registry; 0 = none */
    /* the application's outbound headers (rdl_server_add_injector), before or after attaching */
    rdl_inject_fn injectors[RT_MAX_INJECTORS];
    void *injector_args[RT_MAX_INJECTORS];
    int ninjectors;
};

/* srv's outbound state, or NULL: no upstreams attached (or the part not in its list). */
static rt_outbound_t *outbound_of(rdl_server_t *srv)
{
    rt_outbound_t *ob = rdl_server_part_state(srv, &rdl_part_upstreams);
    return ob && ob->ups ? ob : NULL;
}

static _Thread_local ob_thread_t *tl_thread;

/* ---- per-thread clients ----------------------------------------------------- */

static void on_warm_done(const rdl_call_result_t *res, void *arg)
{
    ob_thread_t *t = arg;
    rt_outbound_t *ob = t->ob;
    uv_mutex_lock(&ob->mu);
    if (res->err && !ob->warm_err)
        ob->warm_err = res->err;
    ob->warm_pending--;
    uv_cond_broadcast(&ob->cv);
    uv_mutex_unlock(&ob->mu);
}

static void on_wake(uv_async_t *a)
{
    ob_thread_t *t = a->data;
    rt_outbound_t *ob = t->ob;
    if (!atomic_exchange(&t->want_warm, false))
        return;
    uv_mutex_lock(&ob->mu);
    rdl_upstream_t *up = ob->warming;
    uv_mutex_unlock(&ob->mu);
    int rc = rdl_client_warm(t->client, up, (int)up->opts.warm_connections, WARM_TIMEOUT_MS,
                             on_warm_done, t);
    if (rc != 0) {
        rdl_call_result_t r = { .err = rc };
        on_warm_done(&r, t);
    }
}

static void thread_start(rdl_server_t *srv, int index, uv_loop_t *loop, void *arg)
{
    rt_outbound_t *ob = arg;
    ob_thread_t *t = &ob->threads[index];
    t->ob = ob;
    t->index = index;
    t->loop = loop;
    if (rdl_client_new(loop, ob->ups, &t->client) != 0)
        t->client = NULL;
    uv_async_init(loop, &t->wake, on_wake);
    t->wake.data = t;
    tl_thread = t;
    uv_mutex_lock(&ob->mu);
    ob->started++;
    uv_cond_broadcast(&ob->cv);
    uv_mutex_unlock(&ob->mu);
}

static void thread_stop(rdl_server_t *srv, int index, uv_loop_t *loop, void *arg)
{
    rt_outbound_t *ob = arg;
    ob_thread_t *t = &ob->threads[index];
    uv_mutex_lock(&ob->mu);
    ob->started--;
    uv_mutex_unlock(&ob->mu);
    rdl_client_free(t->client);     /* in-flight calls end: their requests are released */
    t->client = NULL;
    uv_close((uv_handle_t *)&t->wake, NULL);
    tl_thread = NULL;
}

/* ---- warm-up ------------------------------------------------------------------ */

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static bool stopping(const rt_outbound_t *ob)
{
    return atomic_load(&ob->srv->draining) || atomic_load(&ob->srv->shutdown_requested);
}

/* Opens the upstream's warm connections on every I/O thread: 0 or the first error. */
static int warm_threads(rt_outbound_t *ob, rdl_upstream_t *up)
{
    uv_mutex_lock(&ob->mu);
    while (ob->started < ob->nthreads && !stopping(ob))
        uv_cond_timedwait(&ob->cv, &ob->mu, 100 * 1000000ull);
    if (stopping(ob)) {
        uv_mutex_unlock(&ob->mu);
        return RDL_ECANCELED;
    }
    ob->warming = up;
    ob->warm_pending = ob->nthreads;
    ob->warm_err = 0;
    uv_mutex_unlock(&ob->mu);
    for (int i = 0; i < ob->nthreads; i++) {
        atomic_store(&ob->threads[i].want_warm, true);
        uv_async_send(&ob->threads[i].wake);
    }
    uv_mutex_lock(&ob->mu);
    /* The clients' own timeouts bound this; a stopping thread answers RDL_ECANCELED. */
    while (ob->warm_pending > 0 && !stopping(ob))
        uv_cond_timedwait(&ob->cv, &ob->mu, 100 * 1000000ull);
    int rc = ob->warm_pending > 0 ? RDL_ECANCELED : ob->warm_err;
    uv_mutex_unlock(&ob->mu);
    return rc;
}

static int warm_once(rt_outbound_t *ob, rdl_upstream_t *up, char *why, size_t whylen)
{
    rdl_error_t err;
    rdl_error_clear(&err);
    if (rdl_upstream_resolve(up, &err) != 0) {
        snprintf(why, whylen, "%s", err.msg);
        return err.code;
    }
    int rc = warm_threads(ob, up);
    if (rc) {
        rdl_buf_t url;          /* the line is logged: a URL's user:password is not */
        rdl_buf_init(&url);
        const char *u = up->opts.url ? up->opts.url : "";
        rdl_redact_put(&url, u, strlen(u));
        snprintf(why, whylen, "warm-up requests to %s%s failed: %s", url.data ? url.data : "",
                 up->opts.warm_path, rdl_strerror(rc));
        rdl_buf_close(&url);
    }
    return rc;
}

static int warm_step(rdl_server_t *srv, void *arg)
{
    ob_step_t *s = arg;
    rt_outbound_t *ob = s->ob;
    uint64_t wait = WARM_RETRY_MIN_MS;
    char why[512];
    for (;;) {
        int rc = warm_once(ob, s->up, why, sizeof(why));
        if (rc == 0) {
            rdl_log_field_t f[] = { rdl_lf_str("upstream", s->up->name),
                                    rdl_lf_int("connections", s->up->opts.warm_connections *
                                                              ob->nthreads) };
            rdl_log(srv->log, RDL_LOG_INFO, "upstream warm", f, 2);
            return 0;
        }
        if (stopping(ob))
            return 1;
        rdl_log_field_t f[] = { rdl_lf_str("upstream", s->up->name), rdl_lf_str("error", why) };
        if (s->up->role == RDL_UPSTREAM_WEAK) {
            rdl_log(srv->log, RDL_LOG_WARN,
                    "weak upstream not warm; serving degraded until it answers", f, 2);
            return 0;
        }
        rdl_log(srv->log, RDL_LOG_WARN, "strong upstream not warm; not ready, retrying", f, 2);
        for (uint64_t slept = 0; slept < wait && !stopping(ob); slept += 50)
            sleep_ms(50);
        wait = wait * 2 > WARM_RETRY_MAX_MS ? WARM_RETRY_MAX_MS : wait * 2;
    }
}

/* ---- breaker transitions, request id ------------------------------------------ */

static void on_transition(rdl_breaker_t *b, int from, int to, void *arg)
{
    rt_outbound_t *ob = arg;
    char change[48];
    snprintf(change, sizeof(change), "%s->%s", rdl_breaker_state_name(from),
             rdl_breaker_state_name(to));
    rdl_log_field_t f[] = { rdl_lf_str("upstream", rdl_breaker_name(b)),
                            rdl_lf_str("transition", change) };
    rdl_log(ob->srv->log, to == RDL_BREAKER_OPEN ? RDL_LOG_WARN : RDL_LOG_INFO,
            "circuit breaker transition", f, 2);
}

static void inject_request_id(const rdl_ctx_t *ctx, rdl_header_add_fn add, void *h, void *arg)
{
    if (ctx && ctx->request_id[0])
        add(h, "X-Request-Id", ctx->request_id);
}

/* The header sink of one outbound request, as a trace carrier. */
typedef struct carrier {
    rdl_header_add_fn add;
    void *h;
} carrier_t;

static void carrier_set(void *arg, const char *name, const char *value)
{
    carrier_t *c = arg;
    c->add(c->h, name, value);
}

/*
 * Trace context (traceparent/tracestate, b3 as configured) of the call's
 * CLIENT span, and the request's baggage, with the server's propagators.
 */
static void inject_trace(const rdl_ctx_t *ctx, rdl_header_add_fn add, void *h, void *arg)
{
    carrier_t c = { add, h };
    if (ctx && ctx->span)
        rdl__rt_trace_inject(arg, ctx->span, ctx->baggage, carrier_set, &c);
}

/* The request's color: x-redline-color, and redline.color in baggage unless it came in it. */
static void inject_color(const rdl_ctx_t *ctx, rdl_header_add_fn add, void *h, void *arg)
{
    if (!ctx || !ctx->color)
        return;
    add(h, RDL_ROUTE_COLOR_HEADER, ctx->color);
    if (ctx->baggage && rdl_baggage_get(ctx->baggage, RDL_ROUTE_BAGGAGE_KEY))
        return;
    char member[192];
    if (rdl_route_baggage_member(ctx, member, sizeof(member)) > 0)
        add(h, "baggage", member);          /* W3C allows several baggage headers */
}

/* ---- /debug/upstreams ---------------------------------------------------------- */

static void debug_upstreams(rdl_req_t *req, void *arg)
{
    rt_outbound_t *ob = arg;
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_puts(&b, "{\"upstreams\":[");
    for (int i = 0; i < rdl_upstreams_count(ob->ups); i++) {
        rdl_upstream_t *up = rdl_upstreams_at(ob->ups, i);
        if (i)
            rdl_buf_putc(&b, ',');
        rdl_buf_puts(&b, "{\"name\":");
        rdl_json_str(&b, up->name, strlen(up->name));
        rdl_buf_printf(&b, ",\"role\":\"%s\",\"configured\":%s",
                       up->role == RDL_UPSTREAM_WEAK ? "weak" : "strong",
                       up->configured ? "true" : "false");
        rdl_buf_printf(&b, ",\"degraded\":%llu",
                       (unsigned long long)atomic_load(&ob->degraded[i]));
        if (!up->configured) {
            rdl_buf_putc(&b, '}');
            continue;
        }
        rdl_breaker_stats_t st;
        rdl_breaker_stats(up->breaker, &st);
        rdl_bulkhead_stats_t bs;
        rdl_bulkhead_stats(up->bulkhead, &bs);
        rdl_buf_printf(&b, ",\"state\":\"%s\",\"calls\":{\"successful\":%llu,\"failed\":%llu,"
                       "\"ignored\":%llu,\"not_permitted\":%llu,\"slow\":%llu},\"transitions\":{",
                       rdl_breaker_state_name(st.state), (unsigned long long)st.successful,
                       (unsigned long long)st.failed, (unsigned long long)st.ignored,
                       (unsigned long long)st.not_permitted, (unsigned long long)st.slow);
        for (int s = 0; s < RDL_BREAKER_STATE_COUNT; s++)
            rdl_buf_printf(&b, "%s\"%s\":%llu", s ? "," : "", rdl_breaker_state_name(s),
                           (unsigned long long)st.transitions[s]);
        rdl_buf_printf(&b, "},\"failure_rate\":%.2f,\"slow_rate\":%.2f,\"bulkhead\":{\"in_use\":%lld,"
                       "\"max\":%lld,\"rejected\":%llu},\"retry_budget_exhausted\":%llu}",
                       st.failure_rate, st.slow_rate, (long long)bs.in_use,
                       (long long)bs.max_concurrent, (unsigned long long)bs.rejected,
                       (unsigned long long)atomic_load(&up->budget.exhausted));
    }
    rdl_buf_puts(&b, "]}\n");
    rdl_resp_send(req, 200, "application/json", b.data, b.len);
    rdl_buf_close(&b);
}

/* ---- metrics ----------------------------------------------------------------------
 * resilience4j's meters under redline_upstream_*: breaker state (one series
 * per state, 1 for the current one), calls by outcome kind, slow calls,
 * transitions by target state, degraded responses, failure and slow-call
 * rates, bulkhead use, retries refused by the budget. Read at scrape time from
 * the breakers' own atomics, so the call path pays nothing for them.
 */
/* One labelled value per configured upstream, from a per-upstream array. */
static void collect_each(rdl_collect_t *c, rt_outbound_t *ob, const double *vals)
{
    static const char *const names[] = { "upstream" };
    for (int i = 0; i < rdl_upstreams_count(ob->ups); i++) {
        rdl_upstream_t *up = rdl_upstreams_at(ob->ups, i);
        if (up->configured)
            rdl_collect_value(c, names, (const char *const[]){ up->name }, 1, vals[i]);
    }
}

/* Per configured upstream, one value for each of n label values (state, kind). */
static void collect_by(rdl_collect_t *c, rt_outbound_t *ob, const char *label,
                       const char *const *label_values, int n, const double (*vals)[8])
{
    const char *const names[] = { "upstream", label };
    for (int i = 0; i < rdl_upstreams_count(ob->ups); i++) {
        rdl_upstream_t *up = rdl_upstreams_at(ob->ups, i);
        for (int k = 0; up->configured && k < n; k++)
            rdl_collect_value(c, names, (const char *const[]){ up->name, label_values[k] }, 2,
                              vals[i][k]);
    }
}

static void collect(rdl_collect_t *c, void *arg)
{
    rt_outbound_t *ob = arg;
    static const char *const kinds[] = { "successful", "failed", "ignored", "not_permitted" };
    const char *states[RDL_BREAKER_STATE_COUNT];
    double state[RDL_UPSTREAMS_MAX][8] = { { 0 } }, calls[RDL_UPSTREAMS_MAX][8] = { { 0 } };
    double trans[RDL_UPSTREAMS_MAX][8] = { { 0 } };
    double slow[RDL_UPSTREAMS_MAX] = { 0 }, frate[RDL_UPSTREAMS_MAX] = { 0 };
    double srate[RDL_UPSTREAMS_MAX] = { 0 }, inuse[RDL_UPSTREAMS_MAX] = { 0 };
    double exhausted[RDL_UPSTREAMS_MAX] = { 0 }, degraded[RDL_UPSTREAMS_MAX] = { 0 };
    for (int s = 0; s < RDL_BREAKER_STATE_COUNT; s++)
        states[s] = rdl_breaker_state_name(s);
    for (int i = 0; i < rdl_upstreams_count(ob->ups); i++) {
        rdl_upstream_t *up = rdl_upstreams_at(ob->ups, i);
        degraded[i] = (double)atomic_load(&ob->degraded[i]);
        if (!up->configured)
            continue;
        rdl_breaker_stats_t st;
        rdl_bulkhead_stats_t bs;
        rdl_breaker_stats(up->breaker, &st);
        rdl_bulkhead_stats(up->bulkhead, &bs);
        for (int s = 0; s < RDL_BREAKER_STATE_COUNT; s++) {
            state[i][s] = st.state == s ? 1 : 0;
            trans[i][s] = (double)st.transitions[s];
        }
        calls[i][0] = (double)st.successful;
        calls[i][1] = (double)st.failed;
        calls[i][2] = (double)st.ignored;
        calls[i][3] = (double)st.not_permitted;
        slow[i] = (double)st.slow;
        frate[i] = st.failure_rate;
        srate[i] = st.slow_rate;
        inuse[i] = (double)bs.in_use;
        exhausted[i] = (double)atomic_load(&up->budget.exhausted);
    }
    rdl_collect_family(c, RDL_METRIC_GAUGE, "redline_upstream_breaker_state",
                       "Circuit breaker state of each upstream: 1 for the current state.");
    collect_by(c, ob, "state", states, RDL_BREAKER_STATE_COUNT, state);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_upstream_calls_total",
                       "Outbound calls by outcome: successful, failed, ignored, not_permitted.");
    collect_by(c, ob, "kind", kinds, 4, calls);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_upstream_breaker_transitions_total",
                       "Circuit breaker transitions, by the state entered.");
    collect_by(c, ob, "state", states, RDL_BREAKER_STATE_COUNT, trans);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_upstream_slow_calls_total",
                       "Outbound calls at least breaker.slow_call long.");
    collect_each(c, ob, slow);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "redline_upstream_failure_rate",
                       "Failure rate (percent) in the breaker's window; -1 below minimum_calls.");
    collect_each(c, ob, frate);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "redline_upstream_slow_call_rate",
                       "Slow-call rate (percent) in the breaker's window; -1 below minimum_calls.");
    collect_each(c, ob, srate);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "redline_upstream_bulkhead_in_use",
                       "Outbound calls in flight, against bulkhead.max_concurrent.");
    collect_each(c, ob, inuse);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_upstream_retry_budget_exhausted_total",
                       "Retries refused because the retry budget was empty.");
    collect_each(c, ob, exhausted);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "redline_degraded_responses_total",
                       "Responses answered with a fallback because a weak upstream failed.");
    static const char *const names[] = { "upstream" };
    for (int i = 0; i < rdl_upstreams_count(ob->ups); i++)
        rdl_collect_value(c, names, (const char *const[]){ rdl_upstreams_at(ob->ups, i)->name },
                          1, degraded[i]);
}

/* ---- attaching ------------------------------------------------------------------- */

int rdl_server_upstreams(rdl_server_t *srv, rdl_upstreams_t *ups)
{
    rt_outbound_t *ob = rdl_server_part_state(srv, &rdl_part_upstreams);
    if (!ob)
        return RDL_ESTATE;      /* the application left the upstreams part out */
    if (!ups || ob->ups)
        return RDL_EINVAL;
    ob->nthreads = (int)srv->opts.threads;
    ob->threads = calloc((size_t)ob->nthreads, sizeof(*ob->threads));
    if (!ob->threads)
        return RDL_ENOMEM;
    ob->ups = ups;
    rdl_upstreams_on_change(ups, on_transition, ob);
    int rc = rdl_upstreams_add_injector(ups, inject_request_id, NULL);
    if (rc == 0)
        rc = rdl_upstreams_add_injector(ups, inject_trace, srv);
    if (rc == 0)
        rc = rdl_upstreams_add_injector(ups, inject_color, NULL);
    for (int i = 0; rc == 0 && i < ob->ninjectors; i++)
        rc = rdl_upstreams_add_injector(ups, ob->injectors[i], ob->injector_args[i]);
    if (rc == 0)
        rc = rdl_server_on_thread(srv, thread_start, thread_stop, ob);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "GET", "/debug/upstreams", debug_upstreams, ob);
    if (rc == 0) {
        int id = rdl_collector_add(NULL, collect, ob);
        rc = id < 0 ? id : 0;
        ob->collector = id > 0 ? id : 0;
    }
    for (int i = 0; rc == 0 && i < rdl_upstreams_count(ups); i++) {
        rdl_upstream_t *up = rdl_upstreams_at(ups, i);
        if (!up->configured)
            continue;
        ob_step_t *s = &ob->steps[i];
        s->ob = ob;
        s->up = up;
        snprintf(s->name, sizeof(s->name), "upstream:%s", up->name);
        rc = rdl_server_on_startup(srv, s->name, warm_step, s);
    }
    return rc;
}

int rdl_server_add_injector(rdl_server_t *srv, rdl_inject_fn fn, void *arg)
{
    rt_outbound_t *ob = rdl_server_part_state(srv, &rdl_part_upstreams);
    if (!fn)
        return RDL_EINVAL;
    if (!ob)
        return RDL_ESTATE;
    if (ob->ninjectors == RT_MAX_INJECTORS)
        return RDL_EBUSY;
    ob->injectors[ob->ninjectors] = fn;
    ob->injector_args[ob->ninjectors++] = arg;
    /* Already attached: the upstreams take it directly (clients read them per call). */
    return ob->ups ? rdl_upstreams_add_injector(ob->ups, fn, arg) : 0;
}

static int outbound_install(rdl_server_t *srv, void *opts, void **state)
{
    (void)opts;
    rt_outbound_t *ob = calloc(1, sizeof(*ob));
    if (!(*state = ob))
        return RDL_ENOMEM;
    ob->srv = srv;
    if (uv_mutex_init(&ob->mu) != 0) {
        free(ob);
        *state = NULL;
        return RDL_ENOMEM;
    }
    if (uv_cond_init(&ob->cv) != 0) {
        uv_mutex_destroy(&ob->mu);
        free(ob);
        *state = NULL;
        return RDL_ENOMEM;
    }
    return 0;
}

static void outbound_free(rdl_server_t *srv, void *state)
{
    rt_outbound_t *ob = state;
    (void)srv;
    if (!ob)
        return;
    if (ob->collector)
        rdl_collector_remove(NULL, ob->collector);
    uv_cond_destroy(&ob->cv);
    uv_mutex_destroy(&ob->mu);
    free(ob->threads);
    free(ob);
}

/* The rest happens in rdl_server_upstreams, which the application calls after rdl_server_new. */
const rdl_part_t rdl_part_upstreams = {
    .name = "upstreams",
    .install = outbound_install,
    .free = outbound_free,
};

/* ---- calls from handlers ---------------------------------------------------------- */

typedef struct ob_call {
    rdl_req_t *req;
    rdl_upstream_t *up;
    int index;                  /* of the upstream, for the degraded counter */
    rdl_req_call_fn done;
    void *arg;
    rdl_span_t *span;           /* CLIENT span of the call, child of the request's span */
    rdl_span_t *server;         /* the request's own span, restored before done runs */
} ob_call_t;

/* A CLIENT span named "METHOD upstream" (OpenTelemetry HTTP client conventions). */
static rdl_span_t *client_span(rdl_req_t *req, const rdl_upstream_t *up, const rdl_call_t *call)
{
    rdl_span_t *server = req->ctx.span;
    if (!server)
        return NULL;
    const char *method = call->method ? call->method : "GET";
    char name[96];
    snprintf(name, sizeof(name), "%s %s", method, up->name);
    rdl_span_t *s = rdl_span_start(NULL, name, RDL_SPAN_CLIENT, server);
    if (rdl_span_recording(s)) {
        rdl_span_set_str(s, "http.request.method", method, strlen(method));
        rdl_span_set_str(s, "server.address", up->host, strlen(up->host));
        rdl_span_set_int(s, "server.port", up->port);
        rdl_span_set_str(s, "redline.upstream", up->name, strlen(up->name));
        rdl_span_set_str(s, "redline.upstream.role", up->role == RDL_UPSTREAM_WEAK ? "weak" : "strong",
                         up->role == RDL_UPSTREAM_WEAK ? 4 : 6);
    }
    return s;
}

static void client_span_end(rdl_span_t *s, const rdl_call_result_t *res)
{
    if (!s)
        return;
    if (rdl_span_recording(s)) {
        if (res->status)
            rdl_span_set_int(s, "http.response.status_code", res->status);
        rdl_span_set_int(s, "redline.attempts", res->attempts);
        if (res->breaker_open)
            rdl_span_set_bool(s, "redline.breaker_open", true);
        if (rdl_call_failed(res)) {
            const char *type = res->err ? rdl_strerror(res->err) : rdl_outcome_name(res->kind);
            rdl_span_set_str(s, "error.type", type, strlen(type));
            rdl_span_set_status(s, RDL_STATUS_ERROR, NULL);
        }
    }
    rdl_span_end(s);
}

bool rdl_call_failed(const rdl_call_result_t *res)
{
    return res->err != 0 || res->kind == RDL_OUTCOME_HTTP_5XX || res->kind == RDL_OUTCOME_HTTP_429;
}

static int upstream_index(rt_outbound_t *ob, const char *name)
{
    for (int i = 0; i < rdl_upstreams_count(ob->ups); i++)
        if (strcmp(rdl_upstreams_at(ob->ups, i)->name, name) == 0)
            return i;
    return -1;
}

void rdl_req_degraded(rdl_req_t *req, const char *upstream)
{
    rt_outbound_t *ob = req->conn ? outbound_of(req->conn->t->srv) : NULL;
    int i = ob ? upstream_index(ob, upstream) : -1;
    if (i >= 0)
        atomic_fetch_add_explicit(&ob->degraded[i], 1, memory_order_relaxed);
    rdl_resp_header(req, "X-Redline-Degraded", upstream);
}

static void fail_strong(rdl_req_t *req, const rdl_call_result_t *res, const rdl_upstream_t *up)
{
    char msg[160], after[24];
    const char *why = res->breaker_open ? "circuit breaker open"
                      : res->err == RDL_EBUSY ? "too many calls in flight"
                      : res->err == RDL_ETIMEDOUT ? "timed out"
                      : res->err ? rdl_strerror(res->err) : "answered with an error";
    uint64_t secs = (res->retry_after_ns + 999999999ull) / 1000000000ull;
    snprintf(after, sizeof(after), "%llu", (unsigned long long)(secs ? secs : 1));
    snprintf(msg, sizeof(msg), "a required dependency (%s) is unavailable: %s; retry later",
             up->name, why);
    rdl_resp_header(req, "Retry-After", after);
    rdl_resp_error(req, 503, "upstream_unavailable", msg);
}

static void call_done(const rdl_call_result_t *res, void *arg)
{
    ob_call_t *oc = arg;
    rdl_req_t *req = oc->req;
    rt_conn_t *c = req->conn;
    bool was_in_process = c->in_process;
    req->offloaded = false;
    c->in_process = true;
    rdl_ctx_t *prev = rdl_ctx_set_current(&req->ctx);
    req->ctx.span = oc->server;     /* done may run inside rdl_req_call, while swapped */
    client_span_end(oc->span, res);
    oc->span = NULL;
    if (oc->up->configured && rdl_call_failed(res) && !req->answered) {
        if (oc->up->role == RDL_UPSTREAM_STRONG)
            fail_strong(req, res, oc->up);
        else
            rdl_req_degraded(req, oc->up->name);
    }
    oc->done(req, res, oc->arg);
    rdl_ctx_set_current(prev);
    c->in_process = was_in_process;
    c->refs--;
    if (!was_in_process)
        rdl__rt_conn_request_done(c);
}

/*
 * The call as the request's route shapes it (Istio: the route's timeout bounds
 * the whole exchange, retries.attempts counts retries after the first try,
 * perTryTimeout bounds each, retryOn names what is retried); fields the
 * handler set win. A retryOn naming only conditions redline cannot honour
 * retries nothing, as those conditions never arise on HTTP/1.1.
 */
static rdl_call_t routed_call(rdl_req_t *req, const rdl_call_t *call)
{
    rdl_call_t out = *call;
    const rdl_route_decision_t *d = rdl__rt_route_decision(req);
    if (!d)
        return out;
    if (!out.total_timeout_ms)
        out.total_timeout_ms = d->timeout_ms;
    if (!out.timeout_ms)
        out.timeout_ms = d->per_try_timeout_ms;
    if (!out.max_attempts && d->retry_attempts >= 0)
        out.max_attempts = (uint32_t)d->retry_attempts + 1;
    if (!rdl_retry_on_is_set(&out.retry_on) && d->retry_on) {
        out.retry_on = d->retry_conditions;     /* parsed when the rules loaded */
        if (!rdl_retry_on_is_set(&out.retry_on) && !call->max_attempts)
            out.max_attempts = 1;
    }
    return out;
}

int rdl_req_call(rdl_req_t *req, const char *name, const rdl_call_t *call, rdl_req_call_fn done,
                 void *arg)
{
    rt_conn_t *c = req->conn;
    ob_thread_t *t = tl_thread;
    if (!c || !call || !done)
        return RDL_EINVAL;
    rt_outbound_t *ob = outbound_of(c->t->srv);
    if (!ob || !t || !t->client || t->ob != ob)
        return RDL_ESTATE;
    int i = upstream_index(ob, name);
    if (i < 0)
        return RDL_ENOENT;
    if (req->answered || req->offloaded || c->closed)
        return RDL_ESTATE;
    ob_call_t *oc = rdl_arena_alloc(&req->ctx.arena, sizeof(*oc));
    if (!oc)
        return RDL_ENOMEM;
    *oc = (ob_call_t){ req, rdl_upstreams_at(ob->ups, i), i, done, arg, NULL, req->ctx.span };
    oc->span = client_span(req, oc->up, call);
    req->offloaded = true;          /* the exchange waits for the call, as for a pool task */
    c->refs++;
    /* The injectors run inside the call: they see the CLIENT span as the ctx's span. */
    rdl_span_t *server = req->ctx.span;
    if (oc->span)
        req->ctx.span = oc->span;
    rdl_call_t routed = routed_call(req, call);
    rdl_client_call(t->client, oc->up, &req->ctx, &routed, call_done, oc);
    req->ctx.span = server;
    return 0;
}
