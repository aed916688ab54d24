/*
 * http1.h: redline's strict, zero-copy HTTP/1.1 request parser (RFC 9112).
 *
 * Why our own: Debian 12's only packaged parser (http_parser 2.9.4) is
 * deprecated and built non-strict; it accepts whitespace before the colon,
 * folded Transfer-Encoding, loose chunk framing and bogus versions, which are
 * request-smuggling vectors (shared/reference/http1-server.md §2.7).
 *
 * Shape: the head (request line + field lines + empty line) is parsed in one
 * call over the bytes received so far. It returns "incomplete" until the empty
 * line has arrived, so the result never depends on how reads were split.
 * Nothing is copied: names, values and the target point into the caller's
 * buffer. The framing decision (Content-Length, chunked, keep-alive, Expect,
 * Host) is made here with the strict rules, so the server never looks at raw
 * framing headers. A chunked body is decoded in place by a resumable decoder.
 *
 * Thread-safety: pure functions over caller-owned memory.
 */
#ifndef REDLINE_RUNTIME_HTTP1_H
#define REDLINE_RUNTIME_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "redline/util.h"

enum rdl_h1_body {
    RDL_H1_BODY_NONE = 0,       /* no body (length 0) */
    RDL_H1_BODY_LENGTH,         /* content_length bytes follow the head */
    RDL_H1_BODY_CHUNKED         /* chunked coding follows the head */
};

typedef struct rdl_h1_limits {
    size_t max_request_line;    /* longer request line -> 414 */
    size_t max_header_bytes;    /* longer head (request line + fields + CRLF) -> 431 */
    size_t max_headers;         /* more field lines -> 431 */
    uint64_t max_body;          /* Content-Length above it -> 413 (chunked: the decoder checks) */
} rdl_h1_limits_t;

typedef struct rdl_h1_header {
    const char *name;           /* as received (case preserved), no surrounding whitespace */
    const char *value;          /* leading and trailing OWS stripped */
    uint32_t name_len;
    uint32_t value_len;
} rdl_h1_header_t;

typedef struct rdl_h1_request {
    /* request line */
    const char *method;
    const char *target;         /* request-target as sent (origin, absolute or '*' form) */
    const char *path;           /* path part of target: "/a/b" (for absolute-form, after the authority) */
    const char *query;          /* after '?', without it; NULL when there is no '?' */
    uint32_t method_len, target_len, path_len, query_len;
    rdl_method_t method_id;     /* RDL_METHOD_* (redline/util.h); never UNKNOWN in a valid head */
    int version_minor;          /* 0 or 1 (HTTP/1.2..1.9 are parsed and answered as 1.1) */
    /* field lines: caller-provided array */
    rdl_h1_header_t *headers;
    size_t num_headers;
    const char *host;           /* Host value, or the authority of an absolute-form target */
    uint32_t host_len;
    /* framing, decided here */
    int body;                   /* enum rdl_h1_body */
    uint64_t content_length;    /* for RDL_H1_BODY_LENGTH */
    bool keep_alive;            /* persistent after this exchange (version + Connection) */
    bool expect_continue;       /* "Expect: 100-continue" on HTTP/1.1 with a body */
    size_t head_len;            /* bytes of the head including the final CRLF CRLF (and skipped leading CRLFs) */
    /* on error */
    int status;                 /* 400, 413, 414, 417, 431, 501, 505 */
    const char *error;          /* static text naming what was wrong */
    size_t error_offset;        /* offset in buf where it was found */
} rdl_h1_request_t;

#define RDL_H1_INCOMPLETE 0     /* need more bytes */
#define RDL_H1_ERROR    (-1)    /* req->status and req->error say what; close after answering */

/*
 * Parses the head at buf[0..len). headers/max_slots is the array to fill
 * (max_slots should be limits->max_headers). Returns head_len (> 0) when the
 * head is complete and valid, RDL_H1_INCOMPLETE when more bytes are needed (an
 * incomplete head already over a limit is an error, not incomplete), or
 * RDL_H1_ERROR.
 */
int rdl_h1_parse_head(const char *buf, size_t len, const rdl_h1_limits_t *limits,
                      rdl_h1_header_t *headers, size_t max_slots, rdl_h1_request_t *req);

/* Case-insensitive lookup of the first field named name; NULL if absent. */
const rdl_h1_header_t *rdl_h1_find(const rdl_h1_request_t *req, const char *name, size_t name_len);

/*
 * Resumable in-place decoder for a chunked body. Call with the whole buffer
 * each time more bytes arrive: input is read from buf[*src..len) and chunk
 * data is written at buf[*dst..], dst never passing src. On completion
 * (return 1) the decoded body is buf[start..*dst) and the next pipelined
 * request begins at buf[*src]. Trailer fields are checked and dropped.
 */
typedef struct rdl_h1_chunked {
    int state;
    uint64_t chunk_left;        /* data bytes left in the current chunk */
    uint64_t total;             /* decoded bytes so far */
    uint64_t max_body;          /* total above it -> 413 */
    size_t line_bytes;          /* bytes in the current size/ext/trailer line */
    size_t trailer_bytes;
    int status;                 /* on error: 400 or 413 */
    const char *error;
} rdl_h1_chunked_t;

void rdl_h1_chunked_init(rdl_h1_chunked_t *c, uint64_t max_body);
/* 1 = body complete, 0 = need more bytes, RDL_H1_ERROR = bad framing (c->status, c->error). */
int rdl_h1_chunked_decode(rdl_h1_chunked_t *c, char *buf, size_t len, size_t *src, size_t *dst);

#endif
