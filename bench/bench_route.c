/*
 * bench_route.c: what a routing decision costs, next to a naive matcher
 * measured in the same run.
 *
 * Tables: the checklist's gray-release middleware (3 rules: an exact header,
 * a prefix plus method, a header regex, then the default) and a 1,000-rule
 * table whose request matches none but the final catch-all (the worst case:
 * every rule is tried). The request has 8 header fields, looked up the way
 * the runtime does (length, then a case-insensitive compare), the same
 * function for both matchers. The naive matcher is what one writes without a
 * rule compiler: rules kept as text, each header looked up again for every
 * rule, regexes by POSIX regexec (anchored). Rounds alternate between the two
 * and the median is printed with the ratio. Time is the thread's CPU time, so
 * a neighbour taking the core does not count against either side.
 *
 * Usage: bench_route [rounds] [iterations-per-round]
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "redline/route.h"
#include "bench_util.h"

#define MAX_ROUNDS 51
#define BIG 1000

/* ---- the request ------------------------------------------------------------ */

typedef struct hdr {
    const char *name, *value;
} hdr_t;

static const hdr_t headers[] = {
    { "Host", "coursed.school.svc.cluster.local" },
    { "User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" },
    { "Accept", "application/json" },
    { "Accept-Encoding", "gzip, deflate, br" },
    { "Cookie", "session=4f2a9c1e7b3d4e5f8a9b0c1d2e3f4a5b; theme=dark" },
    { "X-Request-Id", "9f1c2b3a4d5e6f70" },
    { "X-User-Id", "user-4242" },
    { "X-User-Group", "alpha" },
};
#define NHEADERS (sizeof(headers) / sizeof(headers[0]))

/* Length first, then a case-insensitive compare: how the runtime finds a header. */
static const char *find_header(const char *lname, size_t *len)
{
    size_t n = strlen(lname);
    for (size_t i = 0; i < NHEADERS; i++)
        if (strlen(headers[i].name) == n && strncasecmp(headers[i].name, lname, n) == 0) {
            *len = strlen(headers[i].value);
            return headers[i].value;
        }
    return NULL;
}

static const char *lookup(void *arg, const char *lname, size_t *len)
{
    (void)arg;
    return find_header(lname, len);
}

static rdl_route_request_t request(void)
{
    rdl_route_request_t r = {
        .method = "GET", .method_len = 3, .path = "/v1/courses/42", .path_len = 14,
        .query = "", .query_len = 0, .authority = "coursed.school.svc.cluster.local",
        .authority_len = 32, .scheme = "http", .scheme_len = 4, .header = lookup,
    };
    return r;
}

/* ---- tables ----------------------------------------------------------------- */

static const char three[] =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: gray}\n"
    "spec:\n  hosts: [coursed]\n  http:\n"
    "  - name: canary-header\n    match: [{headers: {x-canary: {exact: always}}}]\n"
    "    route: [{destination: {host: coursed, subset: canary}}]\n"
    "  - name: beta-api\n    match: [{uri: {prefix: /api/v2/}, method: {exact: POST}}]\n"
    "    route: [{destination: {host: coursed, subset: canary}}]\n"
    "  - name: staff\n    match: [{headers: {x-user-group: {regex: \"beta|staff\"}}}]\n"
    "    route: [{destination: {host: coursed, subset: canary}}]\n"
    "  - name: default\n    route: [{destination: {host: coursed, subset: stable}}]\n";

static char *big_table(void)
{
    size_t cap = 256 + (size_t)BIG * 200;
    char *s = malloc(cap);
    size_t n = (size_t)snprintf(s, cap, "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                                "metadata: {name: big}\nspec:\n  hosts: [coursed]\n  http:\n");
    for (int i = 0; i < BIG; i++) {
        /* a mix: every third rule a regex, the others an exact header or a prefix + header */
        if (i % 3 == 0)
            n += (size_t)snprintf(s + n, cap - n, "  - name: r%d\n    match: [{headers: {x-user-group: "
                                  "{regex: \"grp%d|team%d-.*\"}}}]\n", i, i, i);
        else if (i % 3 == 1)
            n += (size_t)snprintf(s + n, cap - n, "  - name: r%d\n    match: [{headers: {x-tenant: "
                                  "{exact: t%d}}}]\n", i, i);
        else
            n += (size_t)snprintf(s + n, cap - n, "  - name: r%d\n    match: [{uri: {prefix: /v1/p%d/},"
                                  " headers: {x-user-id: {exact: u%d}}}]\n", i, i, i);
        n += (size_t)snprintf(s + n, cap - n, "    route: [{destination: {host: coursed, subset: s%d}}]\n",
                              i % 7);
    }
    snprintf(s + n, cap - n, "  - name: default\n    route: [{destination: {host: coursed}}]\n");
    return s;
}

/* ---- the naive matcher ------------------------------------------------------ */

typedef struct naive_rule {
    const char *header;         /* NULL: no header condition */
    const char *exact;          /* header value, or NULL */
    regex_t re;                 /* when regex */
    bool has_re;
    const char *prefix;         /* uri prefix, or NULL */
    const char *method;
    const char *name;
} naive_rule_t;

static const char *naive_header(const char *name)
{
    size_t len;
    return find_header(name, &len);
}

static void naive_regex(naive_rule_t *r, const char *pat)
{
    char full[256];
    snprintf(full, sizeof(full), "^(%s)$", pat);
    if (regcomp(&r->re, full, REG_EXTENDED | REG_NOSUB) != 0)
        abort();
    r->has_re = true;
}

static const char *naive_match(const naive_rule_t *rules, size_t n, const char *method, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        const naive_rule_t *r = &rules[i];
        if (r->method && strcmp(r->method, method) != 0)
            continue;
        if (r->prefix && strncmp(path, r->prefix, strlen(r->prefix)) != 0)
            continue;
        if (r->header) {
            const char *v = naive_header(r->header);
            if (!v || (r->exact && strcmp(v, r->exact) != 0) ||
                (r->has_re && regexec(&r->re, v, 0, NULL, 0) != 0))
                continue;
        }
        return r->name;
    }
    return NULL;
}

static naive_rule_t *naive_three(size_t *n)
{
    static naive_rule_t r[4];
    memset(r, 0, sizeof(r));
    r[0] = (naive_rule_t){ .header = "x-canary", .exact = "always", .name = "canary-header" };
    r[1] = (naive_rule_t){ .prefix = "/api/v2/", .method = "POST", .name = "beta-api" };
    r[2] = (naive_rule_t){ .header = "x-user-group", .name = "staff" };
    naive_regex(&r[2], "beta|staff");
    r[3] = (naive_rule_t){ .name = "default" };
    *n = 4;
    return r;
}

static naive_rule_t *naive_big(size_t *n)
{
    naive_rule_t *r = calloc(BIG + 1, sizeof(*r));
    static char text[BIG][3][48];
    for (int i = 0; i < BIG; i++) {
        snprintf(text[i][0], sizeof(text[i][0]), "r%d", i);
        r[i].name = text[i][0];
        if (i % 3 == 0) {
            r[i].header = "x-user-group";
            snprintf(text[i][1], sizeof(text[i][1]), "grp%d|team%d-.*", i, i);
            naive_regex(&r[i], text[i][1]);
        } else if (i % 3 == 1) {
            r[i].header = "x-tenant";
            snprintf(text[i][1], sizeof(text[i][1]), "t%d", i);
            r[i].exact = text[i][1];
        } else {
            snprintf(text[i][1], sizeof(text[i][1]), "/v1/p%d/", i);
            snprintf(text[i][2], sizeof(text[i][2]), "u%d", i);
            r[i].prefix = text[i][1];
            r[i].header = "x-user-id";
            r[i].exact = text[i][2];
        }
    }
    r[BIG].name = "default";
    *n = BIG + 1;
    return r;
}

/* ---- timing ------------------------------------------------------------------ */

static volatile size_t sink;

static double time_ours(const rdl_route_table_t *t, long iters, const char *want)
{
    rdl_route_request_t req = request();
    rdl_route_decision_t d;
    uint64_t rng = 1;
    double t0 = bench_cpu_ns();
    for (long i = 0; i < iters; i++) {
        rdl_route_decide(t, &req, &rng, &d);
        sink += (size_t)d.route_name;
    }
    double ns = (bench_cpu_ns() - t0) / (double)iters;
    if (strcmp(d.route_name, want) != 0)
        abort();
    return ns;
}

static double time_naive(const naive_rule_t *rules, size_t n, long iters, const char *want)
{
    const char *got = NULL;
    double t0 = bench_cpu_ns();
    for (long i = 0; i < iters; i++) {
        got = naive_match(rules, n, "GET", "/v1/courses/42");
        sink += (size_t)got;
    }
    double ns = (bench_cpu_ns() - t0) / (double)iters;
    if (!got || strcmp(got, want) != 0)
        abort();
    return ns;
}

static void bench(const char *what, const rdl_route_table_t *t, const naive_rule_t *rules, size_t n,
                  int rounds, long iters, const char *want)
{
    double ours[MAX_ROUNDS], naive[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        ours[r] = time_ours(t, iters, want);
        naive[r] = time_naive(rules, n, iters, want);
    }
    double o = bench_median(ours, rounds), v = bench_median(naive, rounds);
    printf("%-34s redline %9.1f ns/op   naive %9.1f ns/op   ratio %.2fx\n", what, o, v, v / o);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 11;
    long iters = argc > 2 ? atol(argv[2]) : 200000;
    if (rounds < 1 || rounds > MAX_ROUNDS || iters < 1) {
        fprintf(stderr, "usage: bench_route [rounds 1..%d] [iterations]\n", MAX_ROUNDS);
        return 2;
    }
    rdl_route_table_t *t3 = NULL, *tb = NULL;
    rdl_error_t err;
    char *big = big_table();
    if (rdl_route_load_string(NULL, "three", three, strlen(three), &t3, &err) ||
        rdl_route_load_string(NULL, "big", big, strlen(big), &tb, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    size_t n3, nb;
    naive_rule_t *r3 = naive_three(&n3), *rb = naive_big(&nb);
    printf("bench_route: %d rounds x %ld decisions, median; request with %zu headers\n", rounds,
           iters, NHEADERS);
    bench("3 rules, default route (worst)", t3, r3, n3, rounds, iters, "default");
    bench("1000 rules, catch-all (worst)", tb, rb, nb, rounds, iters / 100 > 0 ? iters / 100 : 1,
          "default");
    rdl_route_table_unref(t3);
    rdl_route_table_unref(tb);
    for (size_t i = 0; i < nb; i++)
        if (rb[i].has_re)
            regfree(&rb[i].re);
    regfree(&r3[2].re);
    free(rb);
    free(big);
    return 0;
}
