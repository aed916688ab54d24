/*
 * middleware.c: what a middleware may do to a request beyond what a handler
 * does, as public API, so that the runtime's own middlewares (trace,
 * coloring, RED metrics, access log) need nothing private: the request's
 * server, I/O thread and loop (per-thread state, timers that suspend the
 * chain), its authority and protocol version, and edits of the request
 * headers the handler will see.
 */
#include <string.h>
#include "runtime/internal.h"

rdl_server_t *rdl_req_server(const rdl_req_t *req)
{
    return req->conn->t->srv;
}

int rdl_req_thread(const rdl_req_t *req)
{
    const rt_thread_t *t = req->conn->t;
    return (int)(t - t->srv->threads);
}

uv_loop_t *rdl_req_loop(rdl_req_t *req)
{
    return &req->conn->t->loop;
}

const char *rdl_req_authority(const rdl_req_t *req, size_t *len)
{
    *len = req->h1->host ? req->h1->host_len : 0;
    return req->h1->host ? req->h1->host : "";
}

const char *rdl_req_http_version(const rdl_req_t *req)
{
    return req->h1->version_minor ? "1.1" : "1.0";
}

/* The edits work on the parsed header array in place: no copy of the head. */
int rdl_req_header_remove(rdl_req_t *req, const char *name)
{
    rdl_h1_request_t *h = req->h1;
    size_t n = strlen(name), o = 0;
    for (size_t i = 0; i < h->num_headers; i++)
        if (!rdl_ascii_ieq(h->headers[i].name, h->headers[i].name_len, name, n))
            h->headers[o++] = h->headers[i];
    h->num_headers = o;
    return 0;
}

int rdl_req_header_add(rdl_req_t *req, const char *name, const char *value)
{
    rdl_h1_request_t *h = req->h1;
    if (!name || !value)
        return RDL_EINVAL;
    if (h->num_headers >= (size_t)req->conn->t->srv->opts.max_headers)
        return RDL_EBUSY;           /* the limit holds for added headers too */
    rdl_h1_header_t *e = &h->headers[h->num_headers++];
    e->name = name;
    e->name_len = (uint32_t)strlen(name);
    e->value = value;
    e->value_len = (uint32_t)strlen(value);
    return 0;
}
