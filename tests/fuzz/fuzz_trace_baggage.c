/*
 * fuzz_trace_baggage.c: arbitrary bytes through rdl_baggage_parse. Whatever
 * is accepted stays within 64 members and 8192 bytes, formats to a header
 * that parses back to the same members and values (format(parse(x)) is a
 * fixed point).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redline/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rdl_baggage_t b, c;
    rdl_baggage_init(&b);
    int rc = rdl_baggage_parse(&b, (const char *)data, size, NULL);
    if (rc == RDL_EINVAL && b.n != 0)
        __builtin_trap();
    if (b.n > RDL_BAGGAGE_MAX_MEMBERS || b.used > RDL_BAGGAGE_MAX_BYTES)
        __builtin_trap();
    if (b.n == 0)
        return 0;
    rdl_buf_t out;
    rdl_buf_init(&out);
    rdl_baggage_format(&b, &out);
    rdl_baggage_init(&c);
    if (rdl_baggage_parse(&c, out.data, out.len, NULL) == RDL_EINVAL)
        __builtin_trap();
    for (int i = 0; i < b.n; i++) {
        char key[RDL_BAGGAGE_MAX_BYTES + 1];
        memcpy(key, b.data + b.m[i].key, b.m[i].key_len);
        key[b.m[i].key_len] = '\0';
        const char *v = rdl_baggage_get(&c, key);
        if (!v || strcmp(v, b.data + b.m[i].value) != 0)
            __builtin_trap();
    }
    rdl_buf_close(&out);
    return 0;
}
