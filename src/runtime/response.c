/*
 * response.c: writing responses into the connection's output buffer.
 *
 * The runtime owns framing: handlers give a status, a content type and a body,
 * and this file adds Date, Content-Length or chunked coding, and Connection,
 * following RFC 9112 §6 and RFC 9110 §6.6.1: no body for HEAD, 1xx, 204 and
 * 304 (HEAD keeps the GET's Content-Length); no chunked coding towards an
 * HTTP/1.0 client (close-delimited instead); Connection: close whenever this
 * is the connection's last exchange, keep-alive only for HTTP/1.0 clients
 * that asked. Output is appended to a buffer and written once per loop pass,
 * so pipelined responses share one write.
 */
#include <string.h>
#include "runtime/internal.h"

const char *rdl__rt_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "";
    }
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Statuses after which the connection must not be reused (framing in doubt). */
static bool status_closes(int status)
{
    return status == 400 || status == 408 || status == 413 || status == 414 ||
           status == 431 || status == 501 || status == 505;
}

static void run_before_send(rdl_req_t *req)
{
    const rt_chain_t *chain = req->conn->t->chain;
    for (int i = req->mw_entered - 1; i >= 0; i--)
        if (chain->mw[i].before_send)
            chain->mw[i].before_send(req, chain->mw[i].arg);
}

static void put_status_line(rdl_buf_t *out, int status)
{
    rdl_buf_put(out, "HTTP/1.1 ", 9);
    rdl_buf_put_u64(out, (uint64_t)status);
    rdl_buf_putc(out, ' ');
    rdl_buf_puts(out, rdl__rt_reason(status));
    rdl_buf_put(out, "\r\n", 2);
}

/* The headers the handler and its middleware added, in order, without the removed ones. */
static void put_added_headers(rdl_buf_t *out, const rdl_req_t *req)
{
    const rt_resp_index_t *ix = &req->conn->resp_index;
    if (!ix->removed) {
        rdl_buf_put(out, req->resp_headers.data, req->resp_headers.len);
        return;
    }
    for (int i = 0; i < ix->n; i++)
        if (!ix->at[i].removed)
            rdl_buf_put(out, req->resp_headers.data + ix->at[i].off, ix->at[i].len);
}

/*
 * Writes the head. length >= 0: Content-Length framing; -1: streamed (chunked
 * for HTTP/1.1, close-delimited for HTTP/1.0).
 */
static void write_head(rdl_req_t *req, int status, const char *ctype, int64_t length)
{
    rt_conn_t *c = req->conn;
    run_before_send(req);
    bool v10 = req->h1->version_minor == 0;
    req->keep_alive = req->h1->keep_alive && !c->t->draining && !status_closes(status) &&
                      !(length < 0 && v10);
    req->status = status;
    req->head_sent = true;

    rdl_buf_t *out = &c->out;
    size_t dlen;
    const char *date = rdl__rt_thread_date(c->t, &dlen);
    put_status_line(out, status);
    rdl_buf_put(out, date, dlen);
    if (ctype) {
        rdl_buf_put(out, "Content-Type: ", 14);
        rdl_buf_puts(out, ctype);
        rdl_buf_put(out, "\r\n", 2);
    }
    if (status_has_body(status)) {
        if (length >= 0) {
            rdl_buf_put(out, "Content-Length: ", 16);
            rdl_buf_put_u64(out, (uint64_t)length);
            rdl_buf_put(out, "\r\n", 2);
        } else if (!v10) {
            rdl_buf_puts(out, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (!req->keep_alive)
        rdl_buf_puts(out, "Connection: close\r\n");
    else if (v10)
        rdl_buf_puts(out, "Connection: keep-alive\r\n");
    put_added_headers(out, req);
    rdl_buf_put(out, "\r\n", 2);
}

static bool can_answer(const rdl_req_t *req)
{
    return req->conn && !req->conn->closed && !req->answered && !req->head_sent && req->h1;
}

/*
 * Bytes a header may hold: HEADER_VALUE in a value (HTAB, space, visible
 * ASCII, obs-text), HEADER_NAME in a name as well (no space, no colon). No
 * CR, LF, NUL or other control: a handler can never inject a header line.
 */
enum { HEADER_VALUE = 1, HEADER_NAME = 2 };
static const unsigned char header_byte[256] = {
    ['\t'] = HEADER_VALUE, [' '] = HEADER_VALUE,
    [0x21 ... 0x39] = HEADER_VALUE | HEADER_NAME, [':'] = HEADER_VALUE,
    [0x3b ... 0x7e] = HEADER_VALUE | HEADER_NAME,
    [0x80 ... 0xff] = HEADER_VALUE | HEADER_NAME,
};

/* s's length when every byte of it has the class, else -1 (one table load per byte). */
static ssize_t header_text_len(const char *s, unsigned char class)
{
    const unsigned char *p = (const unsigned char *)s;
    while (header_byte[*p] & class)
        p++;
    return *p ? -1 : (ssize_t)(p - (const unsigned char *)s);
}

static bool can_add_header(const rdl_req_t *req)
{
    return req && req->conn && !req->head_sent && !req->answered;
}

int rdl_resp_header(rdl_req_t *req, const char *name, const char *value)
{
    if (!can_add_header(req))
        return RDL_ESTATE;
    ssize_t nlen = name ? header_text_len(name, HEADER_NAME) : -1;
    ssize_t vlen = value ? header_text_len(value, HEADER_VALUE) : -1;
    if (nlen <= 0 || vlen < 0)
        return RDL_EINVAL;
    rt_resp_index_t *ix = &req->conn->resp_index;
    rdl_buf_t *b = &req->resp_headers;
    size_t len = (size_t)nlen + (size_t)vlen + 4;
    if (ix->n == RT_MAX_RESP_HEADERS)
        return RDL_EBUSY;
    if (b->len + len > UINT32_MAX)
        return RDL_ENOMEM;
    size_t off = b->len;
    rdl_buf_put(b, name, (size_t)nlen);
    rdl_buf_put(b, ": ", 2);
    rdl_buf_put(b, value, (size_t)vlen);
    rdl_buf_put(b, "\r\n", 2);
    if (b->oom)
        return RDL_ENOMEM;
    ix->at[ix->n++] = (rt_resp_header_t){ (uint32_t)off, (uint32_t)len, (uint32_t)nlen, false };
    return 0;
}

int rdl_resp_header_remove(rdl_req_t *req, const char *name)
{
    if (!can_add_header(req))
        return RDL_ESTATE;
    if (!name)
        return RDL_EINVAL;
    rt_resp_index_t *ix = &req->conn->resp_index;
    size_t nlen = strlen(name);
    for (int i = 0; i < ix->n; i++) {
        rt_resp_header_t *h = &ix->at[i];
        if (!h->removed &&
            rdl_ascii_ieq(req->resp_headers.data + h->off, h->name_len, name, nlen)) {
            h->removed = true;
            ix->removed = true;
        }
    }
    return 0;
}

int rdl_resp_header_set(rdl_req_t *req, const char *name, const char *value)
{
    if (!can_add_header(req))
        return RDL_ESTATE;
    if (!name || header_text_len(name, HEADER_NAME) <= 0 || !value ||
        header_text_len(value, HEADER_VALUE) < 0)
        return RDL_EINVAL;          /* checked first: a refused value leaves the old one */
    rdl_resp_header_remove(req, name);
    return rdl_resp_header(req, name, value);
}

int rdl_resp_send(rdl_req_t *req, int status, const char *content_type,
                  const void *body, size_t len)
{
    if (!req || !can_answer(req))
        return RDL_ESTATE;
    if (status < 200 || status > 999)
        return RDL_EINVAL;
    if (!status_has_body(status))
        len = 0;
    write_head(req, status, content_type, (int64_t)len);
    if (!req->is_head && len) {
        rdl_buf_put(&req->conn->out, body, len);
        req->bytes_out = len;
    }
    req->answered = true;
    rdl__rt_conn_request_done(req->conn);
    return 0;
}

int rdl_resp_error(rdl_req_t *req, int status, const char *code, const char *message)
{
    if (!req || !can_answer(req))
        return RDL_ESTATE;
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_puts(&b, "{\"code\":");
    rdl_json_str(&b, code ? code : "error", code ? strlen(code) : 5);
    rdl_buf_puts(&b, ",\"message\":");
    rdl_json_str(&b, message ? message : "", message ? strlen(message) : 0);
    rdl_buf_puts(&b, "}\n");
    int rc = b.oom ? RDL_ENOMEM : rdl_resp_send(req, status, "application/json", b.data, b.len);
    rdl_buf_close(&b);
    return rc;
}

int rdl_resp_begin(rdl_req_t *req, int status, const char *content_type)
{
    if (!req || !can_answer(req))
        return RDL_ESTATE;
    if (status < 200 || !status_has_body(status))
        return RDL_EINVAL;
    write_head(req, status, content_type, -1);
    req->streaming = true;
    if (!req->conn->in_process)
        rdl__rt_conn_flush(req->conn);
    return 0;
}

int rdl_resp_write(rdl_req_t *req, const void *data, size_t len)
{
    if (!req || !req->conn || !req->streaming || req->answered)
        return RDL_ESTATE;
    if (len == 0 || req->is_head)
        return 0;
    rdl_buf_t *out = &req->conn->out;
    if (req->h1->version_minor == 0) {
        rdl_buf_put(out, data, len);
    } else {
        rdl_buf_printf(out, "%zx\r\n", len);
        rdl_buf_put(out, data, len);
        rdl_buf_put(out, "\r\n", 2);
    }
    req->bytes_out += len;
    if (!req->conn->in_process)
        rdl__rt_conn_flush(req->conn);
    return out->oom ? RDL_ENOMEM : 0;
}

int rdl_resp_end(rdl_req_t *req)
{
    if (!req || !req->conn || !req->streaming || req->answered)
        return RDL_ESTATE;
    if (req->h1->version_minor == 1 && !req->is_head)
        rdl_buf_put(&req->conn->out, "0\r\n\r\n", 5);
    req->answered = true;
    rdl__rt_conn_request_done(req->conn);
    return 0;
}

void rdl__rt_send_error_and_close(rt_conn_t *c, int status, const char *code, const char *message)
{
    rdl_buf_t body;
    rdl_buf_init(&body);
    rdl_buf_puts(&body, "{\"code\":");
    rdl_json_str(&body, code, strlen(code));
    rdl_buf_puts(&body, ",\"message\":");
    rdl_json_str(&body, message, strlen(message));
    rdl_buf_puts(&body, "}\n");

    size_t dlen;
    const char *date = rdl__rt_thread_date(c->t, &dlen);
    put_status_line(&c->out, status);
    rdl_buf_put(&c->out, date, dlen);
    rdl_buf_puts(&c->out, "Content-Type: application/json\r\nContent-Length: ");
    rdl_buf_put_u64(&c->out, body.len);
    rdl_buf_puts(&c->out, "\r\nConnection: close\r\n\r\n");
    rdl_buf_put(&c->out, body.data, body.len);
    rdl_buf_close(&body);
    c->state = RT_CLOSING;
    rdl__rt_conn_flush(c);
}

void rdl__rt_send_json(rdl_req_t *req, int status, rdl_buf_t *b)
{
    rdl_buf_putc(b, '\n');
    if (b->oom)
        rdl_resp_error(req, 500, "out_of_memory", "the answer did not fit in memory");
    else
        rdl_resp_send(req, status, "application/json", b->data, b->len);
    rdl_buf_close(b);
}
