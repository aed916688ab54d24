/*
 * fuzz_coursed_payload.c: arbitrary bytes as an enrollment body, a
 * Content-Type, an Idempotency-Key and the recommend upstream's answer.
 * Whatever the input, the answer is
 * either an accepted value that obeys the rules or an error with a status, a
 * code and a message; never a crash, a leak or an accepted value that breaks
 * a rule.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const payload_error_t *e)
{
    bool known = e->status == 400 || e->status == 415 || e->status == 422 || e->status == 500 ||
                 e->status == 502;
    if (!known || !e->code || !e->code[0] || !e->message[0])
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    rdl_arena_t arena;
    rdl_arena_init(&arena, 4096);
    payload_error_t e;
    const char *student = NULL;
    size_t len = 0;

    memset(&e, 0, sizeof(e));
    if (payload_enrollment(text, size, &arena, &student, &len, &e) == 0) {
        if (!student || len < 1 || len > 200)
            __builtin_trap();
    } else {
        check_error(&e);
    }

    memset(&e, 0, sizeof(e));
    if (!payload_is_json_type(text, size, &e))
        check_error(&e);
    else if (size < 16 || strncasecmp(text, "application/json", 16) != 0 ||
             (size > 16 && text[16] != ';' && text[16] != ' ' && text[16] != '\t'))
        __builtin_trap();       /* accepted: the media type, then nothing, OWS or parameters */

    memset(&e, 0, sizeof(e));
    if (payload_idempotency_key(text, size, &e) == 0) {
        if (size < 1 || size > 255)
            __builtin_trap();
        for (size_t i = 0; i < size; i++)
            if (data[i] <= 0x20 || data[i] >= 0x7f)
                __builtin_trap();
    } else {
        check_error(&e);
    }

    /* Accepted suggestions are a JSON array of at most the cap of ids above 0. */
    rdl_buf_t b;
    rdl_buf_init(&b);
    memset(&e, 0, sizeof(e));
    if (payload_suggestions(text, size, &b, &e) == 0) {
        json_t *a = json_loadb(b.data, b.len, 0, NULL);
        if (!json_is_array(a) || json_array_size(a) > PAYLOAD_SUGGESTIONS_MAX)
            __builtin_trap();
        for (size_t i = 0; i < json_array_size(a); i++)
            if (json_integer_value(json_array_get(a, i)) <= 0)
                __builtin_trap();
        json_decref(a);
    } else if (b.len != 0) {
        __builtin_trap();
    } else {
        check_error(&e);
    }
    rdl_buf_close(&b);
    rdl_arena_close(&arena);
    return 0;
}
