/*
 * fuzz_trace_traceparent.c: arbitrary bytes through rdl_traceparent_parse.
 * Accepted input must have valid (non-zero) ids and re-format to a version-00
 * header that parses back to the same ids and flags; refused input must say
 * where (a column inside the input, or just past it).
 */
#include <stdint.h>
#include <string.h>

#include "redline/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdl_span_context_t sc, again;
    rdl_error_t err;
    rdl_error_clear(&err);
    if (rdl_traceparent_parse((const char *)data, size, &sc, &err) != 0) {
        if (err.column < 1 || (size_t)err.column > size + 1 || err.msg[0] == '\0')
            __builtin_trap();
        return 0;
    }
    if (!rdl_span_context_valid(&sc))
        __builtin_trap();
    char out[RDL_TRACEPARENT_LEN + 1];
    rdl_traceparent_format(&sc, out);
    if (rdl_traceparent_parse(out, strlen(out), &again, NULL) != 0 ||
        memcmp(again.trace_id, sc.trace_id, 16) != 0 || memcmp(again.span_id, sc.span_id, 8) != 0 ||
        again.flags != sc.flags)
        __builtin_trap();
    return 0;
}
