/*
 * retry_on.c: Istio's retryOn conditions as outcome tests. It exists so a
 * route's `retries.retryOn` decides which failed attempts are retried, with
 * Envoy's meaning of each condition, instead of being read and ignored.
 */
#include <string.h>

#include "redline/client.h"

static const struct {
    const char *name;
    uint32_t bit;
} conditions[] = {
    { "5xx", RDL_RETRY_ON_5XX },
    { "gateway-error", RDL_RETRY_ON_GATEWAY_ERROR },
    { "connect-failure", RDL_RETRY_ON_CONNECT_FAILURE },
    { "retriable-4xx", RDL_RETRY_ON_RETRIABLE_4XX },
    { "reset", RDL_RETRY_ON_RESET },
};

static uint32_t condition_bit(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(conditions) / sizeof(conditions[0]); i++)
        if (strlen(conditions[i].name) == len && memcmp(conditions[i].name, s, len) == 0)
            return conditions[i].bit;
    return 0;
}

/* Appends one skipped condition to unknown (comma-separated, truncated to n). */
static void note_unknown(char *unknown, size_t n, const char *s, size_t len)
{
    size_t used = strlen(unknown);
    size_t need = (used ? 1 : 0) + len;
    if (used + need >= n)
        return;
    if (used)
        unknown[used++] = ',';
    memcpy(unknown + used, s, len);
    unknown[used + len] = '\0';
}

uint32_t rdl_retry_on_parse(const char *list, char *unknown, size_t n)
{
    uint32_t bits = 0;
    if (unknown && n)
        unknown[0] = '\0';
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        size_t len = (size_t)(end - p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len) {
            uint32_t bit = condition_bit(p, len);
            bits |= bit;
            if (!bit && unknown && n)
                note_unknown(unknown, n, p, len);
        }
        p = end;
    }
    return bits;
}

bool rdl_retry_on_matches(uint32_t bits, int kind, int status)
{
    bool no_answer = kind == RDL_OUTCOME_TIMEOUT || kind == RDL_OUTCOME_CONNECT ||
                     kind == RDL_OUTCOME_OTHER;
    if (no_answer && (bits & (RDL_RETRY_ON_5XX | RDL_RETRY_ON_GATEWAY_ERROR | RDL_RETRY_ON_RESET)))
        return true;
    if (kind == RDL_OUTCOME_CONNECT && (bits & RDL_RETRY_ON_CONNECT_FAILURE))
        return true;
    if (kind == RDL_OUTCOME_HTTP_5XX && (bits & RDL_RETRY_ON_5XX))
        return true;
    if ((status == 502 || status == 503 || status == 504) && (bits & RDL_RETRY_ON_GATEWAY_ERROR))
        return true;
    return status == 409 && (bits & RDL_RETRY_ON_RETRIABLE_4XX);
}
