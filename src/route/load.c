/*
 * load.c: VirtualService, DestinationRule and short-form YAML into a route
 * table.
 *
 * The table must decide exactly as the mesh does, so the loader validates as
 * istiod does (one StringMatch kind, no empty match block, integer weights,
 * lowercase header keys, a route or redirect in every http route, ...) and
 * refuses, rather than ignores, what it cannot honour in-process (RE2-refused
 * regexes, sourceLabels, gRPC aborts) and any field it does not know, so a
 * typo never loads as a rule that silently matches everything. Fields with no
 * in-process meaning (gateways, mirror, corsPolicy, rewrite, trafficPolicy)
 * are accepted and ignored. Every error names file, line, column and the
 * field path. All memory of a table is one arena plus its compiled regexes.
 * Reading YAML itself (positions, scalars, lists, known fields, the libfyaml
 * work-arounds) is the shared reader's, util/yaml.c; this file is the rules.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libfyaml.h>
#include "util/yaml.h"
#include "route/route_internal.h"

/*
 * A load: the shared YAML reader first (item callbacks of rdl__yaml_list get
 * the reader and reach the load through it), the table being built.
 */
typedef struct ld {
    rdl__yaml_t y;
    rdl_route_table_t *t;
    rdl_error_t *err;
    size_t rules, max_rules;                /* see rdl_route_opts_t */
    size_t regex_bytes, max_regex_bytes;
} ld_t;

/* ---- errors and memory (the YAML itself is util/yaml.c's) ------------------ */

static int fail(ld_t *ld, struct fy_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ld_t *ld, struct fy_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = rdl__yaml_vfail(&ld->y, at, path, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(ld_t *ld)
{
    return rdl__yaml_oom(&ld->y);
}

static void *alloc(ld_t *ld, size_t n)
{
    void *p = rdl_arena_alloc(&ld->t->arena, n ? n : 1);
    if (p)
        memset(p, 0, n ? n : 1);
    return p;
}

/* ---- scalars ------------------------------------------------------------- */

/* google.protobuf.Duration's range (10,000 years): Istio refuses anything longer. */
#define DURATION_MAX_MS (315576000000ULL * 1000)

/* Go/protobuf durations as Istio writes them: "5s", "250ms", "1m30s", "0.5s". */
static int duration(ld_t *ld, struct fy_node *n, const char *path, uint64_t *out_ms)
{
    size_t len;
    const char *s = rdl__yaml_string(&ld->y, n, path, &len);
    if (!s)
        return ld->err->code;
    uint64_t ms;
    if (len > 0 && s[len - 1] != 's' && s[len - 1] != 'm' && s[len - 1] != 'h')
        return fail(ld, n, path, "expected a duration with a unit (\"5s\", \"250ms\"), got '%s'", s);
    if (rdl_parse_duration_ms(s, &ms) == 0) {
        if (ms > DURATION_MAX_MS)
            return fail(ld, n, path, "duration '%s' is longer than a protobuf Duration allows "
                        "(315576000000s)", s);
        *out_ms = ms;
        return 0;
    }
    char *end;
    errno = 0;
    double sec = strtod(s, &end);
    if (end != s && strcmp(end, "s") == 0 && errno == 0 && sec >= 0 && sec < 1e9) {
        *out_ms = (uint64_t)(sec * 1000.0 + 0.5);
        return 0;
    }
    return fail(ld, n, path, "expected a duration (\"5s\", \"250ms\", \"1m30s\", \"0.5s\"), got '%s'", s);
}

static char *lower_copy(ld_t *ld, const char *s, size_t len)
{
    char *c = rdl_arena_strndup(&ld->t->arena, s, len);
    for (size_t i = 0; c && i < len; i++)
        if (c[i] >= 'A' && c[i] <= 'Z')
            c[i] = (char)(c[i] - 'A' + 'a');
    return c;
}

/* ---- the limits a file must stay within ------------------------------------ */

/*
 * Counted as the file is walked, so that a huge file is refused at the rule
 * that crosses the limit, before the rest is compiled.
 */
static int count_rules(ld_t *ld, struct fy_node *at, const char *path, size_t n)
{
    ld->rules += n;
    if (ld->rules <= ld->max_rules)
        return 0;
    return fail(ld, at, path, "more than %zu rules (http routes, match blocks and destinations): "
                "the limit is routes.max_rules", ld->max_rules);
}

static int count_regex(ld_t *ld, struct fy_node *at, const char *path, const pcre2_code *re)
{
    size_t size = 0, jit = 0;
    pcre2_pattern_info(re, PCRE2_INFO_SIZE, &size);
    if (pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &jit) != 0)
        jit = 0;
    ld->regex_bytes += size + jit;
    if (ld->regex_bytes <= ld->max_regex_bytes)
        return 0;
    return fail(ld, at, path, "the regexes take more than %zu bytes compiled: "
                "the limit is routes.max_regex_bytes", ld->max_regex_bytes);
}

/* ---- StringMatch and match blocks --------------------------------------- */

static int add_regex(ld_t *ld, pcre2_code *re)
{
    rdl_route_table_t *t = ld->t;
    if (t->nres == t->capres) {
        size_t cap = t->capres ? t->capres * 2 : 16;
        pcre2_code **p = realloc(t->res, cap * sizeof(*p));
        if (!p) {
            pcre2_code_free(re);
            return oom(ld);
        }
        t->res = p;
        t->capres = cap;
    }
    t->res[t->nres++] = re;
    return 0;
}

/* presence: an empty mapping (or null) means "present", as in headers and withoutHeaders. */
static int strmatch(ld_t *ld, struct fy_node *n, const char *path, bool presence, bool no_prefix,
                    route_strmatch_t *m)
{
    if (presence && (rdl__yaml_is_null(n) || (fy_node_is_mapping(n) && fy_node_mapping_item_count(n) == 0))) {
        m->kind = SM_PRESENT;
        return 0;
    }
    if (!n || !fy_node_is_mapping(n))
        return fail(ld, n, path, "expected a StringMatch: {exact: ...}, {prefix: ...} or {regex: ...}");
    if (fy_node_mapping_item_count(n) != 1)
        return fail(ld, n, path, "a StringMatch needs exactly one of exact, prefix, regex");
    void *it = NULL;
    struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
    struct fy_node *v = fy_node_pair_value(p);
    char vp[RDL_YAML_PATH_MAX];
    if (rdl__yaml_key_is(p, "exact")) {
        m->kind = SM_EXACT;
    } else if (rdl__yaml_key_is(p, "prefix")) {
        if (no_prefix)
            return fail(ld, fy_node_pair_key(p), path,
                        "prefix matching is not supported for queryParams: use exact or regex");
        m->kind = SM_PREFIX;
    } else if (rdl__yaml_key_is(p, "regex")) {
        m->kind = SM_REGEX;
    } else {
        size_t len = 0;
        const char *k = fy_node_is_scalar(fy_node_pair_key(p))
                        ? fy_node_get_scalar(fy_node_pair_key(p), &len) : "";
        return fail(ld, fy_node_pair_key(p), path,
                    "unknown StringMatch kind '%.*s': expected exact, prefix or regex",
                    (int)(len > 40 ? 40 : len), k ? k : "");
    }
    rdl__yaml_path_sub(vp, path, m->kind == SM_EXACT ? "exact" : m->kind == SM_PREFIX ? "prefix" : "regex");
    if (rdl__yaml_is_null(v) && m->kind == SM_EXACT && fy_node_is_scalar(v) && fy_node_get_style(v) == FYNS_PLAIN) {
        m->s = "";                         /* exact: (empty) is exact: "" (queryParams ?key) */
        return 0;
    }
    if (!(m->s = rdl__yaml_string(&ld->y, v, vp, &m->len)))
        return ld->err->code;
    if (m->kind != SM_REGEX)
        return 0;
    char why[200];
    size_t at = 0;
    m->re = rdl__route_re_compile(m->s, m->len, &m->filter, why, sizeof(why), &at);
    if (!m->re) {
        int rc = fail(ld, v, vp, "regex '%.80s' is not accepted (RE2 syntax, full match): %s "
                      "(at offset %zu)", m->s, why, at);
        if (fy_node_get_style(v) == FYNS_PLAIN && at <= m->len)
            ld->err->column += (int)at;    /* plain scalars map offsets to columns */
        return rc;
    }
    return add_regex(ld, m->re) ? ld->err->code : count_regex(ld, v, vp, m->re);
}

/* The cache slot of a header name, shared by every condition on it; -1 past the cache. */
static int header_id(ld_t *ld, const char *name)
{
    rdl_route_table_t *t = ld->t;
    for (size_t v = 0; v < t->nvs; v++)
        for (size_t r = 0; r < t->vs[v].nroutes; r++)
            for (size_t b = 0; b < t->vs[v].routes[r].nblocks; b++)
                for (size_t c = 0; c < t->vs[v].routes[r].blocks[b].nconds; c++) {
                    const route_cond_t *k = &t->vs[v].routes[r].blocks[b].conds[c];
                    if (k->hid >= 0 && (k->kind == C_HEADER || k->kind == C_WITHOUT) &&
                        strcmp(k->name, name) == 0)
                        return k->hid;
                }
    return t->nheader_ids < ROUTE_HCACHE ? (int)t->nheader_ids++ : -1;
}

/* A map of name -> StringMatch (headers, withoutHeaders, queryParams) into conditions. */
static int cond_map(ld_t *ld, struct fy_node *n, const char *path, int kind, route_cond_t *out,
                    size_t *nout)
{
    if (!fy_node_is_mapping(n))
        return fail(ld, n, path, "expected a mapping of name to StringMatch");
    void *it = NULL;
    struct fy_node_pair *p;
    char kp[RDL_YAML_PATH_MAX];
    while ((p = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        size_t len = 0;
        const char *name = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &len) : NULL;
        if (!name || len == 0)
            return fail(ld, k ? k : n, path, "expected a non-empty name");
        rdl__yaml_path_join(kp, path, ".", name, len);
        if (kind != C_QUERY) {
            for (size_t i = 0; i < len; i++)
                if ((name[i] >= 'A' && name[i] <= 'Z') || name[i] == '_' || name[i] == ' ')
                    return fail(ld, k, kp, "header names must be lowercase and hyphen separated");
            /* Istio ignores these keys among headers: they are the pseudo-headers' own fields. */
            if ((len == 3 && !memcmp(name, "uri", 3)) || (len == 6 && !memcmp(name, "scheme", 6)) ||
                (len == 6 && !memcmp(name, "method", 6)) || (len == 9 && !memcmp(name, "authority", 9)))
                continue;
        }
        route_cond_t *c = &out[(*nout)++];
        c->kind = kind;
        c->hid = -1;
        c->name = rdl_arena_strndup(&ld->t->arena, name, len);
        c->name_len = len;
        if (!c->name)
            return oom(ld);
        c->hid = kind == C_QUERY ? -1 : header_id(ld, c->name);
        if (strmatch(ld, fy_node_pair_value(p), kp, kind != C_QUERY, kind == C_QUERY, &c->m))
            return ld->err->code;
    }
    return 0;
}

static const char *const block_fields[] = {
    "name", "uri", "scheme", "method", "authority", "headers", "withoutHeaders", "queryParams",
    "ignoreUriCase", "port", "sourceLabels", "sourceNamespace", NULL
};
static const char *const block_ignored[] = { "gateways", "statPrefix", NULL };

static size_t map_count(struct fy_node *n)
{
    return n && fy_node_is_mapping(n) ? (size_t)fy_node_mapping_item_count(n) : 0;
}

static int match_block(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t index, void *elem,
                       void *arg)
{
    ld_t *ld = (ld_t *)y;
    route_block_t *b = elem;
    if (count_rules(ld, n, path, 1) ||
        rdl__yaml_check_map(&ld->y, n, path, "a match block (HTTPMatchRequest)", block_fields, block_ignored))
        return ld->err->code;
    char p[RDL_YAML_PATH_MAX];
    if (rdl__yaml_get(n, "sourceLabels") || rdl__yaml_get(n, "sourceNamespace")) {
        struct fy_node *k = rdl__yaml_get(n, "sourceLabels") ? rdl__yaml_get(n, "sourceLabels") : rdl__yaml_get(n, "sourceNamespace");
        rdl__yaml_path_sub(p, path, rdl__yaml_get(n, "sourceLabels") ? "sourceLabels" : "sourceNamespace");
        return fail(ld, k, p, "sourceLabels and sourceNamespace select client workloads in the "
                    "mesh and cannot be evaluated in-process");
    }
    struct fy_node *v;
    if ((v = rdl__yaml_get(n, "name"))) {
        rdl__yaml_path_sub(p, path, "name");
        if (!(b->name = rdl__yaml_string(&ld->y, v, p, NULL)))
            return ld->err->code;
    }
    bool icase = false;
    if ((v = rdl__yaml_get(n, "ignoreUriCase"))) {
        rdl__yaml_path_sub(p, path, "ignoreUriCase");
        if (rdl__yaml_bool(&ld->y, v, p, &icase))
            return ld->err->code;
    }
    size_t cap = 5 + map_count(rdl__yaml_get(n, "headers")) + map_count(rdl__yaml_get(n, "withoutHeaders")) +
                 map_count(rdl__yaml_get(n, "queryParams"));
    b->conds = alloc(ld, cap * sizeof(route_cond_t));
    if (!b->conds)
        return oom(ld);
    static const struct { const char *field; int kind; } simple[] = {
        { "uri", C_URI }, { "scheme", C_SCHEME }, { "method", C_METHOD }, { "authority", C_AUTHORITY },
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (!(v = rdl__yaml_get(n, simple[i].field)))
            continue;
        rdl__yaml_path_sub(p, path, simple[i].field);
        route_cond_t *c = &b->conds[b->nconds++];
        c->kind = simple[i].kind;
        if (strmatch(ld, v, p, false, false, &c->m))
            return ld->err->code;
        c->m.icase = icase && c->kind == C_URI && c->m.kind != SM_REGEX;
    }
    static const struct { const char *field; int kind; } maps[] = {
        { "headers", C_HEADER }, { "withoutHeaders", C_WITHOUT }, { "queryParams", C_QUERY },
    };
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        if (!(v = rdl__yaml_get(n, maps[i].field)))
            continue;
        rdl__yaml_path_sub(p, path, maps[i].field);
        if (cond_map(ld, v, p, maps[i].kind, b->conds, &b->nconds))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "port"))) {
        long long port;
        rdl__yaml_path_sub(p, path, "port");
        if (rdl__yaml_int(&ld->y, v, p, 1, 65535, &port))
            return ld->err->code;
        route_cond_t *c = &b->conds[b->nconds++];
        c->kind = C_PORT;
        c->port = (uint32_t)port;
    }
    if (b->nconds == 0)
        return fail(ld, n, path, "a match block cannot be empty: give uri, method, headers, ... "
                    "or drop the block to match everything");
    return 0;
}

static int match_list(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    return rdl__yaml_list(&ld->y, n, path, sizeof(route_block_t), "an empty match list: drop it to match "
                   "everything", &r->blocks, &r->nblocks, match_block, NULL);
}

/* ---- header operations, fault, retries ---------------------------------- */

static int kv_map(ld_t *ld, struct fy_node *n, const char *path, const rdl_route_kv_t **out,
                  size_t *count)
{
    if (!fy_node_is_mapping(n))
        return fail(ld, n, path, "expected a mapping of header name to value");
    *count = (size_t)fy_node_mapping_item_count(n);
    rdl_route_kv_t *kv = alloc(ld, *count * sizeof(*kv));
    if (!kv)
        return oom(ld);
    void *it = NULL;
    struct fy_node_pair *p;
    char kp[RDL_YAML_PATH_MAX];
    for (size_t i = 0; (p = fy_node_mapping_iterate(n, &it)) != NULL; i++) {
        size_t len = 0;
        const char *name = rdl__yaml_string(&ld->y, fy_node_pair_key(p), path, &len);
        if (!name)
            return ld->err->code;
        rdl__yaml_path_join(kp, path, ".", name, len);
        kv[i].name = lower_copy(ld, name, len);
        if (!kv[i].name || !(kv[i].value = rdl__yaml_string(&ld->y, fy_node_pair_value(p), kp, NULL)))
            return kv[i].name ? ld->err->code : oom(ld);
    }
    *out = kv;
    return 0;
}

static int header_ops(ld_t *ld, struct fy_node *n, const char *path, rdl_route_header_ops_t *ops)
{
    static const char *const fields[] = { "set", "add", "remove", NULL };
    if (rdl__yaml_check_map(&ld->y, n, path, "header operations", fields, NULL))
        return ld->err->code;
    char p[RDL_YAML_PATH_MAX];
    struct fy_node *v;
    if ((v = rdl__yaml_get(n, "set"))) {
        rdl__yaml_path_sub(p, path, "set");
        if (kv_map(ld, v, p, &ops->set, &ops->nset))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "add"))) {
        rdl__yaml_path_sub(p, path, "add");
        if (kv_map(ld, v, p, &ops->add, &ops->nadd))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "remove"))) {
        const char **names = NULL;      /* set by string_list(); gcc -O3 cannot see it */
        rdl__yaml_path_sub(p, path, "remove");
        if (rdl__yaml_string_list(&ld->y, v, p, &names, &ops->nremove))
            return ld->err->code;
        for (size_t i = 0; i < ops->nremove; i++)
            if (!(names[i] = lower_copy(ld, names[i], strlen(names[i]))))
                return oom(ld);
        ops->remove = names;
    }
    return 0;
}

/* headers: {request: ..., response: ...} */
static int headers(ld_t *ld, struct fy_node *n, const char *path, rdl_route_header_ops_t *req,
                   bool *has_req, rdl_route_header_ops_t *resp, bool *has_resp)
{
    static const char *const fields[] = { "request", "response", NULL };
    if (rdl__yaml_check_map(&ld->y, n, path, "headers (request/response operations)", fields, NULL))
        return ld->err->code;
    char p[RDL_YAML_PATH_MAX];
    struct fy_node *v;
    if ((v = rdl__yaml_get(n, "request"))) {
        rdl__yaml_path_sub(p, path, "request");
        if (header_ops(ld, v, p, req))
            return ld->err->code;
        *has_req = true;
    }
    if ((v = rdl__yaml_get(n, "response"))) {
        rdl__yaml_path_sub(p, path, "response");
        if (header_ops(ld, v, p, resp))
            return ld->err->code;
        *has_resp = true;
    }
    return 0;
}

/* percentage: {value: 0..100} or the deprecated integer percent; absent = 100 (Envoy's default). */
static int percentage(ld_t *ld, struct fy_node *n, const char *path, double *out)
{
    static const char *const fields[] = { "value", NULL };
    char p[RDL_YAML_PATH_MAX];
    struct fy_node *v = rdl__yaml_get(n, "percentage"), *old = rdl__yaml_get(n, "percent");
    *out = 100.0;
    if (v) {
        rdl__yaml_path_sub(p, path, "percentage");
        if (rdl__yaml_check_map(&ld->y, v, p, "a percentage", fields, NULL))
            return ld->err->code;
        rdl__yaml_path_sub(p, p, "value");
        return rdl__yaml_get(v, "value") ? rdl__yaml_number(&ld->y, rdl__yaml_get(v, "value"), p, 0, 100, out) : 0;
    }
    if (old) {
        long long pc;
        rdl__yaml_path_sub(p, path, "percent");
        if (rdl__yaml_int(&ld->y, old, p, 0, 100, &pc))
            return ld->err->code;
        *out = (double)pc;
    }
    return 0;
}

static int fault(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    static const char *const fields[] = { "delay", "abort", NULL };
    static const char *const delay_fields[] = { "fixedDelay", "percentage", "percent", NULL };
    static const char *const abort_fields[] = { "httpStatus", "percentage", NULL };
    if (rdl__yaml_check_map(&ld->y, n, path, "a fault", fields, NULL))
        return ld->err->code;
    char p[RDL_YAML_PATH_MAX], q[RDL_YAML_PATH_MAX];
    struct fy_node *v;
    if ((v = rdl__yaml_get(n, "delay"))) {
        rdl__yaml_path_sub(p, path, "delay");
        if (rdl__yaml_check_map(&ld->y, v, p, "a delay fault", delay_fields, NULL))
            return ld->err->code;
        rdl__yaml_path_sub(q, p, "fixedDelay");
        if (!rdl__yaml_get(v, "fixedDelay"))
            return fail(ld, v, q, "a delay fault needs fixedDelay");
        if (duration(ld, rdl__yaml_get(v, "fixedDelay"), q, &r->delay_ms) || percentage(ld, v, p, &r->delay_pct))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "abort"))) {
        long long st;
        rdl__yaml_path_sub(p, path, "abort");
        if (rdl__yaml_get(v, "grpcStatus") || rdl__yaml_get(v, "http2Error"))
            return fail(ld, v, p, "only httpStatus aborts can be injected in-process");
        if (rdl__yaml_check_map(&ld->y, v, p, "an abort fault", abort_fields, NULL))
            return ld->err->code;
        rdl__yaml_path_sub(q, p, "httpStatus");
        if (!rdl__yaml_get(v, "httpStatus"))
            return fail(ld, v, q, "an abort fault needs httpStatus");
        if (rdl__yaml_int(&ld->y, rdl__yaml_get(v, "httpStatus"), q, 200, 599, &st) || percentage(ld, v, p, &r->abort_pct))
            return ld->err->code;
        r->abort_status = (int)st;
    }
    return 0;
}

static int retries(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    static const char *const fields[] = { "attempts", "perTryTimeout", "retryOn", NULL };
    static const char *const ignored[] = { "retryRemoteLocalities", "retryIgnorePreviousHosts",
                                           "backoff", NULL };
    if (rdl__yaml_check_map(&ld->y, n, path, "retries", fields, ignored))
        return ld->err->code;
    char p[RDL_YAML_PATH_MAX];
    struct fy_node *v;
    if ((v = rdl__yaml_get(n, "attempts"))) {
        long long a;
        rdl__yaml_path_sub(p, path, "attempts");
        if (rdl__yaml_int(&ld->y, v, p, 0, 1000, &a))
            return ld->err->code;
        r->attempts = (int)a;
    }
    if ((v = rdl__yaml_get(n, "perTryTimeout"))) {
        rdl__yaml_path_sub(p, path, "perTryTimeout");
        if (duration(ld, v, p, &r->per_try_ms))
            return ld->err->code;
        if (r->per_try_ms < 1)
            return fail(ld, v, p, "perTryTimeout must be at least 1ms");
    }
    if ((v = rdl__yaml_get(n, "retryOn"))) {
        rdl_error_t skipped;
        rdl__yaml_path_sub(p, path, "retryOn");
        if (!(r->retry_on = rdl__yaml_string(&ld->y, v, p, NULL)))
            return ld->err->code;
        /* conditions redline cannot honour load (Istio accepts them) and are warned about */
        if (rdl_retry_on_parse(r->retry_on, &r->retry_conditions, &skipped) != 0 &&
            !(r->retry_skipped = rdl_arena_strndup(&ld->t->arena, skipped.msg,
                                                   strlen(skipped.msg))))
            return oom(ld);
    }
    return 0;
}

/* ---- destinations -------------------------------------------------------- */

typedef struct pending {      /* a subset reference checked once every DestinationRule is read */
    const char *host, *subset;
    int line, col;
    char path[RDL_YAML_PATH_MAX];
} pending_t;

typedef struct pendings {
    pending_t *v;
    size_t n, cap;
} pendings_t;

static int remember_subset(ld_t *ld, pendings_t *pd, struct fy_node *at, const char *path,
                           const char *host, const char *subset)
{
    if (pd->n == pd->cap) {
        size_t cap = pd->cap ? pd->cap * 2 : 16;
        pending_t *v = realloc(pd->v, cap * sizeof(*v));
        if (!v)
            return oom(ld);
        pd->v = v;
        pd->cap = cap;
    }
    pending_t *e = &pd->v[pd->n++];
    e->host = host;
    e->subset = subset;
    e->line = e->col = 0;
    rdl__yaml_node_mark(at, &e->line, &e->col);
    snprintf(e->path, sizeof(e->path), "%s", path);
    return 0;
}

static int destination(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t i, void *elem,
                       void *arg)
{
    ld_t *ld = (ld_t *)y;
    route_dest_t *d = elem;
    pendings_t *pd = arg;
    static const char *const fields[] = { "destination", "weight", "headers", NULL };
    static const char *const dfields[] = { "host", "subset", "port", NULL };
    if (count_rules(ld, n, path, 1))
        return ld->err->code;
    static const char *const pfields[] = { "number", NULL };
    if (rdl__yaml_check_map(&ld->y, n, path, "a route destination", fields, NULL))
        return ld->err->code;
    char p[RDL_YAML_PATH_MAX], q[RDL_YAML_PATH_MAX];
    struct fy_node *dn = rdl__yaml_get(n, "destination"), *v;
    rdl__yaml_path_sub(p, path, "destination");
    if (!dn)
        return fail(ld, n, p, "a route entry needs destination");
    if (rdl__yaml_check_map(&ld->y, dn, p, "a destination", dfields, NULL))
        return ld->err->code;
    rdl__yaml_path_sub(q, p, "host");
    if (!rdl__yaml_get(dn, "host"))
        return fail(ld, dn, q, "a destination needs host");
    if (!(d->host = rdl__yaml_string(&ld->y, rdl__yaml_get(dn, "host"), q, NULL)))
        return ld->err->code;
    if ((v = rdl__yaml_get(dn, "subset"))) {
        rdl__yaml_path_sub(q, p, "subset");
        if (!(d->subset = rdl__yaml_string(&ld->y, v, q, NULL)) || remember_subset(ld, pd, v, q, d->host, d->subset))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(dn, "port"))) {
        long long port;
        rdl__yaml_path_sub(q, p, "port");
        if (rdl__yaml_check_map(&ld->y, v, q, "a port selector", pfields, NULL))
            return ld->err->code;
        rdl__yaml_path_sub(q, q, "number");
        if (!rdl__yaml_get(v, "number") || rdl__yaml_int(&ld->y, rdl__yaml_get(v, "number"), q, 1, 65535, &port))
            return rdl__yaml_get(v, "number") ? ld->err->code : fail(ld, v, q, "a port selector needs number");
        d->port = (uint32_t)port;
    }
    if ((v = rdl__yaml_get(n, "weight"))) {
        long long w;
        rdl__yaml_path_sub(p, path, "weight");
        if (rdl__yaml_int(&ld->y, v, p, 0, 1000000000, &w))
            return ld->err->code;
        d->weight = (uint32_t)w;
    }
    if ((v = rdl__yaml_get(n, "headers"))) {
        rdl__yaml_path_sub(p, path, "headers");
        if (headers(ld, v, p, &d->req, &d->has_req, &d->resp, &d->has_resp))
            return ld->err->code;
    }
    return 0;
}

static int check_weights(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    r->total_weight = 0;
    for (size_t i = 0; i < r->ndests; i++)
        r->total_weight += r->dests[i].weight;
    if (r->ndests == 1) {
        r->total_weight = 1;               /* a single destination takes all traffic */
        r->dests[0].weight = 1;
    } else if (r->ndests > 1 && r->total_weight == 0) {
        return fail(ld, n, path, "the weights of a route's destinations cannot all be 0");
    }
    return 0;
}

static int route_list(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r,
                      pendings_t *pd)
{
    if (rdl__yaml_list(&ld->y, n, path, sizeof(route_dest_t), "an http route needs at least one destination",
                &r->dests, &r->ndests, destination, pd))
        return ld->err->code;
    return check_weights(ld, n, path, r);
}

/* Fields shared by Istio's HTTPRoute and the short form. */
static int route_common(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    char p[RDL_YAML_PATH_MAX];
    struct fy_node *v;
    r->attempts = -1;
    if ((v = rdl__yaml_get(n, "match"))) {
        rdl__yaml_path_sub(p, path, "match");
        if (match_list(ld, v, p, r))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "headers"))) {
        rdl__yaml_path_sub(p, path, "headers");
        if (headers(ld, v, p, &r->req, &r->has_req, &r->resp, &r->has_resp))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "fault"))) {
        rdl__yaml_path_sub(p, path, "fault");
        if (fault(ld, v, p, r))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "timeout"))) {
        rdl__yaml_path_sub(p, path, "timeout");
        if (duration(ld, v, p, &r->timeout_ms))
            return ld->err->code;
    }
    if ((v = rdl__yaml_get(n, "retries"))) {
        rdl__yaml_path_sub(p, path, "retries");
        if (retries(ld, v, p, r))
            return ld->err->code;
    }
    int line = 0, col = 0;
    rdl__yaml_node_mark(n, &line, &col);
    r->line = line;
    return 0;
}

static int route_name(ld_t *ld, struct fy_node *n, const char *path, const char *vs, size_t i,
                      route_http_t *r)
{
    char p[RDL_YAML_PATH_MAX];
    struct fy_node *v = rdl__yaml_get(n, "name");
    if (v) {
        rdl__yaml_path_sub(p, path, "name");
        r->name = rdl__yaml_string(&ld->y, v, p, NULL);
        return r->name ? 0 : ld->err->code;
    }
    char buf[200];
    snprintf(buf, sizeof(buf), "%s.%zu", vs, i);
    r->name = rdl_arena_strndup(&ld->t->arena, buf, strlen(buf));
    return r->name ? 0 : oom(ld);
}

static const char *const http_fields[] = {
    "name", "match", "route", "redirect", "directResponse", "delegate", "headers", "fault",
    "timeout", "retries", NULL
};
static const char *const http_ignored[] = {
    "rewrite", "mirror", "mirrorPercentage", "mirror_percent", "mirrorPercent", "mirrors",
    "corsPolicy", NULL
};

typedef struct http_ctx {
    const char *vs;
    pendings_t *pd;
} http_ctx_t;

static int http_route(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t i, void *elem,
                      void *arg)
{
    ld_t *ld = (ld_t *)y;
    route_http_t *r = elem;
    const char *vs = ((http_ctx_t *)arg)->vs;
    pendings_t *pd = ((http_ctx_t *)arg)->pd;
    if (count_rules(ld, n, path, 1) ||
        rdl__yaml_check_map(&ld->y, n, path, "an http route (HTTPRoute)", http_fields, http_ignored))
        return ld->err->code;
    if (route_name(ld, n, path, vs, i, r) || route_common(ld, n, path, r))
        return ld->err->code;
    struct fy_node *v = rdl__yaml_get(n, "route");
    int actions = (v != NULL) + (rdl__yaml_get(n, "redirect") != NULL) + (rdl__yaml_get(n, "directResponse") != NULL) +
                  (rdl__yaml_get(n, "delegate") != NULL);
    if (actions != 1)
        return fail(ld, n, path, actions ? "route, redirect, directResponse and delegate are "
                    "mutually exclusive" : "an http route needs route, redirect, directResponse "
                    "or delegate");
    if (v) {
        char p[RDL_YAML_PATH_MAX];
        rdl__yaml_path_sub(p, path, "route");
        return route_list(ld, v, p, r, pd);
    }
    return 0;
}

static void set_default_route(route_vs_t *vs)
{
    vs->default_route = -1;
    for (size_t i = 0; i < vs->nroutes; i++)
        if (vs->routes[i].nblocks == 0) {
            vs->default_route = (int)i;
            return;
        }
}

static int http_list(ld_t *ld, struct fy_node *n, const char *path, route_vs_t *vs,
                     pendings_t *pd)
{
    http_ctx_t hc = { vs->name, pd };
    if (rdl__yaml_list(&ld->y, n, path, sizeof(route_http_t), NULL, &vs->routes, &vs->nroutes, http_route, &hc))
        return ld->err->code;
    ld->t->nroutes += vs->nroutes;
    set_default_route(vs);
    return 0;
}

/* ---- documents ----------------------------------------------------------- */

static route_vs_t *new_vs(ld_t *ld)
{
    rdl_route_table_t *t = ld->t;
    route_vs_t *v = realloc(t->vs, (t->nvs + 1) * sizeof(*v));
    if (!v)
        return NULL;
    t->vs = v;
    memset(&v[t->nvs], 0, sizeof(*v));
    return &v[t->nvs++];
}

static int metadata(ld_t *ld, struct fy_node *doc, const char **name, const char **ns)
{
    struct fy_node *m = rdl__yaml_get(doc, "metadata");
    if (!m || !fy_node_is_mapping(m))
        return fail(ld, m ? m : doc, "metadata", "expected metadata with a name");
    if (!rdl__yaml_get(m, "name"))
        return fail(ld, m, "metadata.name", "metadata needs a name");
    if (!(*name = rdl__yaml_string(&ld->y, rdl__yaml_get(m, "name"), "metadata.name", NULL)))
        return ld->err->code;
    *ns = rdl__yaml_get(m, "namespace") ? rdl__yaml_string(&ld->y, rdl__yaml_get(m, "namespace"), "metadata.namespace", NULL) : "";
    return *ns ? 0 : ld->err->code;
}

static int virtual_service(ld_t *ld, struct fy_node *doc, struct fy_node *spec, pendings_t *pd)
{
    static const char *const fields[] = { "hosts", "http", NULL };
    static const char *const ignored[] = { "gateways", "tls", "tcp", "exportTo", NULL };
    route_vs_t *vs = new_vs(ld);
    if (!vs)
        return oom(ld);
    int line = 0, col = 0;
    rdl__yaml_node_mark(doc, &line, &col);
    vs->line = line;
    if (metadata(ld, doc, &vs->name, &vs->ns))
        return ld->err->code;
    if (rdl__yaml_check_map(&ld->y, spec, "spec", "a VirtualService spec", fields, ignored))
        return ld->err->code;
    struct fy_node *v;
    if ((v = rdl__yaml_get(spec, "hosts")) && rdl__yaml_string_list(&ld->y, v, "spec.hosts", &vs->hosts, &vs->nhosts))
        return ld->err->code;
    if ((v = rdl__yaml_get(spec, "http")))
        return http_list(ld, v, "spec.http", vs, pd);
    vs->default_route = -1;
    return 0;
}

static int subset_item(rdl__yaml_t *y, struct fy_node *e, const char *path, size_t i, void *elem,
                       void *arg)
{
    ld_t *ld = (ld_t *)y;
    static const char *const fields[] = { "name", NULL };
    static const char *const ignored[] = { "labels", "trafficPolicy", NULL };
    char q[RDL_YAML_PATH_MAX];
    rdl__yaml_path_sub(q, path, "name");
    if (rdl__yaml_check_map(&ld->y, e, path, "a subset", fields, ignored))
        return ld->err->code;
    if (!rdl__yaml_get(e, "name"))
        return fail(ld, e, q, "a subset needs a name");
    const char **name = elem;
    *name = rdl__yaml_string(y, rdl__yaml_get(e, "name"), q, NULL);
    return *name ? 0 : ld->err->code;
}

static int destination_rule(ld_t *ld, struct fy_node *doc, struct fy_node *spec)
{
    static const char *const fields[] = { "host", "subsets", NULL };
    static const char *const ignored[] = { "trafficPolicy", "exportTo", "workloadSelector", NULL };
    const char *name, *ns;
    if (metadata(ld, doc, &name, &ns) ||
        rdl__yaml_check_map(&ld->y, spec, "spec", "a DestinationRule spec", fields, ignored))
        return ld->err->code;
    rdl_route_table_t *t = ld->t;
    route_dr_t *v = realloc(t->dr, (t->ndr + 1) * sizeof(*v));
    if (!v)
        return oom(ld);
    t->dr = v;
    route_dr_t *dr = &v[t->ndr++];
    memset(dr, 0, sizeof(*dr));
    if (!rdl__yaml_get(spec, "host"))
        return fail(ld, spec, "spec.host", "a DestinationRule needs host");
    if (!(dr->host = rdl__yaml_string(&ld->y, rdl__yaml_get(spec, "host"), "spec.host", NULL)))
        return ld->err->code;
    struct fy_node *subs = rdl__yaml_get(spec, "subsets");
    if (!subs)
        return 0;
    return rdl__yaml_list(&ld->y, subs, "spec.subsets", sizeof(char *), NULL, &dr->subsets, &dr->nsubsets,
                   subset_item, NULL);
}

/* The short form: routes: [{name, match, subset | weights, headers, fault, timeout, retries}]. */
static const char *const short_fields[] = {
    "name", "match", "subset", "weights", "headers", "fault", "timeout", "retries", NULL
};

static int short_weights(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    if (!fy_node_is_mapping(n) || fy_node_mapping_item_count(n) == 0)
        return fail(ld, n, path, "expected a mapping of subset to integer weight");
    if (count_rules(ld, n, path, (size_t)fy_node_mapping_item_count(n)))
        return ld->err->code;
    r->ndests = (size_t)fy_node_mapping_item_count(n);
    r->dests = alloc(ld, r->ndests * sizeof(route_dest_t));
    if (!r->dests)
        return oom(ld);
    void *it = NULL;
    struct fy_node_pair *p;
    char kp[RDL_YAML_PATH_MAX];
    for (size_t i = 0; (p = fy_node_mapping_iterate(n, &it)) != NULL; i++) {
        long long w;
        if (!(r->dests[i].subset = rdl__yaml_string(&ld->y, fy_node_pair_key(p), path, NULL)))
            return ld->err->code;
        rdl__yaml_path_join(kp, path, ".", r->dests[i].subset, strlen(r->dests[i].subset));
        if (rdl__yaml_int(&ld->y, fy_node_pair_value(p), kp, 0, 1000000000, &w))
            return ld->err->code;
        r->dests[i].weight = (uint32_t)w;
    }
    return check_weights(ld, n, path, r);
}

static int short_route(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t i, void *elem,
                       void *arg)
{
    ld_t *ld = (ld_t *)y;
    route_http_t *r = elem;
    if (count_rules(ld, n, path, 1) || rdl__yaml_check_map(&ld->y, n, path, "a route", short_fields, NULL))
        return ld->err->code;
    if (route_name(ld, n, path, "routes", i, r) || route_common(ld, n, path, r))
        return ld->err->code;
    struct fy_node *s = rdl__yaml_get(n, "subset"), *w = rdl__yaml_get(n, "weights");
    char p[RDL_YAML_PATH_MAX];
    if (s && w)
        return fail(ld, w, path, "subset and weights are mutually exclusive");
    if (w) {
        rdl__yaml_path_sub(p, path, "weights");
        return short_weights(ld, w, p, r);
    }
    if (count_rules(ld, n, path, 1))
        return ld->err->code;
    r->ndests = 1;
    r->total_weight = 1;
    r->dests = alloc(ld, sizeof(route_dest_t));
    if (!r->dests)
        return oom(ld);
    r->dests[0].weight = 1;
    if (s) {
        rdl__yaml_path_sub(p, path, "subset");
        r->dests[0].subset = rdl__yaml_string(&ld->y, s, p, NULL);
        return r->dests[0].subset ? 0 : ld->err->code;
    }
    return 0;
}

static int short_form(ld_t *ld, struct fy_node *doc)
{
    static const char *const fields[] = { "routes", NULL };
    if (rdl__yaml_check_map(&ld->y, doc, "", "a routes document", fields, NULL))
        return ld->err->code;
    route_vs_t *vs = new_vs(ld);
    if (!vs)
        return oom(ld);
    vs->name = "routes";
    vs->ns = "";
    if (rdl__yaml_list(&ld->y, rdl__yaml_get(doc, "routes"), "routes", sizeof(route_http_t), NULL, &vs->routes,
                &vs->nroutes, short_route, NULL))
        return ld->err->code;
    ld->t->nroutes += vs->nroutes;
    set_default_route(vs);
    return 0;
}


static int document(ld_t *ld, struct fy_node *doc, pendings_t *pd)
{
    static const char *const fields[] = { "apiVersion", "kind", "metadata", "spec", NULL };
    static const char *const ignored[] = { "status", NULL };
    if (rdl__yaml_is_null(doc))
        return 0;                          /* an empty document ("---" at the end) */
    if (!fy_node_is_mapping(doc))
        return fail(ld, doc, "", "expected a VirtualService, a DestinationRule or a routes: list");
    if (rdl__yaml_get(doc, "routes") && !rdl__yaml_get(doc, "apiVersion"))
        return short_form(ld, doc);
    struct fy_node *api = rdl__yaml_get(doc, "apiVersion"), *kind = rdl__yaml_get(doc, "kind");
    if (!api)
        return fail(ld, doc, "apiVersion", "expected apiVersion networking.istio.io/v1 (or v1beta1, "
                    "v1alpha3), or a routes: list");
    if (!rdl__yaml_scalar_is(api, "networking.istio.io/v1") && !rdl__yaml_scalar_is(api, "networking.istio.io/v1beta1") &&
        !rdl__yaml_scalar_is(api, "networking.istio.io/v1alpha3"))
        return fail(ld, api, "apiVersion", "expected networking.istio.io/v1, v1beta1 or v1alpha3");
    if (rdl__yaml_check_map(&ld->y, doc, "", "a resource", fields, ignored))
        return ld->err->code;
    struct fy_node *spec = rdl__yaml_get(doc, "spec");
    if (!spec)
        return fail(ld, doc, "spec", "a resource needs spec");
    if (rdl__yaml_scalar_is(kind, "VirtualService"))
        return virtual_service(ld, doc, spec, pd);
    if (rdl__yaml_scalar_is(kind, "DestinationRule"))
        return destination_rule(ld, doc, spec);
    return fail(ld, kind ? kind : doc, "kind", "expected kind VirtualService or DestinationRule");
}

/* ---- subsets and the whole text ------------------------------------------ */

/* Istio's host resolution, enough for one file: FQDN equality or the same short name. */
static bool host_eq(const char *a, const char *b)
{
    size_t la = strcspn(a, "."), lb = strcspn(b, ".");
    if (strcmp(a, b) == 0)
        return true;
    bool a_short = a[la] == '\0', b_short = b[lb] == '\0';
    return (a_short || b_short) && la == lb && memcmp(a, b, la) == 0;
}

static int check_subsets(ld_t *ld, const pendings_t *pd)
{
    for (size_t i = 0; i < pd->n; i++) {
        const pending_t *e = &pd->v[i];
        bool has_rule = false, found = false;
        for (size_t j = 0; j < ld->t->ndr && !found; j++) {
            const route_dr_t *dr = &ld->t->dr[j];
            if (!host_eq(dr->host, e->host))
                continue;
            has_rule = true;
            for (size_t k = 0; k < dr->nsubsets && !found; k++)
                found = strcmp(dr->subsets[k], e->subset) == 0;
        }
        if (has_rule && !found)
            return rdl_error_set(ld->err, RDL_EINVAL, e->line, e->col, e->path,
                                 "subset '%s' is not defined by the DestinationRule for %s "
                                 "(the mesh would answer 503)", e->subset, e->host);
    }
    return 0;
}

static int document_fn(rdl__yaml_t *y, struct fy_node *root, void *pd)
{
    return document((ld_t *)y, root, pd);
}

static int copy_header_name(rdl_route_table_t *t, const char *s, char **out, size_t *len)
{
    *len = s ? strlen(s) : 0;
    *out = rdl_arena_strndup(&t->arena, s ? s : "", *len);
    for (size_t i = 0; *out && i < *len; i++)
        if ((*out)[i] >= 'A' && (*out)[i] <= 'Z')
            (*out)[i] = (char)((*out)[i] - 'A' + 'a');
    return *out ? 0 : RDL_ENOMEM;
}

int rdl_route_load_string(const rdl_route_opts_t *opts, const char *name, const char *yaml,
                          size_t len, rdl_route_table_t **out, rdl_error_t *err)
{
    rdl_error_t local;
    if (!err)
        err = &local;
    rdl_error_clear(err);
    snprintf(err->file, sizeof(err->file), "%s", name ? name : "");
    if (!out || (!yaml && len))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no output or no text");
    *out = NULL;
    if (!yaml)
        yaml = "";
    rdl_route_table_t *t = calloc(1, sizeof(*t));
    if (!t)
        return rdl_error_set(err, RDL_ENOMEM, 0, 0, "", "out of memory");
    atomic_init(&t->refs, 1);
    rdl_arena_init(&t->arena, 16384);
    ld_t ld = { .y = { .err = err, .input = yaml, .input_len = len, .arena = &t->arena,
                       .what = "routing rules" },
                .t = t, .err = err,
                .max_rules = opts && opts->max_rules ? opts->max_rules : RDL_ROUTE_MAX_RULES,
                .max_regex_bytes = opts && opts->max_regex_bytes ? opts->max_regex_bytes
                                                                 : RDL_ROUTE_MAX_REGEX_BYTES };
    pendings_t pd = { 0 };
    int rc = rdl__yaml_each_document(&ld.y, document_fn, &pd);
    if (rc == 0)
        rc = check_subsets(&ld, &pd);
    free(pd.v);
    if (rc == 0 && (copy_header_name(t, opts ? opts->bypass_header : NULL, &t->bypass, &t->bypass_len) ||
                    copy_header_name(t, opts ? opts->sticky_header : NULL, &t->sticky, &t->sticky_len)))
        rc = rdl_error_set(err, RDL_ENOMEM, 0, 0, "", "out of memory");
    if (rc == 0 && t->nvs == 0)
        rc = rdl_error_set(err, RDL_EINVAL, 1, 1, "", "no VirtualService and no routes: list found");
    if (rc) {
        rdl_route_table_unref(t);
        return rc;
    }
    *out = t;
    return 0;
}

int rdl_route_load_file(const rdl_route_opts_t *opts, const char *path, rdl_route_table_t **out,
                        rdl_error_t *err)
{
    rdl_error_t local;
    if (!err)
        err = &local;
    rdl_error_clear(err);
    char *data = NULL;
    size_t n = 0;
    size_t cap = opts && opts->max_file_bytes ? opts->max_file_bytes : RDL_ROUTE_MAX_FILE_BYTES;
    int rc = rdl_read_file(path, cap, &data, &n, err);
    if (rc == 0)
        rc = rdl_route_load_string(opts, path, data, n, out, err);
    free(data);
    return rc;
}

rdl_route_table_t *rdl_route_table_ref(rdl_route_table_t *t)
{
    if (t)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void rdl_route_table_unref(rdl_route_table_t *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < t->nres; i++)
        pcre2_code_free(t->res[i]);
    free(t->res);
    free(t->vs);
    free(t->dr);
    rdl_arena_close(&t->arena);
    free(t);
}

size_t rdl_route_table_size(const rdl_route_table_t *t)
{
    return t ? t->nroutes : 0;
}

void rdl_route_table_retry_warnings(const rdl_route_table_t *t, rdl_route_warn_fn fn, void *arg)
{
    for (size_t i = 0; t && fn && i < t->nvs; i++)
        for (size_t j = 0; j < t->vs[i].nroutes; j++)
            if (t->vs[i].routes[j].retry_skipped)
                fn(arg, t->vs[i].routes[j].name, t->vs[i].routes[j].retry_skipped);
}
