/*
 * match.c: one request against the rules, with Istio's semantics.
 *
 * http[] in order, the first route with a matching block wins; blocks are
 * OR-ed, the conditions inside one AND-ed; a route without blocks matches
 * everything. The weighted pick maps a 64-bit draw onto the cumulative
 * relative weights; the draw is the sticky header's hash when one is
 * configured and present (so a user never flips between subsets while the
 * weights stay the same), else the next number of a per-thread generator.
 * Nothing here allocates or locks: decisions run on the I/O threads.
 */
#include <string.h>
#include "route/route_internal.h"

static bool sm_match(const route_strmatch_t *m, const char *s, size_t len)
{
    switch (m->kind) {
    case SM_EXACT:
        return len == m->len && (m->icase ? rdl_ascii_ieq(s, len, m->s, len)
                                          : memcmp(s, m->s, len) == 0);
    case SM_PREFIX:
        return len >= m->len && (m->icase ? rdl_ascii_ieq(s, m->len, m->s, m->len)
                                          : memcmp(s, m->s, m->len) == 0);
    case SM_REGEX:
        return rdl__route_re_match(m->re, &m->filter, s, len);
    default:
        return true;                       /* SM_PRESENT: the caller checked presence */
    }
}

/* The raw value of query parameter name, or NULL when absent ("?key" has value ""). */
static const char *query_param(const rdl_route_request_t *req, const char *name, size_t nlen,
                               size_t *vlen)
{
    const char *q = req->query, *end = q ? q + req->query_len : NULL;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            *vlen = eq ? (size_t)(stop - eq - 1) : 0;
            return eq ? eq + 1 : stop;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* The authority's port, or the scheme's default. */
static uint32_t request_port(const rdl_route_request_t *req)
{
    const char *a = req->authority;
    size_t n = a ? req->authority_len : 0;
    size_t i = n;
    while (i > 0 && a[i - 1] >= '0' && a[i - 1] <= '9')
        i--;
    if (i > 0 && i < n && a[i - 1] == ':') {
        uint32_t p = 0;
        for (size_t j = i; j < n && p < 100000; j++)
            p = p * 10 + (uint32_t)(a[j] - '0');
        return p;
    }
    return rdl_ascii_ieq(req->scheme, req->scheme_len, "https", 5) ? 443 : 80;
}

static const char *header(const rdl_route_request_t *req, const char *name, size_t *len)
{
    *len = 0;
    return req->header ? req->header(req->header_arg, name, len) : NULL;
}

/* A header's value through the evaluation's cache: one lookup per name per request. */
static const char *cached_header(route_eval_t *ev, const route_cond_t *c, size_t *len)
{
    if (c->hid < 0)
        return header(ev->req, c->name, len);
    uint64_t bit = 1ull << c->hid;
    if (!(ev->have & bit)) {
        ev->val[c->hid] = header(ev->req, c->name, &ev->len[c->hid]);
        ev->have |= bit;
    }
    *len = ev->len[c->hid];
    return ev->val[c->hid];
}

static bool cond_match(const route_cond_t *c, route_eval_t *ev)
{
    const rdl_route_request_t *req = ev->req;
    const char *v;
    size_t len = 0;
    switch (c->kind) {
    case C_URI:
        return sm_match(&c->m, req->path ? req->path : "", req->path_len);
    case C_METHOD:
        return sm_match(&c->m, req->method ? req->method : "", req->method_len);
    case C_AUTHORITY:
        return sm_match(&c->m, req->authority ? req->authority : "", req->authority_len);
    case C_SCHEME:
        return sm_match(&c->m, req->scheme ? req->scheme : "", req->scheme_len);
    case C_HEADER:
        v = cached_header(ev, c, &len);
        return v && sm_match(&c->m, v, len);
    case C_WITHOUT:
        v = cached_header(ev, c, &len);
        return !v || !sm_match(&c->m, v, len);
    case C_QUERY:
        v = query_param(req, c->name, c->name_len, &len);
        return v && sm_match(&c->m, v, len);
    case C_PORT:
        return request_port(req) == c->port;
    default:
        return false;
    }
}

bool rdl__route_block_match(const route_block_t *b, route_eval_t *ev, const route_cond_t **failed)
{
    for (size_t i = 0; i < b->nconds; i++) {
        if (!cond_match(&b->conds[i], ev)) {
            if (failed)
                *failed = &b->conds[i];
            return false;
        }
    }
    if (failed)
        *failed = NULL;
    return true;
}

/* ---- which VirtualService ------------------------------------------------ */

static bool host_matches(const char *h, const char *a, size_t n)
{
    size_t hl = strlen(h);
    if (hl == 1 && h[0] == '*')
        return true;
    if (hl > 1 && h[0] == '*' && h[1] == '.')
        return n > hl - 1 && rdl_ascii_ieq(a + n - (hl - 1), hl - 1, h + 1, hl - 1);
    if (rdl_ascii_ieq(h, hl, a, n))
        return true;
    /* short names: "checkout" and "checkout.shop.svc.cluster.local" name the same service */
    const char *hd = strchr(h, '.');
    const char *ad = memchr(a, '.', n);
    size_t hfirst = hd ? (size_t)(hd - h) : hl, afirst = ad ? (size_t)(ad - a) : n;
    return (!hd || !ad) && rdl_ascii_ieq(h, hfirst, a, afirst);
}

const route_vs_t *rdl__route_select_vs(const rdl_route_table_t *t, const rdl_route_request_t *req)
{
    if (t->nvs == 1)
        return &t->vs[0];
    const char *a = req->authority ? req->authority : "";
    size_t n = req->authority_len;
    if (n > 0 && a[0] == '[') {            /* [v6]:port */
        const char *close = memchr(a, ']', n);
        n = close ? (size_t)(close - a) + 1 : n;
    } else {
        const char *colon = memchr(a, ':', n);
        n = colon ? (size_t)(colon - a) : n;
    }
    for (size_t i = 0; i < t->nvs; i++)
        for (size_t j = 0; j < t->vs[i].nhosts; j++)
            if (host_matches(t->vs[i].hosts[j], a, n))
                return &t->vs[i];
    return &t->vs[0];
}

/* ---- weighted choice ----------------------------------------------------- */

/* The next draw of a decision: from its own sequence, or the calling thread's (NULL). */
static uint64_t next_random(rdl_rand_t *rng)
{
    return rng ? rdl_rand_next(rng) : rdl_rand64();
}

/* FNV-1a then a 64-bit finalizer: stable across processes, releases and machines. */
static uint64_t sticky_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

uint64_t rdl__route_draw(const rdl_route_table_t *t, const rdl_route_request_t *req, rdl_rand_t *rng,
                    bool *sticky)
{
    *sticky = false;
    if (t->sticky_len) {
        size_t len;
        const char *v = header(req, t->sticky, &len);
        if (v) {
            *sticky = true;
            return sticky_hash(v, len);
        }
    }
    return next_random(rng);
}

size_t rdl__route_pick(const route_http_t *r, uint64_t draw)
{
    uint64_t x = (uint64_t)(((unsigned __int128)draw * r->total_weight) >> 64);
    uint64_t acc = 0;
    for (size_t i = 0; i < r->ndests; i++) {
        acc += r->dests[i].weight;
        if (x < acc)
            return i;
    }
    return r->ndests - 1;
}

static bool roll(double pct, rdl_rand_t *rng)
{
    if (pct >= 100.0)
        return true;
    if (pct <= 0.0)
        return false;
    return rdl_rand_unit(next_random(rng)) * 100.0 < pct;
}

/* ---- decisions ----------------------------------------------------------- */

/* Sets every field of out (no memset on the request path: it showed in profiles). */
static void fill(const rdl_route_table_t *t, const route_vs_t *vs, size_t idx,
                 const route_block_t *b, const rdl_route_request_t *req, rdl_rand_t *rng,
                 bool bypassed, rdl_route_decision_t *out)
{
    const route_http_t *r = &vs->routes[idx];
    const route_dest_t *dst = NULL;
    if (r->ndests > 0) {
        bool sticky;
        dst = &r->dests[r->ndests == 1 ? 0 : rdl__route_pick(r, rdl__route_draw(t, req, rng, &sticky))];
    }
    out->virtual_service = vs->name;
    out->route_name = r->name;
    out->match_name = b ? b->name : NULL;
    out->host = dst ? dst->host : NULL;
    out->subset = dst ? dst->subset : NULL;
    out->color = dst && dst->subset ? dst->subset : "default";
    out->port = dst ? dst->port : 0;
    out->route_index = (int)idx;
    out->bypassed = bypassed;
    out->delay_ms = !bypassed && r->delay_ms && roll(r->delay_pct, rng) ? r->delay_ms : 0;
    out->abort_status = !bypassed && r->abort_status && roll(r->abort_pct, rng) ? r->abort_status : 0;
    out->timeout_ms = r->timeout_ms;
    out->retry_attempts = r->attempts;
    out->per_try_timeout_ms = r->per_try_ms;
    out->retry_on = r->retry_on;
    out->retry_conditions = r->retry_conditions;
    out->request_ops[0] = r->has_req ? &r->req : NULL;
    out->response_ops[0] = r->has_resp ? &r->resp : NULL;
    out->request_ops[1] = dst && dst->has_req ? &dst->req : NULL;
    out->response_ops[1] = dst && dst->has_resp ? &dst->resp : NULL;
}

static bool decide(const rdl_route_table_t *t, const rdl_route_request_t *req, rdl_rand_t *rng,
                   rdl_route_decision_t *out)
{
    if (!t || !req || t->nvs == 0)
        goto none;
    const route_vs_t *vs = rdl__route_select_vs(t, req);
    if (t->bypass_len) {
        size_t len;
        if (header(req, t->bypass, &len)) {
            if (vs->default_route < 0)
                goto none;
            fill(t, vs, (size_t)vs->default_route, NULL, req, rng, true, out);
            return true;
        }
    }
    route_eval_t ev;
    ev.req = req;
    ev.have = 0;
    for (size_t i = 0; i < vs->nroutes; i++) {
        const route_http_t *r = &vs->routes[i];
        if (r->nblocks == 0) {
            fill(t, vs, i, NULL, req, rng, false, out);
            return true;
        }
        for (size_t j = 0; j < r->nblocks; j++) {
            if (rdl__route_block_match(&r->blocks[j], &ev, NULL)) {
                fill(t, vs, i, &r->blocks[j], req, rng, false, out);
                return true;
            }
        }
    }
none:
    memset(out, 0, sizeof(*out));
    return false;
}

bool rdl_route_decide(const rdl_route_table_t *t, const rdl_route_request_t *req, uint64_t *seed,
                      rdl_route_decision_t *out)
{
    if (!seed)
        return decide(t, req, NULL, out);
    rdl_rand_t rng;
    rdl_rand_init(&rng, *seed);
    bool hit = decide(t, req, &rng, out);
    *seed = rdl_rand_next(&rng);        /* the next call draws another sequence */
    return hit;
}

size_t rdl_route_baggage_member(const rdl_ctx_t *ctx, char *out, size_t n)
{
    if (!ctx || !ctx->color || !ctx->color[0] || !out)
        return 0;
    size_t klen = sizeof(RDL_ROUTE_BAGGAGE_KEY) - 1, clen = strlen(ctx->color);
    if (klen + 1 + clen + 1 > n)
        return 0;
    /* W3C baggage values are percent-encoded outside the "baggage-octet" set. */
    for (size_t i = 0; i < clen; i++) {
        unsigned char c = (unsigned char)ctx->color[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\')
            return 0;
    }
    memcpy(out, RDL_ROUTE_BAGGAGE_KEY, klen);
    out[klen] = '=';
    memcpy(out + klen + 1, ctx->color, clen);
    out[klen + 1 + clen] = '\0';
    return klen + 1 + clen;
}

const char *rdl__route_cond_kind_name(int kind)
{
    static const char *const names[] = { "uri", "scheme", "method", "authority", "headers",
                                         "withoutHeaders", "queryParams", "port" };
    return kind >= 0 && kind <= C_PORT ? names[kind] : "?";
}

const char *rdl__route_sm_kind_name(int kind)
{
    static const char *const names[] = { "exact", "prefix", "regex", "present" };
    return kind >= 0 && kind <= SM_PRESENT ? names[kind] : "?";
}
