/*
 * fuzz_trace_otlp_response.c: arbitrary bytes as a collector's answer to an
 * export (ExportTraceServiceResponse), read as protobuf and as OTLP/JSON. The
 * exporter must never crash on what a collector (or anything listening on its
 * port) sends back; a message it reports is always NUL-terminated in the
 * caller's buffer, and a refused answer reports nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redline/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, rdl_otlp_protocol_t proto, size_t cap)
{
    char msg[256];
    int64_t rejected = -7;
    memset(msg, 'x', sizeof(msg));
    int rc = rdl_otlp_parse_response((const char *)data, size, proto, &rejected, msg, cap);
    if (rc != 0 && rc != RDL_EINVAL)
        __builtin_trap();
    if (cap && memchr(msg, '\0', cap) == NULL)
        __builtin_trap();
    if (memchr(msg + cap, '\0', sizeof(msg) - cap) != NULL)   /* wrote past what it was given */
        __builtin_trap();
    if (size == 0 && (rc != 0 || rejected != 0))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, RDL_OTLP_PROTOBUF, 200);
    check(data, size, RDL_OTLP_PROTOBUF, 1);
    check(data, size, RDL_OTLP_JSON, 200);
    check(data, size, RDL_OTLP_JSON, 3);
    return 0;
}
