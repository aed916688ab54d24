/*
 * http1.c: the strict HTTP/1.1 request-head parser and chunked-body decoder
 * declared in http1.h.
 *
 * This is the server's first contact with untrusted bytes, so the rules are
 * those of RFC 9112 on the strict side everywhere the RFC allows a choice
 * (docs/http1-parser.md lists them). Two properties matter more than speed:
 *
 * - Split independence. The head is re-scanned from buf[0] on every call and
 *   scanned strictly left to right; every decision depends only on bytes
 *   already scanned. So a call on any prefix of a stream returns either
 *   "incomplete" or exactly what the call on the whole stream returns. Limits
 *   are enforced as "the scanner needs a byte at offset >= limit", which is
 *   also a property of the prefix alone.
 * - One framing decision. Content-Length, Transfer-Encoding, Host, Connection
 *   and Expect are interpreted here and nowhere else, so no later layer can
 *   read the framing differently (the root of request smuggling).
 *
 * Line ends are CRLF only: bare LF is refused in the head as well as in chunk
 * framing (RFC 9112 §2.2 makes accepting it optional; refusing it leaves one
 * meaning for every byte). Character classes come from one table, never from
 * <ctype.h>, whose answers depend on the locale.
 */
#include <string.h>
#include <limits.h>
#include "redline/util.h"
#include "runtime/http1.h"

/* Byte classes (bits of cls[]). */
enum {
    C_TCHAR = 1,    /* token character (RFC 9110 §5.6.2) */
    C_TARGET = 2,   /* request-target: visible ASCII except '#' '"' '<' '>' */
    C_VALUE = 4,    /* allowed in a field value: HTAB, SP, VCHAR, obs-text */
    C_HOST = 8,     /* reg-name: unreserved, sub-delims and '%' */
    C_HEX = 16      /* HEXDIG */
};

static const unsigned char cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,  /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
     4, 15,  4,  5, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15,  6,  /* 0x20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31,  6, 14,  4, 14,  4,  6,  /* 0x30 */
     6, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,  /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  6,  6,  7, 15,  /* 0x50 */
     7, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,  /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  7,  6, 15,  0,  /* 0x70 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0x80 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0x90 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xA0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xB0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xC0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xD0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xE0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xF0 */
};

#define MAX_CHUNK_LINE 4096     /* chunk-size + chunk-ext bytes per line */
#define MAX_TRAILER 8192        /* whole trailer section */

static bool is(unsigned char c, int klass)
{
    return (cls[c] & klass) != 0;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Skips field-value bytes eight at a time while none is a CTL (< 0x20) or DEL;
 * the byte loop after it handles HTAB and finds the exact stopping byte. The
 * two tests are the classic "has a byte less than n" and "has a zero byte"
 * word tricks: exact as yes/no answers, which is all that is used here.
 */
static size_t skip_plain_value(const char *buf, size_t p, size_t end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;

    while (end - p >= 8) {
        uint64_t x, del;
        memcpy(&x, buf + p, 8);
        del = x ^ (ones * 0x7F);
        if (((x - ones * 0x20) & ~x & highs) | ((del - ones) & ~del & highs))
            break;
        p += 8;
    }
    return p;
}

/* Case-insensitive comparison of s[0..n) with a literal (inlined: the literal's side folds away). */
__attribute__((always_inline)) static inline bool eq_nocase(const char *s, size_t n, const char *lit)
{
    return rdl_ascii_ieq(s, n, lit, strlen(lit));
}

/* ---- scanner state shared by the head parser --------------------------- */

typedef struct scan {
    const char *buf;
    size_t len;             /* bytes received */
    size_t lim;             /* the head may not need a byte at or past this offset */
    int lim_status;         /* 414 in the request line, else 431 */
    const char *lim_error;
} scan_t;

/* What the field lines said about framing; judged once the head is complete. */
typedef struct framing {
    unsigned host_count, cl_count, te_count;
    int te_status;          /* 0: exactly "chunked"; 501: other codings before chunked */
    bool host_from_target;  /* absolute-form: its authority is the host */
    bool conn_close, conn_keep_alive;
    bool expect_100, expect_other;
    uint64_t cl;
} framing_t;

static int fail(rdl_h1_request_t *req, size_t at, int status, const char *error)
{
    req->status = status;
    req->error = error;
    req->error_offset = at;
    return RDL_H1_ERROR;
}

static size_t scan_end(const scan_t *s)
{
    return s->len < s->lim ? s->len : s->lim;
}

/*
 * The scanner needs the byte at offset pos and does not have it: either the
 * limit forbids it (error, whatever bytes follow) or it has not arrived yet.
 */
static int starve(const scan_t *s, rdl_h1_request_t *req, size_t pos)
{
    if (pos >= s->lim)
        return fail(req, pos, s->lim_status, s->lim_error);
    return RDL_H1_INCOMPLETE;
}

/* ---- validators for field values ---------------------------------------- */

/* 1*5DIGIT up to 65535: an empty or out-of-range port is refused. */
static bool valid_port(const char *p, size_t n)
{
    unsigned v = 0;
    size_t i;

    if (n == 0 || n > 5)
        return false;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

/* Dotted-quad for the tail of an IPv6 literal (RFC 3986 IPv4address). */
static bool valid_ipv4(const char *p, size_t n)
{
    size_t i = 0;
    int parts = 0;

    while (parts < 4) {
        size_t start = i;
        unsigned v = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 3)
            v = v * 10 + (unsigned)(p[i++] - '0');
        if (i == start || v > 255 || (i - start > 1 && p[start] == '0'))
            return false;
        parts++;
        if (parts < 4) {
            if (i >= n || p[i] != '.')
                return false;
            i++;
        }
    }
    return i == n;
}

/* The inside of "[...]": an IPv6 address as RFC 3986 §3.2.2 defines it. */
static bool valid_ipv6(const char *p, size_t n)
{
    size_t i = 0;
    int groups = 0;
    bool elided = false;

    if (n >= 2 && p[0] == ':' && p[1] == ':') {
        elided = true;
        i = 2;
    } else if (n >= 1 && p[0] == ':') {
        return false;
    }
    while (i < n) {
        size_t start = i;
        while (i < n && is((unsigned char)p[i], C_HEX) && i - start < 4)
            i++;
        if (i < n && p[i] == '.') {     /* trailing IPv4 counts as two groups */
            if (!valid_ipv4(p + start, n - start))
                return false;
            groups += 2;
            i = n;
            break;
        }
        if (i == start)
            return false;
        groups++;
        if (i == n)
            break;
        if (p[i] != ':')
            return false;
        i++;
        if (i < n && p[i] == ':') {
            if (elided)
                return false;
            elided = true;
            i++;
        } else if (i == n) {
            return false;               /* single trailing ':' */
        }
    }
    return elided ? groups <= 7 : groups == 8;
}

/*
 * Host / authority: uri-host [ ":" port ] with uri-host = IP-literal /
 * IPv4address / reg-name (RFC 3986), non-empty. No userinfo: RFC 9110 §4.2.4
 * forbids it in http URIs and it is a phishing vector.
 */
static bool valid_host(const char *h, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return false;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (close == NULL || !valid_ipv6(h + 1, (size_t)(close - h) - 1))
            return false;
        i = (size_t)(close - h) + 1;
    } else {
        while (i < n && h[i] != ':') {
            unsigned char c = (unsigned char)h[i];
            if (!is(c, C_HOST))
                return false;
            if (c == '%') {
                if (i + 2 >= n || !is((unsigned char)h[i + 1], C_HEX) ||
                    !is((unsigned char)h[i + 2], C_HEX))
                    return false;
                i += 2;
            }
            i++;
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    return h[i] == ':' && valid_port(h + i + 1, n - i - 1);
}

/*
 * Transfer-Encoding value (already trimmed): 0 when it is exactly the token
 * "chunked", 501 when known-good syntax puts other codings before a final
 * "chunked", 400 for everything else (chunked not last, twice, with
 * parameters, empty elements, non-token syntax).
 */
static int classify_te(const char *v, size_t n)
{
    size_t i = 0;
    int elems = 0;
    bool prev_chunked = false;

    for (;;) {
        size_t tok;
        bool chunked;

        while (i < n && is_ows((unsigned char)v[i]))
            i++;
        tok = i;
        while (i < n && is((unsigned char)v[i], C_TCHAR))
            i++;
        if (i == tok || prev_chunked)
            return 400;
        chunked = eq_nocase(v + tok, i - tok, "chunked");
        while (i < n && is_ows((unsigned char)v[i]))
            i++;
        if (i < n && v[i] == ';') {
            if (chunked)
                return 400;
            while (i < n && v[i] != ',')    /* parameters of a coding we refuse anyway */
                i++;
        }
        prev_chunked = chunked;
        elems++;
        if (i == n)
            break;
        if (v[i] != ',')
            return 400;
        i++;
    }
    if (!prev_chunked)
        return 400;
    return elems == 1 ? 0 : 501;
}

/* Calls fn for each comma-separated element of v, trimmed, empty ones skipped. */
static void each_element(const char *v, size_t n, framing_t *fr,
                         void (*fn)(framing_t *fr, const char *e, size_t len))
{
    size_t i = 0;

    while (i < n) {
        size_t start, end;
        while (i < n && (is_ows((unsigned char)v[i]) || v[i] == ','))
            i++;
        start = i;
        while (i < n && v[i] != ',')
            i++;
        end = i;
        while (end > start && is_ows((unsigned char)v[end - 1]))
            end--;
        if (end > start)
            fn(fr, v + start, end - start);
    }
}

static void connection_option(framing_t *fr, const char *e, size_t len)
{
    if (eq_nocase(e, len, "close"))
        fr->conn_close = true;
    else if (eq_nocase(e, len, "keep-alive"))
        fr->conn_keep_alive = true;
}

static void expectation(framing_t *fr, const char *e, size_t len)
{
    if (eq_nocase(e, len, "100-continue"))
        fr->expect_100 = true;
    else
        fr->expect_other = true;
}

/* Content-Length = 1*DIGIT. Leading zeros are digits too; lists are refused. */
static bool parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    size_t i;

    if (n == 0)
        return false;
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)((unsigned char)v[i] - '0');
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

/* ---- the head ----------------------------------------------------------- */

/* Splits path?query starting at t[from] (path = "/" when it is empty). */
static void split_path(rdl_h1_request_t *req, size_t from)
{
    const char *t = req->target;
    size_t n = req->target_len;
    const char *q = memchr(t + from, '?', n - from);
    size_t path_end = q ? (size_t)(q - t) : n;

    if (path_end == from) {
        req->path = "/";
        req->path_len = 1;
    } else {
        req->path = t + from;
        req->path_len = (uint32_t)(path_end - from);
    }
    if (q) {
        req->query = q + 1;
        req->query_len = (uint32_t)(n - path_end - 1);
    }
}

/* Target forms (RFC 9112 §3.2); bytes were already checked by the scanner. */
static int parse_target(rdl_h1_request_t *req, framing_t *fr, size_t at)
{
    const char *t = req->target;
    size_t n = req->target_len, skip, auth_end;

    if (t[0] == '/') {
        split_path(req, 0);
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (req->method_id != RDL_METHOD_OPTIONS)
            return fail(req, at, 400, "request target '*' is only allowed with OPTIONS");
        req->path = t;
        req->path_len = 1;
        return 0;
    }
    if (n > 7 && eq_nocase(t, 7, "http://"))
        skip = 7;
    else if (n > 8 && eq_nocase(t, 8, "https://"))
        skip = 8;
    else
        return fail(req, at, 400, "request target must be origin-form (/path), absolute-form (http://host/path) or '*'");
    for (auth_end = skip; auth_end < n && t[auth_end] != '/' && t[auth_end] != '?'; auth_end++)
        ;
    if (!valid_host(t + skip, auth_end - skip))
        return fail(req, at + skip, 400, "invalid authority in absolute-form target (expected host[:port], no userinfo)");
    req->host = t + skip;
    req->host_len = (uint32_t)(auth_end - skip);
    fr->host_from_target = true;
    split_path(req, auth_end);
    return 0;
}

/* Skips empty lines before the request line (RFC 9112 §2.2 SHOULD). */
static int skip_empty_lines(const scan_t *s, size_t *pp, rdl_h1_request_t *req)
{
    size_t p = *pp, end = scan_end(s);

    for (;;) {
        if (p >= end)
            return starve(s, req, p);
        if (s->buf[p] == '\n')
            return fail(req, p, 400, "bare LF before the request line (expected CRLF)");
        if (s->buf[p] != '\r')
            break;
        if (p + 1 >= end)
            return starve(s, req, p + 1);
        if (s->buf[p + 1] != '\n')
            return fail(req, p, 400, "bare CR before the request line");
        p += 2;
    }
    *pp = p;
    return 1;
}

/* "HTTP/" DIGIT "." DIGIT CRLF, compared byte by byte as bytes arrive. */
static int parse_version(const scan_t *s, size_t p, rdl_h1_request_t *req)
{
    static const char pat[] = "HTTP/d.d\r\n";
    size_t i, end = scan_end(s);

    for (i = 0; i < 10; i++) {
        unsigned char c;
        bool ok;
        if (p + i >= end)
            return starve(s, req, p + i);
        c = (unsigned char)s->buf[p + i];
        ok = pat[i] == 'd' ? (c >= '0' && c <= '9') : c == (unsigned char)pat[i];
        if (!ok) {
            if (i == 8 && c == '\n')
                return fail(req, p + i, 400, "bare LF after the HTTP version (expected CRLF)");
            if (i == 9)
                return fail(req, p + i - 1, 400, "bare CR after the HTTP version");
            return fail(req, p + i, 400, i < 8 ? "malformed HTTP version (expected HTTP/1.1)"
                                               : "HTTP version must end the request line");
        }
    }
    return 1;
}

static int parse_request_line(scan_t *s, size_t *pp, const rdl_h1_limits_t *limits,
                              rdl_h1_request_t *req, framing_t *fr)
{
    const char *buf = s->buf;
    size_t start = *pp, p = start, end, vpos;
    int rc, major;

    /* s->lim <= INT_MAX, so the sum cannot wrap once max_request_line is below it */
    if (limits->max_request_line < s->lim && start + limits->max_request_line + 2 < s->lim) {
        s->lim = start + limits->max_request_line + 2;     /* + CRLF */
        s->lim_status = 414;
        s->lim_error = "request line too long";
    }
    end = scan_end(s);

    while (p < end && is((unsigned char)buf[p], C_TCHAR))
        p++;
    if (p >= end)
        return starve(s, req, p);
    if (buf[p] != ' ')
        return fail(req, p, 400, p == start ? "request line must start with a method token"
                                           : "invalid character in method (expected token then SP)");
    req->method = buf + start;
    req->method_len = (uint32_t)(p - start);
    p++;

    req->target = buf + p;
    while (p < end && is((unsigned char)buf[p], C_TARGET))
        p++;
    if (p >= end)
        return starve(s, req, p);
    if (buf[p] != ' ') {
        if (buf[p] == '#')
            return fail(req, p, 400, "fragment ('#') in request target");
        if (buf + p == req->target)
            return fail(req, p, 400, "empty request target (expected exactly one SP after the method)");
        if (buf[p] == '\r' || buf[p] == '\n')
            return fail(req, p, 400, "missing HTTP version in request line");
        return fail(req, p, 400, "invalid byte in request target (expected visible ASCII)");
    }
    if (buf + p == req->target)
        return fail(req, p, 400, "empty request target (expected exactly one SP after the method)");
    req->target_len = (uint32_t)(buf + p - req->target);
    vpos = ++p;
    if ((rc = parse_version(s, vpos, req)) != 1)
        return rc;

    major = buf[vpos + 5] - '0';
    if (major != 1)
        return fail(req, vpos, 505, "HTTP major version must be 1");
    req->version_minor = buf[vpos + 7] == '0' ? 0 : 1;
    req->method_id = rdl_method_parse(req->method, req->method_len);
    if (req->method_id == 0)
        return fail(req, start, 501, "unknown method (methods are case-sensitive)");
    if (req->method_id == RDL_METHOD_CONNECT)
        return fail(req, start, 501, "CONNECT is not supported by an origin server");
    if (parse_target(req, fr, (size_t)(req->target - buf)) != 0)
        return RDL_H1_ERROR;
    *pp = vpos + 10;
    return 1;
}

/* Records what a framing field says; 400s that one line proves are raised here. */
static int note_field(rdl_h1_request_t *req, framing_t *fr, const rdl_h1_header_t *h, size_t at)
{
    const char *n = h->name, *v = h->value;
    size_t vlen = h->value_len;

    switch (h->name_len) {
    case 4:
        if (!eq_nocase(n, 4, "host"))
            break;
        if (++fr->host_count > 1)
            return fail(req, at, 400, "more than one Host field");
        if (!valid_host(v, vlen))
            return fail(req, at, 400, "invalid Host value (expected host[:port])");
        if (!fr->host_from_target) {
            req->host = v;
            req->host_len = (uint32_t)vlen;
        }
        break;
    case 6:
        if (eq_nocase(n, 6, "expect"))
            each_element(v, vlen, fr, expectation);
        break;
    case 10:
        if (eq_nocase(n, 10, "connection"))
            each_element(v, vlen, fr, connection_option);
        break;
    case 14:
        if (!eq_nocase(n, 14, "content-length"))
            break;
        if (++fr->cl_count > 1)
            return fail(req, at, 400, "more than one Content-Length field");
        if (!parse_length(v, vlen, &fr->cl))
            return fail(req, at, 400, "invalid Content-Length (expected 1*DIGIT, no list)");
        break;
    case 17:
        if (!eq_nocase(n, 17, "transfer-encoding"))
            break;
        if (++fr->te_count > 1)
            return fail(req, at, 400, "more than one Transfer-Encoding field");
        fr->te_status = classify_te(v, vlen);
        if (fr->te_status == 400)
            return fail(req, at, 400, "invalid Transfer-Encoding (final coding must be exactly 'chunked')");
        break;
    }
    return 1;
}

/* One field line, or the empty line ending the head (returns 2). */
static int parse_field_line(const scan_t *s, size_t *pp, rdl_h1_request_t *req,
                            framing_t *fr, size_t max_fields)
{
    const char *buf = s->buf;
    size_t p = *pp, end = scan_end(s), name, colon, vstart, vend;
    rdl_h1_header_t *h;
    unsigned char c;

    if (p >= end)
        return starve(s, req, p);
    c = (unsigned char)buf[p];
    if (c == '\r') {
        if (p + 1 >= end)
            return starve(s, req, p + 1);
        if (buf[p + 1] != '\n')
            return fail(req, p, 400, "bare CR in header section");
        *pp = p + 2;
        return 2;
    }
    if (c == '\n')
        return fail(req, p, 400, "bare LF in header section (expected CRLF)");
    if (is_ows(c))
        return fail(req, p, 400, req->num_headers == 0 ? "whitespace before the first field line"
                                                       : "obs-fold (line folding) is not allowed");
    if (req->num_headers >= max_fields)
        return fail(req, p, 431, "too many header fields");

    name = p;
    while (p < end && is((unsigned char)buf[p], C_TCHAR))
        p++;
    if (p >= end)
        return starve(s, req, p);
    if (buf[p] != ':') {
        if (is_ows((unsigned char)buf[p]))
            return fail(req, p, 400, "whitespace between field name and colon");
        return fail(req, p, 400, "invalid character in field name (expected token then ':')");
    }
    if (p == name)
        return fail(req, p, 400, "empty field name");
    colon = p++;
    while (p < end && is_ows((unsigned char)buf[p]))
        p++;
    vstart = p;
    p = skip_plain_value(buf, p, end);
    while (p < end && is((unsigned char)buf[p], C_VALUE))
        p++;
    if (p >= end)
        return starve(s, req, p);
    if (buf[p] != '\r') {
        if (buf[p] == '\n')
            return fail(req, p, 400, "bare LF in header section (expected CRLF)");
        return fail(req, p, 400, "control character in field value");
    }
    if (p + 1 >= end)
        return starve(s, req, p + 1);
    if (buf[p + 1] != '\n')
        return fail(req, p, 400, "bare CR in field value");
    for (vend = p; vend > vstart && is_ows((unsigned char)buf[vend - 1]); vend--)
        ;
    h = &req->headers[req->num_headers++];
    h->name = buf + name;
    h->name_len = (uint32_t)(colon - name);
    h->value = buf + vstart;
    h->value_len = (uint32_t)(vend - vstart);
    *pp = p + 2;
    return note_field(req, fr, h, name);
}

/* The framing decision (RFC 9112 §6.3, §9.3; RFC 9110 §10.1.1), in that order. */
static int finish_head(rdl_h1_request_t *req, const framing_t *fr,
                       const rdl_h1_limits_t *limits, size_t head_len)
{
    bool has_body;

    if (req->version_minor == 1 && fr->host_count == 0)
        return fail(req, head_len, 400, "missing Host field (required in HTTP/1.1)");
    if (fr->te_count > 0) {
        if (req->version_minor == 0)
            return fail(req, head_len, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (fr->cl_count > 0)
            return fail(req, head_len, 400, "both Transfer-Encoding and Content-Length");
        if (fr->te_status == 501)
            return fail(req, head_len, 501, "unsupported transfer coding (only 'chunked' alone)");
        req->body = RDL_H1_BODY_CHUNKED;
    } else if (fr->cl_count > 0) {
        req->body = RDL_H1_BODY_LENGTH;
        req->content_length = fr->cl;
        if (fr->cl > limits->max_body)
            return fail(req, head_len, 413, "Content-Length larger than the body limit");
    }
    if (fr->expect_other)
        return fail(req, head_len, 417, "unsupported expectation (only 100-continue)");
    has_body = req->body == RDL_H1_BODY_CHUNKED ||
               (req->body == RDL_H1_BODY_LENGTH && req->content_length > 0);
    req->expect_continue = fr->expect_100 && req->version_minor == 1 && has_body;
    req->keep_alive = !fr->conn_close && (req->version_minor == 1 || fr->conn_keep_alive);
    req->head_len = head_len;
    return (int)head_len;
}

int rdl_h1_parse_head(const char *buf, size_t len, const rdl_h1_limits_t *limits,
                      rdl_h1_header_t *headers, size_t max_slots, rdl_h1_request_t *req)
{
    framing_t fr;
    scan_t s;
    size_t p = 0, max_fields;
    int rc;

    memset(req, 0, sizeof(*req));
    memset(&fr, 0, sizeof(fr));
    req->headers = headers;
    s.buf = buf;
    s.len = len;
    s.lim = limits->max_header_bytes < (size_t)INT_MAX ? limits->max_header_bytes : (size_t)INT_MAX;
    s.lim_status = 431;
    s.lim_error = "header section too large";
    max_fields = limits->max_headers < max_slots ? limits->max_headers : max_slots;

    if ((rc = skip_empty_lines(&s, &p, req)) != 1)
        return rc;
    {
        size_t header_lim = s.lim;
        if ((rc = parse_request_line(&s, &p, limits, req, &fr)) != 1)
            return rc;
        s.lim = header_lim;
        s.lim_status = 431;
        s.lim_error = "header section too large";
    }
    while ((rc = parse_field_line(&s, &p, req, &fr, max_fields)) == 1)
        ;
    if (rc != 2)
        return rc;
    return finish_head(req, &fr, limits, p);
}

const rdl_h1_header_t *rdl_h1_find(const rdl_h1_request_t *req, const char *name, size_t name_len)
{
    size_t i;

    for (i = 0; i < req->num_headers; i++) {
        const rdl_h1_header_t *h = &req->headers[i];
        if (rdl_ascii_ieq(h->name, h->name_len, name, name_len))
            return h;
    }
    return NULL;
}

/* ---- chunked body (RFC 9112 §7.1) --------------------------------------- */

enum {
    CK_SIZE_START,      /* first HEXDIG of chunk-size */
    CK_SIZE,            /* more HEXDIG, or what ends the size */
    CK_EXT_BWS,         /* BWS before ';' */
    CK_EXT_NAME_START,  /* after ';': BWS, then the extension name */
    CK_EXT_NAME,
    CK_EXT_AFTER_NAME,  /* BWS after the name: '=' or ';' next */
    CK_EXT_VALUE_START, /* after '=': BWS, then token or quoted-string */
    CK_EXT_TOKEN,
    CK_EXT_QUOTED,
    CK_EXT_QUOTED_PAIR,
    CK_EXT_AFTER_QUOTED,
    CK_SIZE_LF,         /* CR seen, LF must follow */
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER_START,   /* a trailer field line, or the final CRLF */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_FINAL_LF,
    CK_DONE,
    CK_ERROR
};

void rdl_h1_chunked_init(rdl_h1_chunked_t *c, uint64_t max_body)
{
    memset(c, 0, sizeof(*c));
    c->state = CK_SIZE_START;
    c->max_body = max_body;
}

static int ck_fail(rdl_h1_chunked_t *c, int status, const char *error)
{
    c->state = CK_ERROR;
    c->status = status;
    c->error = error;
    return RDL_H1_ERROR;
}

/* After an extension element: more BWS, the next ';', or the CR ending the line. */
static int ck_after_ext(rdl_h1_chunked_t *c, unsigned char ch)
{
    if (is_ows(ch))
        c->state = CK_EXT_BWS;
    else if (ch == ';')
        c->state = CK_EXT_NAME_START;
    else if (ch == '\r')
        c->state = CK_SIZE_LF;
    else
        return ck_fail(c, 400, "invalid chunk extension");
    return 0;
}

/* The line that carries chunk-size and chunk-ext. */
static int ck_size_line(rdl_h1_chunked_t *c, unsigned char ch)
{
    if (ch != '\r' && c->state != CK_SIZE_LF && ++c->line_bytes > MAX_CHUNK_LINE)
        return ck_fail(c, 400, "chunk-size line too long (extensions over 4 KiB)");
    switch (c->state) {
    case CK_SIZE_START:
        if (!is(ch, C_HEX))
            return ck_fail(c, 400, "chunk size must start with a hex digit");
        c->chunk_left = (uint64_t)rdl_hex_value(ch);
        c->state = CK_SIZE;
        return 0;
    case CK_SIZE:
        if (is(ch, C_HEX)) {
            if (c->chunk_left >> 56)    /* a 16th significant digit */
                return ck_fail(c, 400, "chunk size too large");
            c->chunk_left = c->chunk_left << 4 | (uint64_t)rdl_hex_value(ch);
            return 0;
        }
        return ck_after_ext(c, ch);
    case CK_EXT_BWS:
        if (ch == ';')
            c->state = CK_EXT_NAME_START;
        else if (!is_ows(ch))
            return ck_fail(c, 400, "invalid chunk extension (expected ';')");
        return 0;
    case CK_EXT_NAME_START:
        if (is(ch, C_TCHAR))
            c->state = CK_EXT_NAME;
        else if (!is_ows(ch))
            return ck_fail(c, 400, "invalid chunk extension name");
        return 0;
    case CK_EXT_NAME:
        if (is(ch, C_TCHAR))
            return 0;
        if (ch == '=') {
            c->state = CK_EXT_VALUE_START;
            return 0;
        }
        if (is_ows(ch)) {
            c->state = CK_EXT_AFTER_NAME;
            return 0;
        }
        return ck_after_ext(c, ch);
    case CK_EXT_AFTER_NAME:
        if (ch == '=')
            c->state = CK_EXT_VALUE_START;
        else if (ch == ';')
            c->state = CK_EXT_NAME_START;
        else if (!is_ows(ch))
            return ck_fail(c, 400, "invalid chunk extension (expected '=' or ';')");
        return 0;
    case CK_EXT_VALUE_START:
        if (ch == '"')
            c->state = CK_EXT_QUOTED;
        else if (is(ch, C_TCHAR))
            c->state = CK_EXT_TOKEN;
        else if (!is_ows(ch))
            return ck_fail(c, 400, "invalid chunk extension value");
        return 0;
    case CK_EXT_TOKEN:
        if (is(ch, C_TCHAR))
            return 0;
        return ck_after_ext(c, ch);
    case CK_EXT_QUOTED:
        if (ch == '"')
            c->state = CK_EXT_AFTER_QUOTED;
        else if (ch == '\\')
            c->state = CK_EXT_QUOTED_PAIR;
        else if (!is(ch, C_VALUE))      /* qdtext: HTAB, SP, VCHAR except '"' '\', obs-text */
            return ck_fail(c, 400, "control character in chunk extension");
        return 0;
    case CK_EXT_QUOTED_PAIR:
        if (!is(ch, C_VALUE))
            return ck_fail(c, 400, "control character in chunk extension");
        c->state = CK_EXT_QUOTED;
        return 0;
    case CK_EXT_AFTER_QUOTED:
        return ck_after_ext(c, ch);
    default: /* CK_SIZE_LF */
        if (ch != '\n')
            return ck_fail(c, 400, "bare CR in chunk-size line");
        c->line_bytes = 0;
        if (c->chunk_left == 0) {
            c->state = CK_TRAILER_START;
        } else if (c->chunk_left > c->max_body - c->total) {    /* total <= max_body */
            return ck_fail(c, 413, "chunked body larger than the body limit");
        } else {
            c->total += c->chunk_left;
            c->state = CK_DATA;
        }
        return 0;
    }
}

/* Exactly CRLF after chunk data: anything else is the TERM.EXT smuggling vector. */
static int ck_data_end(rdl_h1_chunked_t *c, unsigned char ch)
{
    if (c->state == CK_DATA_CR) {
        if (ch != '\r')
            return ck_fail(c, 400, "chunk data must be followed by CRLF");
        c->state = CK_DATA_LF;
    } else {
        if (ch != '\n')
            return ck_fail(c, 400, "chunk data must be followed by CRLF (bare CR)");
        c->state = CK_SIZE_START;
    }
    return 0;
}

/* Trailer fields: checked like header fields, then dropped (never merged). */
static int ck_trailer(rdl_h1_chunked_t *c, unsigned char ch)
{
    if (++c->trailer_bytes > MAX_TRAILER)
        return ck_fail(c, 400, "trailer section too large");
    switch (c->state) {
    case CK_TRAILER_START:
        if (ch == '\r')
            c->state = CK_FINAL_LF;
        else if (is(ch, C_TCHAR))
            c->state = CK_TRAILER_NAME;
        else if (is_ows(ch))
            return ck_fail(c, 400, "obs-fold or whitespace-led line in trailer section");
        else
            return ck_fail(c, 400, "invalid trailer field line");
        return 0;
    case CK_TRAILER_NAME:
        if (ch == ':')
            c->state = CK_TRAILER_VALUE;
        else if (is_ows(ch))
            return ck_fail(c, 400, "whitespace between trailer field name and colon");
        else if (!is(ch, C_TCHAR))
            return ck_fail(c, 400, "invalid character in trailer field name");
        return 0;
    case CK_TRAILER_VALUE:
        if (ch == '\r')
            c->state = CK_TRAILER_LF;
        else if (!is(ch, C_VALUE))
            return ck_fail(c, 400, "control character in trailer field value");
        return 0;
    case CK_TRAILER_LF:
        if (ch != '\n')
            return ck_fail(c, 400, "bare CR in trailer section");
        c->state = CK_TRAILER_START;
        return 0;
    default: /* CK_FINAL_LF */
        if (ch != '\n')
            return ck_fail(c, 400, "bare CR at the end of the chunked body");
        c->state = CK_DONE;
        return 1;
    }
}

int rdl_h1_chunked_decode(rdl_h1_chunked_t *c, char *buf, size_t len, size_t *src, size_t *dst)
{
    size_t s = *src, d = *dst;
    int rc = 0;

    if (c->state == CK_DONE)
        return 1;
    if (c->state == CK_ERROR)
        return RDL_H1_ERROR;
    while (s < len && rc == 0) {
        unsigned char ch;
        if (c->state == CK_DATA) {
            size_t n = len - s;
            if (n > c->chunk_left)
                n = (size_t)c->chunk_left;
            if (d != s)
                memmove(buf + d, buf + s, n);
            d += n;
            s += n;
            c->chunk_left -= n;
            if (c->chunk_left == 0)
                c->state = CK_DATA_CR;
            continue;
        }
        ch = (unsigned char)buf[s];
        if (c->state == CK_DATA_CR || c->state == CK_DATA_LF)
            rc = ck_data_end(c, ch);
        else if (c->state >= CK_TRAILER_START)
            rc = ck_trailer(c, ch);
        else
            rc = ck_size_line(c, ch);
        if (rc != RDL_H1_ERROR)         /* on error *src stays at the offending byte */
            s++;
    }
    *src = s;
    *dst = d;
    return rc;
}
