/*
 * test_http1.c: the strict HTTP/1.1 parser (src/runtime/http1.c) against a
 * table of valid and malformed request heads and chunked bodies.
 *
 * Every head case is also fed as every prefix of itself: a prefix shorter
 * than the head must give "incomplete" (or, for a malformed head, the same
 * error as the whole input), which is what makes the result independent of
 * how TCP split the bytes. Every chunked case is decoded whole, split in two
 * at every offset and fed byte by byte, and must give identical output.
 * The rows of reference/http1-server.md §2.7 where http_parser is lenient are
 * all here, marked "2.7".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "runtime/http1.h"

static const rdl_h1_limits_t dflt = { 8192, 16384, 64, 1024 * 1024 };
/* Small limits for the limit cases: request line 32, head 128, 4 fields, body 100. */
static const rdl_h1_limits_t small = { 32, 128, 4, 100 };

#define MAX_SLOTS 64

typedef struct hcase {
    const char *name;
    const char *in;
    size_t len;                 /* 0: strlen(in) (set it when in holds a NUL) */
    int status;                 /* 0: valid head, else the error status */
    const rdl_h1_limits_t *limits;  /* NULL: dflt */
    /* expected fields of a valid head (head_len is always the whole input) */
    int method_id;
    const char *path;
    const char *query;          /* NULL: no '?' */
    int minor;
    const char *host;           /* NULL: none */
    int body;
    uint64_t cl;
    bool keep_alive;
    bool expect;
    size_t nhdr;
    const char *why;            /* for some errors: a word the error text must contain */
} hcase_t;

#define H11 " HTTP/1.1\r\nHost: a\r\n"

static const hcase_t heads[] = {
    /* ---- valid ---- */
    { "simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "browser GET, 6 fields, query",
      "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
      "Accept: text/html,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, br\r\n"
      "Connection: keep-alive\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/a/b", "x=1&y=2", 1, "example.com", RDL_H1_BODY_NONE, 0, true, false, 6, NULL },
    { "HTTP/1.0 without Host, not persistent", "GET /x HTTP/1.0\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/x", NULL, 0, NULL, RDL_H1_BODY_NONE, 0, false, false, 0, NULL },
    { "HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 0, NULL, RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "HTTP/1.1 Connection: close", "GET /" H11 "Connection: close\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, false, false, 2, NULL },
    { "Connection list, close wins", "GET /" H11 "Connection: Keep-Alive, CLOSE\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, false, false, 2, NULL },
    { "Connection: upgrade stays persistent", "GET /" H11 "Connection: upgrade, ,keep-alive\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "2.7 Upgrade + Connection: Upgrade parsed as a normal request",
      "GET /ws" H11 "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/ws", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 3, NULL },
    { "HTTP/1.0 close beats keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
      0, 0, NULL, RDL_METHOD_GET, "/", NULL, 0, NULL, RDL_H1_BODY_NONE, 0, false, false, 2, NULL },
    { "one leading CRLF", "\r\nGET /" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "three leading CRLFs", "\r\n\r\n\r\nGET /" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "POST with Content-Length", "POST /p" H11 "Content-Length: 5\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/p", NULL, 1, "a", RDL_H1_BODY_LENGTH, 5, true, false, 2, NULL },
    { "2.7 CL with leading zeros", "POST /" H11 "Content-Length: 0005\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_LENGTH, 5, true, false, 2, NULL },
    { "CL 0", "POST /" H11 "Content-Length: 0\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_LENGTH, 0, true, false, 2, NULL },
    { "2.7 CL with trailing SP and HTAB (trimmed)", "POST /" H11 "Content-Length:\t5 \t\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_LENGTH, 5, true, false, 2, NULL },
    { "TE chunked", "POST /" H11 "Transfer-Encoding: chunked\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_CHUNKED, 0, true, false, 2, NULL },
    { "TE CHUNKED (case-insensitive), padded", "POST /" H11 "transfer-encoding:   CHUNKED  \r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_CHUNKED, 0, true, false, 2, NULL },
    { "Expect 100-continue with CL", "PUT /u" H11 "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_PUT, "/u", NULL, 1, "a", RDL_H1_BODY_LENGTH, 3, true, true, 3, NULL },
    { "Expect 100-Continue case, chunked", "PUT /u" H11 "Expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
      0, 0, NULL, RDL_METHOD_PUT, "/u", NULL, 1, "a", RDL_H1_BODY_CHUNKED, 0, true, true, 3, NULL },
    { "Expect 100-continue without body", "GET /" H11 "Expect: 100-continue\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "Expect 100-continue ignored on HTTP/1.0", "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
      0, 0, NULL, RDL_METHOD_POST, "/", NULL, 0, NULL, RDL_H1_BODY_LENGTH, 2, false, false, 2, NULL },
    { "2.7 HTTP/1.2 handled as 1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "HTTP/1.9 handled as 1.1", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "2.7 absolute-form: authority beats Host", "GET http://ex.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
      0, 0, NULL, RDL_METHOD_GET, "/p", "q=1", 1, "ex.com:8080", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "absolute-form without path", "GET http://ex.com HTTP/1.1\r\nHost: ex.com\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "ex.com", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "absolute-form HTTPS scheme, query only", "GET HTTPS://ex.com?x HTTP/1.0\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", "x", 0, "ex.com", RDL_H1_BODY_NONE, 0, false, false, 0, NULL },
    { "2.7 OPTIONS *", "OPTIONS *" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_OPTIONS, "*", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "2.7 obs-text 0xFF in value", "GET /" H11 "X: a\xff\x80z\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "long value: obs-text, HTAB, SP, '~' across words", "GET /" H11 "X: \x80\xff\xfe~ \t0123456789\t\xc3\xa9~~~~~~~~~\r\n\r\n",
      0, 0, NULL, RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "HTAB inside a value", "GET /" H11 "X: a\tb\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "empty value", "GET /" H11 "X-Empty:\r\nY:  \t \r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 3, NULL },
    { "empty query", "GET /?" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", "", 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "query split at the first '?'", "GET /a?b?c=/d" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/a", "b?c=/d", 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "browser query bytes {}|^`[]\\", "GET /s?q={a}|^`[1]\\ HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/s", "q={a}|^`[1]\\", 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "Host [::1]:8080", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "[::1]:8080", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "Host [v6 with IPv4 tail]", "GET / HTTP/1.1\r\nHost: [::ffff:10.0.0.1]\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "[::ffff:10.0.0.1]", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "Host full IPv6 with port", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:abcd]:80\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "[1:2:3:4:5:6:7:abcd]:80", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "Host IPv4 with port", "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "127.0.0.1:80", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "Host pct-encoded, no space after colon", "GET / HTTP/1.1\r\nhost:a%41b\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a%41b", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "HEAD", "HEAD /h" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_HEAD, "/h", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "DELETE", "DELETE /d" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_DELETE, "/d", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "PATCH", "PATCH //d" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_PATCH, "//d", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "TRACE", "TRACE /t" H11 "\r\n", 0, 0, NULL,
      RDL_METHOD_TRACE, "/t", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "every tchar in a name", "GET /" H11 "!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "2.7 Transfer-Encoding-X is not TE", "GET /" H11 "Transfer-Encoding-X: 1\r\nContent-Lengthy: 9\r\n\r\n",
      0, 0, NULL, RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 3, NULL },
    { "fuzz-diff: a TE-prefixed name after TE chunked is not TE",
      "POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encodingun: c hked\r\n\r\n", 0, 0, NULL,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_CHUNKED, 0, true, false, 3, NULL },
    { "fuzz-diff: TE chunked followed by HTABs", "POST /" H11 "Transfer-Encoding: chunked\t\t\t\t\t\t\t\t\t\t\r\n\r\n",
      0, 0, NULL, RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_CHUNKED, 0, true, false, 2, NULL },
    { "Transfer-Encoding-X with Content-Length", "POST /" H11 "Transfer-Encoding-X: 1\r\nContent-Length: 5\r\n\r\n",
      0, 0, NULL, RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_LENGTH, 5, true, false, 3, NULL },
    { "2.7 trailing OWS stripped from values", "GET /" H11 "X:   a b \t \r\n\r\n", 0, 0, NULL,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "request line exactly at the limit (32)", "GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, &small,
      RDL_METHOD_GET, "/aaaaaaaaaaaaaaaaaa", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 1, NULL },
    { "head exactly at the limit (128)",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345"
      "\r\n\r\n", 0, 0, &small,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 2, NULL },
    { "exactly max_headers fields (4)", "GET /" H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, 0, &small,
      RDL_METHOD_GET, "/", NULL, 1, "a", RDL_H1_BODY_NONE, 0, true, false, 4, NULL },
    { "CL exactly max_body (100)", "POST /" H11 "Content-Length: 100\r\n\r\n", 0, 0, &small,
      RDL_METHOD_POST, "/", NULL, 1, "a", RDL_H1_BODY_LENGTH, 100, true, false, 2, NULL },

    /* ---- request line ---- */
    { "2.7 lowercase get is an unknown method", "get /" H11 "\r\n", 0, .status = 501 },
    { "2.7 BREW unknown method", "BREW /" H11 "\r\n", 0, .status = 501 },
    { "2.7 GETX unknown method", "GETX /" H11 "\r\n", 0, .status = 501 },
    { "2.7 TAB after method", "GET\t/" H11 "\r\n", 0, .status = 400 },
    { "non-token byte in method", "G@T /" H11 "\r\n", 0, .status = 400 },
    { "NUL in method", "GE\0T /" H11 "\r\n", sizeof("GE\0T /" H11 "\r\n") - 1, .status = 400 },
    { "SP before the method", " GET /" H11 "\r\n", 0, .status = 400 },
    { "2.7 CONNECT (origin server)", "CONNECT ex.com:443 HTTP/1.1\r\nHost: ex.com:443\r\n\r\n", 0, .status = 501 },
    { "2.7 double SP after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "double SP before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "trailing SP after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "lowercase http/1.1", "GET / http/1.1\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "HTTP/01.1", "GET / HTTP/01.1\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "2.7 HXYZ/1.1", "GET / HXYZ/1.1\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "HTTP/1 (no minor)", "GET / HTTP/1\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "2.7 HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, .status = 505 },
    { "HTTP/0.9 spelled out", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 0, .status = 505 },
    { "2.7 HTTP/9.9", "GET / HTTP/9.9\r\nHost: a\r\n\r\n", 0, .status = 505 },
    { "2.7 no version (HTTP/0.9 line)", "GET /\r\nHost: a\r\n\r\n", 0, .status = 400 },
    { "2.7 fragment in target", "GET /a#frag" H11 "\r\n", 0, .status = 400, .why = "fragment" },
    { "2.7 TAB in target", "GET /a\tb" H11 "\r\n", 0, .status = 400 },
    { "2.7 byte >= 0x80 in target", "GET /caf\xc3\xa9" H11 "\r\n", 0, .status = 400 },
    { "2.7 '\"' in target", "GET /\"x\"" H11 "\r\n", 0, .status = 400 },
    { "'<' in target", "GET /<script>" H11 "\r\n", 0, .status = 400 },
    { "NUL in target", "GET /a\0b" H11 "\r\n", sizeof("GET /a\0b" H11 "\r\n") - 1, .status = 400 },
    { "2.7 GET *", "GET *" H11 "\r\n", 0, .status = 400, .why = "'*'" },
    { "'*' followed by more", "OPTIONS *x" H11 "\r\n", 0, .status = 400 },
    { "authority-form with GET", "GET ex.com:80" H11 "\r\n", 0, .status = 400 },
    { "absolute-form ftp scheme", "GET ftp://ex.com/" H11 "\r\n", 0, .status = 400 },
    { "absolute-form userinfo", "GET http://u:p@ex.com/" H11 "\r\n", 0, .status = 400 },
    { "absolute-form empty authority", "GET http:///p" H11 "\r\n", 0, .status = 400 },
    { "absolute-form bad port", "GET http://ex.com:99999/" H11 "\r\n", 0, .status = 400 },
    { "bare CR ending the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 0, .status = 400 },
    { "bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 0, .status = 400 },
    { "bare LF before the request line", "\nGET /" H11 "\r\n", 0, .status = 400 },
    { "bare CR before the request line", "\rGET /" H11 "\r\n", 0, .status = 400 },

    /* ---- field lines ---- */
    { "2.7 SP before colon (Host)", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, .status = 400, .why = "whitespace between field name and colon" },
    { "2.7 SP before colon (TE)", "POST /" H11 "Transfer-Encoding : chunked\r\n\r\n", 0, .status = 400, .why = "whitespace between field name and colon" },
    { "2.7 SP before colon (CL)", "POST /" H11 "Content-Length : 5\r\n\r\n", 0, .status = 400, .why = "whitespace between field name and colon" },
    { "HTAB before colon", "GET /" H11 "X\t: a\r\n\r\n", 0, .status = 400, .why = "whitespace between field name and colon" },
    { "2.7 obs-fold", "GET /" H11 "X: a\r\n b\r\n\r\n", 0, .status = 400, .why = "obs-fold" },
    { "2.7 obs-fold in TE", "POST /" H11 "Transfer-Encoding:\r\n chunked\r\n\r\n", 0, .status = 400 },
    { "obs-fold with HTAB", "GET /" H11 "X: a\r\n\tb\r\n\r\n", 0, .status = 400, .why = "obs-fold" },
    { "2.7 whitespace-led first field line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, .status = 400, .why = "whitespace before the first field line" },
    { "2.7 NUL in value", "GET /" H11 "X: a\0b\r\n\r\n", sizeof("GET /" H11 "X: a\0b\r\n\r\n") - 1, .status = 400 },
    { "2.7 0x01 in value", "GET /" H11 "X: a\x01" "b\r\n\r\n", 0, .status = 400 },
    { "2.7 DEL in value", "GET /" H11 "X: a\x7f" "b\r\n\r\n", 0, .status = 400 },
    { "DEL deep in a long value (word scan)", "GET /" H11 "X: 0123456789abcdef\x7f" "0123456789\r\n\r\n", 0, .status = 400 },
    { "0x1F deep in a long value (word scan)", "GET /" H11 "X: 0123456789abcdefghij\x1f" "0123\r\n\r\n", 0, .status = 400 },
    { "NUL deep in a long value (word scan)", "GET /" H11 "X: 0123456789a\0bcdefghij\r\n\r\n",
      sizeof("GET /" H11 "X: 0123456789a\0bcdefghij\r\n\r\n") - 1, .status = 400 },
    { "bare LF deep in a long value (word scan)", "GET /" H11 "X: 0123456789abcdefghij\nY: 1\r\n\r\n", 0, .status = 400 },
    { "VT in value", "GET /" H11 "X: a\vb\r\n\r\n", 0, .status = 400 },
    { "2.7 bare CR in value", "GET /" H11 "X: a\rb\r\n\r\n", 0, .status = 400, .why = "bare CR" },
    { "2.7 CR + non-LF ending a field line", "GET /" H11 "X: a\rY: b\r\n\r\n", 0, .status = 400, .why = "bare CR" },
    { "2.7 bare LF ending a field line", "GET /" H11 "X: a\nY: b\r\n\r\n", 0, .status = 400, .why = "bare LF" },
    { "bare LF as the empty line", "GET /" H11 "\n", 0, .status = 400 },
    { "2.7 CR + non-LF ending the block", "GET /" H11 "\rX", 0, .status = 400 },
    { "2.7 '(' in a name", "GET /" H11 "X(Y): a\r\n\r\n", 0, .status = 400 },
    { "2.7 empty name", "GET /" H11 ": a\r\n\r\n", 0, .status = 400 },
    { "2.7 no colon", "GET /" H11 "Foo\r\n\r\n", 0, .status = 400 },
    { "2.7 NUL in name", "GET /" H11 "F\0o: a\r\n\r\n", sizeof("GET /" H11 "F\0o: a\r\n\r\n") - 1, .status = 400 },
    { "2.7 0xFF in name", "GET /" H11 "F\xffo: a\r\n\r\n", 0, .status = 400 },

    /* ---- Host ---- */
    { "2.7 HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 0, .status = 400, .why = "missing Host" },
    { "2.7 two Host lines", "GET /" H11 "Host: a\r\n\r\n", 0, .status = 400, .why = "more than one Host" },
    { "two Host lines on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 0, .status = 400 },
    { "2.7 empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, .status = 400 },
    { "Host with inner SP", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, .status = 400 },
    { "Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 0, .status = 400 },
    { "Host with empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 0, .status = 400 },
    { "Host with port too long", "GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", 0, .status = 400 },
    { "Host with port over 65535", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", 0, .status = 400 },
    { "Host only a port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 0, .status = 400 },
    { "Host unclosed IPv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 0, .status = 400 },
    { "Host IPv6 with two '::'", "GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", 0, .status = 400 },
    { "Host IPv6 with nine groups", "GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n", 0, .status = 400 },
    { "Host IPv6 with two groups, no '::'", "GET / HTTP/1.1\r\nHost: [1:2]\r\n\r\n", 0, .status = 400 },
    { "Host IPv6 '::' plus eight groups", "GET / HTTP/1.1\r\nHost: [1::2:3:4:5:6:7:8]\r\n\r\n", 0, .status = 400 },
    { "Host IPv6 bad IPv4 tail", "GET / HTTP/1.1\r\nHost: [::1.2.3.256]\r\n\r\n", 0, .status = 400 },
    { "Host garbage after ']'", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 0, .status = 400 },
    { "Host bad pct-encoding", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 0, .status = 400 },
    { "Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, .status = 400 },
    { "Host invalid on HTTP/1.0 too", "GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 0, .status = 400 },

    /* ---- Content-Length ---- */
    { "2.7 CL +5", "POST /" H11 "Content-Length: +5\r\n\r\n", 0, .status = 400 },
    { "2.7 CL -1", "POST /" H11 "Content-Length: -1\r\n\r\n", 0, .status = 400 },
    { "2.7 CL 0x5", "POST /" H11 "Content-Length: 0x5\r\n\r\n", 0, .status = 400 },
    { "2.7 CL 5 6", "POST /" H11 "Content-Length: 5 6\r\n\r\n", 0, .status = 400 },
    { "2.7 CL empty", "POST /" H11 "Content-Length: \r\n\r\n", 0, .status = 400 },
    { "2.7 CL 20 digits (overflow)", "POST /" H11 "Content-Length: 99999999999999999999\r\n\r\n", 0, .status = 400 },
    { "CL 2^64 exactly (overflow)", "POST /" H11 "Content-Length: 18446744073709551616\r\n\r\n", 0, .status = 400 },
    { "2.7 CL list 5, 5", "POST /" H11 "Content-Length: 5, 5\r\n\r\n", 0, .status = 400 },
    { "2.7 two identical CL lines", "POST /" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, .status = 400, .why = "more than one Content-Length" },
    { "two different CL lines", "POST /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, .status = 400 },
    { "2.7 CL 10^18 over the body limit", "POST /" H11 "Content-Length: 1000000000000000000\r\n\r\n", 0, .status = 413 },
    { "CL one over max_body", "POST /" H11 "Content-Length: 101\r\n\r\n", 0, .status = 413, .limits = &small },

    /* ---- Transfer-Encoding ---- */
    { "2.7 CL.TE", "POST /" H11 "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", 0, .status = 400, .why = "both Transfer-Encoding and Content-Length" },
    { "2.7 TE.CL", "POST /" H11 "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n", 0, .status = 400, .why = "both Transfer-Encoding and Content-Length" },
    { "2.7 CL + TE identity", "POST /" H11 "Content-Length: 6\r\nTransfer-Encoding: identity\r\n\r\n", 0, .status = 400 },
    { "2.7 TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, .status = 400, .why = "HTTP/1.0" },
    { "2.7 TE gzip, chunked", "POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, .status = 501 },
    { "2.7 TE identity, chunked", "POST /" H11 "Transfer-Encoding: identity,chunked\r\n\r\n", 0, .status = 501 },
    { "TE with params before chunked", "POST /" H11 "Transfer-Encoding: GZIP;q=1 , Chunked\r\n\r\n", 0, .status = 501 },
    { "2.7 TE chunked twice (two lines)", "POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, .status = 400, .why = "more than one Transfer-Encoding" },
    { "2.7 TE identity + TE chunked lines", "POST /" H11 "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n", 0, .status = 400 },
    { "2.7 TE chunked + TE identity lines", "POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", 0, .status = 400 },
    { "2.7 TE chunked, chunked", "POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, .status = 400 },
    { "2.7 TE chunked, identity", "POST /" H11 "Transfer-Encoding: chunked, identity\r\n\r\n", 0, .status = 400 },
    { "2.7 TE chunked;a=b", "POST /" H11 "Transfer-Encoding: chunked;a=b\r\n\r\n", 0, .status = 400 },
    { "2.7 TE xchunked", "POST /" H11 "Transfer-Encoding: xchunked\r\n\r\n", 0, .status = 400 },
    { "2.7 TE chunkedx", "POST /" H11 "Transfer-Encoding: chunkedx\r\n\r\n", 0, .status = 400 },
    { "2.7 TE ,chunked", "POST /" H11 "Transfer-Encoding: ,chunked\r\n\r\n", 0, .status = 400 },
    { "2.7 TE \"chunked\"", "POST /" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, .status = 400 },
    { "2.7 TE empty", "POST /" H11 "Transfer-Encoding: \r\n\r\n", 0, .status = 400 },
    { "2.7 TE \\vchunked", "POST /" H11 "Transfer-Encoding: \vchunked\r\n\r\n", 0, .status = 400 },
    { "TE gzip (chunked not final)", "POST /" H11 "Transfer-Encoding: gzip\r\n\r\n", 0, .status = 400 },

    /* ---- Expect ---- */
    { "Expect: foo", "POST /" H11 "Expect: foo\r\nContent-Length: 1\r\n\r\n", 0, .status = 417 },
    { "Expect list with an unknown member", "POST /" H11 "Expect: 100-continue, foo\r\nContent-Length: 1\r\n\r\n", 0, .status = 417 },
    { "Expect 100-continue with parameter", "POST /" H11 "Expect: 100-continue;x=1\r\nContent-Length: 1\r\n\r\n", 0, .status = 417 },

    /* ---- limits ---- */
    { "request line over 32", "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 0, .status = 414, .limits = &small },
    { "request line over the limit, no CRLF yet", "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, .status = 414, .limits = &small },
    { "head over 128",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
      "\r\n\r\n", 0, .status = 431, .limits = &small },
    { "five fields over max_headers 4", "GET /" H11 "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 0, .status = 431, .limits = &small },
    { "leading CRLF flood", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
      "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
      "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
      "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n", 0, .status = 431, .limits = &small },
};

static size_t case_len(const hcase_t *c)
{
    return c->len ? c->len : strlen(c->in);
}

static bool str_eq(const char *p, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(p, want, n) == 0;
}

/* Parses in[0..n) from an exactly-sized copy, so sanitizers see any over-read. */
static int parse_copy(const char *in, size_t n, const rdl_h1_limits_t *lim,
                      rdl_h1_header_t *hdrs, rdl_h1_request_t *req, char **copy)
{
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    memcpy(*copy, in, n);
    return rdl_h1_parse_head(*copy, n, lim, hdrs, MAX_SLOTS, req);
}

static void check_valid(const hcase_t *c, const rdl_h1_request_t *r, int rc, size_t n)
{
    if (rc != (int)n) {
        print_error("case '%s': rc %d status %d (%s) at %zu\n", c->name, rc, r->status,
                    r->error ? r->error : "-", r->error_offset);
        fail();
    }
    assert_int_equal(r->head_len, n);
    assert_int_equal(r->method_id, c->method_id);
    assert_true(str_eq(r->path, r->path_len, c->path));
    if (c->query == NULL)
        assert_null(r->query);
    else
        assert_true(r->query && str_eq(r->query, r->query_len, c->query));
    assert_int_equal(r->version_minor, c->minor);
    if (c->host == NULL)
        assert_null(r->host);
    else
        assert_true(r->host && str_eq(r->host, r->host_len, c->host));
    assert_int_equal(r->body, c->body);
    assert_int_equal(r->content_length, c->cl);
    assert_int_equal(r->keep_alive, c->keep_alive);
    assert_int_equal(r->expect_continue, c->expect);
    assert_int_equal(r->num_headers, c->nhdr);
    assert_int_equal(r->status, 0);
}

/* Every prefix: "incomplete" before the end of the head, or the whole input's error. */
static void check_prefixes(const hcase_t *c, const rdl_h1_limits_t *lim, int full_rc, int full_status)
{
    size_t n = case_len(c), k;
    bool erred = false;

    for (k = 0; k < n; k++) {
        rdl_h1_header_t hdrs[MAX_SLOTS];
        rdl_h1_request_t r;
        char *copy;
        int rc = parse_copy(c->in, k, lim, hdrs, &r, &copy);
        free(copy);
        if (full_rc > 0) {
            if (rc != RDL_H1_INCOMPLETE) {
                print_error("case '%s': prefix %zu gave %d (status %d)\n", c->name, k, rc, r.status);
                fail();
            }
            continue;
        }
        if (rc == RDL_H1_ERROR) {
            if (r.status != full_status) {
                print_error("case '%s': prefix %zu status %d, whole %d\n", c->name, k, r.status, full_status);
                fail();
            }
            erred = true;
        } else {
            assert_int_equal(rc, RDL_H1_INCOMPLETE);
            assert_false(erred);        /* once an error, always that error */
        }
    }
}

static void test_head_table(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        const hcase_t *c = &heads[i];
        const rdl_h1_limits_t *lim = c->limits ? c->limits : &dflt;
        rdl_h1_header_t hdrs[MAX_SLOTS];
        rdl_h1_request_t r;
        size_t n = case_len(c);
        char *copy;
        int rc = parse_copy(c->in, n, lim, hdrs, &r, &copy);

        if (c->status == 0) {
            check_valid(c, &r, rc, n);
        } else if (rc != RDL_H1_ERROR || r.status != c->status) {
            print_error("case '%s': rc %d status %d (%s), want status %d\n", c->name, rc, r.status,
                        r.error ? r.error : "-", c->status);
            fail();
        } else {
            assert_non_null(r.error);
            assert_true(r.error_offset <= n);
            if (c->why && strstr(r.error, c->why) == NULL) {
                print_error("case '%s': error '%s' does not say '%s'\n", c->name, r.error, c->why);
                fail();
            }
        }
        free(copy);
        check_prefixes(c, lim, rc, r.status);
    }
}

/* Bytes after a complete head (the body or the next request) never change it. */
static void test_head_ignores_following_bytes(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        const hcase_t *c = &heads[i];
        const rdl_h1_limits_t *lim = c->limits ? c->limits : &dflt;
        rdl_h1_header_t hdrs[MAX_SLOTS];
        rdl_h1_request_t r;
        size_t n = case_len(c);
        char *buf;
        int rc;

        if (c->status != 0)
            continue;
        buf = malloc(n + 9);
        assert_non_null(buf);
        memcpy(buf, c->in, n);
        memcpy(buf + n, "\r\n \0\x7fGET", 9);
        rc = rdl_h1_parse_head(buf, n + 9, lim, hdrs, MAX_SLOTS, &r);
        check_valid(c, &r, rc, n);
        free(buf);
    }
}

static void test_header_fields(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost:  a \r\nX-Trim: \t v  1 \t\r\nX-Empty:\r\n\r\n";
    rdl_h1_header_t hdrs[MAX_SLOTS];
    rdl_h1_request_t r;
    const rdl_h1_header_t *h;
    (void)state;

    assert_int_equal(rdl_h1_parse_head(in, sizeof(in) - 1, &dflt, hdrs, MAX_SLOTS, &r), (int)sizeof(in) - 1);
    assert_int_equal(r.num_headers, 3);
    assert_true(str_eq(r.method, r.method_len, "GET"));
    assert_true(str_eq(r.target, r.target_len, "/"));
    assert_true(str_eq(hdrs[0].name, hdrs[0].name_len, "Host"));
    assert_true(str_eq(hdrs[0].value, hdrs[0].value_len, "a"));
    h = rdl_h1_find(&r, "x-trim", 6);
    assert_non_null(h);
    assert_true(str_eq(h->name, h->name_len, "X-Trim"));
    assert_true(str_eq(h->value, h->value_len, "v  1"));
    h = rdl_h1_find(&r, "X-EMPTY", 7);
    assert_non_null(h);
    assert_int_equal(h->value_len, 0);
    assert_null(rdl_h1_find(&r, "X-Tri", 5));
    assert_null(rdl_h1_find(&r, "Accept", 6));
    /* pointers are into the caller's buffer: zero-copy */
    assert_true(hdrs[1].value > in && hdrs[1].value < in + sizeof(in));
}

/* Fewer slots than max_headers: the slots are the limit. */
static void test_slots_limit(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
    rdl_h1_header_t hdrs[3];
    rdl_h1_request_t r;
    (void)state;

    assert_int_equal(rdl_h1_parse_head(in, sizeof(in) - 1, &dflt, hdrs, 2, &r), RDL_H1_ERROR);
    assert_int_equal(r.status, 431);
    assert_int_equal(rdl_h1_parse_head(in, sizeof(in) - 1, &dflt, hdrs, 3, &r), (int)sizeof(in) - 1);
    assert_int_equal(r.num_headers, 3);
}

/* ---- chunked --------------------------------------------------------------- */

typedef struct ccase {
    const char *name;
    const char *in;
    size_t len;                 /* 0: strlen(in) */
    int status;                 /* 0: valid */
    const char *out;            /* decoded body of a valid case */
    size_t out_len;             /* 0: strlen(out) */
    size_t consumed;            /* bytes of the chunked body; 0: all of in */
    uint64_t max_body;          /* 0: 1 MiB */
} ccase_t;

static const ccase_t chunks[] = {
    { "one chunk", "5\r\nhello\r\n0\r\n\r\n", .out = "hello" },
    { "uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", .out = "0123456789" },
    { "lowercase hex, two chunks", "3\r\nabc\r\nb\r\nhello world\r\n0\r\n\r\n", .out = "abchello world" },
    { "extensions", "5;foo=bar\r\nhello\r\n0;x\r\n\r\n", .out = "hello" },
    { "extension with BWS", "5 ; a = b ;c\t;d=e\r\nhello\r\n0\r\n\r\n", .out = "hello" },
    { "quoted extension", "5;a=\"b c\\\"d\";e=\"\"\r\nhello\r\n0\r\n\r\n", .out = "hello" },
    { "trailers dropped", "5\r\nhello\r\n0\r\nX-T: 1\r\nY:\r\nContent-Length: 99\r\n\r\n", .out = "hello" },
    { "leading zeros", "0005\r\nhello\r\n000\r\n\r\n", .out = "hello" },
    { "16 digits, 1 significant", "000000000000000F\r\n0123456789abcde\r\n0\r\n\r\n", .out = "0123456789abcde" },
    { "empty body", "0\r\n\r\n", .out = "" },
    { "next request follows", "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n", .out = "hi", .consumed = 12 },
    { "body exactly max_body", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", .out = "abcde", .max_body = 5 },
    { "binary data with CRLF inside", "4\r\n\r\n\0\n\r\n0\r\n\r\n", sizeof("4\r\n\r\n\0\n\r\n0\r\n\r\n") - 1,
      .out = "\r\n\0\n", .out_len = 4 },

    { "2.7 no CRLF after data", "5\r\nhelloXY0\r\n\r\n", 0, .status = 400 },
    { "bare LF after data", "5\r\nhello\n0\r\n\r\n", 0, .status = 400 },
    { "bare LF after size", "5\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "2.7 5\\rX", "5\rXhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "2.7 0x5", "0x5\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "2.7 -1", "-1\r\n", 0, .status = 400 },
    { "2.7 SP before size", " 5\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "2.7 empty size", "\r\nhello\r\n", 0, .status = 400 },
    { "2.7 z", "z\r\n", 0, .status = 400 },
    { "2.7 16 significant digits", "FFFFFFFFFFFFFFFF\r\n", 0, .status = 400 },
    { "2.7 15 digits over max_body", "FFFFFFFFFFFFFFF\r\n", 0, .status = 413 },
    { "over max_body in one chunk", "6\r\nabcdef\r\n0\r\n\r\n", .status = 413, .max_body = 5 },
    { "over max_body running total", "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", .status = 413, .max_body = 5 },
    { "2.7 5 junk\\x01", "5 junk\x01\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "2.7 NUL and bare LF in ext", "5;\0\nhello\r\n0\r\n\r\n", sizeof("5;\0\nhello\r\n0\r\n\r\n") - 1, .status = 400 },
    { "trailing BWS without extension", "5 \r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "empty extension value", "5;a=\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "extension without name", "5;=b\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "CTL in quoted extension", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "unterminated quoted extension", "5;a=\"b\r\nhello\r\n0\r\n\r\n", 0, .status = 400 },
    { "2.7 last chunk then \\rX", "5\r\nhello\r\n0\r\n\rX", 0, .status = 400 },
    { "trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", 0, .status = 400 },
    { "trailer SP before colon", "0\r\nX : a\r\n\r\n", 0, .status = 400 },
    { "trailer bare LF", "0\r\nX: a\n\r\n", 0, .status = 400 },
    { "trailer NUL in value", "0\r\nX: a\0\r\n\r\n", sizeof("0\r\nX: a\0\r\n\r\n") - 1, .status = 400 },
    { "trailer without colon", "0\r\nX\r\n\r\n", 0, .status = 400 },
};

static size_t cc_len(const ccase_t *c)
{
    return c->len ? c->len : strlen(c->in);
}

/*
 * Decodes c->in revealing it in steps: each call sees `step` more bytes (0 = all
 * at once, or the first `split` bytes and then the rest). Returns the final rc;
 * *out_len and *consumed describe the result.
 */
static int decode_steps(const ccase_t *c, size_t split, size_t step, char **buf_out,
                        size_t *out_len, size_t *consumed, int *status)
{
    size_t n = cc_len(c), avail = 0, src = 0, dst = 0;
    rdl_h1_chunked_t ck;
    char *buf = malloc(n ? n : 1);
    int rc = 0;

    assert_non_null(buf);
    memcpy(buf, c->in, n);
    rdl_h1_chunked_init(&ck, c->max_body ? c->max_body : 1024 * 1024);
    while (rc == 0 && avail < n) {
        if (step)
            avail = avail + step < n ? avail + step : n;
        else
            avail = avail < split ? split : n;
        rc = rdl_h1_chunked_decode(&ck, buf, avail, &src, &dst);
        assert_true(dst <= src);
        assert_true(src <= avail);
    }
    *buf_out = buf;
    *out_len = dst;
    *consumed = src;
    *status = ck.status;
    return rc;
}

static void check_chunk_result(const ccase_t *c, int rc, const char *buf, size_t out_len,
                               size_t consumed, int status, const char *how)
{
    if (c->status == 0) {
        size_t want = c->out_len ? c->out_len : strlen(c->out);
        size_t want_consumed = c->consumed ? c->consumed : cc_len(c);
        if (rc != 1 || out_len != want || memcmp(buf, c->out, want) != 0 || consumed != want_consumed) {
            print_error("chunked '%s' (%s): rc %d out %zu consumed %zu\n", c->name, how, rc, out_len, consumed);
            fail();
        }
    } else if (rc != RDL_H1_ERROR || status != c->status) {
        print_error("chunked '%s' (%s): rc %d status %d, want %d\n", c->name, how, rc, status, c->status);
        fail();
    }
}

static void test_chunked_table(void **state)
{
    size_t i, split;
    (void)state;

    for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        const ccase_t *c = &chunks[i];
        size_t n = cc_len(c), out_len, consumed;
        char *buf;
        int status, rc;

        rc = decode_steps(c, n, 0, &buf, &out_len, &consumed, &status);
        check_chunk_result(c, rc, buf, out_len, consumed, status, "whole");
        free(buf);
        rc = decode_steps(c, 0, 1, &buf, &out_len, &consumed, &status);
        check_chunk_result(c, rc, buf, out_len, consumed, status, "byte by byte");
        free(buf);
        for (split = 1; split < n; split++) {
            rc = decode_steps(c, split, 0, &buf, &out_len, &consumed, &status);
            check_chunk_result(c, rc, buf, out_len, consumed, status, "split");
            free(buf);
        }
    }
}

/* Extension bytes over 4 KiB on one line, and a trailer section over 8 KiB. */
static void test_chunked_caps(void **state)
{
    size_t n = 6000, src = 0, dst = 0, i;
    char *buf = malloc(n);
    rdl_h1_chunked_t ck;
    (void)state;

    assert_non_null(buf);
    memcpy(buf, "1;", 2);
    memset(buf + 2, 'a', n - 2);
    rdl_h1_chunked_init(&ck, 1000);
    assert_int_equal(rdl_h1_chunked_decode(&ck, buf, n, &src, &dst), RDL_H1_ERROR);
    assert_int_equal(ck.status, 400);
    assert_true(src == 4096);           /* stops at the first byte over the cap */
    /* 4096 bytes before the CRLF are fine */
    src = dst = 0;
    memcpy(buf + 4096, "\r\na\r\n0\r\n\r\n", 11);
    rdl_h1_chunked_init(&ck, 1000);
    assert_int_equal(rdl_h1_chunked_decode(&ck, buf, 4107, &src, &dst), 1);
    assert_int_equal(dst, 1);
    assert_int_equal(buf[0], 'a');

    /* trailer: 0 CRLF, then many short fields */
    memcpy(buf, "0\r\n", 3);
    for (i = 3; i + 6 <= n; i += 6)
        memcpy(buf + i, "X: 1\r\n", 6);
    src = dst = 0;
    rdl_h1_chunked_init(&ck, 1000);
    assert_int_equal(rdl_h1_chunked_decode(&ck, buf, i, &src, &dst), 0);    /* 5997 bytes: fine so far */
    free(buf);
    n = 9000;
    buf = malloc(n);
    assert_non_null(buf);
    memcpy(buf, "0\r\n", 3);
    for (i = 3; i + 6 <= n; i += 6)
        memcpy(buf + i, "X: 1\r\n", 6);
    src = dst = 0;
    rdl_h1_chunked_init(&ck, 1000);
    assert_int_equal(rdl_h1_chunked_decode(&ck, buf, i, &src, &dst), RDL_H1_ERROR);
    assert_int_equal(ck.status, 400);
    free(buf);
}

/* Errors are sticky and completion is idempotent. */
static void test_chunked_sticky(void **state)
{
    char bad[] = "5\r\nhelloXY";
    char good[] = "1\r\na\r\n0\r\n\r\nNEXT";
    size_t src = 0, dst = 0;
    rdl_h1_chunked_t ck;
    (void)state;

    rdl_h1_chunked_init(&ck, 100);
    assert_int_equal(rdl_h1_chunked_decode(&ck, bad, sizeof(bad) - 1, &src, &dst), RDL_H1_ERROR);
    assert_int_equal(src, 8);           /* the 'X' where CRLF was expected */
    assert_int_equal(rdl_h1_chunked_decode(&ck, bad, sizeof(bad) - 1, &src, &dst), RDL_H1_ERROR);
    src = dst = 0;
    rdl_h1_chunked_init(&ck, 100);
    assert_int_equal(rdl_h1_chunked_decode(&ck, good, sizeof(good) - 1, &src, &dst), 1);
    assert_int_equal(src, 11);
    assert_int_equal(rdl_h1_chunked_decode(&ck, good, sizeof(good) - 1, &src, &dst), 1);
    assert_int_equal(src, 11);
    assert_memory_equal(good + src, "NEXT", 4);
}

/* ---- pipelining -------------------------------------------------------------- */

/* Three requests in one buffer: GET, POST with CL, chunked PUT, then a partial fourth. */
static void test_pipelined(void **state)
{
    static const char in[] =
        "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        "PUT /c?z HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        "GET /d HTTP/1.1\r\nHo";
    char buf[sizeof(in)];
    rdl_h1_header_t hdrs[MAX_SLOTS];
    rdl_h1_request_t r;
    rdl_h1_chunked_t ck;
    size_t off = 0, src, dst;
    size_t n = sizeof(in) - 1;
    int rc;
    (void)state;

    memcpy(buf, in, sizeof(in));
    rc = rdl_h1_parse_head(buf, n, &dflt, hdrs, MAX_SLOTS, &r);
    assert_true(rc > 0);
    assert_true(str_eq(r.path, r.path_len, "/a"));
    off += r.head_len;

    rc = rdl_h1_parse_head(buf + off, n - off, &dflt, hdrs, MAX_SLOTS, &r);
    assert_true(rc > 0);
    assert_int_equal(r.method_id, RDL_METHOD_POST);
    assert_int_equal(r.body, RDL_H1_BODY_LENGTH);
    assert_memory_equal(buf + off + r.head_len, "hello", 5);
    off += r.head_len + r.content_length;

    rc = rdl_h1_parse_head(buf + off, n - off, &dflt, hdrs, MAX_SLOTS, &r);
    assert_true(rc > 0);
    assert_true(str_eq(r.query, r.query_len, "z"));
    assert_int_equal(r.body, RDL_H1_BODY_CHUNKED);
    src = dst = off + r.head_len;
    rdl_h1_chunked_init(&ck, 100);
    assert_int_equal(rdl_h1_chunked_decode(&ck, buf, n, &src, &dst), 1);
    assert_int_equal(dst - (off + r.head_len), 3);
    assert_memory_equal(buf + off + r.head_len, "abc", 3);
    off = src;

    rc = rdl_h1_parse_head(buf + off, n - off, &dflt, hdrs, MAX_SLOTS, &r);
    assert_int_equal(rc, RDL_H1_INCOMPLETE);
    assert_memory_equal(buf + off, "GET /d", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_table),
        cmocka_unit_test(test_head_ignores_following_bytes),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_slots_limit),
        cmocka_unit_test(test_chunked_table),
        cmocka_unit_test(test_chunked_caps),
        cmocka_unit_test(test_chunked_sticky),
        cmocka_unit_test(test_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
