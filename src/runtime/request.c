/*
 * request.c: what a handler sees of its request, and how it hands blocking
 * work to the pool.
 *
 * The accessors read the parsed head in place (the strings point into the
 * connection's buffer, which stays put while the request is with its handler)
 * and decode path parameters lazily into the request's arena. The offload
 * runs work on a pool worker and done back on the request's I/O thread,
 * holding a reference on the connection so it outlives a lost client; when
 * done has answered, the connection's state machine (conn.c) goes on.
 */
#include <string.h>
#include "runtime/internal.h"

/* ---- request accessors ----------------------------------------------- */

rdl_method_t rdl_req_method_id(const rdl_req_t *req)
{
    return req->h1 ? req->h1->method_id : RDL_METHOD_UNKNOWN;
}

const char *rdl_req_method(const rdl_req_t *req)
{
    return rdl_method_name(rdl_req_method_id(req));
}

const char *rdl_req_path(const rdl_req_t *req, size_t *len)
{
    *len = req->h1->path_len;
    return req->h1->path;
}

const char *rdl_req_query(const rdl_req_t *req, size_t *len)
{
    *len = req->h1->query ? req->h1->query_len : 0;
    return req->h1->query ? req->h1->query : "";
}

const char *rdl_req_route(const rdl_req_t *req)
{
    return rdl__rt_route_template(req->match.route);
}

/* Percent-decodes into the request arena; malformed escapes are kept as they are. */
static char *decode_param(rdl_ctx_t *ctx, const char *s, size_t n)
{
    char *out = rdl_arena_alloc(&ctx->arena, n + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = rdl_hex_value(s[i + 1])) >= 0 &&
            (lo = rdl_hex_value(s[i + 2])) >= 0) {
            out[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

const char *rdl_req_param(const rdl_req_t *req, const char *name)
{
    rdl_req_t *r = (rdl_req_t *)req;    /* decoding caches into the request */
    for (int i = 0; i < r->match.nparams; i++) {
        if (strcmp(r->match.names[i], name) != 0)
            continue;
        if (!r->params[i])
            r->params[i] = decode_param(&r->ctx, r->match.values[i], r->match.lens[i]);
        return r->params[i];
    }
    return NULL;
}

const char *rdl_req_header(const rdl_req_t *req, const char *name, size_t *len)
{
    const rdl_h1_header_t *h = rdl_h1_find(req->h1, name, strlen(name));
    if (!h)
        return NULL;
    if (len)
        *len = h->value_len;
    return h->value;
}

bool rdl_req_header_at(const rdl_req_t *req, size_t i, const char **name, size_t *name_len,
                       const char **value, size_t *value_len)
{
    if (i >= req->h1->num_headers)
        return false;
    const rdl_h1_header_t *h = &req->h1->headers[i];
    *name = h->name;
    *name_len = h->name_len;
    *value = h->value;
    *value_len = h->value_len;
    return true;
}

const char *rdl_req_body(const rdl_req_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body_len ? req->body : "";
}

rdl_ctx_t *rdl_req_ctx(rdl_req_t *req)
{
    return &req->ctx;
}

const char *rdl_req_peer(const rdl_req_t *req)
{
    return rdl__rt_conn_peer(req->conn);
}

void rdl_req_slot_set(rdl_req_t *req, int slot, void *p)
{
    if (slot >= 0 && slot < RDL_REQ_SLOTS)
        req->slots[slot] = p;
}

void *rdl_req_slot(const rdl_req_t *req, int slot)
{
    return slot >= 0 && slot < RDL_REQ_SLOTS ? req->slots[slot] : NULL;
}

int rdl_req_status(const rdl_req_t *req)
{
    return req->status;
}

uint64_t rdl_req_bytes_in(const rdl_req_t *req)
{
    return req->bytes_in;
}

uint64_t rdl_req_bytes_out(const rdl_req_t *req)
{
    return req->bytes_out;
}

bool rdl_req_answered(const rdl_req_t *req)
{
    return req->answered;
}

/* ---- offload to the pool --------------------------------------------- */

static void task_work(rdl_pool_task_t *task)
{
    rdl_req_t *req = task->data;
    req->work(req, req->work_arg);
}

static void task_done(rdl_pool_task_t *task, int status)
{
    rdl_req_t *req = task->data;
    rt_conn_t *c = req->conn;
    (void)status;      /* the pool outlives every connection, so work always ran */
    req->offloaded = false;
    c->in_process = true;
    rdl_ctx_t *prev = rdl_ctx_set_current(&req->ctx);
    req->done(req, req->work_arg);
    rdl_ctx_set_current(prev);
    c->in_process = false;
    c->refs--;
    rdl__rt_conn_request_done(c);
}

int rdl_req_offload(rdl_req_t *req, rdl_req_work_fn work, rdl_req_done_fn done, void *arg)
{
    rt_conn_t *c = req->conn;
    if (!c || !work || !done)
        return RDL_EINVAL;
    if (req->answered || req->offloaded || c->closed)
        return RDL_ESTATE;
    req->work = work;
    req->done = done;
    req->work_arg = arg;
    memset(&req->task, 0, sizeof(req->task));
    req->task.work = task_work;
    req->task.done = task_done;
    req->task.data = req;
    req->task.ctx = &req->ctx;
    int rc = rdl_pool_submit(c->t->srv->pool, &req->task, c->t->sink);
    if (rc == RDL_EBUSY) {
        rdl_resp_header(req, "Retry-After", "1");
        rdl_resp_error(req, 503, "overloaded", "the server's work queue is full; retry shortly");
        return RDL_EBUSY;               /* answered: the caller must not */
    }
    if (rc != 0)
        return RDL_ECANCELED;           /* pool or sink shutting down: the caller answers */
    req->offloaded = true;
    c->refs++;
    return 0;
}
