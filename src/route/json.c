/*
 * json.c: the rules and one request's path through them, as JSON, for the
 * admin plane (GET /debug/routes, POST /debug/routes/explain). "Why did this
 * request go to canary?" must be answerable from the running process, with
 * the same matcher the request path uses, not a re-implementation.
 */
#include <string.h>
#include <jansson.h>
#include "route/route_internal.h"

static void str(rdl_buf_t *b, const char *s)
{
    if (s)
        rdl_json_str(b, s, strlen(s));
    else
        rdl_buf_puts(b, "null");
}

static void key(rdl_buf_t *b, const char *k, bool first)
{
    if (!first)
        rdl_buf_putc(b, ',');
    rdl_json_str(b, k, strlen(k));
    rdl_buf_putc(b, ':');
}

/* [fn(item 0), fn(item 1), ...] over n items of size bytes; arg is passed through. */
typedef void (*item_fn)(rdl_buf_t *b, const void *item, const void *arg);

static void array(rdl_buf_t *b, const void *items, size_t n, size_t size, item_fn fn,
                  const void *arg)
{
    rdl_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            rdl_buf_putc(b, ',');
        fn(b, (const char *)items + i * size, arg);
    }
    rdl_buf_putc(b, ']');
}

static void str_item(rdl_buf_t *b, const void *item, const void *arg)
{
    str(b, *(const char *const *)item);
}

/* secret: the value matched is a credential's (an Authorization header): not shown. */
static void strmatch(rdl_buf_t *b, const route_strmatch_t *m, bool secret)
{
    rdl_buf_putc(b, '{');
    key(b, rdl__route_sm_kind_name(m->kind), true);
    if (m->kind == SM_PRESENT)
        rdl_buf_puts(b, "true");
    else if (secret)
        str(b, RDL_REDACTED);
    else
        rdl_json_str(b, m->s, m->len);
    if (m->icase)
        rdl_buf_puts(b, ",\"ignoreUriCase\":true");
    rdl_buf_putc(b, '}');
}

static void cond(rdl_buf_t *b, const void *item, const void *arg)
{
    const route_cond_t *c = item;
    rdl_buf_putc(b, '{');
    key(b, "field", true);
    str(b, rdl__route_cond_kind_name(c->kind));
    if (c->name) {
        key(b, "name", false);
        str(b, c->name);
    }
    if (c->kind == C_PORT) {
        key(b, "port", false);
        rdl_buf_put_u64(b, c->port);
    } else {
        key(b, "match", false);
        strmatch(b, &c->m, c->name && rdl_secret_name(c->name, strlen(c->name)));
    }
    rdl_buf_putc(b, '}');
}

static void block(rdl_buf_t *b, const void *item, const void *arg)
{
    const route_block_t *blk = item;
    rdl_buf_putc(b, '{');
    key(b, "name", true);
    str(b, blk->name);
    key(b, "conditions", false);
    array(b, blk->conds, blk->nconds, sizeof(route_cond_t), cond, NULL);
    rdl_buf_putc(b, '}');
}

static void kvs(rdl_buf_t *b, const rdl_route_kv_t *kv, size_t n)
{
    rdl_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        key(b, kv[i].name, i == 0);
        str(b, rdl_secret_name(kv[i].name, strlen(kv[i].name)) ? RDL_REDACTED : kv[i].value);
    }
    rdl_buf_putc(b, '}');
}

static void ops(rdl_buf_t *b, const rdl_route_header_ops_t *o)
{
    rdl_buf_puts(b, "{\"set\":");
    kvs(b, o->set, o->nset);
    rdl_buf_puts(b, ",\"add\":");
    kvs(b, o->add, o->nadd);
    rdl_buf_puts(b, ",\"remove\":");
    array(b, o->remove, o->nremove, sizeof(char *), str_item, NULL);
    rdl_buf_putc(b, '}');
}

static void header_ops(rdl_buf_t *b, bool has_req, const rdl_route_header_ops_t *req,
                       bool has_resp, const rdl_route_header_ops_t *resp)
{
    if (!has_req && !has_resp)
        return;
    key(b, "headers", false);
    rdl_buf_putc(b, '{');
    key(b, "request", true);
    if (has_req)
        ops(b, req);
    else
        rdl_buf_puts(b, "null");
    key(b, "response", false);
    if (has_resp)
        ops(b, resp);
    else
        rdl_buf_puts(b, "null");
    rdl_buf_putc(b, '}');
}

/* One destination; arg is its route (for its share of the weights). */
static void dest(rdl_buf_t *b, const void *item, const void *arg)
{
    const route_dest_t *d = item;
    const route_http_t *r = arg;
    rdl_buf_putc(b, '{');
    key(b, "host", true);
    str(b, d->host);
    key(b, "subset", false);
    str(b, d->subset);
    if (d->port) {
        key(b, "port", false);
        rdl_buf_put_u64(b, d->port);
    }
    key(b, "weight", false);
    rdl_buf_put_u64(b, d->weight);
    key(b, "share", false);
    rdl_buf_printf(b, "%.6g", r->total_weight ? (double)d->weight / (double)r->total_weight : 0.0);
    header_ops(b, d->has_req, &d->req, d->has_resp, &d->resp);
    rdl_buf_putc(b, '}');
}

static void destinations(rdl_buf_t *b, const char *name, const route_http_t *r)
{
    key(b, name, false);
    array(b, r->dests, r->ndests, sizeof(route_dest_t), dest, r);
}

static void policy(rdl_buf_t *b, const route_http_t *r)
{
    if (r->timeout_ms) {
        key(b, "timeout_ms", false);
        rdl_buf_put_u64(b, r->timeout_ms);
    }
    if (r->attempts >= 0 || r->per_try_ms || r->retry_on) {
        key(b, "retries", false);
        rdl_buf_printf(b, "{\"attempts\":%d,\"per_try_timeout_ms\":%llu,\"retry_on\":",
                       r->attempts, (unsigned long long)r->per_try_ms);
        str(b, r->retry_on);
        rdl_buf_putc(b, '}');
    }
    if (r->delay_ms || r->abort_status) {
        key(b, "fault", false);
        rdl_buf_printf(b, "{\"delay_ms\":%llu,\"delay_percent\":%.6g,\"abort_status\":%d,"
                       "\"abort_percent\":%.6g}", (unsigned long long)r->delay_ms,
                       r->delay_ms ? r->delay_pct : 0.0, r->abort_status,
                       r->abort_status ? r->abort_pct : 0.0);
    }
}

static void http_route(rdl_buf_t *b, const void *item, const void *arg)
{
    const route_http_t *r = item;
    rdl_buf_putc(b, '{');
    key(b, "name", true);
    str(b, r->name);
    key(b, "match", false);
    array(b, r->blocks, r->nblocks, sizeof(route_block_t), block, NULL);
    destinations(b, "route", r);
    header_ops(b, r->has_req, &r->req, r->has_resp, &r->resp);
    policy(b, r);
    rdl_buf_putc(b, '}');
}

static void virtual_service(rdl_buf_t *b, const void *item, const void *arg)
{
    const route_vs_t *vs = item;
    rdl_buf_putc(b, '{');
    key(b, "name", true);
    str(b, vs->name);
    key(b, "namespace", false);
    str(b, vs->ns);
    key(b, "hosts", false);
    array(b, vs->hosts, vs->nhosts, sizeof(char *), str_item, NULL);
    key(b, "http", false);
    array(b, vs->routes, vs->nroutes, sizeof(route_http_t), http_route, NULL);
    rdl_buf_putc(b, '}');
}

static void destination_rule(rdl_buf_t *b, const void *item, const void *arg)
{
    const route_dr_t *dr = item;
    rdl_buf_puts(b, "{\"host\":");
    str(b, dr->host);
    key(b, "subsets", false);
    array(b, dr->subsets, dr->nsubsets, sizeof(char *), str_item, NULL);
    rdl_buf_putc(b, '}');
}

void rdl_route_dump(const rdl_route_table_t *t, rdl_buf_t *b)
{
    if (!t) {
        rdl_buf_puts(b, "{\"virtual_services\":[],\"destination_rules\":[]}");
        return;
    }
    rdl_buf_puts(b, "{\"bypass_header\":");
    str(b, t->bypass_len ? t->bypass : NULL);
    key(b, "sticky_header", false);
    str(b, t->sticky_len ? t->sticky : NULL);
    key(b, "virtual_services", false);
    array(b, t->vs, t->nvs, sizeof(route_vs_t), virtual_service, NULL);
    key(b, "destination_rules", false);
    array(b, t->dr, t->ndr, sizeof(route_dr_t), destination_rule, NULL);
    rdl_buf_putc(b, '}');
}

/* ---- explain ------------------------------------------------------------- */

/* The request's value a condition looked at (null when absent). */
static void actual(rdl_buf_t *b, const route_cond_t *c, const rdl_route_request_t *req)
{
    const char *v = NULL;
    size_t len = 0;
    switch (c->kind) {
    case C_URI: v = req->path; len = req->path_len; break;
    case C_METHOD: v = req->method; len = req->method_len; break;
    case C_AUTHORITY: v = req->authority; len = req->authority_len; break;
    case C_SCHEME: v = req->scheme; len = req->scheme_len; break;
    case C_HEADER: case C_WITHOUT:
        v = req->header ? req->header(req->header_arg, c->name, &len) : NULL;
        break;
    default: break;
    }
    if (c->kind == C_QUERY || c->kind == C_PORT) {
        rdl_buf_puts(b, "\"(see the request)\"");
        return;
    }
    if (v && c->name && rdl_secret_name(c->name, strlen(c->name)))
        str(b, RDL_REDACTED);              /* a credential, even the caller's own */
    else if (v)
        rdl_json_str(b, v, len);
    else
        rdl_buf_puts(b, "null");
}

static void failed_cond(rdl_buf_t *b, const route_cond_t *c, const rdl_route_request_t *req)
{
    rdl_buf_puts(b, ",\"failed\":");
    cond(b, c, NULL);
    b->len--;                              /* reopen the object to add the request's value */
    rdl_buf_puts(b, ",\"actual\":");
    actual(b, c, req);
    rdl_buf_putc(b, '}');
}

/* One route tried; returns the index of the block that matched, -1 none, -2 no blocks. */
static int tried(rdl_buf_t *b, const route_http_t *r, size_t idx, route_eval_t *ev)
{
    const rdl_route_request_t *req = ev->req;
    int hit = r->nblocks == 0 ? -2 : -1;
    rdl_buf_printf(b, "{\"index\":%zu,\"route\":", idx);
    str(b, r->name);
    rdl_buf_puts(b, ",\"blocks\":[");
    for (size_t i = 0; i < r->nblocks && hit == -1; i++) {
        const route_cond_t *f = NULL;
        bool ok = rdl__route_block_match(&r->blocks[i], ev, &f);
        if (i)
            rdl_buf_putc(b, ',');
        rdl_buf_printf(b, "{\"index\":%zu,\"name\":", i);
        str(b, r->blocks[i].name);
        rdl_buf_printf(b, ",\"matched\":%s", ok ? "true" : "false");
        if (!ok && f)
            failed_cond(b, f, req);
        rdl_buf_putc(b, '}');
        if (ok)
            hit = (int)i;
    }
    rdl_buf_printf(b, "],\"matched\":%s", hit != -1 ? "true" : "false");
    if (hit == -2)
        rdl_buf_puts(b, ",\"why\":\"no match blocks: matches every request\"");
    rdl_buf_putc(b, '}');
    return hit;
}

static void chosen(rdl_buf_t *b, const rdl_route_table_t *t, const route_http_t *r,
                   const rdl_route_request_t *req)
{
    rdl_route_decision_t d;
    rdl_rand_t rng;
    rdl_rand_init(&rng, 1);             /* the same draw on every explain of the same request */
    memset(&d, 0, sizeof(d));
    key(b, "route", false);
    str(b, r->name);
    if (r->ndests > 0) {
        bool sticky = false;
        uint64_t draw = r->ndests > 1 ? rdl__route_draw(t, req, &rng, &sticky) : 0;
        const route_dest_t *dst = &r->dests[r->ndests > 1 ? rdl__route_pick(r, draw) : 0];
        key(b, "subset", false);
        str(b, dst->subset);
        key(b, "color", false);
        str(b, dst->subset ? dst->subset : "default");
        key(b, "choice", false);
        str(b, r->ndests == 1 ? "single destination" : sticky ? "sticky on the request's key"
               : "weighted random (this answer shows one draw)");
    }
    destinations(b, "destinations", r);
    header_ops(b, r->has_req, &r->req, r->has_resp, &r->resp);
    policy(b, r);
}

void rdl_route_explain(const rdl_route_table_t *t, const rdl_route_request_t *req, rdl_buf_t *b)
{
    if (!t || t->nvs == 0) {
        rdl_buf_puts(b, "{\"matched\":false,\"why\":\"no routing rules are loaded\"}");
        return;
    }
    const route_vs_t *vs = rdl__route_select_vs(t, req);
    rdl_buf_puts(b, "{\"virtual_service\":");
    str(b, vs->name);
    size_t len;
    bool bypass = t->bypass_len && req->header && req->header(req->header_arg, t->bypass, &len);
    rdl_buf_printf(b, ",\"bypassed\":%s", bypass ? "true" : "false");
    const route_http_t *hit = NULL;
    if (bypass) {
        rdl_buf_puts(b, ",\"why\":\"the bypass header forces the default route\"");
        hit = vs->default_route >= 0 ? &vs->routes[vs->default_route] : NULL;
    } else {
        route_eval_t ev;
        ev.req = req;
        ev.have = 0;
        rdl_buf_puts(b, ",\"tried\":[");
        for (size_t i = 0; i < vs->nroutes && !hit; i++) {
            if (i)
                rdl_buf_putc(b, ',');
            if (tried(b, &vs->routes[i], i, &ev) != -1)
                hit = &vs->routes[i];
        }
        rdl_buf_putc(b, ']');
    }
    rdl_buf_printf(b, ",\"matched\":%s", hit ? "true" : "false");
    if (hit)
        chosen(b, t, hit, req);
    else
        rdl_buf_puts(b, ",\"why\":\"no route matched: the request gets no decision\"");
    rdl_buf_putc(b, '}');
}

/* ---- a request described in JSON ---------------------------------------- */

/* Header lookup over the "headers" object: names compare without case. */
static const char *json_header(void *arg, const char *lname, size_t *len)
{
    json_t *headers = arg;
    const char *k;
    json_t *v;
    json_object_foreach(headers, k, v) {
        if (rdl_ascii_ieq(k, strlen(k), lname, strlen(lname))) {
            *len = json_string_length(v);
            return json_string_value(v);
        }
    }
    return NULL;
}

/* A string member, or dflt when absent; anything else is an error naming the member. */
static int member(json_t *o, const char *k, const char *dflt, const char **s, size_t *len,
                  rdl_error_t *err)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL) {
        *s = dflt;
        *len = strlen(dflt);
        return 0;
    }
    if (!json_is_string(v))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, k, "expected a string");
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int check_headers(json_t *h, rdl_error_t *err)
{
    const char *k;
    json_t *v;
    if (h == NULL)
        return 0;
    if (!json_is_object(h))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "headers",
                             "expected an object of header name to string value");
    json_object_foreach(h, k, v) {
        if (!json_is_string(v)) {
            char key[sizeof(err->key)];
            snprintf(key, sizeof(key), "headers.%s", k);
            return rdl_error_set(err, RDL_EINVAL, 0, 0, key, "expected a string value");
        }
    }
    return 0;
}

static int request_from_json(json_t *o, rdl_route_request_t *v, rdl_error_t *err)
{
    const char *uri = "/";                  /* set by member(); gcc -O3 cannot see it */
    size_t uri_len = 1;
    json_t *h = json_object_get(o, "headers");
    if (member(o, "method", "GET", &v->method, &v->method_len, err) ||
        member(o, "uri", "/", &uri, &uri_len, err) ||
        member(o, "path", uri, &v->path, &v->path_len, err) ||
        member(o, "query", "", &v->query, &v->query_len, err) ||
        member(o, "authority", "", &v->authority, &v->authority_len, err) ||
        member(o, "scheme", "http", &v->scheme, &v->scheme_len, err) || check_headers(h, err))
        return err->code;
    const char *q = memchr(v->path, '?', v->path_len);
    if (q) {                                /* "/a?b=1": the query is not part of the uri */
        v->query = q + 1;
        v->query_len = v->path_len - (size_t)(q - v->path) - 1;
        v->path_len = (size_t)(q - v->path);
    }
    v->header = h ? json_header : NULL;
    v->header_arg = h;
    return 0;
}

int rdl_route_explain_json(const rdl_route_table_t *t, const char *body, size_t len,
                           rdl_buf_t *json, rdl_error_t *err)
{
    rdl_error_t local;
    if (err == NULL)
        err = &local;
    rdl_error_clear(err);
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, 0, &je);
    if (o == NULL)
        return rdl_error_set(err, RDL_EINVAL, je.line, je.column, "",
                             "expected a JSON object (method, path, headers, ...): %s", je.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return rdl_error_set(err, RDL_EINVAL, 1, 1, "",
                             "expected a JSON object (method, path, headers, ...)");
    }
    rdl_route_request_t v;
    memset(&v, 0, sizeof(v));
    int rc = request_from_json(o, &v, err);
    if (rc == 0)
        rdl_route_explain(t, &v, json);
    json_decref(o);
    return rc;
}
