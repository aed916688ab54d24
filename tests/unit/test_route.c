/*
 * test_route.c: the route module's promises. The reference's Istio examples
 * load and route as Istio documents (a conformance table of requests and the
 * route each must take); malformed rules are refused with the exact place;
 * regexes are RE2 full matches and what RE2 refuses is refused; weighted
 * splits land within 1 % of their weights over a million decisions and sticky
 * keys never flip; header operations, faults, timeouts and retries reach the
 * decision; the bypass header forces the default route; explain and dump say
 * what happened as valid JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "redline/route.h"
#include "route/route_internal.h"

/* ---- a request built from a table row ------------------------------------ */

typedef struct hdr {
    const char *name, *value;
} hdr_t;

typedef struct req {
    const char *method, *path, *query, *authority, *scheme;
    hdr_t headers[6];
} req_t;

static const char *lookup(void *arg, const char *lname, size_t *len)
{
    const req_t *r = arg;
    for (size_t i = 0; i < 6 && r->headers[i].name; i++)
        if (strcasecmp(r->headers[i].name, lname) == 0) {
            *len = strlen(r->headers[i].value);
            return r->headers[i].value;
        }
    return NULL;
}

static rdl_route_request_t view(const req_t *r)
{
    rdl_route_request_t v;
    memset(&v, 0, sizeof(v));
    v.method = r->method ? r->method : "GET";
    v.method_len = strlen(v.method);
    v.path = r->path ? r->path : "/";
    v.path_len = strlen(v.path);
    v.query = r->query ? r->query : "";
    v.query_len = strlen(v.query);
    v.authority = r->authority ? r->authority : "checkout.shop.svc.cluster.local";
    v.authority_len = strlen(v.authority);
    v.scheme = r->scheme ? r->scheme : "http";
    v.scheme_len = strlen(v.scheme);
    v.header = lookup;
    v.header_arg = (void *)r;
    return v;
}

static rdl_route_table_t *load_ok(const char *yaml, const rdl_route_opts_t *o)
{
    rdl_route_table_t *t = NULL;
    rdl_error_t err;
    int rc = rdl_route_load_string(o, "test.yaml", yaml, strlen(yaml), &t, &err);
    if (rc) {
        char text[1024];
        fprintf(stderr, "unexpected: %s\n", rdl_error_format(&err, text, sizeof(text)));
    }
    assert_int_equal(rc, 0);
    assert_non_null(t);
    return t;
}

/* ---- the reference's examples ------------------------------------------- */

static const char example_a[] =
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: { name: checkout, namespace: shop }\n"
    "spec:\n"
    "  hosts: [ checkout.shop.svc.cluster.local ]\n"
    "  http:\n"
    "    - name: canary-by-header\n"
    "      match:\n"
    "        - headers:\n"
    "            x-canary: { exact: \"always\" }\n"
    "      route:\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: canary }\n"
    "    - name: default\n"
    "      route:\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: stable }\n";

static const char example_b[] =
    "apiVersion: networking.istio.io/v1beta1\n"
    "kind: VirtualService\n"
    "metadata: { name: checkout, namespace: shop }\n"
    "spec:\n"
    "  hosts: [ checkout.shop.svc.cluster.local ]\n"
    "  http:\n"
    "    - name: opt-in\n"
    "      match:\n"
    "        - headers: { x-canary: { exact: \"true\" } }\n"
    "        - headers: { cookie: { regex: \".*canary=1.*\" } }   # full-match RE2\n"
    "      route:\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: canary }\n"
    "          headers: { response: { set: { x-served-by: canary } } }\n"
    "    - name: weighted\n"
    "      route:\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: stable }\n"
    "          weight: 95\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: canary }\n"
    "          weight: 5\n"
    "      retries: { attempts: 2, perTryTimeout: 2s, retryOn: \"gateway-error,connect-failure,refused-stream\" }\n"
    "      timeout: 5s\n";

static const char example_c[] =
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: VirtualService\n"
    "metadata: { name: checkout-edge, namespace: shop }\n"
    "spec:\n"
    "  hosts: [ shop.example.com, checkout.shop.svc.cluster.local ]\n"
    "  gateways: [ istio-system/public-gw, mesh ]\n"
    "  http:\n"
    "    - name: beta-api\n"
    "      match:\n"
    "        - uri: { prefix: /api/v2/ }\n"
    "          method: { exact: POST }\n"
    "          headers: { x-user-group: { regex: \"beta|staff\" } }\n"
    "          withoutHeaders: { x-synthetic: {} }            # header presence => no match\n"
    "      route:\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: canary, port: { number: 8080 } }\n"
    "      headers: { request: { set: { x-route: beta }, remove: [ x-debug ] } }\n"
    "    - name: stable\n"
    "      route:\n"
    "        - destination: { host: checkout.shop.svc.cluster.local, subset: stable, port: { number: 8080 } }\n"
    "      mirror: { host: checkout.shop.svc.cluster.local, subset: canary, port: { number: 8080 } }\n"
    "      mirrorPercentage: { value: 10.0 }\n";

static const char destination_rule[] =
    "apiVersion: networking.istio.io/v1\n"
    "kind: DestinationRule\n"
    "metadata: { name: checkout, namespace: shop }\n"
    "spec:\n"
    "  host: checkout.shop.svc.cluster.local\n"
    "  trafficPolicy:\n"
    "    loadBalancer: { simple: LEAST_REQUEST }\n"
    "    connectionPool:\n"
    "      tcp:  { maxConnections: 100, connectTimeout: 2s }\n"
    "    outlierDetection:\n"
    "      consecutive5xxErrors: 5\n"
    "  subsets:\n"
    "    - name: stable\n"
    "      labels: { version: v1 }\n"
    "    - name: canary\n"
    "      labels: { version: v2 }\n"
    "      trafficPolicy: { connectionPool: { http: { http2MaxRequests: 50 } } }\n";

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 6);
    memcpy(s, a, la);
    memcpy(s + la, "---\n", 4);
    memcpy(s + la + 4, b, lb + 1);
    return s;
}

static void every_example_loads(void **state)
{
    const char *ex[] = { example_a, example_b, example_c };
    for (size_t i = 0; i < 3; i++) {
        char *both = concat(ex[i], destination_rule);
        rdl_route_table_t *t = load_ok(both, NULL);
        assert_int_equal(rdl_route_table_size(t), 2);
        rdl_route_table_unref(t);
        t = load_ok(ex[i], NULL);      /* without the DestinationRule too */
        rdl_route_table_unref(t);
        free(both);
    }
}

/* ---- conformance: each row a request and the route Istio takes ---------- */

typedef struct conf_case {
    const char *yaml;
    req_t req;
    const char *route;              /* NULL: no route matches */
    const char *subset;
} conf_case_t;

static const char vs_head[] =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\n"
    "spec:\n  hosts: [svc]\n  http:\n";

static const char and_or[] =
    "  - name: or\n    match:\n"
    "    - headers: {a: {exact: \"1\"}}\n      uri: {prefix: /x}\n"
    "    - headers: {b: {exact: \"2\"}}\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n";
static const char regex_full[] =
    "  - name: digits\n    match: [{headers: {id: {regex: \"\\\\d+$\"}}}]\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n";
static const char icase[] =
    "  - name: ci\n    match: [{uri: {exact: /Login}, ignoreUriCase: true}]\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n"
    "  - name: cs-regex\n    match: [{uri: {regex: /Admin.*}, ignoreUriCase: true}]\n"
    "    route: [{destination: {host: svc, subset: s2}}]\n";
static const char presence[] =
    "  - name: present\n    match: [{headers: {x-debug: {}}}]\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n"
    "  - name: without\n    match: [{uri: {prefix: /}, withoutHeaders: {x-internal: {exact: \"yes\"}}}]\n"
    "    route: [{destination: {host: svc, subset: s2}}]\n";
static const char query[] =
    "  - name: q\n    match: [{queryParams: {flag: {exact: \"\"}, id: {regex: \"[0-9]+\"}}}]\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n";
static const char methods[] =
    "  - name: post\n    match: [{method: {exact: POST}, scheme: {exact: https}, authority: {prefix: api.}}]\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n"
    "  - name: port\n    match: [{port: 8443}]\n"
    "    route: [{destination: {host: svc, subset: s2}}]\n";
static const char first_wins[] =
    "  - name: broad\n    match: [{uri: {prefix: /api}}]\n"
    "    route: [{destination: {host: svc, subset: s1}}]\n"
    "  - name: specific\n    match: [{uri: {exact: /api/v2}}]\n"
    "    route: [{destination: {host: svc, subset: s2}}]\n"
    "  - name: catch-all\n    route: [{destination: {host: svc, subset: s3}}]\n";

static char *with_head(const char *body)
{
    char *s = malloc(strlen(vs_head) + strlen(body) + 1);
    strcpy(s, vs_head);
    strcat(s, body);
    return s;
}

static void conformance(void **state)
{
    const conf_case_t cases[] = {
        /* example A: header pins testers to canary, others stable */
        { example_a, { .headers = { { "x-canary", "always" } } }, "canary-by-header", "canary" },
        { example_a, { .headers = { { "X-Canary", "always" } } }, "canary-by-header", "canary" },
        { example_a, { .headers = { { "x-canary", "Always" } } }, "default", "stable" },
        { example_a, { .headers = { { "x-canary", "always1" } } }, "default", "stable" },
        { example_a, { 0 }, "default", "stable" },
        /* example B: header OR cookie; the regex is a full match */
        { example_b, { .headers = { { "x-canary", "true" } } }, "opt-in", "canary" },
        { example_b, { .headers = { { "cookie", "a=b; canary=1; c=d" } } }, "opt-in", "canary" },
        { example_b, { .headers = { { "cookie", "canary=1" } } }, "opt-in", "canary" },
        { example_b, { .headers = { { "cookie", "canary=2" } } }, "weighted", NULL },
        /* example C: AND of prefix, method, regex header, and the absence of a header */
        { example_c, { .method = "POST", .path = "/api/v2/orders", .headers = { { "x-user-group", "beta" } } },
          "beta-api", "canary" },
        { example_c, { .method = "POST", .path = "/api/v2/orders", .headers = { { "x-user-group", "staff" } } },
          "beta-api", "canary" },
        { example_c, { .method = "POST", .path = "/api/v2/orders", .headers = { { "x-user-group", "betas" } } },
          "stable", "stable" },
        { example_c, { .method = "GET", .path = "/api/v2/orders", .headers = { { "x-user-group", "beta" } } },
          "stable", "stable" },
        { example_c, { .method = "POST", .path = "/api/v1/orders", .headers = { { "x-user-group", "beta" } } },
          "stable", "stable" },
        { example_c, { .method = "POST", .path = "/api/v2/x",
                       .headers = { { "x-user-group", "beta" }, { "x-synthetic", "" } } }, "stable", "stable" },
        { example_c, { .method = "POST", .path = "/api/v2/x",
                       .headers = { { "x-user-group", "beta" }, { "x-synthetic", "1" } } }, "stable", "stable" },
        /* (a==1 AND path starts /x) OR (b==2) */
        { and_or, { .path = "/x/1", .headers = { { "a", "1" } } }, "or", "s1" },
        { and_or, { .path = "/y", .headers = { { "a", "1" } } }, NULL, NULL },
        { and_or, { .path = "/y", .headers = { { "b", "2" } } }, "or", "s1" },
        { and_or, { .path = "/x", .headers = { { "a", "2" } } }, NULL, NULL },
        /* "\d+$" matches 123 but not a123 */
        { regex_full, { .headers = { { "id", "123" } } }, "digits", "s1" },
        { regex_full, { .headers = { { "id", "a123" } } }, NULL, NULL },
        { regex_full, { .headers = { { "id", "123\n" } } }, NULL, NULL },
        { regex_full, { .headers = { { "id", "" } } }, NULL, NULL },
        /* ignoreUriCase affects exact/prefix, not regex */
        { icase, { .path = "/login" }, "ci", "s1" },
        { icase, { .path = "/LOGIN" }, "ci", "s1" },
        { icase, { .path = "/Admin/x" }, "cs-regex", "s2" },
        { icase, { .path = "/admin/x" }, NULL, NULL },
        /* name: {} means present; withoutHeaders excludes */
        { presence, { .headers = { { "x-debug", "" } } }, "present", "s1" },
        { presence, { .path = "/a" }, "without", "s2" },
        { presence, { .path = "/a", .headers = { { "x-internal", "yes" } } }, NULL, NULL },
        { presence, { .path = "/a", .headers = { { "x-internal", "no" } } }, "without", "s2" },
        /* ?flag (no value) matches exact ""; AND across parameters */
        { query, { .query = "flag&id=42" }, "q", "s1" },
        { query, { .query = "id=42&flag=" }, "q", "s1" },
        { query, { .query = "flag=1&id=42" }, NULL, NULL },
        { query, { .query = "flag&id=4x" }, NULL, NULL },
        { query, { .query = "id=42" }, NULL, NULL },
        /* method is case-sensitive; scheme; authority; port from the authority */
        { methods, { .method = "POST", .scheme = "https", .authority = "api.example.com" }, "post", "s1" },
        { methods, { .method = "post", .scheme = "https", .authority = "api.example.com" }, NULL, NULL },
        { methods, { .method = "POST", .scheme = "http", .authority = "api.example.com" }, NULL, NULL },
        { methods, { .authority = "svc:8443" }, "port", "s2" },
        { methods, { .authority = "svc:8080" }, NULL, NULL },
        /* first match wins, even when a later route is more specific */
        { first_wins, { .path = "/api/v2" }, "broad", "s1" },
        { first_wins, { .path = "/ap" }, "catch-all", "s3" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const conf_case_t *c = &cases[i];
        bool raw = strncmp(c->yaml, "apiVersion", 10) == 0;
        char *yaml = raw ? NULL : with_head(c->yaml);
        rdl_route_table_t *t = load_ok(raw ? c->yaml : yaml, NULL);
        rdl_route_request_t v = view(&c->req);
        rdl_route_decision_t d;
        uint64_t rng = 7;
        bool hit = rdl_route_decide(t, &v, &rng, &d);
        if (hit != (c->route != NULL) || (hit && strcmp(d.route_name, c->route) != 0) ||
            (hit && c->subset && (!d.subset || strcmp(d.subset, c->subset) != 0)))
            fail_msg("case %zu: expected %s/%s, got %s/%s", i, c->route ? c->route : "(none)",
                     c->subset ? c->subset : "-", hit ? d.route_name : "(none)",
                     hit && d.subset ? d.subset : "-");
        rdl_route_table_unref(t);
        free(yaml);
    }
}

/* ---- malformed rules: refused with the place ----------------------------- */

typedef struct bad_case {
    const char *yaml;
    int line, column;
    const char *key;                /* exact err->key */
    const char *msg;                /* substring of err->msg */
} bad_case_t;

#define VS "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [svc]\n  http:\n"
#define ROUTE "    route: [{destination: {host: svc}}]\n"
#define RT "  - route: [{destination: {host: svc}}]\n"

static void malformed(void **state)
{
    const bad_case_t cases[] = {
        { "a: [1, 2\n", 2, 1, "", "invalid YAML" },
        { "routes:\n\t- name: x\n", 2, 1, "", "tab" },
        { "apiVersion: networking.istio.io/v2\nkind: VirtualService\n", 1, 13, "apiVersion",
          "expected networking.istio.io/v1" },
        { "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n", 2, 7,
          "kind", "expected kind VirtualService or DestinationRule" },
        { "- 1\n- 2\n", 1, 3, "", "expected a VirtualService" },
        { VS "  - match: [{uri: {suffix: /x}}]\n" ROUTE, 7, 20, "spec.http[0].match[0].uri",
          "unknown StringMatch kind 'suffix'" },
        { VS "  - match: [{uri: {exact: /x, prefix: /y}}]\n" ROUTE, 7, 20, "spec.http[0].match[0].uri",
          "exactly one of exact, prefix, regex" },
        { VS "  - match: [{uri: {}}]\n" ROUTE, 7, 14, "spec.http[0].match[0].uri", "exactly one of" },
        { VS "  - match:\n    - {}\n" ROUTE, 7, 5, "spec.http[0].match[0]", "cannot be empty" },
        { VS "  - match:\n    - name: only-a-name\n" ROUTE, 8, 7, "spec.http[0].match[0]",
          "a match block cannot be empty" },
        { VS "  - match: []\n" ROUTE, 0, 0, "spec.http[0].match", "an empty match list" },
        { VS "  - match: [{headers: {x-a: {regex: \"(a)\\\\1\"}}}]\n" ROUTE, 7, 37,
          "spec.http[0].match[0].headers.x-a.regex", "backreferences" },
        { VS "  - match: [{headers: {x-a: {regex: \"a(?=b)\"}}}]\n" ROUTE, 7, 37,
          "spec.http[0].match[0].headers.x-a.regex", "lookahead" },
        { VS "  - match: [{headers: {x-a: {regex: \"(a\"}}}]\n" ROUTE, 7, 37,
          "spec.http[0].match[0].headers.x-a.regex", "missing )" },
        { VS "  - match: [{headers: {X-Canary: {exact: a}}}]\n" ROUTE, 7, 24,
          "spec.http[0].match[0].headers.X-Canary", "lowercase" },
        { VS "  - match: [{queryParams: {a: {prefix: b}}}]\n" ROUTE, 7, 32,
          "spec.http[0].match[0].queryParams.a", "prefix matching is not supported" },
        { VS "  - match: [{sourceLabels: {app: x}}]\n" ROUTE, 7, 29, "spec.http[0].match[0].sourceLabels",
          "cannot be evaluated in-process" },
        { VS "  - match: [{uri: {prefx: /x}}]\n" ROUTE, 7, 20, "spec.http[0].match[0].uri",
          "unknown StringMatch kind 'prefx'" },
        { VS "  - match: [{urii: {prefix: /x}}]\n" ROUTE, 7, 14, "spec.http[0].match[0]",
          "unknown field 'urii'" },
        { VS "  - route:\n    - destination: {host: svc}\n      weight: 50.5\n    - destination: {host: svc}\n      weight: 49.5\n",
          9, 15, "spec.http[0].route[0].weight", "expected an integer" },
        { VS "  - route:\n    - destination: {host: svc}\n      weight: \"50\"\n    - destination: {host: svc}\n",
          9, 15, "spec.http[0].route[0].weight", "expected an integer" },
        { VS "  - route:\n    - destination: {host: svc}\n      weight: -1\n", 9, 15,
          "spec.http[0].route[0].weight", "expected an integer" },
        { VS "  - route:\n    - destination: {host: svc}\n      weight: 0\n    - destination: {host: svc}\n      weight: 0\n",
          8, 7, "spec.http[0].route", "cannot all be 0" },
        { VS "  - name: nothing\n", 7, 5, "spec.http[0]", "needs route, redirect" },
        { VS "  - route: [{destination: {subset: a}}]\n", 7, 28, "spec.http[0].route[0].destination.host",
          "needs host" },
        { VS RT "    timeout: fast\n", 8, 14, "spec.http[0].timeout", "expected a duration" },
        { VS RT "    timeout: 5\n", 8, 14, "spec.http[0].timeout", "expected a duration with a unit" },
        { VS RT "    timeout: 315576000001s\n", 8, 14, "spec.http[0].timeout", "longer than a protobuf Duration" },
        /* Found by fuzz_route_load: 9.4e18 ms overflowed a JSON reader's int64 in /debug/routes. */
        { "routes:\n  - name: bt\n    timeout: 0009400000809464265s\n", 3, 14, "routes[0].timeout",
          "longer than a protobuf Duration" },
        { VS RT "    retries: {attempts: two}\n", 8, 25, "spec.http[0].retries.attempts", "expected an integer" },
        { VS RT "    fault: {abort: {httpStatus: 700}}\n", 8, 33, "spec.http[0].fault.abort.httpStatus",
          "from 200 to 599" },
        { VS RT "    fault: {abort: {grpcStatus: UNAVAILABLE}}\n", 8, 21, "spec.http[0].fault.abort",
          "only httpStatus" },
        { VS RT "    fault: {delay: {fixedDelay: 1s, percentage: {value: 120}}}\n", 8, 57,
          "spec.http[0].fault.delay.percentage.value", "from 0 to 100" },
        { VS "  - route: [{destination: {host: svc, subset: blue}}]\n---\n"
          "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
          "spec: {host: svc, subsets: [{name: green}]}\n", 7, 47, "spec.http[0].route[0].destination.subset",
          "subset 'blue' is not defined" },
        { "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {hosts: [a]}\n", 1, 1,
          "metadata", "expected metadata" },
        { "routes:\n  - name: a\n    weights: {v1: 1.5}\n", 3, 19, "routes[0].weights.v1", "expected an integer" },
        { "routes:\n  - name: a\n    subset: v1\n    weights: {v1: 1}\n", 4, 15, "routes[0]", "mutually exclusive" },
        { "routes:\n  - name: &a x\n", 2, 14, "routes[0].name", "anchors" },
        { "", 1, 1, "", "no VirtualService" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case_t *c = &cases[i];
        rdl_route_table_t *t = (rdl_route_table_t *)1;
        rdl_error_t err;
        int rc = rdl_route_load_string(NULL, "bad.yaml", c->yaml, strlen(c->yaml), &t, &err);
        if (rc != RDL_EINVAL || t != NULL || strstr(err.msg, c->msg) == NULL ||
            strcmp(err.key, c->key) != 0 || (c->line && (err.line != c->line || err.column != c->column)) ||
            strcmp(err.file, "bad.yaml") != 0)
            fail_msg("case %zu: rc %d, got %d:%d key '%s' msg '%s'; expected %d:%d '%s' '%s'", i, rc,
                     err.line, err.column, err.key, err.msg, c->line, c->column, c->key, c->msg);
    }
}

/* ---- regexes: RE2 syntax only, full match --------------------------------- */

static int load_regex(const char *re, rdl_route_table_t **t, rdl_error_t *err)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml), VS "  - match: [{headers: {h: {regex: '%s'}}}]\n" ROUTE, re);
    return rdl_route_load_string(NULL, "re.yaml", yaml, strlen(yaml), t, err);
}

static void regex_dialect(void **state)
{
    const char *refused[] = {
        "(a)\\1", "(?P<n>a)(?P=n)", "\\k<n>", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "(?>a+)",
        "a*+", "a++", "a?+", "a{2}+", "\\C", "(?R)", "(a|(?1))", "(?&n)", "(?(1)a|b)", "(*FAIL)",
        "(*UTF)a", "a\\Kb", "\\Ga", "a\\Z", "(?#c)a", "(?x)a b", "(?|a)", "\\R", "\\X", "\\h",
        "a{1001}", "a**", "[[=a=]]", "(?C1)a", "\\ca", "\\e",
    };
    const char *accepted[] = {
        "a.*b", "(?i)abc", "(?i:a)b", "(?P<name>a+)", "(?<name>a)", "[[:alpha:]]+", "\\d{3}-\\d{4}",
        "\\p{Greek}+", "\\x{41}", "\\Qa.b\\E", "a{2,5}?", "[^\\]]", "[]a]", "a|b|", "\\.\\*", "(?s).",
        "\\Aab\\z", "a{1000}", "\\bword\\b", "(?U)a+", "a{,3}",
    };
    rdl_route_table_t *t;
    rdl_error_t err;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        t = NULL;
        if (load_regex(refused[i], &t, &err) != RDL_EINVAL || strstr(err.msg, "RE2") == NULL)
            fail_msg("regex %s should be refused as non-RE2 (got '%s')", refused[i], err.msg);
        assert_string_equal(err.key, "spec.http[0].match[0].headers.h.regex");
    }
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        t = NULL;
        if (load_regex(accepted[i], &t, &err) != 0)
            fail_msg("regex %s should load: %s", accepted[i], err.msg);
        rdl_route_table_unref(t);
    }
}

static bool regex_hits(const char *re, const char *value)
{
    rdl_route_table_t *t = NULL;
    rdl_error_t err;
    assert_int_equal(load_regex(re, &t, &err), 0);
    req_t r = { .headers = { { "h", value } } };
    rdl_route_request_t v = view(&r);
    rdl_route_decision_t d;
    bool hit = rdl_route_decide(t, &v, NULL, &d);
    rdl_route_table_unref(t);
    return hit;
}

static void regex_semantics(void **state)
{
    assert_true(regex_hits("\\d+$", "123"));
    assert_false(regex_hits("\\d+$", "a123"));
    assert_false(regex_hits("abc", "abcd"));        /* full match, not search */
    assert_false(regex_hits("abc", "xabc"));
    assert_true(regex_hits(".*foo.*", "a foo b"));
    assert_true(regex_hits("(?i)ABC", "abc"));
    assert_false(regex_hits("a$", "a\n"));          /* '$' only at the very end, as RE2 */
    assert_false(regex_hits("a.b", "a\nb"));        /* '.' does not match newline */
    assert_true(regex_hits("\\w+", "abc_1"));
    assert_false(regex_hits("\\w+", "\xc3\xa9t\xc3\xa9"));   /* \w is ASCII in RE2 */
    /* invalid UTF-8 in a header is no crash; '.' does not match it (RE2 reads it as U+FFFD) */
    assert_false(regex_hits(".+", "\xff\xfe"));
    assert_true(regex_hits("a.*", "a"));
    assert_true(regex_hits("beta|staff", "staff"));
    assert_false(regex_hits("beta|staff", "betastaff"));
    /* catastrophic backtracking is bounded: no match, no stall */
    char evil[64];
    memset(evil, 'a', 40);
    strcpy(evil + 40, "!");
    assert_false(regex_hits("(a|a)*b", evil));
}

/* The first-byte / length filter never rejects a value the regex matches. */
static void regex_filter_is_safe(void **state)
{
    const struct { const char *re, *value; bool match; } cases[] = {
        { "abc", "abc", true }, { "abc", "xbc", false }, { "abc", "ab", false },
        { "(?i)k", "K", true }, { "(?i)k", "\xe2\x84\xaa", true },      /* KELVIN SIGN folds to k */
        { "(?i:s)x", "Sx", true }, { "beta|staff", "staff", true }, { "beta|staff", "alpha", false },
        { "[0-9]+", "42", true }, { "\\d*", "", true }, { "a?b", "b", true }, { "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", true },
        { ".*foo.*", "a foo", true }, { "x{2,3}", "xx", true }, { "x{2,3}", "x", false },
        /* PCRE2 reports one first unit 'A' for these (found by fuzz_route_match) */
        { "a|Ad", "a", true }, { "a|Ad", "Ad", true }, { "a|Ad", "b", false }, { "Ab|a", "a", true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        route_re_filter_t f, none;
        char why[200];
        size_t at;
        pcre2_code *re = rdl__route_re_compile(cases[i].re, strlen(cases[i].re), &f, why, sizeof(why), &at);
        assert_non_null(re);
        memset(&none, 0, sizeof(none));
        none.jit = f.jit;
        size_t n = strlen(cases[i].value);
        bool with = rdl__route_re_match(re, &f, cases[i].value, n);
        bool without = rdl__route_re_match(re, &none, cases[i].value, n);
        if (with != cases[i].match || without != cases[i].match)
            fail_msg("%s on '%s': filtered %d, unfiltered %d, want %d", cases[i].re, cases[i].value,
                     with, without, cases[i].match);
        pcre2_code_free(re);
    }
}

/* ---- weighted choice ----------------------------------------------------- */

static const char split[] =
    VS "  - name: split\n    route:\n"
    "    - destination: {host: svc, subset: a}\n      weight: 70\n"
    "    - destination: {host: svc, subset: b}\n      weight: 20\n"
    "    - destination: {host: svc, subset: c}\n      weight: 10\n"
    "    - destination: {host: svc, subset: z}\n      weight: 0\n";

static void weighted_split(void **state)
{
    rdl_route_table_t *t = load_ok(split, NULL);
    req_t r = { 0 };
    rdl_route_request_t v = view(&r);
    uint64_t rng = 12345;
    long counts[4] = { 0 };
    const long n = 1000000;
    for (long i = 0; i < n; i++) {
        rdl_route_decision_t d;
        assert_true(rdl_route_decide(t, &v, &rng, &d));
        counts[d.subset[0] == 'z' ? 3 : d.subset[0] - 'a']++;
    }
    const double want[3] = { 0.70, 0.20, 0.10 };
    for (int i = 0; i < 3; i++) {
        double got = (double)counts[i] / (double)n;
        if (got < want[i] - 0.01 || got > want[i] + 0.01)
            fail_msg("subset %c: %.4f, want %.2f +- 0.01", 'a' + i, got, want[i]);
    }
    assert_int_equal(counts[3], 0);
    rdl_route_table_unref(t);
}

/* One seed, one run of decisions: the seed is advanced by each call, so the next call draws anew. */
static void seeded_decisions_repeat(void **state)
{
    (void)state;
    rdl_route_table_t *t = load_ok(split, NULL);
    req_t r = { 0 };
    rdl_route_request_t v = view(&r);
    uint64_t s1 = 42, s2 = 42;
    int differ = 0;
    const char *first = NULL;
    for (int i = 0; i < 200; i++) {
        rdl_route_decision_t d1, d2;
        uint64_t before = s1;
        assert_true(rdl_route_decide(t, &v, &s1, &d1));
        assert_true(rdl_route_decide(t, &v, &s2, &d2));
        assert_string_equal(d1.subset, d2.subset);
        assert_true(s1 == s2 && s1 != before);
        if (!first)
            first = d1.subset;
        differ += strcmp(first, d1.subset) != 0;
    }
    assert_true(differ > 0);                /* the draws move on: not one subset 200 times */
    rdl_route_table_unref(t);
}

static void sticky_never_flips(void **state)
{
    rdl_route_opts_t o = { .sticky_header = "X-User-Id" };
    rdl_route_table_t *t = load_ok(split, &o);
    long counts[3] = { 0 };
    for (int u = 0; u < 20000; u++) {
        char id[32];
        snprintf(id, sizeof(id), "user-%d", u);
        req_t r = { .headers = { { "x-user-id", id } } };
        rdl_route_request_t v = view(&r);
        const char *first = NULL;
        for (int k = 0; k < 20; k++) {
            rdl_route_decision_t d;
            uint64_t rng = (uint64_t)k * 7919 + 1;  /* a different random state each time */
            assert_true(rdl_route_decide(t, &v, &rng, &d));
            if (!first)
                first = d.subset;
            else if (strcmp(first, d.subset) != 0)
                fail_msg("user %s flipped from %s to %s", id, first, d.subset);
        }
        counts[first[0] - 'a']++;
    }
    /* sticky hashing still follows the weights (within 2 % over 20,000 users) */
    assert_in_range(counts[0], 13600, 14400);
    assert_in_range(counts[1], 3600, 4400);
    assert_in_range(counts[2], 1600, 2400);
    /* the same key lands the same way in another table loaded from the same text */
    rdl_route_table_t *t2 = load_ok(split, &o);
    req_t r = { .headers = { { "x-user-id", "user-42" } } };
    rdl_route_request_t v = view(&r);
    rdl_route_decision_t d1, d2;
    assert_true(rdl_route_decide(t, &v, NULL, &d1));
    assert_true(rdl_route_decide(t2, &v, NULL, &d2));
    assert_string_equal(d1.subset, d2.subset);
    rdl_route_table_unref(t2);
    rdl_route_table_unref(t);
}

/* ---- what a decision carries ---------------------------------------------- */

typedef struct warned {
    int n;
    char route[64], conditions[64];
} warned_t;

static void on_retry_warning(void *arg, const char *route, const char *conditions)
{
    warned_t *w = arg;
    w->n++;
    snprintf(w->route, sizeof(w->route), "%s", route);
    snprintf(w->conditions, sizeof(w->conditions), "%s", conditions);
}

static void decision_fields(void **state)
{
    char *both = concat(example_b, destination_rule);
    rdl_route_table_t *t = load_ok(both, NULL);
    free(both);
    req_t r = { .headers = { { "x-canary", "true" } } };
    rdl_route_request_t v = view(&r);
    rdl_route_decision_t d;
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_string_equal(d.virtual_service, "checkout");
    assert_string_equal(d.route_name, "opt-in");
    assert_string_equal(d.color, "canary");
    assert_string_equal(d.host, "checkout.shop.svc.cluster.local");
    assert_null(d.response_ops[0]);
    assert_non_null(d.response_ops[1]);
    assert_int_equal(d.response_ops[1]->nset, 1);
    assert_string_equal(d.response_ops[1]->set[0].name, "x-served-by");
    assert_string_equal(d.response_ops[1]->set[0].value, "canary");
    assert_int_equal(d.retry_attempts, -1);
    assert_int_equal(d.timeout_ms, 0);

    req_t r2 = { 0 };
    v = view(&r2);
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_string_equal(d.route_name, "weighted");
    assert_int_equal(d.timeout_ms, 5000);
    assert_int_equal(d.retry_attempts, 2);
    assert_int_equal(d.per_try_timeout_ms, 2000);
    assert_string_equal(d.retry_on, "gateway-error,connect-failure,refused-stream");
    /* parsed when the table loaded; what cannot be honoured is the table's warning */
    assert_int_equal(d.retry_conditions.bits, RDL_RETRY_ON_GATEWAY_ERROR | RDL_RETRY_ON_CONNECT_FAILURE);
    assert_int_equal(d.retry_conditions.ncodes, 0);
    warned_t w = { 0 };
    rdl_route_table_retry_warnings(t, on_retry_warning, &w);
    rdl_route_table_retry_warnings(t, on_retry_warning, &w);       /* asked again: said again */
    assert_int_equal(w.n, 2);
    assert_string_equal(w.route, "weighted");
    assert_string_equal(w.conditions, "refused-stream");
    rdl_route_table_retry_warnings(NULL, on_retry_warning, &w);
    assert_int_equal(w.n, 2);
    rdl_route_table_unref(t);
    t = load_ok(example_c, NULL);                  /* no retryOn: no warning */
    rdl_route_table_retry_warnings(t, on_retry_warning, &w);
    assert_int_equal(w.n, 2);
    rdl_route_table_unref(t);

    t = load_ok(example_c, NULL);
    req_t r3 = { .method = "POST", .path = "/api/v2/a", .headers = { { "x-user-group", "beta" } } };
    v = view(&r3);
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_non_null(d.request_ops[0]);
    assert_int_equal(d.request_ops[0]->nset, 1);
    assert_string_equal(d.request_ops[0]->set[0].name, "x-route");
    assert_int_equal(d.request_ops[0]->nremove, 1);
    assert_string_equal(d.request_ops[0]->remove[0], "x-debug");
    assert_int_equal(d.port, 8080);
    rdl_route_table_unref(t);
}

static void faults(void **state)
{
    const char yaml[] = VS
        "  - name: slow\n    match: [{uri: {prefix: /slow}}]\n" ROUTE
        "    fault: {delay: {fixedDelay: 0.5s}}\n"
        "  - name: half\n    match: [{uri: {prefix: /half}}]\n" ROUTE
        "    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}\n"
        "  - name: never\n    match: [{uri: {prefix: /never}}]\n" ROUTE
        "    fault: {abort: {httpStatus: 500, percentage: {value: 0}}, delay: {fixedDelay: 1s, percent: 0}}\n"
        "  - name: default\n" ROUTE "    fault: {abort: {httpStatus: 418}}\n";
    rdl_route_opts_t o = { .bypass_header = "x-redline-bypass" };
    rdl_route_table_t *t = load_ok(yaml, &o);
    rdl_route_decision_t d;
    req_t r = { .path = "/slow" };
    rdl_route_request_t v = view(&r);
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_int_equal(d.delay_ms, 500);
    assert_int_equal(d.abort_status, 0);
    req_t h = { .path = "/half" };
    v = view(&h);
    uint64_t rng = 99;
    int aborted = 0;
    for (int i = 0; i < 100000; i++) {
        assert_true(rdl_route_decide(t, &v, &rng, &d));
        aborted += d.abort_status == 503;
    }
    assert_in_range(aborted, 49000, 51000);
    req_t nv = { .path = "/never" };
    v = view(&nv);
    for (int i = 0; i < 1000; i++) {
        assert_true(rdl_route_decide(t, &v, &rng, &d));
        assert_int_equal(d.abort_status + (int)d.delay_ms, 0);
    }
    /* the bypass header forces the default route and injects no fault */
    req_t b = { .path = "/slow", .headers = { { "x-redline-bypass", "1" } } };
    v = view(&b);
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_true(d.bypassed);
    assert_string_equal(d.route_name, "default");
    assert_int_equal(d.abort_status, 0);
    assert_int_equal(d.delay_ms, 0);
    assert_string_equal(d.color, "default");
    req_t nb = { .path = "/other" };
    v = view(&nb);
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_false(d.bypassed);
    assert_int_equal(d.abort_status, 418);
    rdl_route_table_unref(t);
}

static void short_form(void **state)
{
    const char yaml[] =
        "routes:\n"
        "  - name: beta\n"
        "    match:\n"
        "      - headers: {x-user-group: {exact: beta}}\n"
        "    subset: v2\n"
        "    headers: {response: {set: {x-color: v2}}}\n"
        "  - name: split\n"
        "    weights: {v1: 90, v2: 10}\n"
        "    timeout: 2s\n";
    rdl_route_table_t *t = load_ok(yaml, NULL);
    rdl_route_decision_t d;
    req_t r = { .headers = { { "x-user-group", "beta" } } };
    rdl_route_request_t v = view(&r);
    assert_true(rdl_route_decide(t, &v, NULL, &d));
    assert_string_equal(d.route_name, "beta");
    assert_string_equal(d.subset, "v2");
    assert_null(d.host);
    assert_string_equal(d.virtual_service, "routes");
    req_t o = { 0 };
    v = view(&o);
    uint64_t rng = 5;
    int v2 = 0;
    for (int i = 0; i < 100000; i++) {
        assert_true(rdl_route_decide(t, &v, &rng, &d));
        assert_string_equal(d.route_name, "split");
        v2 += strcmp(d.subset, "v2") == 0;
    }
    assert_in_range(v2, 9000, 11000);
    assert_int_equal(d.timeout_ms, 2000);
    rdl_route_table_unref(t);
}

static void virtual_service_by_host(void **state)
{
    const char yaml[] =
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: one}\n"
        "spec:\n  hosts: [one.ns.svc.cluster.local]\n  http:\n  - name: r1\n" ROUTE
        "---\n"
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: two}\n"
        "spec:\n  hosts: ['*.example.com', two]\n  http:\n  - name: r2\n" ROUTE;
    rdl_route_table_t *t = load_ok(yaml, NULL);
    const struct { const char *authority, *vs; } cases[] = {
        { "one.ns.svc.cluster.local", "one" }, { "one", "one" }, { "one:8080", "one" },
        { "api.example.com", "two" }, { "two.ns.svc.cluster.local:80", "two" }, { "two", "two" },
        { "example.com", "one" }, { "127.0.0.1:8080", "one" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req_t r = { .authority = cases[i].authority };
        rdl_route_request_t v = view(&r);
        rdl_route_decision_t d;
        assert_true(rdl_route_decide(t, &v, NULL, &d));
        if (strcmp(d.virtual_service, cases[i].vs) != 0)
            fail_msg("%s: %s, want %s", cases[i].authority, d.virtual_service, cases[i].vs);
    }
    rdl_route_table_unref(t);
}

/* More header names than the per-decision cache holds: the rest are looked up directly. */
static void many_header_names(void **state)
{
    rdl_buf_t y;
    rdl_buf_init(&y);
    rdl_buf_puts(&y, VS);
    for (int i = 0; i < 80; i++)
        rdl_buf_printf(&y, "  - name: r%d\n    match: [{headers: {x-h%d: {exact: v%d}}, "
                       "withoutHeaders: {x-h%d: {exact: no}}}]\n" ROUTE, i, i, i, i);
    rdl_route_table_t *t = load_ok(y.data, NULL);
    for (int i = 0; i < 80; i += 7) {
        char name[16], value[16];
        snprintf(name, sizeof(name), "x-h%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        req_t r = { .headers = { { "x-other", "1" }, { name, value } } };
        rdl_route_request_t v = view(&r);
        rdl_route_decision_t d;
        assert_true(rdl_route_decide(t, &v, NULL, &d));
        assert_int_equal(d.route_index, i);
    }
    req_t none = { .headers = { { "x-h79", "v78" } } };
    rdl_route_request_t v = view(&none);
    rdl_route_decision_t d;
    assert_false(rdl_route_decide(t, &v, NULL, &d));
    rdl_route_table_unref(t);
    rdl_buf_close(&y);
}

/* ---- explain, dump, baggage ------------------------------------------------ */

static json_t *parse(const rdl_buf_t *b)
{
    json_error_t e;
    json_t *j = json_loadb(b->data, b->len, 0, &e);
    if (!j)
        fail_msg("invalid JSON (%s): %s", e.text, b->data);
    return j;
}

static void explain_and_dump(void **state)
{
    rdl_route_table_t *t = load_ok(example_c, NULL);
    req_t r = { .method = "GET", .path = "/api/v2/orders", .headers = { { "x-user-group", "beta" } } };
    rdl_route_request_t v = view(&r);
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_route_explain(t, &v, &b);
    json_t *j = parse(&b);
    assert_true(json_is_true(json_object_get(j, "matched")));
    assert_string_equal(json_string_value(json_object_get(j, "route")), "stable");
    assert_string_equal(json_string_value(json_object_get(j, "subset")), "stable");
    json_t *tried = json_object_get(j, "tried");
    assert_int_equal(json_array_size(tried), 2);
    json_t *first = json_array_get(tried, 0);
    assert_true(json_is_false(json_object_get(first, "matched")));
    json_t *failed = json_object_get(json_array_get(json_object_get(first, "blocks"), 0), "failed");
    assert_string_equal(json_string_value(json_object_get(failed, "field")), "method");
    assert_string_equal(json_string_value(json_object_get(json_object_get(failed, "match"), "exact")), "POST");
    assert_string_equal(json_string_value(json_object_get(failed, "actual")), "GET");
    json_decref(j);

    rdl_buf_reset(&b);
    rdl_route_dump(t, &b);
    j = parse(&b);
    json_t *vs = json_array_get(json_object_get(j, "virtual_services"), 0);
    assert_string_equal(json_string_value(json_object_get(vs, "name")), "checkout-edge");
    json_t *http = json_object_get(vs, "http");
    assert_int_equal(json_array_size(http), 2);
    json_t *conds = json_object_get(json_array_get(json_object_get(json_array_get(http, 0), "match"), 0),
                                    "conditions");
    assert_int_equal(json_array_size(conds), 4);
    json_decref(j);
    rdl_buf_close(&b);
    rdl_route_table_unref(t);
}

/* /debug/routes and explain never show a credential: secret-named headers' values are redacted. */
static void dump_redacts_secrets(void **state)
{
    static const char yaml[] =
        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: VirtualService\n"
        "metadata: { name: edge }\n"
        "spec:\n"
        "  hosts: [ edge ]\n"
        "  http:\n"
        "    - name: ops\n"
        "      match:\n"
        "        - headers: { authorization: { exact: \"Bearer ops-Secret-1\" } }\n"
        "      route:\n"
        "        - destination: { host: edge, subset: ops }\n"
        "      headers: { request: { set: { x-api-token: up-Secret-2, x-route: ops } } }\n"
        "    - name: rest\n"
        "      route:\n"
        "        - destination: { host: edge, subset: stable }\n";
    rdl_route_table_t *t = load_ok(yaml, NULL);
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_route_dump(t, &b);
    assert_null(strstr(b.data, "Secret-"));
    assert_non_null(strstr(b.data, "\"x-route\":\"ops\""));          /* others as they are */
    assert_non_null(strstr(b.data, "\"exact\":\"" RDL_REDACTED "\""));
    assert_non_null(strstr(b.data, "\"x-api-token\":\"" RDL_REDACTED "\""));
    req_t r = { .method = "GET", .path = "/", .headers = { { "authorization", "Bearer caller-Secret-3" } } };
    rdl_route_request_t v = view(&r);
    rdl_buf_reset(&b);
    rdl_route_explain(t, &v, &b);
    assert_null(strstr(b.data, "Secret-"));
    rdl_buf_close(&b);
    rdl_route_table_unref(t);
}

/* The explain request as the admin plane receives it: the same answer, and a table of bad bodies. */
static void explain_json(void **state)
{
    rdl_route_table_t *t = load_ok(example_c, NULL);
    rdl_buf_t b;
    rdl_error_t err;
    rdl_buf_init(&b);
    const char *ok = "{\"path\":\"/api/v2/orders?x=1\",\"headers\":{\"X-User-Group\":\"beta\"}}";
    assert_int_equal(rdl_route_explain_json(t, ok, strlen(ok), &b, &err), 0);
    json_t *j = parse(&b);
    assert_string_equal(json_string_value(json_object_get(j, "route")), "stable");
    json_decref(j);

    static const struct { const char *body; int line, column; const char *key, *msg; } bad[] = {
        { "", 1, 0, "", "expected a JSON object" },
        { "{nope", 1, 5, "", "expected a JSON object" },
        { "{\"path\":\"/a\",\n \"method\":}", 2, 11, "", "expected a JSON object" },
        { "[1,2]", 1, 1, "", "expected a JSON object" },
        { "\"GET /\"", 1, 0, "", "expected a JSON object" },
        { "{\"method\":7}", 0, 0, "method", "expected a string" },
        { "{\"path\":null}", 0, 0, "path", "expected a string" },
        { "{\"uri\":[\"/\"]}", 0, 0, "uri", "expected a string" },
        { "{\"headers\":[\"a\"]}", 0, 0, "headers", "expected an object" },
        { "{\"headers\":{\"x-a\":1}}", 0, 0, "headers.x-a", "expected a string value" },
        { "{\"scheme\":true}", 0, 0, "scheme", "expected a string" },
        { "{\"path\":\"/\\u0000\"}", 1, 0, "", "expected a JSON object" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_buf_reset(&b);
        int rc = rdl_route_explain_json(t, bad[i].body, strlen(bad[i].body), &b, &err);
        if (rc != RDL_EINVAL || b.len != 0 || strcmp(err.key, bad[i].key) != 0 ||
            (bad[i].line && err.line != bad[i].line) || (bad[i].column && err.column != bad[i].column) ||
            strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu '%s': rc %d, %d:%d key '%s' msg '%s'", i, bad[i].body, rc, err.line,
                     err.column, err.key, err.msg);
    }
    rdl_buf_close(&b);
    rdl_route_table_unref(t);
}

static void baggage(void **state)
{
    rdl_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    char out[64];
    assert_int_equal(rdl_route_baggage_member(&ctx, out, sizeof(out)), 0);
    ctx.color = "canary";
    assert_int_equal(rdl_route_baggage_member(&ctx, out, sizeof(out)), 20);
    assert_string_equal(out, "redline.color=canary");
    assert_int_equal(rdl_route_baggage_member(&ctx, out, 20), 0);   /* no room for the NUL */
    ctx.color = "a,b";
    assert_int_equal(rdl_route_baggage_member(&ctx, out, sizeof(out)), 0);
}

static void load_file(void **state)
{
    char path[] = "/tmp/rdl-route-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, example_a, strlen(example_a)), (ssize_t)strlen(example_a));
    close(fd);
    rdl_route_table_t *t = NULL;
    rdl_error_t err;
    assert_int_equal(rdl_route_load_file(NULL, path, &t, &err), 0);
    assert_int_equal(rdl_route_table_size(t), 2);
    rdl_route_table_unref(t);
    unlink(path);
    assert_int_equal(rdl_route_load_file(NULL, path, &t, &err), RDL_ENOENT);
    assert_string_equal(err.file, path);
    rdl_route_table_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_example_loads),
        cmocka_unit_test(conformance),
        cmocka_unit_test(malformed),
        cmocka_unit_test(regex_dialect),
        cmocka_unit_test(regex_semantics),
        cmocka_unit_test(regex_filter_is_safe),
        cmocka_unit_test(weighted_split),
        cmocka_unit_test(seeded_decisions_repeat),
        cmocka_unit_test(sticky_never_flips),
        cmocka_unit_test(decision_fields),
        cmocka_unit_test(faults),
        cmocka_unit_test(short_form),
        cmocka_unit_test(virtual_service_by_host),
        cmocka_unit_test(many_header_names),
        cmocka_unit_test(explain_and_dump),
        cmocka_unit_test(dump_redacts_secrets),
        cmocka_unit_test(explain_json),
        cmocka_unit_test(baggage),
        cmocka_unit_test(load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
