/*
 * payload.c: validation of what clients send coursed. Every rule here answers
 * with a stable code and a message that names the place (the JSON line and
 * column, the field, the header), and nothing here can abort on any input.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "payload.h"
#include "store.h"

static void fail(payload_error_t *err, int status, const char *code, const char *msg)
{
    err->status = status;
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
}

/* A body that is not JSON at all: jansson's reason with its line and column. */
static void json_fail(payload_error_t *err, int status, const char *code, const char *what,
                      const json_error_t *jerr)
{
    err->status = status;
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s is not valid JSON: %s at line %d column %d",
             what, jerr->text, jerr->line, jerr->column);
}

bool payload_is_json_type(const char *v, size_t n, payload_error_t *err)
{
    bool ok = false;
    if (v) {
        const char *semi = memchr(v, ';', n);
        if (semi)
            n = (size_t)(semi - v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        ok = rdl_ascii_ieq(v, n, PAYLOAD_JSON_TYPE, strlen(PAYLOAD_JSON_TYPE));
    }
    if (!ok)
        fail(err, 415, "unsupported_media_type", "Content-Type must be application/json");
    return ok;
}

int payload_idempotency_key(const char *v, size_t n, payload_error_t *err)
{
    bool ok = v && n >= 1 && n <= STORE_IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        ok = ch > 0x20 && ch < 0x7f;
    }
    if (!ok) {
        fail(err, 400, "invalid_idempotency_key",
             "Idempotency-Key must be 1 to 255 visible ASCII characters");
        return -1;
    }
    return 0;
}

int payload_enrollment(const char *body, size_t n, rdl_arena_t *arena,
                       const char **student, size_t *student_len, payload_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", n, JSON_REJECT_DUPLICATES, &jerr);
    *student = NULL;
    if (!root) {
        json_fail(err, 400, "invalid_json", "request body", &jerr);
        return -1;
    }
    json_t *s = json_object_get(root, "student");    /* NULL unless root is an object */
    int rc = -1;
    if (json_is_string(s) && json_string_length(s) >= 1 &&
        json_string_length(s) <= STORE_STUDENT_MAX) {
        *student_len = json_string_length(s);
        *student = rdl_arena_strndup(arena, json_string_value(s), *student_len);
        if (*student)
            rc = 0;
        else
            fail(err, 500, "internal", "out of memory");
    } else {
        fail(err, 422, "invalid_field",
             "field 'student' must be a non-empty string of at most 200 bytes");
    }
    json_decref(root);
    return rc;
}

int payload_suggestions(const char *body, size_t n, rdl_buf_t *out, payload_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", n, 0, &jerr);
    if (!root) {
        json_fail(err, 502, "invalid_upstream_answer", "recommend answer", &jerr);
        return -1;
    }
    json_t *list = json_object_get(root, "suggestions");
    size_t i, bad = 0;
    json_t *v;
    bool ok = json_is_array(list);
    json_array_foreach(list, i, v) {
        if (ok && !(json_is_integer(v) && json_integer_value(v) > 0)) {
            ok = false;
            bad = i;
        }
    }
    if (!json_is_array(list)) {
        fail(err, 502, "invalid_upstream_answer", "recommend answer: expected an object with a "
             "'suggestions' array");
    } else if (!ok) {
        err->status = 502;
        err->code = "invalid_upstream_answer";
        snprintf(err->message, sizeof(err->message),
                 "recommend answer: suggestions[%zu]: expected a course id (an integer above 0)", bad);
    } else {
        rdl_buf_putc(out, '[');
        for (i = 0; i < json_array_size(list) && i < PAYLOAD_SUGGESTIONS_MAX; i++) {
            if (i)
                rdl_buf_putc(out, ',');
            rdl_buf_put_i64(out, (int64_t)json_integer_value(json_array_get(list, i)));
        }
        rdl_buf_putc(out, ']');
    }
    json_decref(root);
    return ok ? 0 : -1;
}
