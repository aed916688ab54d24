/*
 * fuzz_trace_b3.c: arbitrary bytes through the B3 parsers: the whole input as
 * a single "b3" header, and split at NUL bytes into the four multi headers.
 * Accepted contexts have non-zero ids and format to a single header that
 * parses back to the same ids and decision.
 */
#include <stdint.h>
#include <string.h>

#include "redline/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const rdl_span_context_t *sc)
{
    rdl_span_context_t again;
    char out[52];
    if (!rdl_span_context_valid(sc))
        __builtin_trap();
    rdl_b3_format_single(sc, out);
    if (rdl_b3_parse_single(out, strlen(out), &again, NULL) != 0 ||
        memcmp(again.trace_id, sc->trace_id, 16) != 0 || memcmp(again.span_id, sc->span_id, 8) != 0 ||
        (again.flags & 1) != (sc->flags & 1))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rdl_span_context_t sc;
    const char *s = (const char *)data;
    if (rdl_b3_parse_single(s, size, &sc, NULL) == 0)
        check(&sc);
    const char *part[4] = { NULL, NULL, NULL, NULL };
    size_t len[4] = { 0, 0, 0, 0 };
    size_t start = 0;
    for (int k = 0; k < 4 && start <= size; k++) {
        const char *nul = memchr(s + start, '\0', size - start);
        size_t end = nul ? (size_t)(nul - s) : size;
        part[k] = s + start;
        len[k] = end - start;
        start = end + 1;
        if (!nul)
            break;
    }
    if (rdl_b3_parse_multi(part[0], len[0], part[1], len[1], part[2], len[2], part[3], len[3], &sc,
                           NULL) == 0)
        check(&sc);
    return 0;
}
