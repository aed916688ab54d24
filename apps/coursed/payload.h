/*
 * payload.h: what coursed accepts from a client, as pure functions: the
 * enrollment body, its Content-Type and the Idempotency-Key header; and what it
 * accepts from the recommend upstream (its suggestions answer). They live
 * apart from the handlers so that the malformed-input table
 * (tests/unit/test_coursed_payload.c) and the fuzzer
 * (tests/fuzz/fuzz_coursed_payload.c) exercise exactly the code that runs.
 *
 *   payload_error_t e;
 *   const char *student; size_t len;
 *   if (payload_enrollment(body, n, &ctx->arena, &student, &len, &e) != 0)
 *       return rdl_resp_error(req, e.status, e.code, e.message);
 *
 * Thread-safety: pure functions over caller-owned memory.
 */
#ifndef COURSED_PAYLOAD_H
#define COURSED_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include "redline/util.h"

#define PAYLOAD_JSON_TYPE "application/json"

typedef struct payload_error {
    int status;                 /* 400, 415, 422, 500, or 502 for an upstream's answer */
    const char *code;           /* stable machine code: "invalid_json", ... */
    char message[320];          /* for a person: what was wrong and where */
} payload_error_t;

/* Content-Type is application/json (any case), parameters such as charset aside. */
bool payload_is_json_type(const char *value, size_t len, payload_error_t *err);

/* Idempotency-Key: 1 to 255 visible ASCII characters. 0, or -1 with err filled (400). */
int payload_idempotency_key(const char *value, size_t len, payload_error_t *err);

/*
 * The enrollment body {"student": "<1..200 bytes>"}: 0 with *student copied
 * into arena (any Unicode but NUL, which the JSON parser refuses; *len is its length),
 * or -1 with err filled: 400 invalid_json (with jansson's line and column) or
 * 422 invalid_field.
 */
int payload_enrollment(const char *body, size_t len, rdl_arena_t *arena,
                       const char **student, size_t *student_len, payload_error_t *err);

/* At most this many suggestions are shown with a course; more are ignored. */
#define PAYLOAD_SUGGESTIONS_MAX 20

/*
 * The recommend upstream's answer {"suggestions": [course ids > 0]}: 0 with the
 * first PAYLOAD_SUGGESTIONS_MAX ids appended to out as a JSON array, or -1
 * with err filled (502 invalid_upstream_answer, naming the place) and nothing
 * appended.
 */
int payload_suggestions(const char *body, size_t len, rdl_buf_t *out, payload_error_t *err);

#endif
