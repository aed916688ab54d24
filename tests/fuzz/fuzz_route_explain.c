/*
 * fuzz_route_explain.c: arbitrary bytes as the body of POST /debug/routes/explain.
 * The admin plane must answer every body: either an explanation that is valid
 * JSON and agrees with the decision for the same request, or an error that
 * names its place and appends nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "redline/route.h"

/* Rules that read every part of a request: headers, query, method, authority, scheme. */
static const char rules[] =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: fz}\n"
    "spec:\n  hosts: [checkout]\n  http:\n"
    "  - name: canary\n    match:\n    - headers: {x-canary: {exact: always}}\n"
    "    - headers: {cookie: {regex: \".*canary=1.*\"}}\n"
    "    route: [{destination: {host: checkout, subset: v2}}]\n"
    "  - name: beta\n    match:\n    - queryParams: {beta: {exact: \"1\"}}\n      method: {exact: POST}\n"
    "    - authority: {prefix: admin}\n      scheme: {exact: https}\n      withoutHeaders: {x-no: {}}\n"
    "    route: [{destination: {host: checkout, subset: v2}}]\n"
    "  - name: split\n    match: [{uri: {prefix: /api}, ignoreUriCase: true}]\n"
    "    route:\n    - destination: {host: checkout, subset: v1}\n      weight: 90\n"
    "    - destination: {host: checkout, subset: v2}\n      weight: 10\n"
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: fz}\n"
    "spec: {host: checkout, subsets: [{name: v1}, {name: v2}]}\n";

static rdl_route_table_t *table;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    rdl_route_opts_t o = { .bypass_header = "x-bypass", .sticky_header = "x-user-id" };
    rdl_error_t err;
    (void)argc;
    (void)argv;
    if (rdl_route_load_string(&o, "fuzz.yaml", rules, sizeof(rules) - 1, &table, &err) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdl_buf_t b;
    rdl_error_t err;
    rdl_buf_init(&b);
    int rc = rdl_route_explain_json(table, (const char *)data, size, &b, &err);
    if (rc != 0) {
        if (b.len != 0 || err.code != rc || err.msg[0] == '\0' || err.line < 0 || err.column < 0 ||
            memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
            __builtin_trap();
    } else {
        json_error_t je;
        json_t *j = json_loadb(b.data, b.len, 0, &je);
        if (!json_is_object(j) || b.oom || !json_is_boolean(json_object_get(j, "matched")))
            __builtin_trap();
        json_decref(j);
    }
    rdl_buf_close(&b);
    return 0;
}
