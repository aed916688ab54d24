/*
 * fuzz_trace_otel_list.c: arbitrary bytes as OTEL_RESOURCE_ATTRIBUTES and as
 * OTEL_EXPORTER_OTLP_HEADERS (NUL ends the text, as in an environment
 * variable). Never a crash; an accepted header list yields only token names
 * and values without control characters (nothing that could split a header
 * line); a refusal names a column inside the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_member(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    bool headers = *(bool *)arg;
    if (kl == 0)
        __builtin_trap();
    for (size_t i = 0; headers && i < kl; i++)
        if ((unsigned char)k[i] <= 0x20 || (unsigned char)k[i] >= 0x7f || k[i] == ':')
            __builtin_trap();
    for (size_t i = 0; headers && i < vl; i++)
        if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
            __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *list = calloc(size + 1, 1);                   /* a NUL inside ends the text */
    if (!list)
        abort();
    memcpy(list, data, size);
    size_t len = strlen(list);
    for (int h = 0; h < 2; h++) {
        bool headers = h == 1;
        rdl_error_t err;
        int rc = rdl__trace_kv_list("VAR", list, headers, check_member, &headers, &err);
        if (rc != 0 && (rc != RDL_EINVAL || err.column < 1 || (size_t)err.column > len ||
                        err.msg[0] == '\0' || strcmp(err.key, "VAR") != 0))
            __builtin_trap();
    }
    free(list);
    return 0;
}
