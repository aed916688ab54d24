/*
 * client.c: outbound HTTP on the caller's libuv loop. It exists because a
 * handler on an I/O thread must not block: libcurl's multi interface is
 * driven by the loop (curl tells us which sockets to watch and when to call
 * it back; uv_poll and uv_timer do the watching), so an outbound call costs
 * no thread and its answer comes back on the thread that asked.
 *
 * Each upstream has its own curl multi handle per loop, so each has its own
 * keep-alive pool (CURLMOPT_MAXCONNECTS = pool.size) and DNS cache, and a
 * slow upstream's connections never crowd out another's. A call goes through
 * breaker -> bulkhead -> retry -> HTTP: every attempt asks the breaker (so it
 * sees each retry and can trip), holds a bulkhead slot while on the wire,
 * and takes its timeout from what is left of the request's deadline and of
 * the call's total timeout. A call may narrow the upstream's retry policy to
 * its own (a route's attempts and retryOn): the budget and the idempotency
 * rule still hold.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "redline/client.h"
#include "client/internal.h"

#define RESP_MAX (4u << 20)     /* response bodies larger than this fail the call */

typedef struct cl_pool cl_pool_t;
typedef struct cl_call cl_call_t;

/* A group of warm-up requests reporting once. */
typedef struct cl_warm {
    int pending;
    int first_err;
    int first_status;
    uint64_t start_ns;
    rdl_upstream_t *up;
    rdl_call_done_fn done;
    void *arg;
} cl_warm_t;

struct cl_call {
    cl_call_t *next, *prev;     /* in-flight list of the client, or free list */
    rdl_client_t *c;
    cl_pool_t *pool;
    rdl_upstream_t *up;
    rdl_ctx_t *ctx;
    CURL *easy;
    struct curl_slist *headers;
    uv_timer_t backoff;
    bool timer_init;
    bool on_wire;               /* added to the multi */
    bool in_backoff;
    bool idempotent;
    bool have_permit;
    rdl_breaker_permit_t permit;
    char method[16];
    rdl_buf_t url;
    rdl_buf_t body;
    const char *content_type;
    uint64_t per_try_ms;        /* asked for (0 = the upstream's) */
    uint64_t timeout_ms;        /* of the attempt on the wire */
    uint64_t total_end_ns;      /* the call's own total timeout ends here; 0 = none */
    uint32_t max_attempts;      /* 0 = the upstream's */
    rdl_retry_on_t retry_on;    /* nothing set = the upstream's kinds */
    rdl_buf_t resp;
    uint32_t attempts;
    uint64_t start_ns, attempt_ns;
    cl_warm_t *warm;
    rdl_call_done_fn done;
    void *arg;
};

typedef struct cl_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    cl_pool_t *pool;
    struct cl_sock *next, *prev;
} cl_sock_t;

struct cl_pool {
    rdl_client_t *c;
    rdl_upstream_t *up;
    CURLM *multi;
    uv_timer_t timer;
    cl_sock_t *socks;
};

struct rdl_client {
    uv_loop_t *loop;
    rdl_upstreams_t *ups;
    cl_pool_t *pools;           /* one per declared upstream, same index */
    int npools;
    cl_call_t *active;          /* calls started and not finished */
    cl_call_t *free_calls;
    int handles_open;           /* uv handles not yet closed; the struct goes at 0 */
    bool closing;
    rdl_client_stats_t stats;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- handles and their lifetime ------------------------------------------- */

static void client_maybe_free(rdl_client_t *c)
{
    if (!c->closing || c->handles_open > 0)
        return;
    free(c->pools);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    rdl_client_t *c = h->data;
    c->handles_open--;
    client_maybe_free(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    cl_sock_t *s = (cl_sock_t *)h;
    rdl_client_t *c = s->pool->c;
    free(s);
    c->handles_open--;
    client_maybe_free(c);
}

static void on_call_timer_closed(uv_handle_t *h)
{
    cl_call_t *call = h->data;
    rdl_client_t *c = call->c;
    free(call);
    c->handles_open--;
    client_maybe_free(c);
}

/* ---- libcurl <-> libuv -------------------------------------------------- */

static void check_done(cl_pool_t *p);

static void on_poll(uv_poll_t *h, int status, int events)
{
    cl_sock_t *s = (cl_sock_t *)h;
    int flags = 0, running = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    cl_pool_t *p = s->pool;
    curl_multi_socket_action(p->multi, s->fd, flags, &running);
    check_done(p);
}

static void sock_close(cl_sock_t *s)
{
    cl_pool_t *p = s->pool;
    if (s->prev)
        s->prev->next = s->next;
    else
        p->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    cl_pool_t *p = userp;
    cl_sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(p->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || uv_poll_init_socket(p->c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->pool = p;
        s->poll.data = p->c;
        s->next = p->socks;
        if (p->socks)
            p->socks->prev = s;
        p->socks = s;
        p->c->handles_open++;
        curl_multi_assign(p->multi, fd, s);
    }
    int events = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? UV_READABLE : 0) |
                 (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? UV_WRITABLE : 0);
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_curl_timer(uv_timer_t *t)
{
    cl_pool_t *p = t->data;
    int running = 0;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(p);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    cl_pool_t *p = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&p->timer);
    else
        uv_timer_start(&p->timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- client ------------------------------------------------------------- */

int rdl_client_new(uv_loop_t *loop, rdl_upstreams_t *ups, rdl_client_t **out)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return RDL_EIO;
    rdl_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return RDL_ENOMEM;
    c->loop = loop;
    c->ups = ups;
    c->npools = rdl_upstreams_count(ups);
    c->pools = calloc((size_t)(c->npools ? c->npools : 1), sizeof(*c->pools));
    if (!c->pools) {
        free(c);
        return RDL_ENOMEM;
    }
    for (int i = 0; i < c->npools; i++) {
        cl_pool_t *p = &c->pools[i];
        p->c = c;
        p->up = rdl_upstreams_at(ups, i);
        p->multi = curl_multi_init();
        if (!p->multi) {
            c->npools = i;
            rdl_client_free(c);
            return RDL_EIO;
        }
        uv_timer_init(loop, &p->timer);
        p->timer.data = p;
        c->handles_open++;
        curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
        curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
        curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, (long)p->up->opts.pool_size);
    }
    *out = c;
    return 0;
}

static cl_pool_t *pool_of(rdl_client_t *c, const rdl_upstream_t *up)
{
    for (int i = 0; i < c->npools; i++)
        if (c->pools[i].up == up)
            return &c->pools[i];
    return NULL;
}

void rdl_client_stats(const rdl_client_t *c, rdl_client_stats_t *out)
{
    *out = c->stats;
}

/* ---- calls ---------------------------------------------------------------- */

static cl_call_t *call_get(rdl_client_t *c)
{
    cl_call_t *call = c->free_calls;
    if (call) {
        c->free_calls = call->next;
    } else {
        call = calloc(1, sizeof(*call));
        if (!call)
            return NULL;
        call->c = c;
        rdl_buf_init(&call->url);
        rdl_buf_init(&call->body);
        rdl_buf_init(&call->resp);
    }
    call->next = c->active;
    call->prev = NULL;
    if (c->active)
        c->active->prev = call;
    c->active = call;
    return call;
}

/* Takes the call off the in-flight list (its result buffers stay valid). */
static void call_unlink(cl_call_t *call)
{
    rdl_client_t *c = call->c;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->active = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
}

/* Recycles an unlinked call. */
static void call_put(cl_call_t *call)
{
    rdl_client_t *c = call->c;
    if (call->headers)
        curl_slist_free_all(call->headers);
    call->headers = NULL;
    rdl_buf_reset(&call->url);
    rdl_buf_reset(&call->body);
    rdl_buf_reset(&call->resp);
    call->next = c->free_calls;
    c->free_calls = call;
}

static void add_header(void *h, const char *name, const char *value)
{
    cl_call_t *call = h;
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n <= 0 || (size_t)n >= sizeof(line))
        return;
    struct curl_slist *l = curl_slist_append(call->headers, line);
    if (l)
        call->headers = l;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    cl_call_t *call = arg;
    size_t len = size * n;
    if (call->resp.len + len > RESP_MAX)
        return 0;               /* curl fails the transfer with CURLE_WRITE_ERROR */
    rdl_buf_put(&call->resp, data, len);
    return call->resp.oom ? 0 : len;
}

static int outcome_of(CURLcode rc, long status, const rdl_ctx_t *ctx)
{
    if (rc == CURLE_OK)
        return rdl_outcome_of_status((int)status);
    if (ctx && rdl_ctx_canceled(ctx))
        return RDL_OUTCOME_CANCELED;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return RDL_OUTCOME_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return RDL_OUTCOME_CONNECT;
    default:
        return RDL_OUTCOME_OTHER;
    }
}

static int err_of(int kind)
{
    switch (kind) {
    case RDL_OUTCOME_TIMEOUT: return RDL_ETIMEDOUT;
    case RDL_OUTCOME_CANCELED: return RDL_ECANCELED;
    case RDL_OUTCOME_CONNECT:
    case RDL_OUTCOME_OTHER: return RDL_EIO;
    default: return 0;
    }
}

/* Reports the call's result and recycles it. */
static void finish(cl_call_t *call, int err, int status, int kind, bool breaker_open)
{
    rdl_client_t *c = call->c;
    rdl_call_result_t r = {
        .err = err, .status = status, .kind = kind, .breaker_open = breaker_open,
        .attempts = call->attempts, .duration_ns = rdl_now_ns() - call->start_ns,
        .body = call->resp.len ? call->resp.data : "", .body_len = call->resp.len,
        .upstream = call->up->name,
    };
    if (breaker_open)
        r.retry_after_ns = rdl_breaker_retry_after_ns(call->up->breaker);
    if (err && err != RDL_ECANCELED)
        c->stats.errors++;
    rdl_call_done_fn done = call->done;
    void *arg = call->arg;
    cl_warm_t *warm = call->warm;
    call->done = NULL;
    call_unlink(call);          /* done may start calls; the body stays valid until it returns */
    if (!warm) {
        done(&r, arg);
        call_put(call);
        return;
    }
    call_put(call);
    if (err == 0)
        c->stats.connections_warmed++;
    if (err && !warm->first_err)
        warm->first_err = err;
    if (--warm->pending > 0)
        return;
    r.err = warm->first_err;
    r.duration_ns = rdl_now_ns() - warm->start_ns;
    warm->done(&r, warm->arg);
    free(warm);
}

static int setup_easy(cl_call_t *call)
{
    if (!call->easy && !(call->easy = curl_easy_init()))
        return RDL_ENOMEM;
    CURL *e = call->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, call->url.data);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)call->up->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)call->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (strcmp(call->method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, call->method);
    if (strcmp(call->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (call->body.len || strcmp(call->method, "POST") == 0 || strcmp(call->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body.data ? call->body.data : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)call->body.len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    return 0;
}

static void attempt(cl_call_t *call);

/* Time left for the call: the earlier of the ctx deadline and its total timeout. */
static uint64_t remaining_ns(const cl_call_t *call)
{
    uint64_t left = call->ctx ? rdl_ctx_remaining_ns(call->ctx) : UINT64_MAX;
    if (call->total_end_ns) {
        uint64_t now = rdl_now_ns();
        uint64_t total = call->total_end_ns > now ? call->total_end_ns - now : 0;
        if (total < left)
            left = total;
    }
    return left;
}

/* The upstream's retry policy as this call narrows it (attempts, retryOn). */
static rdl_retry_policy_t call_policy(const cl_call_t *call, int kind, int status)
{
    rdl_retry_policy_t p = call->up->retry;
    if (call->max_attempts)
        p.max_attempts = call->max_attempts;
    if (rdl_retry_on_is_set(&call->retry_on))
        p.retry_kinds = rdl_retry_on_matches(&call->retry_on, kind, status) ? RDL_OUTCOME_BIT(kind) : 0;
    return p;
}

static void on_backoff(uv_timer_t *t)
{
    cl_call_t *call = t->data;
    call->in_backoff = false;
    attempt(call);
}

static void attempt_done(cl_call_t *call, CURLcode rc)
{
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    int kind = outcome_of(rc, status, call->ctx);
    uint64_t now = rdl_now_ns();
    if (call->warm) {
        finish(call, rc == CURLE_OK ? 0 : err_of(kind) ? err_of(kind) : RDL_EIO, (int)status, kind, false);
        return;
    }
    rdl_upstream_t *up = call->up;
    rdl_breaker_record(up->breaker, &call->permit, kind, now - call->attempt_ns);
    call->have_permit = false;
    rdl_bulkhead_release(up->bulkhead);
    if (kind != RDL_OUTCOME_OK && !call->c->closing) {
        rdl_retry_policy_t policy = call_policy(call, kind, (int)status);
        uint64_t backoff = rdl_retry_backoff_ns(&policy, call->attempts - 1, rdl_rand64());
        if (rdl_retry_should(&policy, &up->budget, call->attempts, kind, call->idempotent,
                             remaining_ns(call), backoff)) {
            call->c->stats.retries++;
            rdl_buf_reset(&call->resp);
            call->in_backoff = true;
            uv_timer_start(&call->backoff, on_backoff, (backoff + 999999) / 1000000, 0);
            return;
        }
    }
    finish(call, rc == CURLE_OK ? 0 : err_of(kind) ? err_of(kind) : RDL_EIO, (int)status, kind, false);
}

static void check_done(cl_pool_t *p)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        cl_call_t *call = NULL;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        curl_multi_remove_handle(p->multi, msg->easy_handle);
        call->on_wire = false;
        attempt_done(call, rc);
    }
}

/* The per-attempt timeout: the upstream's (or the call's), within the deadline and the total. */
static uint64_t attempt_timeout_ms(const cl_call_t *call, uint64_t want_ms)
{
    uint64_t left = remaining_ns(call);
    uint64_t left_ms = left == UINT64_MAX ? UINT64_MAX : (left + 999999) / 1000000;
    if (want_ms == 0 || left_ms < want_ms)
        want_ms = left_ms;
    return want_ms == UINT64_MAX ? 0 : want_ms;
}

/* One attempt: breaker, bulkhead, then the wire. Reports on refusal. */
static void attempt(cl_call_t *call)
{
    rdl_upstream_t *up = call->up;
    if (call->ctx && rdl_ctx_done(call->ctx)) {
        int kind = rdl_ctx_canceled(call->ctx) ? RDL_OUTCOME_CANCELED : RDL_OUTCOME_TIMEOUT;
        finish(call, err_of(kind), 0, kind, false);
        return;
    }
    if (call->total_end_ns && remaining_ns(call) == 0) {
        finish(call, RDL_ETIMEDOUT, 0, RDL_OUTCOME_TIMEOUT, false);
        return;
    }
    if (!call->warm) {
        if (rdl_breaker_acquire(up->breaker, &call->permit) != 0) {
            call->c->stats.rejected++;
            finish(call, RDL_EBUSY, 0, RDL_OUTCOME_OTHER, true);
            return;
        }
        if (rdl_bulkhead_try_acquire(up->bulkhead) != 0) {
            rdl_breaker_release(up->breaker, &call->permit);
            call->c->stats.rejected++;
            finish(call, RDL_EBUSY, 0, RDL_OUTCOME_OTHER, false);
            return;
        }
        call->have_permit = true;
    }
    call->attempts++;
    call->c->stats.attempts++;
    call->attempt_ns = rdl_now_ns();
    call->timeout_ms = attempt_timeout_ms(call, call->per_try_ms ? call->per_try_ms : up->opts.timeout_ms);
    int rc = setup_easy(call);
    if (rc == 0 && curl_multi_add_handle(call->pool->multi, call->easy) != CURLM_OK)
        rc = RDL_EIO;
    if (rc != 0) {
        if (call->have_permit) {
            rdl_breaker_release(up->breaker, &call->permit);
            rdl_bulkhead_release(up->bulkhead);
            call->have_permit = false;
        }
        finish(call, rc, 0, RDL_OUTCOME_OTHER, false);
        return;
    }
    call->on_wire = true;
}

/* Builds the call (URL, body copy, headers); NULL on no memory. */
static cl_call_t *call_new(rdl_client_t *c, cl_pool_t *p, rdl_ctx_t *ctx, const rdl_call_t *req,
                           rdl_call_done_fn done, void *arg)
{
    cl_call_t *call = call_get(c);
    if (!call)
        return NULL;
    if (!call->timer_init) {
        uv_timer_init(c->loop, &call->backoff);
        call->backoff.data = call;
        call->timer_init = true;
        c->handles_open++;
    }
    call->pool = p;
    call->up = p->up;
    call->ctx = ctx;
    call->done = done;
    call->arg = arg;
    call->warm = NULL;
    call->attempts = 0;
    call->have_permit = call->on_wire = call->in_backoff = false;
    call->start_ns = rdl_now_ns();
    snprintf(call->method, sizeof(call->method), "%s", req->method ? req->method : "GET");
    rdl_method_t m = rdl_method_parse(call->method, strlen(call->method));
    call->idempotent = req->idempotent < 0 ? rdl_method_idempotent(m) : req->idempotent != 0;
    call->per_try_ms = req->timeout_ms;
    call->total_end_ns = req->total_timeout_ms ? call->start_ns + req->total_timeout_ms * 1000000ull : 0;
    call->max_attempts = req->max_attempts;
    call->retry_on = req->retry_on;
    rdl_buf_puts(&call->url, rdl_upstream_base_url(p->up, ctx ? ctx->subset : NULL));
    rdl_buf_puts(&call->url, req->path ? req->path : "/");
    if (req->body && req->body_len)
        rdl_buf_put(&call->body, req->body, req->body_len);
    int ninj;
    const cl_injector_t *inj = rdl__client_injectors(c->ups, &ninj);
    for (int i = 0; i < ninj; i++)
        inj[i].fn(ctx, add_header, call, inj[i].arg);
    if (req->body && req->body_len)
        add_header(call, "Content-Type", req->content_type ? req->content_type : "application/json");
    add_header(call, "Expect", "");     /* no 100-continue round trip */
    if (call->url.oom || call->body.oom) {
        call->done = NULL;
        call_unlink(call);
        call_put(call);
        return NULL;
    }
    return call;
}

static void refuse_now(rdl_upstream_t *up, int err, rdl_call_done_fn done, void *arg)
{
    rdl_call_result_t r = { .err = err, .kind = RDL_OUTCOME_OTHER, .body = "", .upstream = up->name };
    done(&r, arg);
}

int rdl_client_call(rdl_client_t *c, rdl_upstream_t *up, rdl_ctx_t *ctx, const rdl_call_t *req,
                    rdl_call_done_fn done, void *arg)
{
    if (!c || !up || !req || !done)
        return RDL_EINVAL;
    cl_pool_t *p = pool_of(c, up);
    if (!p)
        return RDL_EINVAL;
    c->stats.calls++;
    if (!up->configured || c->closing) {
        refuse_now(up, up->configured ? RDL_ECANCELED : RDL_ENOENT, done, arg);
        return 0;
    }
    cl_call_t *call = call_new(c, p, ctx, req, done, arg);
    if (!call) {
        refuse_now(up, RDL_ENOMEM, done, arg);
        return 0;
    }
    rdl_retry_budget_deposit(&up->budget);
    attempt(call);
    return 0;
}

int rdl_client_warm(rdl_client_t *c, rdl_upstream_t *up, int n, uint64_t timeout_ms,
                    rdl_call_done_fn done, void *arg)
{
    cl_pool_t *p = c ? pool_of(c, up) : NULL;
    if (!p || !done || n < 0)
        return RDL_EINVAL;
    if (!up->configured || n == 0) {
        refuse_now(up, up->configured ? 0 : RDL_ENOENT, done, arg);
        return 0;
    }
    cl_warm_t *w = calloc(1, sizeof(*w));
    if (!w)
        return RDL_ENOMEM;
    *w = (cl_warm_t){ .pending = n, .up = up, .done = done, .arg = arg, .start_ns = rdl_now_ns() };
    rdl_call_t req = { .method = "GET", .path = up->opts.warm_path, .idempotent = 1,
                       .timeout_ms = timeout_ms };
    /* Every request is on the wire before any answer is read: n connections. */
    for (int i = 0; i < n; i++) {
        cl_call_t *call = call_new(c, p, NULL, &req, done, arg);
        if (!call) {
            w->first_err = w->first_err ? w->first_err : RDL_ENOMEM;
            if (--w->pending == 0) {
                refuse_now(up, w->first_err, done, arg);
                free(w);
                return 0;
            }
            continue;
        }
        call->warm = w;
        attempt(call);
    }
    return 0;
}

void rdl_client_free(rdl_client_t *c)
{
    if (!c)
        return;
    c->closing = true;
    /* End what is in flight: callers get RDL_ECANCELED and release their requests. */
    while (c->active) {
        cl_call_t *call = c->active;
        if (call->on_wire) {
            curl_multi_remove_handle(call->pool->multi, call->easy);
            call->on_wire = false;
        }
        if (call->in_backoff) {
            uv_timer_stop(&call->backoff);
            call->in_backoff = false;
        }
        if (call->have_permit) {
            rdl_breaker_release(call->up->breaker, &call->permit);
            rdl_bulkhead_release(call->up->bulkhead);
            call->have_permit = false;
        }
        finish(call, RDL_ECANCELED, 0, RDL_OUTCOME_CANCELED, false);
    }
    for (int i = 0; i < c->npools; i++) {
        cl_pool_t *p = &c->pools[i];
        curl_multi_cleanup(p->multi);
        p->multi = NULL;
        while (p->socks)
            sock_close(p->socks);
        p->timer.data = c;
        uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    }
    for (cl_call_t *call = c->free_calls, *next; call; call = next) {
        next = call->next;
        if (call->easy)
            curl_easy_cleanup(call->easy);
        rdl_buf_close(&call->url);
        rdl_buf_close(&call->body);
        rdl_buf_close(&call->resp);
        if (call->timer_init)
            uv_close((uv_handle_t *)&call->backoff, on_call_timer_closed);
        else
            free(call);
    }
    c->free_calls = NULL;
    client_maybe_free(c);
}
