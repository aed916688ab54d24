/*
 * secret.c: handling credentials without leaking them: a comparison whose
 * time does not depend on where two strings differ (a bearer token checked
 * byte by byte with memcmp tells a patient attacker how many leading bytes
 * were right), and the redaction every printed setting goes through (admin
 * endpoints, start-up lines), so a token, a password or a URL's user:password
 * never reaches a page or a log.
 */
#include <string.h>
#include "redline/util.h"

bool rdl_secret_equal(const void *given, size_t given_len, const void *secret, size_t secret_len)
{
    const unsigned char *g = given, *s = secret;
    volatile unsigned char diff = given_len != secret_len;
    for (size_t i = 0; i < secret_len; i++) {
        unsigned char b = i < given_len ? g[i] : 0;
        diff |= (unsigned char)(b ^ s[i]);
    }
    return diff == 0 && secret_len > 0;
}

/* Case-insensitive search of a short word in s[0..n). */
static bool contains(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (rdl_ascii_ieq(s + i, w, word, w))
            return true;
    return false;
}

bool rdl_secret_name(const char *name, size_t n)
{
    static const char *const words[] = { "token", "password", "passwd", "secret",
                                         "authorization", "api_key", "api-key", "apikey" };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (contains(name, n, words[i]))
            return true;
    return false;
}

/* The userinfo of "scheme://user:pass@host/...": its end (the '@'), or 0 when none. */
static size_t userinfo_end(const char *s, size_t n, size_t *start)
{
    size_t from = 0;
    for (size_t i = 0; i + 3 <= n && !from; i++)
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/')
            from = i + 3;
    if (!from)
        return 0;
    for (size_t i = from; i < n; i++) {
        if (s[i] == '/' || s[i] == '?' || s[i] == '#')
            return 0;
        if (s[i] == '@') {
            *start = from;
            return i;
        }
    }
    return 0;
}

void rdl_redact_put(rdl_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* "a.password=x", also "tracing.headers=Authorization=Bearer x": all after the '=' goes */
        if (s[i] == '=' && rdl_secret_name(s, i)) {
            rdl_buf_put(b, s, i + 1);
            rdl_buf_puts(b, RDL_REDACTED);
            return;
        }
    }
    size_t start, at = userinfo_end(s, n, &start);
    if (at) {
        rdl_buf_put(b, s, start);                      /* "http://<redacted>@host/..." */
        rdl_buf_puts(b, RDL_REDACTED);
        rdl_buf_put(b, s + at, n - at);
        return;
    }
    rdl_buf_put(b, s, n);
}
