/*
 * fuzz_http1_diff.c: differential libFuzzer target, redline's strict parser
 * against Debian's http_parser 2.9.4 (built non-strict) on the same bytes.
 *
 * Our parser is meant to be the strict side of every disagreement. So:
 * - ours accepts a head that http_parser rejects (or has not finished): a bug,
 *   unless one of the named predicates below says http_parser is the one that
 *   is wrong there (each documents a known http_parser quirk);
 * - http_parser accepts and ours rejects: fine, that is the point;
 * - both accept: method, target, version, field count, names, values (after
 *   the trailing-OWS trim http_parser does not do), Content-Length and
 *   chunked-ness must agree.
 * A disagreement traps (the fuzzer's crash signal).
 *
 * Limits: http_parser caps the head at 80 KiB (process-wide); ours is set to
 * 64 KiB so that any head we accept is within its cap. Body limit 10^18 keeps
 * us below its Content-Length overflow bound (~1.8e18).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>
#include "runtime/http1.h"

#define MAX_SLOTS 256

static const rdl_h1_limits_t limits = { 65536, 65536, MAX_SLOTS, 1000000000000000000ULL };

/* What http_parser reported, with pointers into the input. */
typedef struct oracle {
    const char *url;
    size_t url_len;
    size_t nfields;
    const char *name[MAX_SLOTS + 1];
    size_t name_len[MAX_SLOTS + 1];
    const char *value[MAX_SLOTS + 1];
    size_t value_len[MAX_SLOTS + 1];
    bool in_value;
    bool overflow;              /* pieces not contiguous, or more fields than we track */
    bool complete;              /* on_headers_complete was reached */
    unsigned method, major, minor, flags;
    uint64_t content_length;
} oracle_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Appends a callback's piece; with the whole input in one execute they are contiguous. */
static void append(oracle_t *o, const char **p, size_t *n, const char *at, size_t len)
{
    if (*p == NULL)
        *p = at;
    else if (*p + *n != at)
        o->overflow = true;
    *n += len;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    oracle_t *o = hp->data;
    append(o, &o->url, &o->url_len, at, len);
    return 0;
}

static int on_field(http_parser *hp, const char *at, size_t len)
{
    oracle_t *o = hp->data;

    if (o->nfields == 0 || o->in_value) {
        if (o->nfields == MAX_SLOTS + 1) {
            o->overflow = true;
            return 0;
        }
        o->nfields++;
        o->in_value = false;
    }
    append(o, &o->name[o->nfields - 1], &o->name_len[o->nfields - 1], at, len);
    return 0;
}

static int on_value(http_parser *hp, const char *at, size_t len)
{
    oracle_t *o = hp->data;

    if (o->nfields == 0 || o->overflow)
        return 0;
    o->in_value = true;
    append(o, &o->value[o->nfields - 1], &o->value_len[o->nfields - 1], at, len);
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    oracle_t *o = hp->data;

    o->complete = true;
    o->method = hp->method;
    o->major = hp->http_major;
    o->minor = hp->http_minor;
    o->flags = hp->flags;
    o->content_length = hp->content_length;
    http_parser_pause(hp, 1);
    return 0;
}

static void run_oracle(const uint8_t *data, size_t size, oracle_t *o)
{
    http_parser_settings settings;
    http_parser hp;

    memset(o, 0, sizeof(*o));
    memset(&settings, 0, sizeof(settings));
    settings.on_url = on_url;
    settings.on_header_field = on_field;
    settings.on_header_value = on_value;
    settings.on_headers_complete = on_headers_complete;
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = o;
    http_parser_execute(&hp, &settings, (const char *)data, size);
}

static bool eq_nocase(const char *s, size_t n, const char *lit)
{
    size_t i;

    if (strlen(lit) != n)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lit[i])
            return false;
    }
    return true;
}

static bool starts_nocase(const char *s, size_t n, const char *lit)
{
    return n >= strlen(lit) && eq_nocase(s, strlen(lit), lit);
}

/* The raw bytes between the colon and CRLF of a field we accepted. */
static bool raw_value_has(const rdl_h1_header_t *h, char c)
{
    const char *p = h->name + h->name_len + 1;
    while (*p != '\r') {
        if (*p == c)
            return true;
        p++;
    }
    return false;
}

/*
 * Known http_parser faults, where accepting is right and its rejection wrong.
 * Each is a predicate over the head we accepted.
 */

/*
 * http_parser treats only SP as whitespace inside Content-Length and
 * Transfer-Encoding values: a HTAB next to the digits or after "chunked"
 * (OWS per RFC 9110 §5.6.3) gives a false HPE_INVALID_CONTENT_LENGTH or turns
 * "chunked" into an unknown coding (reference §2.7: "`5\t` is a false reject").
 * For "chunked\t" it even completes the head with the chunked flag clear
 * (found by this fuzzer), so it excuses a chunked-ness mismatch too.
 */
static bool quirk_htab_in_framing_value(const rdl_h1_request_t *r)
{
    size_t i;

    for (i = 0; i < r->num_headers; i++) {
        const rdl_h1_header_t *h = &r->headers[i];
        if ((eq_nocase(h->name, h->name_len, "content-length") ||
             eq_nocase(h->name, h->name_len, "transfer-encoding")) && raw_value_has(h, '\t'))
            return true;
    }
    return false;
}

/*
 * http_parser flags "uses_transfer_encoding" for any field whose name merely
 * starts with "transfer-encoding" (reference §2.4), so `Transfer-Encoding-X: 1`
 * alone is rejected as a bad transfer coding, and with Content-Length as a
 * CL+TE conflict; after a real `Transfer-Encoding: chunked` such a field also
 * clears its chunked flag (Debian's CVE-2020-8287 patch resets F_CHUNKED on
 * every "TE" line), so it reports a chunked request as not chunked. Such a
 * field is an ordinary extension field; found by this fuzzer.
 */
static bool quirk_te_prefixed_name(const rdl_h1_request_t *r)
{
    size_t i;

    for (i = 0; i < r->num_headers; i++) {
        const rdl_h1_header_t *h = &r->headers[i];
        if (h->name_len > 17 && starts_nocase(h->name, h->name_len, "transfer-encoding"))
            return true;
    }
    return false;
}

/* A disagreement on framing (refusal, unfinished head, chunked flag) excused by a named fault. */
static bool known_http_parser_fault(const rdl_h1_request_t *r)
{
    return quirk_htab_in_framing_value(r) || quirk_te_prefixed_name(r);
}

/*
 * HTTP/1.2 .. HTTP/1.9 are answered as HTTP/1.1 (RFC 9110 §6.2: a higher minor
 * is processed as the highest we support); http_parser reports the digit.
 */
static bool same_version(const rdl_h1_request_t *r, const oracle_t *o)
{
    if (o->major != 1)
        return false;
    return r->version_minor == 0 ? o->minor == 0 : o->minor >= 1;
}

static void compare(const rdl_h1_request_t *r, const oracle_t *o)
{
    const char *m = http_method_str((enum http_method)o->method);
    size_t i;

    if (o->overflow)
        return;
    if (strlen(m) != r->method_len || memcmp(m, r->method, r->method_len) != 0)
        __builtin_trap();
    if (o->url_len != r->target_len || memcmp(o->url, r->target, r->target_len) != 0)
        __builtin_trap();
    if (!same_version(r, o))
        __builtin_trap();
    if (o->nfields != r->num_headers)
        __builtin_trap();
    for (i = 0; i < o->nfields; i++) {
        const rdl_h1_header_t *h = &r->headers[i];
        size_t vlen = o->value_len[i];
        while (vlen > 0 && (o->value[i][vlen - 1] == ' ' || o->value[i][vlen - 1] == '\t'))
            vlen--;
        if (o->name_len[i] != h->name_len || memcmp(o->name[i], h->name, h->name_len) != 0)
            __builtin_trap();
        if (vlen != h->value_len || (vlen && memcmp(o->value[i], h->value, vlen) != 0))
            __builtin_trap();
    }
    if ((r->body == RDL_H1_BODY_CHUNKED) != ((o->flags & F_CHUNKED) != 0) && !known_http_parser_fault(r))
        __builtin_trap();
    if (r->body == RDL_H1_BODY_LENGTH && o->content_length != r->content_length)
        __builtin_trap();
    if (r->body == RDL_H1_BODY_NONE && (o->flags & F_CONTENTLENGTH))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rdl_h1_header_t hdrs[MAX_SLOTS];
    rdl_h1_request_t r;
    oracle_t o;
    int rc;

    rc = rdl_h1_parse_head((const char *)data, size, &limits, hdrs, MAX_SLOTS, &r);
    if (rc <= 0)
        return 0;               /* we reject or need more: never a smuggling risk */
    run_oracle(data, size, &o);
    if (!o.complete) {
        if (!known_http_parser_fault(&r))
            __builtin_trap();
        return 0;
    }
    compare(&r, &o);
    return 0;
}
