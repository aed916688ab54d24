/*
 * test_coursed_payload.c: the table of malformed (and valid) inputs for what
 * coursed accepts from clients: enrollment bodies, Content-Type values and
 * Idempotency-Key values. Each case names the status, the stable code and a
 * fragment of the message a person reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "payload.h"

typedef struct body_case {
    const char *body;
    size_t len;                 /* 0: strlen(body) */
    int status;                 /* 0: accepted */
    const char *code;
    const char *fragment;       /* in the message, or the accepted student */
    size_t student_len;         /* for accepted cases */
} body_case_t;

static const body_case_t body_cases[] = {
    { "{\"student\":\"ada\"}", 0, 0, NULL, "ada", 3 },
    { "  {\"student\" : \"ada lovelace\"}\n", 0, 0, NULL, "ada lovelace", 12 },
    { "{\"student\":\"\\u00fc\"}", 0, 0, NULL, "\xc3\xbc", 2 },
    { "{\"student\":\"a\\u0000b\"}", 0, 400, "invalid_json", "\\u0000 is not allowed", 0 },
    { "{\"student\":\"x\",\"extra\":[1,2]}", 0, 0, NULL, "x", 1 },
    { "", 0, 400, "invalid_json", "line 1 column 0", 0 },
    { "{", 0, 400, "invalid_json", "line 1", 0 },
    { "{\n  \"student\": }", 0, 400, "invalid_json", "line 2 column", 0 },
    { "null", 0, 400, "invalid_json", "not valid JSON", 0 },
    { "\"ada\"", 0, 400, "invalid_json", "not valid JSON", 0 },
    { "{\"student\":\"a\"} trailing", 0, 400, "invalid_json", "end of file expected", 0 },
    { "{\"student\":\"a\",\"student\":\"b\"}", 0, 400, "invalid_json", "duplicate object key", 0 },
    { "{\"student\":\"\xff\"}", 0, 400, "invalid_json", "unable to decode byte 0xff", 0 },
    { "{\"student\":'a'}", 0, 400, "invalid_json", "line 1", 0 },
    { "{\"student\":\"a\"", 0, 400, "invalid_json", "line 1", 0 },
    { "[{\"student\":\"a\"}]", 0, 422, "invalid_field", "'student'", 0 },
    { "{}", 0, 422, "invalid_field", "non-empty string", 0 },
    { "{\"Student\":\"a\"}", 0, 422, "invalid_field", "'student'", 0 },
    { "{\"student\":1}", 0, 422, "invalid_field", "'student'", 0 },
    { "{\"student\":null}", 0, 422, "invalid_field", "'student'", 0 },
    { "{\"student\":[\"a\"]}", 0, 422, "invalid_field", "'student'", 0 },
    { "{\"student\":\"\"}", 0, 422, "invalid_field", "non-empty", 0 },
};

static void test_enrollment_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
        const body_case_t *c = &body_cases[i];
        rdl_arena_t arena;
        rdl_arena_init(&arena, 1024);
        payload_error_t e = { 0 };
        const char *student = NULL;
        size_t len = 0;
        size_t n = c->len ? c->len : strlen(c->body);
        int rc = payload_enrollment(c->body, n, &arena, &student, &len, &e);
        if (c->status == 0) {
            if (rc != 0)
                fail_msg("case %zu (%s): rejected: %d %s", i, c->body, e.status, e.message);
            assert_int_equal(len, c->student_len);
            assert_memory_equal(student, c->fragment, len);
        } else {
            if (rc == 0)
                fail_msg("case %zu (%s): accepted", i, c->body);
            assert_null(student);
            assert_int_equal(e.status, c->status);
            assert_string_equal(e.code, c->code);
            if (!strstr(e.message, c->fragment))
                fail_msg("case %zu: message '%s' lacks '%s'", i, e.message, c->fragment);
        }
        rdl_arena_close(&arena);
    }
}

static void test_student_length_limit(void **state)
{
    (void)state;
    char body[512];
    for (int n = 199; n <= 201; n++) {
        int w = snprintf(body, sizeof(body), "{\"student\":\"%0*d\"}", n, 0);
        rdl_arena_t arena;
        rdl_arena_init(&arena, 1024);
        payload_error_t e = { 0 };
        const char *student;
        size_t len = 0;
        int rc = payload_enrollment(body, (size_t)w, &arena, &student, &len, &e);
        if (n <= 200) {
            assert_int_equal(rc, 0);
            assert_int_equal(len, (size_t)n);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(e.status, 422);
        }
        rdl_arena_close(&arena);
    }
}

static void test_content_types(void **state)
{
    (void)state;
    static const struct { const char *v; bool ok; } cases[] = {
        { "application/json", true },
        { "Application/JSON", true },
        { "application/json; charset=utf-8", true },
        { "application/json ;charset=utf-8", true },
        { "application/json\t", true },
        { "text/plain", false },
        { "application/jsonx", false },
        { "application/json-patch+json", false },
        { "application/", false },
        { "", false },
        { " application/json", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        payload_error_t e = { 0 };
        bool ok = payload_is_json_type(cases[i].v, strlen(cases[i].v), &e);
        if (ok != cases[i].ok)
            fail_msg("Content-Type '%s': expected %s", cases[i].v, cases[i].ok ? "accept" : "415");
        if (!ok) {
            assert_int_equal(e.status, 415);
            assert_string_equal(e.code, "unsupported_media_type");
        }
    }
    payload_error_t e = { 0 };
    assert_false(payload_is_json_type(NULL, 0, &e));
    assert_int_equal(e.status, 415);
}

static void test_idempotency_keys(void **state)
{
    (void)state;
    char k255[256], k256[257];
    memset(k255, 'k', 255);
    k255[255] = '\0';
    memset(k256, 'k', 256);
    k256[256] = '\0';
    static const char *bad[] = { "", "a b", "tab\there", "del\x7f", "\xc3\xbc", "nl\n" };
    payload_error_t e = { 0 };
    assert_int_equal(payload_idempotency_key("a", 1, &e), 0);
    assert_int_equal(payload_idempotency_key("order-42:retry", 14, &e), 0);
    assert_int_equal(payload_idempotency_key(k255, 255, &e), 0);
    assert_int_equal(payload_idempotency_key(k256, 256, &e), -1);
    assert_int_equal(e.status, 400);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&e, 0, sizeof(e));
        if (payload_idempotency_key(bad[i], strlen(bad[i]), &e) != -1)
            fail_msg("key '%s' accepted", bad[i]);
        assert_string_equal(e.code, "invalid_idempotency_key");
        assert_non_null(strstr(e.message, "visible ASCII"));
    }
}

/* What the recommend upstream answers: good shapes, a cap, and a table of bad ones. */
static void test_suggestions(void **state)
{
    (void)state;
    payload_error_t e = { 0 };
    rdl_buf_t b;
    rdl_buf_init(&b);
    const char *ok = "{\"suggestions\":[3, 1,7],\"model\":\"v2\"}";
    assert_int_equal(payload_suggestions(ok, strlen(ok), &b, &e), 0);
    assert_string_equal(b.data, "[3,1,7]");
    rdl_buf_reset(&b);
    assert_int_equal(payload_suggestions("{\"suggestions\":[]}", 18, &b, &e), 0);
    assert_string_equal(b.data, "[]");
    char many[512] = "{\"suggestions\":[1";
    for (int i = 2; i <= 30; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), ",%d", i);
    strcat(many, "]}");
    rdl_buf_reset(&b);
    assert_int_equal(payload_suggestions(many, strlen(many), &b, &e), 0);
    assert_string_equal(b.data, "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]");

    static const struct { const char *body, *msg; } bad[] = {
        { "", "not valid JSON" },
        { "{\"suggestions\":[1,", "not valid JSON: " },
        { "[1,2]", "expected an object with a 'suggestions' array" },
        { "{\"suggestions\":\"1,2\"}", "expected an object with a 'suggestions' array" },
        { "{\"other\":[1]}", "expected an object with a 'suggestions' array" },
        { "{\"suggestions\":[1,0]}", "suggestions[1]: expected a course id" },
        { "{\"suggestions\":[-4]}", "suggestions[0]: expected a course id" },
        { "{\"suggestions\":[1,2,\"3\"]}", "suggestions[2]: expected a course id" },
        { "{\"suggestions\":[1.5]}", "suggestions[0]: expected a course id" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_buf_reset(&b);
        memset(&e, 0, sizeof(e));
        if (payload_suggestions(bad[i].body, strlen(bad[i].body), &b, &e) != -1 || b.len != 0 ||
            e.status != 502 || strcmp(e.code, "invalid_upstream_answer") != 0 ||
            strstr(e.message, bad[i].msg) == NULL)
            fail_msg("case %zu '%s': status %d message '%s'", i, bad[i].body, e.status, e.message);
    }
    rdl_buf_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enrollment_bodies),
        cmocka_unit_test(test_student_length_limit),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_idempotency_keys),
        cmocka_unit_test(test_suggestions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
