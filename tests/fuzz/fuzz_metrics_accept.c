/*
 * fuzz_metrics_accept.c: rdl_metrics_negotiate and rdl_metrics_accepts_gzip
 * read an Accept / Accept-Encoding header of any bytes without reading past it
 * (the header is an exact-size copy, so ASan sees any overread), never pick
 * OpenMetrics unless the header names application/openmetrics-text, and
 * answer the same whatever follows the given length.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "redline/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool names_openmetrics(const uint8_t *p, size_t n)
{
    static const char om[] = "application/openmetrics-text";
    size_t k = sizeof(om) - 1;
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && tolower(p[i + j]) == om[j])
            j++;
        if (j == k)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h = malloc(size ? size : 1);
    char *longer = malloc(size + 16);
    if (!h || !longer)
        abort();
    memcpy(h, data, size);
    rdl_format_t f = rdl_metrics_negotiate(h, size);
    if (f != RDL_FMT_TEXT && f != RDL_FMT_OPENMETRICS)
        abort();
    if (f == RDL_FMT_OPENMETRICS && !names_openmetrics(data, size))
        abort();
    memcpy(longer, data, size);
    memcpy(longer + size, ",application/ope", 16);
    if (rdl_metrics_negotiate(longer, size) != f)
        abort();
    bool gz = rdl_metrics_accepts_gzip(h, size);
    memcpy(longer + size, ",gzip;q=1,*,x-gz", 16);
    if (rdl_metrics_accepts_gzip(longer, size) != gz)
        abort();
    free(longer);
    free(h);
    return 0;
}
