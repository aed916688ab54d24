/*
 * fuzz_log_level.c: arbitrary bytes as the body of PUT /debug/loglevel (a
 * level name, or {"level":"..."}). Never a crash or a leak; an accepted body
 * always yields one of the five levels, and a plain body is accepted exactly
 * when its trimmed text is a level name.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    rdl_log_level_t level = (rdl_log_level_t)-1, plain;
    bool ok = rdl__rt_log_level_from_body(body, size, &level);
    if (ok && (level < RDL_LOG_DEBUG || level > RDL_LOG_FATAL))
        __builtin_trap();
    size_t a = 0, n = size;
    while (a < n && isspace(data[a]))
        a++;
    while (n > a && isspace(data[n - 1]))
        n--;
    if (a < n && data[a] != '{') {
        bool want = rdl_log_parse_level(body + a, n - a, &plain) == 0;
        if (ok != want || (ok && plain != level))
            __builtin_trap();
    }
    return 0;
}
