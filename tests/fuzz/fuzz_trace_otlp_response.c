/*
 * fuzz_trace_otlp_response.c: arbitrary bytes as a collector's answer to an
 * export (ExportTraceServiceResponse), read as protobuf and as OTLP/JSON. The
 * exporter must never crash on what a collector (or anything listening on its
 * port) sends back; a refused answer reports nothing but a named error, and
 * an accepted one a message of at most the body's length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redline/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, rdl_otlp_protocol_t proto)
{
    rdl_buf_t msg;
    rdl_error_t err;
    int64_t rejected = -7;
    rdl_buf_init(&msg);
    rdl_buf_puts(&msg, "left over");
    rdl_error_clear(&err);
    int rc = rdl_otlp_parse_response((const char *)data, size, proto, &rejected, &msg, &err);
    if (rc != 0 && rc != RDL_EINVAL)
        __builtin_trap();
    if (rc == RDL_EINVAL && (err.code != RDL_EINVAL || err.msg[0] == '\0' || msg.len != 0 ||
                             rejected != 0))
        __builtin_trap();
    if (rc == 0 && (msg.len > size || msg.data[msg.len] != '\0'))
        __builtin_trap();
    if (size == 0 && (rc != 0 || rejected != 0 || msg.len != 0))
        __builtin_trap();
    rdl_buf_close(&msg);
    /* Without the optional outputs: the same answer. */
    if (rdl_otlp_parse_response((const char *)data, size, proto, &rejected, NULL, NULL) != rc)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, RDL_OTLP_PROTOBUF);
    check(data, size, RDL_OTLP_JSON);
    return 0;
}
