/*
 * route_internal.h: the route module's private structures, shared by load.c
 * (YAML to rules), regex.c (RE2 syntax check, PCRE2 full match), match.c
 * (decisions) and json.c (dump and explain). Nothing here is public API.
 */
#ifndef REDLINE_ROUTE_INTERNAL_H
#define REDLINE_ROUTE_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <stdatomic.h>
#include <pcre2.h>
#include "redline/route.h"

/* ---- regex.c ---------------------------------------------------------- */

/*
 * Checks that pattern is RE2 syntax that PCRE2 reads with the same meaning.
 * Returns 0, or -1 with why filled and *at the byte offset of the offending
 * construct.
 */
int rdl__route_re2_check(const char *pattern, size_t len, char *why, size_t whylen, size_t *at);
/*
 * A cheap test before the regex runs: values shorter than the pattern's
 * shortest match, or starting with a byte no match can start with, cannot
 * match. Most rules fail this way on most requests.
 */
typedef struct route_re_filter {
    uint32_t minlen;            /* characters; a value of fewer bytes cannot match */
    bool has_first;             /* first[] is exact: no match starts with a byte not in it */
    bool jit;                   /* compiled by the JIT */
    uint8_t first[32];          /* bitmap of possible first bytes */
} route_re_filter_t;

/* Compiles for full matching (anchored at both ends), JIT when available. */
pcre2_code *rdl__route_re_compile(const char *pattern, size_t len, route_re_filter_t *filter,
                             char *why, size_t whylen, size_t *at);
/* Full match of s against re. A match that hits the backtracking limit is no match. */
bool rdl__route_re_match(const pcre2_code *re, const route_re_filter_t *filter, const char *s,
                    size_t len);

/* ---- rules ------------------------------------------------------------ */

enum route_sm_kind { SM_EXACT, SM_PREFIX, SM_REGEX, SM_PRESENT };

typedef struct route_strmatch {
    int kind;                   /* enum route_sm_kind */
    const char *s;              /* exact / prefix text, or the regex source */
    size_t len;
    pcre2_code *re;             /* SM_REGEX */
    route_re_filter_t filter;
    bool icase;                 /* ignoreUriCase on exact/prefix */
} route_strmatch_t;

enum route_cond_kind { C_URI, C_SCHEME, C_METHOD, C_AUTHORITY, C_HEADER, C_WITHOUT, C_QUERY, C_PORT };

/* One condition of a match block; a block matches when all of them do. */
typedef struct route_cond {
    int kind;                   /* enum route_cond_kind */
    const char *name;           /* header or query parameter name (lowercase for headers) */
    size_t name_len;
    int hid;                    /* headers: index in the per-decision lookup cache, -1 none */
    route_strmatch_t m;
    uint32_t port;              /* C_PORT */
} route_cond_t;

typedef struct route_block {
    const char *name;
    route_cond_t *conds;
    size_t nconds;
} route_block_t;

typedef struct route_dest {
    const char *host;
    const char *subset;
    uint32_t port;
    uint32_t weight;
    rdl_route_header_ops_t req, resp;
    bool has_req, has_resp;
} route_dest_t;

typedef struct route_http {
    const char *name;
    route_block_t *blocks;      /* none: matches everything */
    size_t nblocks;
    route_dest_t *dests;        /* none: redirect / directResponse / delegate */
    size_t ndests;
    uint64_t total_weight;
    rdl_route_header_ops_t req, resp;
    bool has_req, has_resp;
    uint64_t delay_ms;
    double delay_pct;
    int abort_status;
    double abort_pct;
    uint64_t timeout_ms;
    int attempts;               /* -1 = not set */
    uint64_t per_try_ms;
    const char *retry_on;       /* as written, for explain; NULL = not set */
    rdl_retry_on_t retry_conditions;    /* retry_on parsed at load */
    const char *retry_skipped;  /* conditions of retry_on redline cannot honour, or NULL */
    int line;
} route_http_t;

typedef struct route_vs {
    const char *name;
    const char *ns;
    const char **hosts;
    size_t nhosts;
    route_http_t *routes;
    size_t nroutes;
    int default_route;          /* first route without match blocks; -1 when none */
    int line;
} route_vs_t;

typedef struct route_dr {
    const char *host;
    const char **subsets;
    size_t nsubsets;
} route_dr_t;

struct rdl_route_table {
    atomic_int refs;
    rdl_arena_t arena;          /* every string and array of the rules */
    route_vs_t *vs;
    size_t nvs;
    route_dr_t *dr;
    size_t ndr;
    pcre2_code **res;           /* compiled regexes, freed with the table */
    size_t nres, capres;
    char *bypass;               /* lowercase header names, "" = none */
    size_t bypass_len;
    char *sticky;
    size_t sticky_len;
    size_t nroutes;
    size_t nheader_ids;         /* distinct header names the rules look at */
};

/*
 * One evaluation of a request: header values are looked up once per name
 * (rules naming the same header share the lookup), whatever the table size.
 */
#define ROUTE_HCACHE 64
typedef struct route_eval {
    const rdl_route_request_t *req;
    uint64_t have;              /* bit i: val[i] was looked up */
    const char *val[ROUTE_HCACHE];
    size_t len[ROUTE_HCACHE];
} route_eval_t;

/* ---- match.c ---------------------------------------------------------- */

/* Which condition of a block failed, for explain; NULL when the block matched. */
bool rdl__route_block_match(const route_block_t *b, route_eval_t *ev, const route_cond_t **failed);
const route_vs_t *rdl__route_select_vs(const rdl_route_table_t *t, const rdl_route_request_t *req);
/* The weighted pick: index into r->dests, from a 64-bit draw. */
size_t rdl__route_pick(const route_http_t *r, uint64_t draw);
/* The draw for a weighted pick: the sticky header's hash, else the next of rng (NULL: the thread's). */
uint64_t rdl__route_draw(const rdl_route_table_t *t, const rdl_route_request_t *req, rdl_rand_t *rng,
                    bool *sticky);
const char *rdl__route_cond_kind_name(int kind);
const char *rdl__route_sm_kind_name(int kind);

#endif
