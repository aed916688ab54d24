/*
 * router.c: method + path-template routing.
 *
 * A template is split once into segments: literal text, a {name} that takes
 * one segment, or a final {name...} that takes the rest of the path. Matching
 * walks the raw path segment by segment without copying; when several
 * templates match, the most specific wins (a literal segment beats a
 * parameter, which beats a rest parameter, compared left to right), so
 * "/v1/courses/featured" and "/v1/courses/{id}" can coexist whatever their
 * registration order. Services have tens of routes, so a list is enough: the
 * match costs less than parsing the request line.
 */
#include <stdlib.h>
#include <string.h>
#include "runtime/internal.h"

enum seg_kind { SEG_LITERAL = 3, SEG_PARAM = 2, SEG_REST = 1 };

typedef struct seg {
    int kind;
    char *text;                 /* literal text, or parameter name */
    size_t len;
} seg_t;

struct rt_route {
    rt_route_t *next;
    rdl_method_t method;
    char *tmpl;
    seg_t *segs;
    int nsegs;
    rdl_handler_fn fn;
    void *arg;
};

static void route_free(rt_route_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nsegs; i++)
        free(r->segs[i].text);
    free(r->segs);
    free(r->tmpl);
    free(r);
}

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Splits "/a/{b}/{c...}" into segments; returns RDL_EINVAL for malformed templates. */
static int compile(rt_route_t *r, const char *tmpl)
{
    size_t n = strlen(tmpl);
    if (n == 0 || tmpl[0] != '/')
        return RDL_EINVAL;
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += tmpl[i] == '/';
    if (count > 24)
        return RDL_EINVAL;                      /* the specificity score has 24 digits */
    r->segs = calloc((size_t)count, sizeof(seg_t));
    if (!r->segs)
        return RDL_ENOMEM;
    const char *p = tmpl + 1, *end = tmpl + n;
    int nparams = 0;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;
        size_t len = (size_t)(e - p);
        seg_t *s = &r->segs[r->nsegs];
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            const char *name = p + 1;
            size_t nlen = len - 2;
            s->kind = SEG_PARAM;
            if (nlen > 3 && memcmp(name + nlen - 3, "...", 3) == 0) {
                if (slash)
                    return RDL_EINVAL;          /* {rest...} must be last */
                s->kind = SEG_REST;
                nlen -= 3;
            }
            if (!valid_param_name(name, nlen) || ++nparams > RT_MAX_PARAMS)
                return RDL_EINVAL;
            s->text = strndup(name, nlen);
            s->len = nlen;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len))
                return RDL_EINVAL;
            s->kind = SEG_LITERAL;
            s->text = strndup(p, len);
            s->len = len;
        }
        if (!s->text)
            return RDL_ENOMEM;
        r->nsegs++;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

int rdl__rt_router_add(rt_router_t *rt, const char *method, const char *tmpl,
                  rdl_handler_fn fn, void *arg)
{
    rdl_method_t id = method ? rdl_method_parse(method, strlen(method)) : RDL_METHOD_UNKNOWN;
    if (id == RDL_METHOD_UNKNOWN || !tmpl || !fn)
        return RDL_EINVAL;                      /* the parser answers any other method 501 */
    for (const rt_route_t *r = rt->routes; r; r = r->next)
        if (r->method == id && strcmp(r->tmpl, tmpl) == 0)
            return RDL_EEXIST;
    rt_route_t *r = calloc(1, sizeof(*r));
    if (!r)
        return RDL_ENOMEM;
    r->method = id;
    r->fn = fn;
    r->arg = arg;
    r->tmpl = strdup(tmpl);
    int rc = r->tmpl ? compile(r, tmpl) : RDL_ENOMEM;
    if (rc) {
        route_free(r);
        return rc;
    }
    rt_route_t **tail = &rt->routes;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    return 0;
}

void rdl__rt_router_free(rt_router_t *rt)
{
    rt_route_t *r = rt->routes;
    while (r) {
        rt_route_t *next = r->next;
        route_free(r);
        r = next;
    }
    rt->routes = NULL;
}

/*
 * Matches one route against the path. Fills m and a specificity score (one
 * digit per segment: literal 3, param 2, rest 1) so the caller can prefer the
 * most specific match.
 */
static bool match_route(const rt_route_t *r, const char *path, size_t plen, rt_match_t *m,
                        uint64_t *score)
{
    if (plen == 0 || path[0] != '/')
        return false;
    const char *p = path + 1, *end = path + plen;
    uint64_t sc = 0;
    m->nparams = 0;
    for (int i = 0; i < r->nsegs; i++) {
        const seg_t *s = &r->segs[i];
        if (p > end)
            return false;                        /* path has fewer segments */
        sc = sc * 4 + (uint64_t)s->kind;
        if (s->kind == SEG_REST) {
            m->names[m->nparams] = s->text;
            m->values[m->nparams] = p;
            m->lens[m->nparams++] = (uint32_t)(end - p);
            p = end + 1;
            break;
        }
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;
        size_t len = (size_t)(e - p);
        if (s->kind == SEG_LITERAL) {
            if (len != s->len || memcmp(p, s->text, len) != 0)
                return false;
        } else {
            if (len == 0)
                return false;                    /* "/v1/courses/" does not bind {id} */
            m->names[m->nparams] = s->text;
            m->values[m->nparams] = p;
            m->lens[m->nparams++] = (uint32_t)len;
        }
        p = e + 1;
    }
    if (p <= end)
        return false;                            /* path has more segments */
    *score = sc;
    return true;
}

static bool method_matches(const rt_route_t *r, rdl_method_t method)
{
    return r->method == method || (method == RDL_METHOD_HEAD && r->method == RDL_METHOD_GET);
}

/*
 * The Allow header of a 405: the methods of the routes matching the path, in
 * registration order, each once, HEAD right after GET; cut at allow_len.
 */
static void allow_list(const rt_router_t *rt, const char *path, size_t path_len, char *allow,
                       size_t allow_len)
{
    unsigned seen = 0;                           /* bit per rdl_method_t */
    size_t used = 0;
    rt_match_t cand;
    allow[0] = '\0';
    for (const rt_route_t *r = rt->routes; r; r = r->next) {
        uint64_t score;
        if (!match_route(r, path, path_len, &cand, &score))
            continue;
        rdl_method_t ids[2] = { r->method, r->method == RDL_METHOD_GET ? RDL_METHOD_HEAD
                                                                        : RDL_METHOD_UNKNOWN };
        for (int k = 0; k < 2 && ids[k] != RDL_METHOD_UNKNOWN; k++) {
            if (seen & (1u << ids[k]))
                continue;
            seen |= 1u << ids[k];
            int w = snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "",
                             rdl_method_name(ids[k]));
            if (w < 0 || (size_t)w >= allow_len - used)
                return;
            used += (size_t)w;
        }
    }
}

int rdl__rt_router_match(const rt_router_t *rt, rdl_method_t method, const char *path, size_t path_len,
                    rt_match_t *m, char *allow, size_t allow_len)
{
    uint64_t best = 0;
    bool found = false, path_found = false;
    rt_match_t cand;
    for (const rt_route_t *r = rt->routes; r; r = r->next) {
        uint64_t score;
        if (!match_route(r, path, path_len, &cand, &score))
            continue;
        path_found = true;
        if (!method_matches(r, method))
            continue;
        /* Left-align the digits so segments compare left to right whatever the template's
         * length; on a tie, a route registered for this very method beats GET-for-HEAD. */
        score <<= 2 * (24 - r->nsegs);
        score = score * 2 + (r->method == method);
        if (!found || score > best) {
            best = score;
            *m = cand;
            m->route = r;
            found = true;
        }
    }
    if (found)
        return RT_MATCH_OK;
    if (!path_found)
        return RT_MATCH_NO_PATH;
    if (allow && allow_len)
        allow_list(rt, path, path_len, allow, allow_len);
    return RT_MATCH_NO_METHOD;
}

const char *rdl__rt_route_template(const rt_route_t *route)
{
    return route ? route->tmpl : NULL;
}

void rdl__rt_route_call(const rt_route_t *route, rdl_req_t *req)
{
    route->fn(req, route->arg);
}
