/*
 * fuzz_route_load.c: arbitrary bytes as a routes file. The loader must never
 * crash, hang or leak; every refusal carries a message and a sane position;
 * every table it accepts decides, explains and dumps without fault, and the
 * explanation and the dump are valid JSON that agree with the decision.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "redline/route.h"

static const char *hdr(void *arg, const char *lname, size_t *len)
{
    static const char *const names[] = { "x-canary", "cookie", "x-user-id", "x-user-group", NULL };
    static const char *const values[] = { "always", "a=b; canary=1", "user-7", "beta" };
    (void)arg;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], lname) == 0) {
            *len = strlen(values[i]);
            return values[i];
        }
    return NULL;
}

static void check_json(const rdl_buf_t *b)
{
    json_error_t e;
    json_t *j = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &e);
    if (!j || b->oom)
        __builtin_trap();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdl_route_opts_t o = { .bypass_header = "x-bypass", .sticky_header = "x-user-id" };
    rdl_route_table_t *t = NULL;
    rdl_error_t err;
    int rc = rdl_route_load_string(&o, "fuzz.yaml", (const char *)data, size, &t, &err);
    if (rc != 0) {
        if (t || err.code != rc || err.msg[0] == '\0' || err.line < 0 || err.column < 0 ||
            memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
            __builtin_trap();
        return 0;
    }
    rdl_route_request_t req = {
        .method = "POST", .method_len = 4, .path = "/api/v2/orders", .path_len = 14,
        .query = "id=42&flag", .query_len = 10, .authority = "checkout:8080", .authority_len = 13,
        .scheme = "http", .scheme_len = 4, .header = hdr,
    };
    rdl_route_decision_t d;
    uint64_t rng = 1;
    bool hit = rdl_route_decide(t, &req, &rng, &d);
    if (hit && (!d.route_name || !d.color || !d.virtual_service))
        __builtin_trap();
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_route_explain(t, &req, &b);
    check_json(&b);
    json_t *j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
    if (json_is_true(json_object_get(j, "matched")) != hit)
        __builtin_trap();
    if (hit && strcmp(json_string_value(json_object_get(j, "route")), d.route_name) != 0)
        __builtin_trap();
    json_decref(j);
    rdl_buf_reset(&b);
    rdl_route_dump(t, &b);
    check_json(&b);
    rdl_buf_close(&b);
    rdl_route_table_unref(t);
    return 0;
}
