/*
 * fuzz_json_str.c: arbitrary bytes through rdl_json_str. The result must be
 * one JSON string that jansson accepts, and input that is valid UTF-8
 * (jansson's json_stringn is the judge) must come back byte for byte.
 */
#include <stdint.h>
#include <string.h>
#include <jansson.h>

#include "redline/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *parsed, *direct;
    json_error_t jerr;
    rdl_buf_t b;

    rdl_buf_init(&b);
    rdl_buf_putc(&b, '[');
    rdl_json_str(&b, (const char *)data, size);
    rdl_buf_putc(&b, ']');
    if (b.oom)
        __builtin_trap();
    parsed = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &jerr);
    if (parsed == NULL || !json_is_string(json_array_get(parsed, 0)) || json_array_size(parsed) != 1)
        __builtin_trap();
    direct = json_stringn((const char *)data, size);
    if (direct != NULL) {
        json_t *s = json_array_get(parsed, 0);
        if (json_string_length(s) != size || memcmp(json_string_value(s), data, size) != 0)
            __builtin_trap();
        json_decref(direct);
    }
    json_decref(parsed);
    rdl_buf_close(&b);
    return 0;
}
