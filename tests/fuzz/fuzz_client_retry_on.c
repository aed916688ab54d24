/*
 * fuzz_client_retry_on.c: the Istio retryOn list parser. Input: the list
 * (NUL bytes end it early, as a C string would). Invariants: nothing crashes;
 * only RDL_RETRY_ON_* bits and status codes 100-599 come back; skipped
 * conditions make RDL_EINVAL with a non-empty list in err.msg, keyed retryOn;
 * parsing the list again without err gives the same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redline/client.h"

#define ALL_BITS (RDL_RETRY_ON_5XX | RDL_RETRY_ON_GATEWAY_ERROR | RDL_RETRY_ON_CONNECT_FAILURE | \
                  RDL_RETRY_ON_RETRIABLE_4XX | RDL_RETRY_ON_RESET)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *list = calloc(size + 1, 1);                   /* a NUL inside ends the text */
    if (!list)
        abort();
    memcpy(list, data, size);
    rdl_error_t err;
    rdl_retry_on_t r, again;
    int rc = rdl_retry_on_parse(list, &r, &err);
    if ((r.bits & ~ALL_BITS) != 0 || r.ncodes > RDL_RETRY_ON_MAX_CODES || rc != err.code ||
        (rc != 0 && (rc != RDL_EINVAL || !err.msg[0] || strcmp(err.key, "retryOn") != 0)))
        abort();
    for (int i = 0; i < r.ncodes; i++)
        if (r.codes[i] < 100 || r.codes[i] > 599)
            abort();
    if (rdl_retry_on_parse(list, &again, NULL) != rc || memcmp(&r, &again, sizeof(r)) != 0)
        abort();
    free(list);
    return 0;
}
