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
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libfyaml.h>
#include "util/yaml.h"
#include "route/route_internal.h"

#define ROUTE_MAX_FILE (8u << 20)
#define PATH_MAX_LEN 160

typedef struct ld {
    rdl_route_table_t *t;
    rdl_error_t *err;
    const char *input;
    size_t input_len;
} ld_t;

/* ---- positions and errors ----------------------------------------------- */

static bool node_mark(struct fy_node *n, int *line, int *col)
{
    if (!n)
        return false;
    if (fy_node_is_scalar(n)) {
        struct fy_token *tok = fy_node_get_scalar_token(n);
        const struct fy_mark *m = tok ? fy_token_start_mark(tok) : NULL;
        if (!m)
            return false;
        *line = m->line + 1;
        *col = m->column + 1;
        enum fy_node_style st = fy_node_get_style(n);
        if ((st == FYNS_SINGLE_QUOTED || st == FYNS_DOUBLE_QUOTED) && *col > 1)
            (*col)--;                      /* libfyaml marks just after the quote */
        return true;
    }
    void *it = NULL;
    if (fy_node_is_mapping(n)) {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p && node_mark(fy_node_pair_key(p), line, col);
    }
    struct fy_node *first = fy_node_sequence_iterate(n, &it);
    return node_mark(first, line, col);
}

/*
 * An empty mapping or sequence has no position of its own: use the key it is
 * the value of, going up through sequences ("- {}" points at its list's key).
 */
static bool mark_or_parent(struct fy_node *n, int *line, int *col)
{
    for (int depth = 0; n && depth < 8; depth++) {
        if (node_mark(n, line, col))
            return true;
        struct fy_node *parent = fy_node_get_parent(n);
        if (parent && fy_node_is_mapping(parent)) {
            void *it = NULL;
            struct fy_node_pair *p;
            while ((p = fy_node_mapping_iterate(parent, &it)) != NULL)
                if (fy_node_pair_value(p) == n)
                    return node_mark(fy_node_pair_key(p), line, col);
        }
        n = parent;
    }
    return false;
}

static int fail(ld_t *ld, struct fy_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ld_t *ld, struct fy_node *at, const char *path, const char *fmt, ...)
{
    char msg[sizeof(ld->err->msg)];
    int line = 0, col = 0;
    va_list ap;
    mark_or_parent(at, &line, &col);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rdl_error_set(ld->err, RDL_EINVAL, line, col, path, "%s", msg);
}

static int oom(ld_t *ld)
{
    return rdl_error_set(ld->err, RDL_ENOMEM, 0, 0, "", "out of memory");
}

static void *alloc(ld_t *ld, size_t n)
{
    void *p = rdl_arena_alloc(&ld->t->arena, n ? n : 1);
    if (p)
        memset(p, 0, n ? n : 1);
    return p;
}

/* ---- scalars ------------------------------------------------------------- */

static bool is_null(struct fy_node *n)
{
    if (!n)
        return true;
    if (!fy_node_is_scalar(n) || fy_node_get_style(n) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    return !s || len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

/* Anchors, aliases and tags mean nothing in a rule: refused. */
static int check_plain_node(ld_t *ld, struct fy_node *n, const char *path)
{
    if (fy_node_is_alias(n) || fy_node_get_anchor(n))
        return fail(ld, n, path, "anchors and aliases are not supported in routing rules");
    size_t tl;
    if (fy_node_get_tag(n, &tl))
        return fail(ld, n, path, "tags are not supported in routing rules; write the plain value");
    return 0;
}

/* An arena copy of a scalar's text (NUL-terminated), or NULL with err filled. */
static const char *scalar(ld_t *ld, struct fy_node *n, const char *path, size_t *lenp)
{
    size_t len = 0;
    char *copy;
    if (!n || !fy_node_is_scalar(n) || is_null(n)) {
        fail(ld, n, path, "expected a string");
        return NULL;
    }
    if (check_plain_node(ld, n, path))
        return NULL;
    struct fy_token *tok = fy_node_get_scalar_token(n);
    const struct fy_mark *s = tok ? fy_token_start_mark(tok) : NULL;
    const struct fy_mark *e = tok ? fy_token_end_mark(tok) : NULL;
    if (fy_node_get_style(n) == FYNS_SINGLE_QUOTED && s && e && s->input_pos <= e->input_pos &&
        e->input_pos <= ld->input_len) {
        /* libfyaml 0.7.12 mis-decodes runs of '' (see util.h) */
        char *dec = rdl_yaml_single_quoted(ld->input + s->input_pos, e->input_pos - s->input_pos,
                                           &len);
        if (!dec) {
            oom(ld);
            return NULL;
        }
        copy = rdl_arena_strndup(&ld->t->arena, dec, len);
        free(dec);
    } else {
        const char *text = fy_node_get_scalar(n, &len);
        if (!text) {
            fail(ld, n, path, "cannot read this value");
            return NULL;
        }
        copy = rdl_arena_strndup(&ld->t->arena, text, len);
    }
    if (!copy) {
        oom(ld);
        return NULL;
    }
    if (lenp)
        *lenp = len;
    return copy;
}

/* A plain (unquoted) decimal integer within [lo, hi]. */
static int integer(ld_t *ld, struct fy_node *n, const char *path, long long lo, long long hi,
                   long long *out)
{
    size_t len = 0;
    const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
    bool digits = s && len > 0 && len < 19 && fy_node_get_style(n) == FYNS_PLAIN;
    for (size_t i = 0; digits && i < len; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    if (!digits)
        return fail(ld, n, path, "expected an integer from %lld to %lld", lo, hi);
    long long v = 0;                       /* the scalar is not NUL-terminated */
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (s[i] - '0');
    if (v < lo || v > hi)
        return fail(ld, n, path, "expected an integer from %lld to %lld, got %lld", lo, hi, v);
    *out = v;
    return check_plain_node(ld, n, path);
}

static int number(ld_t *ld, struct fy_node *n, const char *path, double lo, double hi,
                  double *out)
{
    size_t len = 0;
    const char *s = n && fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN
                    ? fy_node_get_scalar(n, &len) : NULL;
    char buf[64];
    if (s && len > 0 && len < sizeof(buf)) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        char *end;
        errno = 0;
        double v = strtod(buf, &end);
        if (*end == '\0' && errno == 0 && v >= lo && v <= hi) {
            *out = v;
            return check_plain_node(ld, n, path);
        }
    }
    return fail(ld, n, path, "expected a number from %g to %g", lo, hi);
}

static int boolean(ld_t *ld, struct fy_node *n, const char *path, bool *out)
{
    size_t len = 0;
    const char *s = n && fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN
                    ? fy_node_get_scalar(n, &len) : NULL;
    if (s && len == 4 && !memcmp(s, "true", 4)) {
        *out = true;
        return 0;
    }
    if (s && len == 5 && !memcmp(s, "false", 5)) {
        *out = false;
        return 0;
    }
    return fail(ld, n, path, "expected true or false");
}

/* google.protobuf.Duration's range (10,000 years): Istio refuses anything longer. */
#define DURATION_MAX_MS (315576000000ULL * 1000)

/* Go/protobuf durations as Istio writes them: "5s", "250ms", "1m30s", "0.5s". */
static int duration(ld_t *ld, struct fy_node *n, const char *path, uint64_t *out_ms)
{
    size_t len;
    const char *s = scalar(ld, n, path, &len);
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

/* ---- mappings ------------------------------------------------------------ */

static bool key_is(struct fy_node_pair *p, const char *k)
{
    size_t len;
    struct fy_node *key = fy_node_pair_key(p);
    const char *s = key && fy_node_is_scalar(key) ? fy_node_get_scalar(key, &len) : NULL;
    return s && len == strlen(k) && memcmp(s, k, len) == 0;
}

static struct fy_node *get(struct fy_node *map, const char *k)
{
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL)
        if (key_is(p, k))
            return fy_node_pair_value(p);
    return NULL;
}

static bool in_list(struct fy_node_pair *p, const char *const *list)
{
    for (; list && *list; list++)
        if (key_is(p, *list))
            return true;
    return false;
}

/*
 * Checks that n is a mapping whose keys are all known (allowed) or accepted
 * and ignored; what names the object in the message.
 */
static int check_map(ld_t *ld, struct fy_node *n, const char *path, const char *what,
                     const char *const *allowed, const char *const *ignored)
{
    if (!n || !fy_node_is_mapping(n))
        return fail(ld, n, path, "expected %s (a mapping)", what);
    if (check_plain_node(ld, n, path))
        return ld->err->code;
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        if (!k || !fy_node_is_scalar(k))
            return fail(ld, k ? k : n, path, "keys must be plain strings");
        if (in_list(p, allowed) || in_list(p, ignored))
            continue;
        size_t len;
        const char *s = fy_node_get_scalar(k, &len);
        return fail(ld, k, path, "unknown field '%.*s' in %s", (int)(len > 60 ? 60 : len),
                    s ? s : "", what);
    }
    return 0;
}

/* out = path + sep + text (truncated to PATH_MAX_LEN - 1); out may be path. */
static void join(char *out, const char *path, const char *sep, const char *text, size_t tlen)
{
    size_t n = strlen(path), sl = strlen(sep);
    if (out != path)
        memmove(out, path, n < PATH_MAX_LEN ? n : PATH_MAX_LEN - 1);
    n = n < PATH_MAX_LEN ? n : PATH_MAX_LEN - 1;
    if (n + sl < PATH_MAX_LEN) {
        memcpy(out + n, sep, sl);
        n += sl;
    }
    size_t room = PATH_MAX_LEN - 1 - n;
    tlen = tlen < room ? tlen : room;
    memcpy(out + n, text, tlen);
    out[n + tlen] = '\0';
}

static void sub(char *out, const char *path, const char *field)
{
    join(out, path, path[0] ? "." : "", field, strlen(field));
}

static void item(char *out, const char *path, size_t i)
{
    char idx[32];
    int n = snprintf(idx, sizeof(idx), "[%zu]", i);
    join(out, path, "", idx, n > 0 ? (size_t)n : 0);
}

static int sequence(ld_t *ld, struct fy_node *n, const char *path, size_t *count)
{
    if (!n || !fy_node_is_sequence(n))
        return fail(ld, n, path, "expected a list");
    *count = (size_t)fy_node_sequence_item_count(n);
    return check_plain_node(ld, n, path);
}

/*
 * A list of items: a zeroed array of count elements of size bytes (in *out
 * before the first item is read), and fn for each item with its path
 * ("path[i]"). empty: the message when the list must not be empty, or NULL.
 */
typedef int (*item_fn)(ld_t *ld, struct fy_node *e, const char *path, size_t i, void *elem,
                       void *arg);

static int list_of(ld_t *ld, struct fy_node *n, const char *path, size_t size, const char *empty,
                   void *out, size_t *count, item_fn fn, void *arg)
{
    if (sequence(ld, n, path, count))
        return ld->err->code;
    if (*count == 0 && empty)
        return fail(ld, n, path, "%s", empty);
    char *v = alloc(ld, *count * size);
    if (!v)
        return oom(ld);
    memcpy(out, &v, sizeof(v));
    void *it = NULL;
    struct fy_node *e;
    char p[PATH_MAX_LEN];
    for (size_t i = 0; (e = fy_node_sequence_iterate(n, &it)) != NULL; i++) {
        item(p, path, i);
        if (fn(ld, e, p, i, v + i * size, arg))
            return ld->err->code;
    }
    return 0;
}

static int string_item(ld_t *ld, struct fy_node *e, const char *path, size_t i, void *elem,
                       void *arg)
{
    const char **v = elem;
    *v = scalar(ld, e, path, NULL);
    return *v ? 0 : ld->err->code;
}

static int string_list(ld_t *ld, struct fy_node *n, const char *path, const char ***out,
                       size_t *count)
{
    return list_of(ld, n, path, sizeof(char *), NULL, out, count, string_item, NULL);
}

static char *lower_copy(ld_t *ld, const char *s, size_t len)
{
    char *c = rdl_arena_strndup(&ld->t->arena, s, len);
    for (size_t i = 0; c && i < len; i++)
        if (c[i] >= 'A' && c[i] <= 'Z')
            c[i] = (char)(c[i] - 'A' + 'a');
    return c;
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
    if (presence && (is_null(n) || (fy_node_is_mapping(n) && fy_node_mapping_item_count(n) == 0))) {
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
    char vp[PATH_MAX_LEN];
    if (key_is(p, "exact")) {
        m->kind = SM_EXACT;
    } else if (key_is(p, "prefix")) {
        if (no_prefix)
            return fail(ld, fy_node_pair_key(p), path,
                        "prefix matching is not supported for queryParams: use exact or regex");
        m->kind = SM_PREFIX;
    } else if (key_is(p, "regex")) {
        m->kind = SM_REGEX;
    } else {
        size_t len = 0;
        const char *k = fy_node_is_scalar(fy_node_pair_key(p))
                        ? fy_node_get_scalar(fy_node_pair_key(p), &len) : "";
        return fail(ld, fy_node_pair_key(p), path,
                    "unknown StringMatch kind '%.*s': expected exact, prefix or regex",
                    (int)(len > 40 ? 40 : len), k ? k : "");
    }
    sub(vp, path, m->kind == SM_EXACT ? "exact" : m->kind == SM_PREFIX ? "prefix" : "regex");
    if (is_null(v) && m->kind == SM_EXACT && fy_node_is_scalar(v) && fy_node_get_style(v) == FYNS_PLAIN) {
        m->s = "";                         /* exact: (empty) is exact: "" (queryParams ?key) */
        return 0;
    }
    if (!(m->s = scalar(ld, v, vp, &m->len)))
        return ld->err->code;
    if (m->kind != SM_REGEX)
        return 0;
    char why[200];
    size_t at = 0;
    m->re = route_re_compile(m->s, m->len, &m->filter, why, sizeof(why), &at);
    if (!m->re) {
        int rc = fail(ld, v, vp, "regex '%.80s' is not accepted (RE2 syntax, full match): %s "
                      "(at offset %zu)", m->s, why, at);
        if (fy_node_get_style(v) == FYNS_PLAIN && at <= m->len)
            ld->err->column += (int)at;    /* plain scalars map offsets to columns */
        return rc;
    }
    return add_regex(ld, m->re);
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
    char kp[PATH_MAX_LEN];
    while ((p = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        size_t len = 0;
        const char *name = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &len) : NULL;
        if (!name || len == 0)
            return fail(ld, k ? k : n, path, "expected a non-empty name");
        join(kp, path, ".", name, len);
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

static int match_block(ld_t *ld, struct fy_node *n, const char *path, size_t index, void *elem,
                       void *arg)
{
    route_block_t *b = elem;
    if (check_map(ld, n, path, "a match block (HTTPMatchRequest)", block_fields, block_ignored))
        return ld->err->code;
    char p[PATH_MAX_LEN];
    if (get(n, "sourceLabels") || get(n, "sourceNamespace")) {
        struct fy_node *k = get(n, "sourceLabels") ? get(n, "sourceLabels") : get(n, "sourceNamespace");
        sub(p, path, get(n, "sourceLabels") ? "sourceLabels" : "sourceNamespace");
        return fail(ld, k, p, "sourceLabels and sourceNamespace select client workloads in the "
                    "mesh and cannot be evaluated in-process");
    }
    struct fy_node *v;
    if ((v = get(n, "name"))) {
        sub(p, path, "name");
        if (!(b->name = scalar(ld, v, p, NULL)))
            return ld->err->code;
    }
    bool icase = false;
    if ((v = get(n, "ignoreUriCase"))) {
        sub(p, path, "ignoreUriCase");
        if (boolean(ld, v, p, &icase))
            return ld->err->code;
    }
    size_t cap = 5 + map_count(get(n, "headers")) + map_count(get(n, "withoutHeaders")) +
                 map_count(get(n, "queryParams"));
    b->conds = alloc(ld, cap * sizeof(route_cond_t));
    if (!b->conds)
        return oom(ld);
    static const struct { const char *field; int kind; } simple[] = {
        { "uri", C_URI }, { "scheme", C_SCHEME }, { "method", C_METHOD }, { "authority", C_AUTHORITY },
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (!(v = get(n, simple[i].field)))
            continue;
        sub(p, path, simple[i].field);
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
        if (!(v = get(n, maps[i].field)))
            continue;
        sub(p, path, maps[i].field);
        if (cond_map(ld, v, p, maps[i].kind, b->conds, &b->nconds))
            return ld->err->code;
    }
    if ((v = get(n, "port"))) {
        long long port;
        sub(p, path, "port");
        if (integer(ld, v, p, 1, 65535, &port))
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
    return list_of(ld, n, path, sizeof(route_block_t), "an empty match list: drop it to match "
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
    char kp[PATH_MAX_LEN];
    for (size_t i = 0; (p = fy_node_mapping_iterate(n, &it)) != NULL; i++) {
        size_t len = 0;
        const char *name = scalar(ld, fy_node_pair_key(p), path, &len);
        if (!name)
            return ld->err->code;
        join(kp, path, ".", name, len);
        kv[i].name = lower_copy(ld, name, len);
        if (!kv[i].name || !(kv[i].value = scalar(ld, fy_node_pair_value(p), kp, NULL)))
            return kv[i].name ? ld->err->code : oom(ld);
    }
    *out = kv;
    return 0;
}

static int header_ops(ld_t *ld, struct fy_node *n, const char *path, rdl_route_header_ops_t *ops)
{
    static const char *const fields[] = { "set", "add", "remove", NULL };
    if (check_map(ld, n, path, "header operations", fields, NULL))
        return ld->err->code;
    char p[PATH_MAX_LEN];
    struct fy_node *v;
    if ((v = get(n, "set"))) {
        sub(p, path, "set");
        if (kv_map(ld, v, p, &ops->set, &ops->nset))
            return ld->err->code;
    }
    if ((v = get(n, "add"))) {
        sub(p, path, "add");
        if (kv_map(ld, v, p, &ops->add, &ops->nadd))
            return ld->err->code;
    }
    if ((v = get(n, "remove"))) {
        const char **names = NULL;  /* string_list() sets it or fails; gcc -O3 cannot see that */
        sub(p, path, "remove");
        if (string_list(ld, v, p, &names, &ops->nremove))
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
    if (check_map(ld, n, path, "headers (request/response operations)", fields, NULL))
        return ld->err->code;
    char p[PATH_MAX_LEN];
    struct fy_node *v;
    if ((v = get(n, "request"))) {
        sub(p, path, "request");
        if (header_ops(ld, v, p, req))
            return ld->err->code;
        *has_req = true;
    }
    if ((v = get(n, "response"))) {
        sub(p, path, "response");
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
    char p[PATH_MAX_LEN];
    struct fy_node *v = get(n, "percentage"), *old = get(n, "percent");
    *out = 100.0;
    if (v) {
        sub(p, path, "percentage");
        if (check_map(ld, v, p, "a percentage", fields, NULL))
            return ld->err->code;
        sub(p, p, "value");
        return get(v, "value") ? number(ld, get(v, "value"), p, 0, 100, out) : 0;
    }
    if (old) {
        long long pc;
        sub(p, path, "percent");
        if (integer(ld, old, p, 0, 100, &pc))
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
    if (check_map(ld, n, path, "a fault", fields, NULL))
        return ld->err->code;
    char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
    struct fy_node *v;
    if ((v = get(n, "delay"))) {
        sub(p, path, "delay");
        if (check_map(ld, v, p, "a delay fault", delay_fields, NULL))
            return ld->err->code;
        sub(q, p, "fixedDelay");
        if (!get(v, "fixedDelay"))
            return fail(ld, v, q, "a delay fault needs fixedDelay");
        if (duration(ld, get(v, "fixedDelay"), q, &r->delay_ms) || percentage(ld, v, p, &r->delay_pct))
            return ld->err->code;
    }
    if ((v = get(n, "abort"))) {
        long long st;
        sub(p, path, "abort");
        if (get(v, "grpcStatus") || get(v, "http2Error"))
            return fail(ld, v, p, "only httpStatus aborts can be injected in-process");
        if (check_map(ld, v, p, "an abort fault", abort_fields, NULL))
            return ld->err->code;
        sub(q, p, "httpStatus");
        if (!get(v, "httpStatus"))
            return fail(ld, v, q, "an abort fault needs httpStatus");
        if (integer(ld, get(v, "httpStatus"), q, 200, 599, &st) || percentage(ld, v, p, &r->abort_pct))
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
    if (check_map(ld, n, path, "retries", fields, ignored))
        return ld->err->code;
    char p[PATH_MAX_LEN];
    struct fy_node *v;
    if ((v = get(n, "attempts"))) {
        long long a;
        sub(p, path, "attempts");
        if (integer(ld, v, p, 0, 1000, &a))
            return ld->err->code;
        r->attempts = (int)a;
    }
    if ((v = get(n, "perTryTimeout"))) {
        sub(p, path, "perTryTimeout");
        if (duration(ld, v, p, &r->per_try_ms))
            return ld->err->code;
        if (r->per_try_ms < 1)
            return fail(ld, v, p, "perTryTimeout must be at least 1ms");
    }
    if ((v = get(n, "retryOn"))) {
        sub(p, path, "retryOn");
        if (!(r->retry_on = scalar(ld, v, p, NULL)))
            return ld->err->code;
    }
    return 0;
}

/* ---- destinations -------------------------------------------------------- */

typedef struct pending {      /* a subset reference checked once every DestinationRule is read */
    const char *host, *subset;
    int line, col;
    char path[PATH_MAX_LEN];
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
    node_mark(at, &e->line, &e->col);
    snprintf(e->path, sizeof(e->path), "%s", path);
    return 0;
}

static int destination(ld_t *ld, struct fy_node *n, const char *path, size_t i, void *elem,
                       void *arg)
{
    route_dest_t *d = elem;
    pendings_t *pd = arg;
    static const char *const fields[] = { "destination", "weight", "headers", NULL };
    static const char *const dfields[] = { "host", "subset", "port", NULL };
    static const char *const pfields[] = { "number", NULL };
    if (check_map(ld, n, path, "a route destination", fields, NULL))
        return ld->err->code;
    char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
    struct fy_node *dn = get(n, "destination"), *v;
    sub(p, path, "destination");
    if (!dn)
        return fail(ld, n, p, "a route entry needs destination");
    if (check_map(ld, dn, p, "a destination", dfields, NULL))
        return ld->err->code;
    sub(q, p, "host");
    if (!get(dn, "host"))
        return fail(ld, dn, q, "a destination needs host");
    if (!(d->host = scalar(ld, get(dn, "host"), q, NULL)))
        return ld->err->code;
    if ((v = get(dn, "subset"))) {
        sub(q, p, "subset");
        if (!(d->subset = scalar(ld, v, q, NULL)) || remember_subset(ld, pd, v, q, d->host, d->subset))
            return ld->err->code;
    }
    if ((v = get(dn, "port"))) {
        long long port;
        sub(q, p, "port");
        if (check_map(ld, v, q, "a port selector", pfields, NULL))
            return ld->err->code;
        sub(q, q, "number");
        if (!get(v, "number") || integer(ld, get(v, "number"), q, 1, 65535, &port))
            return get(v, "number") ? ld->err->code : fail(ld, v, q, "a port selector needs number");
        d->port = (uint32_t)port;
    }
    if ((v = get(n, "weight"))) {
        long long w;
        sub(p, path, "weight");
        if (integer(ld, v, p, 0, 1000000000, &w))
            return ld->err->code;
        d->weight = (uint32_t)w;
    }
    if ((v = get(n, "headers"))) {
        sub(p, path, "headers");
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
    if (list_of(ld, n, path, sizeof(route_dest_t), "an http route needs at least one destination",
                &r->dests, &r->ndests, destination, pd))
        return ld->err->code;
    return check_weights(ld, n, path, r);
}

/* Fields shared by Istio's HTTPRoute and the short form. */
static int route_common(ld_t *ld, struct fy_node *n, const char *path, route_http_t *r)
{
    char p[PATH_MAX_LEN];
    struct fy_node *v;
    r->attempts = -1;
    if ((v = get(n, "match"))) {
        sub(p, path, "match");
        if (match_list(ld, v, p, r))
            return ld->err->code;
    }
    if ((v = get(n, "headers"))) {
        sub(p, path, "headers");
        if (headers(ld, v, p, &r->req, &r->has_req, &r->resp, &r->has_resp))
            return ld->err->code;
    }
    if ((v = get(n, "fault"))) {
        sub(p, path, "fault");
        if (fault(ld, v, p, r))
            return ld->err->code;
    }
    if ((v = get(n, "timeout"))) {
        sub(p, path, "timeout");
        if (duration(ld, v, p, &r->timeout_ms))
            return ld->err->code;
    }
    if ((v = get(n, "retries"))) {
        sub(p, path, "retries");
        if (retries(ld, v, p, r))
            return ld->err->code;
    }
    int line = 0, col = 0;
    node_mark(n, &line, &col);
    r->line = line;
    return 0;
}

static int route_name(ld_t *ld, struct fy_node *n, const char *path, const char *vs, size_t i,
                      route_http_t *r)
{
    char p[PATH_MAX_LEN];
    struct fy_node *v = get(n, "name");
    if (v) {
        sub(p, path, "name");
        r->name = scalar(ld, v, p, NULL);
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

static int http_route(ld_t *ld, struct fy_node *n, const char *path, size_t i, void *elem,
                      void *arg)
{
    route_http_t *r = elem;
    const char *vs = ((http_ctx_t *)arg)->vs;
    pendings_t *pd = ((http_ctx_t *)arg)->pd;
    if (check_map(ld, n, path, "an http route (HTTPRoute)", http_fields, http_ignored))
        return ld->err->code;
    if (route_name(ld, n, path, vs, i, r) || route_common(ld, n, path, r))
        return ld->err->code;
    struct fy_node *v = get(n, "route");
    int actions = (v != NULL) + (get(n, "redirect") != NULL) + (get(n, "directResponse") != NULL) +
                  (get(n, "delegate") != NULL);
    if (actions != 1)
        return fail(ld, n, path, actions ? "route, redirect, directResponse and delegate are "
                    "mutually exclusive" : "an http route needs route, redirect, directResponse "
                    "or delegate");
    if (v) {
        char p[PATH_MAX_LEN];
        sub(p, path, "route");
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
    if (list_of(ld, n, path, sizeof(route_http_t), NULL, &vs->routes, &vs->nroutes, http_route, &hc))
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
    struct fy_node *m = get(doc, "metadata");
    if (!m || !fy_node_is_mapping(m))
        return fail(ld, m ? m : doc, "metadata", "expected metadata with a name");
    if (!get(m, "name"))
        return fail(ld, m, "metadata.name", "metadata needs a name");
    if (!(*name = scalar(ld, get(m, "name"), "metadata.name", NULL)))
        return ld->err->code;
    *ns = get(m, "namespace") ? scalar(ld, get(m, "namespace"), "metadata.namespace", NULL) : "";
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
    node_mark(doc, &line, &col);
    vs->line = line;
    if (metadata(ld, doc, &vs->name, &vs->ns))
        return ld->err->code;
    if (check_map(ld, spec, "spec", "a VirtualService spec", fields, ignored))
        return ld->err->code;
    struct fy_node *v;
    if ((v = get(spec, "hosts")) && string_list(ld, v, "spec.hosts", &vs->hosts, &vs->nhosts))
        return ld->err->code;
    if ((v = get(spec, "http")))
        return http_list(ld, v, "spec.http", vs, pd);
    vs->default_route = -1;
    return 0;
}

static int subset_item(ld_t *ld, struct fy_node *e, const char *path, size_t i, void *elem,
                       void *arg)
{
    static const char *const fields[] = { "name", NULL };
    static const char *const ignored[] = { "labels", "trafficPolicy", NULL };
    char q[PATH_MAX_LEN];
    sub(q, path, "name");
    if (check_map(ld, e, path, "a subset", fields, ignored))
        return ld->err->code;
    if (!get(e, "name"))
        return fail(ld, e, q, "a subset needs a name");
    return string_item(ld, get(e, "name"), q, i, elem, arg);
}

static int destination_rule(ld_t *ld, struct fy_node *doc, struct fy_node *spec)
{
    static const char *const fields[] = { "host", "subsets", NULL };
    static const char *const ignored[] = { "trafficPolicy", "exportTo", "workloadSelector", NULL };
    const char *name, *ns;
    if (metadata(ld, doc, &name, &ns) ||
        check_map(ld, spec, "spec", "a DestinationRule spec", fields, ignored))
        return ld->err->code;
    rdl_route_table_t *t = ld->t;
    route_dr_t *v = realloc(t->dr, (t->ndr + 1) * sizeof(*v));
    if (!v)
        return oom(ld);
    t->dr = v;
    route_dr_t *dr = &v[t->ndr++];
    memset(dr, 0, sizeof(*dr));
    if (!get(spec, "host"))
        return fail(ld, spec, "spec.host", "a DestinationRule needs host");
    if (!(dr->host = scalar(ld, get(spec, "host"), "spec.host", NULL)))
        return ld->err->code;
    struct fy_node *subs = get(spec, "subsets");
    if (!subs)
        return 0;
    return list_of(ld, subs, "spec.subsets", sizeof(char *), NULL, &dr->subsets, &dr->nsubsets,
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
    r->ndests = (size_t)fy_node_mapping_item_count(n);
    r->dests = alloc(ld, r->ndests * sizeof(route_dest_t));
    if (!r->dests)
        return oom(ld);
    void *it = NULL;
    struct fy_node_pair *p;
    char kp[PATH_MAX_LEN];
    for (size_t i = 0; (p = fy_node_mapping_iterate(n, &it)) != NULL; i++) {
        long long w;
        if (!(r->dests[i].subset = scalar(ld, fy_node_pair_key(p), path, NULL)))
            return ld->err->code;
        join(kp, path, ".", r->dests[i].subset, strlen(r->dests[i].subset));
        if (integer(ld, fy_node_pair_value(p), kp, 0, 1000000000, &w))
            return ld->err->code;
        r->dests[i].weight = (uint32_t)w;
    }
    return check_weights(ld, n, path, r);
}

static int short_route(ld_t *ld, struct fy_node *n, const char *path, size_t i, void *elem,
                       void *arg)
{
    route_http_t *r = elem;
    if (check_map(ld, n, path, "a route", short_fields, NULL))
        return ld->err->code;
    if (route_name(ld, n, path, "routes", i, r) || route_common(ld, n, path, r))
        return ld->err->code;
    struct fy_node *s = get(n, "subset"), *w = get(n, "weights");
    char p[PATH_MAX_LEN];
    if (s && w)
        return fail(ld, w, path, "subset and weights are mutually exclusive");
    if (w) {
        sub(p, path, "weights");
        return short_weights(ld, w, p, r);
    }
    r->ndests = 1;
    r->total_weight = 1;
    r->dests = alloc(ld, sizeof(route_dest_t));
    if (!r->dests)
        return oom(ld);
    r->dests[0].weight = 1;
    if (s) {
        sub(p, path, "subset");
        r->dests[0].subset = scalar(ld, s, p, NULL);
        return r->dests[0].subset ? 0 : ld->err->code;
    }
    return 0;
}

static int short_form(ld_t *ld, struct fy_node *doc)
{
    static const char *const fields[] = { "routes", NULL };
    if (check_map(ld, doc, "", "a routes document", fields, NULL))
        return ld->err->code;
    route_vs_t *vs = new_vs(ld);
    if (!vs)
        return oom(ld);
    vs->name = "routes";
    vs->ns = "";
    if (list_of(ld, get(doc, "routes"), "routes", sizeof(route_http_t), NULL, &vs->routes,
                &vs->nroutes, short_route, NULL))
        return ld->err->code;
    ld->t->nroutes += vs->nroutes;
    set_default_route(vs);
    return 0;
}

static bool scalar_is(struct fy_node *n, const char *s)
{
    size_t len;
    const char *v = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
    return v && len == strlen(s) && memcmp(v, s, len) == 0;
}

static int document(ld_t *ld, struct fy_node *doc, pendings_t *pd)
{
    static const char *const fields[] = { "apiVersion", "kind", "metadata", "spec", NULL };
    static const char *const ignored[] = { "status", NULL };
    if (is_null(doc))
        return 0;                          /* an empty document ("---" at the end) */
    if (!fy_node_is_mapping(doc))
        return fail(ld, doc, "", "expected a VirtualService, a DestinationRule or a routes: list");
    if (get(doc, "routes") && !get(doc, "apiVersion"))
        return short_form(ld, doc);
    struct fy_node *api = get(doc, "apiVersion"), *kind = get(doc, "kind");
    if (!api)
        return fail(ld, doc, "apiVersion", "expected apiVersion networking.istio.io/v1 (or v1beta1, "
                    "v1alpha3), or a routes: list");
    if (!scalar_is(api, "networking.istio.io/v1") && !scalar_is(api, "networking.istio.io/v1beta1") &&
        !scalar_is(api, "networking.istio.io/v1alpha3"))
        return fail(ld, api, "apiVersion", "expected networking.istio.io/v1, v1beta1 or v1alpha3");
    if (check_map(ld, doc, "", "a resource", fields, ignored))
        return ld->err->code;
    struct fy_node *spec = get(doc, "spec");
    if (!spec)
        return fail(ld, doc, "spec", "a resource needs spec");
    if (scalar_is(kind, "VirtualService"))
        return virtual_service(ld, doc, spec, pd);
    if (scalar_is(kind, "DestinationRule"))
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

static int syntax_error(ld_t *ld, struct fy_diag *diag)
{
    struct fy_diag_error *de;
    void *it = NULL;
    while ((de = fy_diag_errors_iterate(diag, &it)) != NULL)
        if (de->type >= FYET_ERROR)
            return rdl_error_set(ld->err, RDL_EINVAL, de->line, de->column, "", "invalid YAML: %s",
                                 de->msg ? de->msg : "syntax error");
    return rdl_error_set(ld->err, RDL_EINVAL, 0, 0, "", "invalid YAML");
}

static int parse_all(ld_t *ld, pendings_t *pd)
{
    struct fy_diag *diag = rdl_yaml_diag_new();
    if (!diag)
        return oom(ld);
    struct fy_parse_cfg pcfg;
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_DEFAULT_VERSION_1_2;
    pcfg.diag = diag;
    struct fy_parser *fyp = fy_parser_create(&pcfg);
    int rc = 0;
    if (!fyp || fy_parser_set_string(fyp, ld->input, ld->input_len) != 0) {
        rc = oom(ld);
    } else {
        struct fy_document *fyd;
        while (rc == 0 && (fyd = fy_parse_load_document(fyp)) != NULL) {
            rc = document(ld, fy_document_root(fyd), pd);
            fy_parse_document_destroy(fyp, fyd);
        }
        if (rc == 0 && fy_parser_get_stream_error(fyp))
            rc = syntax_error(ld, diag);
    }
    if (fyp)
        fy_parser_destroy(fyp);
    fy_diag_destroy(diag);
    return rc;
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
    int rc = rdl_yaml_check_text(yaml, len, err);
    if (rc)
        return rc;
    rdl_route_table_t *t = calloc(1, sizeof(*t));
    if (!t)
        return rdl_error_set(err, RDL_ENOMEM, 0, 0, "", "out of memory");
    atomic_init(&t->refs, 1);
    rdl_arena_init(&t->arena, 16384);
    ld_t ld = { .t = t, .err = err, .input = yaml, .input_len = len };
    pendings_t pd = { 0 };
    rc = parse_all(&ld, &pd);
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
    snprintf(err->file, sizeof(err->file), "%s", path ? path : "");
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return rdl_error_set(err, errno == ENOENT ? RDL_ENOENT : RDL_EIO, 0, 0, "",
                             "cannot open the routes file: %s", strerror(errno));
    char *data = malloc(ROUTE_MAX_FILE + 1);
    size_t n = data ? fread(data, 1, ROUTE_MAX_FILE + 1, f) : 0;
    bool read_err = ferror(f) != 0;
    fclose(f);
    int rc;
    if (!data)
        rc = rdl_error_set(err, RDL_ENOMEM, 0, 0, "", "out of memory");
    else if (read_err)
        rc = rdl_error_set(err, RDL_EIO, 0, 0, "", "cannot read the routes file");
    else if (n > ROUTE_MAX_FILE)
        rc = rdl_error_set(err, RDL_EINVAL, 0, 0, "", "the routes file is larger than %u bytes",
                           ROUTE_MAX_FILE);
    else
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
