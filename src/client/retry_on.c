/*
 * retry_on.c: Istio's retryOn conditions as outcome tests. It exists so a
 * route's `retries.retryOn` decides which failed attempts are retried, with
 * Envoy's meaning of each condition, instead of being read and ignored.
 */
#include <stdbool.h>
#include <stdio.h>
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

/* Appends one skipped condition to the list in msg (comma-separated, cut when full). */
static void note_unknown(char *msg, size_t n, const char *s, size_t len)
{
    size_t used = strlen(msg);
    size_t need = (used ? 1 : 0) + len;
    if (used + need >= n)
        return;
    if (used)
        msg[used++] = ',';
    memcpy(msg + used, s, len);
    msg[used + len] = '\0';
}

/* A literal status code: three digits, 100 to 599. */
static int status_code(const char *s, size_t len)
{
    if (len != 3 || s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
        return 0;
    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* One condition of the list into out; false when it cannot be honoured. */
static bool take(rdl_retry_on_t *out, const char *s, size_t len, bool *status_codes)
{
    uint32_t bit = condition_bit(s, len);
    int code = status_code(s, len);
    if (bit) {
        out->bits |= bit;
        return true;
    }
    if (len == strlen("retriable-status-codes") && memcmp(s, "retriable-status-codes", len) == 0) {
        *status_codes = true;       /* turns the literal codes on; meaningless alone */
        return true;
    }
    if (code && out->ncodes < RDL_RETRY_ON_MAX_CODES) {
        out->codes[out->ncodes++] = (uint16_t)code;
        return true;
    }
    return false;
}

int rdl_retry_on_parse(const char *list, rdl_retry_on_t *out, rdl_error_t *err)
{
    static const char rsc[] = "retriable-status-codes";
    char skipped[sizeof(err->msg)] = "";
    bool status_codes = false;
    memset(out, 0, sizeof(*out));
    rdl_error_clear(err);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        size_t len = (size_t)(end - p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len && !take(out, p, len, &status_codes))
            note_unknown(skipped, sizeof(skipped), p, len);
        p = end;
    }
    if (status_codes && out->ncodes == 0)
        note_unknown(skipped, sizeof(skipped), rsc, sizeof(rsc) - 1);
    if (!skipped[0])
        return 0;
    return rdl_error_set(err, RDL_EINVAL, 0, 0, "retryOn", "%s", skipped);
}

bool rdl_retry_on_is_set(const rdl_retry_on_t *r)
{
    return r->bits != 0 || r->ncodes != 0;
}

bool rdl_retry_on_matches(const rdl_retry_on_t *r, int kind, int status)
{
    uint32_t bits = r->bits;
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
    if (status == 409 && (bits & RDL_RETRY_ON_RETRIABLE_4XX))
        return true;
    for (int i = 0; i < r->ncodes && status && kind != RDL_OUTCOME_CANCELED; i++)
        if (r->codes[i] == status)
            return true;
    return false;
}
