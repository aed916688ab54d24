/*
 * fuzz_route_match.c: arbitrary requests against a fixed table that uses every
 * kind of condition, and arbitrary patterns through the RE2 dialect check.
 * The input is split on 0x00 into method, path, query, authority, scheme and
 * header values. The decision must equal what explain reports, a sticky key
 * must always land on the same subset, and a pattern the checker accepts must
 * compile or be refused with a message, never crash or stall a match.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "redline/route.h"
#include "route/route_internal.h"

static const char rules[] =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: f}\n"
    "spec:\n  hosts: [svc, '*.example.com']\n  http:\n"
    "  - name: a\n    match:\n"
    "    - {uri: {prefix: /api/}, method: {exact: POST}, headers: {x-g: {regex: 'beta|st(a|e)ff.*'}},"
    " withoutHeaders: {x-s: {}}}\n"
    "    - {uri: {regex: '/v[0-9]+/(?i:items)/\\d{1,4}'}, queryParams: {q: {exact: ''}}}\n"
    "    route: [{destination: {host: svc, subset: c}}]\n"
    "  - name: b\n    match:\n"
    "    - {authority: {prefix: api.}, scheme: {exact: https}, ignoreUriCase: true, uri: {exact: /Login}}\n"
    "    - {port: 8443}\n    - {headers: {cookie: {regex: '.*canary=1.*'}}}\n"
    "    route: [{destination: {host: svc, subset: c}}]\n"
    "  - name: w\n    route:\n"
    "    - {destination: {host: svc, subset: s}, weight: 90}\n"
    "    - {destination: {host: svc, subset: c}, weight: 10}\n";

typedef struct fields {
    const char *v[8];
    size_t n[8];
} fields_t;

static const char *hdr(void *arg, const char *lname, size_t *len)
{
    static const char *const names[] = { "x-g", "x-s", "cookie", "x-user", "x-bypass" };
    const fields_t *f = arg;
    for (int i = 0; i < 5; i++)
        if (strcmp(names[i], lname) == 0 && f->v[3 + i] && f->n[3 + i] > 0) {
            *len = f->n[3 + i] - 1;         /* a leading byte decides presence */
            return f->v[3 + i] + 1;
        }
    return NULL;
}

static rdl_route_table_t *table(void)
{
    static rdl_route_table_t *t;
    if (!t) {
        rdl_route_opts_t o = { .bypass_header = "x-bypass", .sticky_header = "x-user" };
        rdl_error_t err;
        if (rdl_route_load_string(&o, "f.yaml", rules, sizeof(rules) - 1, &t, &err) != 0)
            __builtin_trap();
    }
    return t;
}

/*
 * The pre-filter must never reject what the regex matches: every subject is
 * tried with the filter and with an empty one (which lets everything through).
 */
static void filter_agrees(const char *pat, size_t n, const uint8_t *data, size_t size)
{
    route_re_filter_t f, none;
    char why[200];
    size_t at;
    pcre2_code *re = rdl__route_re_compile(pat, n, &f, why, sizeof(why), &at);
    if (!re)
        return;
    memset(&none, 0, sizeof(none));
    none.jit = f.jit;
    const char *subjects[] = { pat, (const char *)data, "", "a", "A", "\xe2\x84\xaa", "0" };
    size_t lens[] = { n, size, 0, 1, 1, 3, 1 };
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (size_t k = 0; k <= lens[i] && k < 64; k += lens[i] > 8 ? lens[i] / 4 + 1 : 1)
            if (rdl__route_re_match(re, &f, subjects[i] + k, lens[i] - k) !=
                rdl__route_re_match(re, &none, subjects[i] + k, lens[i] - k))
                __builtin_trap();
    pcre2_code_free(re);
}

static void regex_path(const uint8_t *data, size_t size)
{
    char yaml[1024];
    char pat[256];
    size_t n = 0;
    for (size_t i = 1; i < size && n < sizeof(pat) - 1; i++)
        if (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '\'')
            pat[n++] = (char)data[i];
    pat[n] = '\0';
    filter_agrees(pat, n, data, size);
    snprintf(yaml, sizeof(yaml), "routes:\n  - match: [{uri: {regex: '%s'}}]\n", pat);
    rdl_route_table_t *t = NULL;
    rdl_error_t err;
    if (rdl_route_load_string(NULL, "re.yaml", yaml, strlen(yaml), &t, &err) != 0) {
        if (err.msg[0] == '\0')
            __builtin_trap();
        return;
    }
    rdl_route_request_t req = { .method = "GET", .method_len = 3, .path = pat, .path_len = n };
    rdl_route_decision_t d;
    rdl_route_decide(t, &req, NULL, &d);
    rdl_route_table_unref(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 'R') {
        regex_path(data, size);
        return 0;
    }
    fields_t f;
    memset(&f, 0, sizeof(f));
    const char *s = (const char *)data, *end = s + size;
    for (int i = 0; i < 8 && s <= end; i++) {
        const char *z = memchr(s, 0, (size_t)(end - s));
        f.v[i] = s;
        f.n[i] = z ? (size_t)(z - s) : (size_t)(end - s);
        s += f.n[i] + 1;
    }
    rdl_route_request_t req = {
        .method = f.v[0], .method_len = f.n[0], .path = f.v[1], .path_len = f.n[1],
        .query = f.v[2], .query_len = f.n[2], .authority = f.v[3] ? f.v[3] : "",
        .authority_len = f.n[3], .scheme = "https", .scheme_len = 5, .header = hdr, .header_arg = &f,
    };
    rdl_route_table_t *t = table();
    rdl_route_decision_t d1, d2;
    uint64_t r1 = 1, r2 = 99;
    bool hit = rdl_route_decide(t, &req, &r1, &d1);
    if (!hit || rdl_route_decide(t, &req, &r2, &d2) != hit ||
        strcmp(d1.route_name, d2.route_name) != 0)
        __builtin_trap();
    size_t ulen;
    if (hdr(&f, "x-user", &ulen) && strcmp(d1.subset, d2.subset) != 0)
        __builtin_trap();                 /* sticky: the random state must not matter */
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_route_explain(t, &req, &b);
    json_t *j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
    if (!j || strcmp(json_string_value(json_object_get(j, "route")), d1.route_name) != 0)
        __builtin_trap();
    json_decref(j);
    rdl_buf_close(&b);
    return 0;
}
