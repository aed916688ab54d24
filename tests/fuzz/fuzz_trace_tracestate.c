/*
 * fuzz_trace_tracestate.c: arbitrary bytes through rdl_tracestate_parse, then
 * rdl_tracestate_set. What is kept is at most 512 bytes and 32 members and
 * parses again to itself; a set key always ends up first.
 */
#include <stdint.h>
#include <string.h>

#include "redline/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdl_span_context_t sc, again;
    if (rdl_tracestate_parse((const char *)data, size, &sc, NULL) != 0) {
        if (sc.tracestate_len != 0 || sc.tracestate[0] != '\0')
            __builtin_trap();
        return 0;
    }
    if (sc.tracestate_len > RDL_TRACESTATE_MAX || strlen(sc.tracestate) != sc.tracestate_len)
        __builtin_trap();
    if (rdl_tracestate_parse(sc.tracestate, sc.tracestate_len, &again, NULL) != 0 ||
        strcmp(again.tracestate, sc.tracestate) != 0)
        __builtin_trap();
    if (rdl_tracestate_set(&sc, "redline", "f1") != 0 || strncmp(sc.tracestate, "redline=f1", 10) != 0 ||
        sc.tracestate_len > RDL_TRACESTATE_MAX)
        __builtin_trap();
    if (rdl_tracestate_parse(sc.tracestate, sc.tracestate_len, &again, NULL) != 0)
        __builtin_trap();
    return 0;
}
