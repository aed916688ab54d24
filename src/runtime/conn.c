/*
 * conn.c: one HTTP/1.1 connection, from accept to close, on its I/O thread.
 *
 * A connection reads into one buffer and handles one exchange at a time: the
 * request at the front of the buffer is parsed in place (the request's
 * strings point into the buffer), its body completed (chunked bodies decoded
 * in place), then handed to the router and middleware. Pipelined requests wait
 * in the buffer behind it, so responses leave in request order without a
 * queue. When the exchange ends its bytes are dropped from the front and the
 * next request is parsed. While a request is with its handler the buffer is
 * never reallocated, because a pool worker may be reading it.
 *
 * One timer per connection, re-armed by state: the first request's header
 * timeout from accept (silent close when no byte came, 408 otherwise), the
 * header timeout from a request's first byte (slowloris), the body inactivity
 * timeout, the handler's request timeout (503), the keep-alive idle timeout
 * (silent close), the linger after a final response, and the send timeout:
 * when output waits on a peer that stopped reading (reading and parsing pause
 * above limits.max_output_buffer, so no other timeout runs), a whole
 * timeouts.send without a byte leaving closes the connection, or a client
 * that never reads would pin its output forever. And since a few hundred such
 * clients could pin that much memory each before their timeouts run, the
 * output of stalled connections is bounded too (limits.max_output_total,
 * shared out over the I/O threads): beyond it a thread closes its connections
 * that stalled first.
 *
 * Closing is staged (RFC 9112 §9.6): write the last response, shut down the
 * write side, read and discard until the peer closes or the linger time ends,
 * then close, so a reset cannot destroy the response the peer still reads.
 * A connection is freed when its handles have closed and no pool task holds it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "runtime/internal.h"

#define RT_BUF_INITIAL 8192
#define RT_READ_SLACK 16384     /* room for a read beyond the limits */
#define RT_LINGER_MS 2000
#define RT_DRAIN_IDLE_MS 500    /* while draining, idle connections close after this */

enum { T_NONE, T_FIRST, T_HEADER, T_BODY, T_REQUEST, T_IDLE, T_LINGER, T_SEND };

static void conn_process(rt_conn_t *c);
static void conn_close_now(rt_conn_t *c);
static void update_reading(rt_conn_t *c);

/* ---- timers ---------------------------------------------------------- */

static int timer_kind(const rt_conn_t *c)
{
    return (int)(intptr_t)c->timer.data;
}

static void on_timer(uv_timer_t *timer);

/*
 * A request moves its connection through three timeouts (header, request,
 * idle); setting the uv timer for each is a heap removal and insertion that
 * walks other connections' timer nodes, three per request. So the timer is
 * only moved when the new deadline is earlier than the one it is set for; a
 * later deadline is written down, and a timer that fires before it is set
 * again for the rest (on_timer). A busy keep-alive connection then touches
 * the heap twice per header timeout or so, not three times per request.
 */
static void arm(rt_conn_t *c, int kind, uint64_t ms)
{
    if (c->closed)
        return;
    c->timer.data = (void *)(intptr_t)kind;
    c->deadline = 0;
    if (ms == 0)
        return;                 /* no timeout (T_NONE): a timer still set fires and does nothing */
    c->deadline = uv_now(c->timer.loop) + ms;
    if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= ms)
        return;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* True when the timer fired before the current deadline (if any): it is set again for the rest. */
static bool fired_early(rt_conn_t *c)
{
    uint64_t now = uv_now(c->timer.loop);
    if (c->deadline == 0 || now >= c->deadline)
        return false;
    uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
    return true;
}

static rt_conn_t *conn_of_timer(uv_timer_t *timer)
{
    return (rt_conn_t *)((char *)timer - offsetof(rt_conn_t, timer));
}

/* ---- lifetime -------------------------------------------------------- */

static size_t pending_output(const rt_conn_t *c)
{
    return c->out.len + (c->writing ? c->wbuf.len : 0);
}

static void conn_maybe_free(rt_conn_t *c)
{
    if (c->handles_open > 0 || c->refs > 0)
        return;
    rt_thread_t *t = c->t;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->nconns--;
    atomic_fetch_sub_explicit(t->admin ? &t->srv->admin_conns : &t->srv->app_conns, 1,
                              memory_order_relaxed);
    rdl_buf_close(&c->out);
    rdl_buf_close(&c->wbuf);
    rdl_buf_close(&c->req.resp_headers);
    free(c->buf);
    free(c);
    rdl__rt_thread_conn_closed(t);
}

static void on_tcp_closed(uv_handle_t *h)
{
    rt_conn_t *c = (rt_conn_t *)((char *)h - offsetof(rt_conn_t, tcp));
    c->handles_open--;
    conn_maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    rt_conn_t *c = conn_of_timer((uv_timer_t *)h);
    c->handles_open--;
    conn_maybe_free(c);
}

/* Runs the leave hooks and releases the exchange's memory. */
static void finish_exchange(rt_conn_t *c)
{
    rdl_req_t *req = &c->req;
    if (!req->answered)
        req->status = 499;             /* the client went away first (nginx's convention) */
    req->ctx.end_ns = rdl_now_ns();    /* one reading for every leave hook (span, histogram, log) */
    const rt_chain_t *chain = c->t->chain;
    for (int i = req->mw_entered - 1; i >= 0; i--)
        if (chain->mw[i].leave)
            chain->mw[i].leave(req, chain->mw[i].arg);
    rdl_ctx_close(&req->ctx);
    bool keep_alive = req->answered && req->keep_alive;

    size_t used = c->consumed;
    if (used >= c->len) {
        c->len = 0;
    } else {
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
    c->consumed = 0;
    rdl_buf_t headers = req->resp_headers;
    rdl_buf_reset(&headers);
    c->resp_index.n = 0;
    c->resp_index.removed = false;
    memset(req, 0, sizeof(*req));
    req->resp_headers = headers;
    c->continue_sent = false;
    c->first_request = false;
    if (c->closed)
        return;
    if (keep_alive) {
        c->state = RT_IDLE;
        arm(c, T_NONE, 0);
    } else {
        c->state = RT_CLOSING;
        c->len = 0;
    }
}

static void stall_end(rt_conn_t *c);

static void conn_close_now(rt_conn_t *c)
{
    if (c->closed)
        return;
    c->closed = true;
    stall_end(c);
    if (c->state == RT_HANDLER && !c->req.answered)
        rdl_ctx_cancel(&c->req.ctx);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    if (c->state == RT_HANDLER && !c->req.offloaded)
        finish_exchange(c);
}

static void on_shutdown(uv_shutdown_t *sreq, int status)
{
    rt_conn_t *c = sreq->data;
    if (status < 0 || c->eof)
        conn_close_now(c);
}

/* The final response is out: half-close and linger for the peer's FIN. */
static void conn_shutdown(rt_conn_t *c)
{
    if (c->shut || c->closed)
        return;
    c->shut = true;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close_now(c);
        return;
    }
    arm(c, T_LINGER, RT_LINGER_MS);
    update_reading(c);                   /* read and discard until the peer's FIN */
}

/* ---- reading --------------------------------------------------------- */

static size_t buffer_limit(const rt_conn_t *c)
{
    const rdl_server_opts_t *o = &c->t->srv->opts;
    return (size_t)(o->max_header_bytes + o->max_body) + RT_READ_SLACK;
}

static bool grow(rt_conn_t *c, size_t want)
{
    if (want <= c->cap)
        return true;
    size_t limit = buffer_limit(c);
    if (want > limit)
        want = limit;
    if (want <= c->cap)
        return false;
    size_t cap = c->cap ? c->cap : RT_BUF_INITIAL;
    while (cap < want)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    char *p = realloc(c->buf, cap);
    if (!p)
        return false;
    c->buf = p;
    c->cap = cap;
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rt_conn_t *c = (rt_conn_t *)((char *)h - offsetof(rt_conn_t, tcp));
    (void)suggested;
    if (c->state == RT_CLOSING) {
        c->len = 0;                     /* lingering: read and discard */
    } else if (c->len == c->cap && c->state != RT_HANDLER) {
        grow(c, c->cap ? c->cap * 2 : RT_BUF_INITIAL);   /* never while a handler holds the buffer */
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    rt_conn_t *c = (rt_conn_t *)((char *)s - offsetof(rt_conn_t, tcp));
    (void)buf;
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        if (c->state == RT_HANDLER) {    /* no room while a handler holds the buffer */
            update_reading(c);
            return;
        }
        rdl__rt_send_error_and_close(c, 413, "body_too_large", "request does not fit the server's buffer");
        update_reading(c);
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close_now(c);
            return;
        }
        /* The peer half-closed: answer what it already asked, then close. */
        c->eof = true;
        uv_read_stop(s);
        c->reading = false;
        if (c->state == RT_HANDLER)
            return;
        c->state = RT_CLOSING;           /* an incomplete request has nothing to answer */
        if (pending_output(c) == 0)
            conn_close_now(c);
        return;
    }
    if (c->state == RT_CLOSING) {
        c->len = 0;
        return;
    }
    c->len += (size_t)nread;
    if (c->state == RT_IDLE) {
        c->state = RT_HEAD;
        if (!c->first_request)
            arm(c, T_HEADER, c->t->srv->opts.header_timeout_ms);
    } else if (c->state == RT_BODY) {
        arm(c, T_BODY, c->t->srv->opts.body_timeout_ms);
    }
    conn_process(c);
}

static void update_reading(rt_conn_t *c)
{
    if (c->closed)
        return;
    bool want = !c->eof;
    if (c->state == RT_HANDLER && c->len == c->cap)
        want = false;                    /* buffer full and pinned by the handler */
    if (c->state == RT_CLOSING && !c->shut)
        want = false;
    if (pending_output(c) > c->t->srv->opts.max_output_buffer)
        want = false;                    /* backpressure: the peer is not reading */
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* "ip:port" of the peer, asked once and kept. */
const char *rdl__rt_conn_peer(rt_conn_t *c)
{
    if (!c->peer[0]) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));      /* the family is read even when the lookup fails */
        int n = sizeof(ss);
        char ip[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &n) == 0) {
            if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                uv_ip6_name(a, ip, sizeof(ip));
                port = ntohs(a->sin6_port);
            } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                uv_ip4_name(a, ip, sizeof(ip));
                port = ntohs(a->sin_port);
            }
        }
        snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    }
    return c->peer;
}

/* ---- writing --------------------------------------------------------- */

/* Output waits on the peer and nothing else can move: no reading, no handler. */
static bool send_stalled(const rt_conn_t *c)
{
    return c->writing && c->state != RT_HANDLER &&
           (c->state == RT_CLOSING || pending_output(c) > c->t->srv->opts.max_output_buffer);
}

static size_t queued_in_uv(const rt_conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static void stall_end(rt_conn_t *c)
{
    c->t->stalled_bytes -= c->stall_bytes;
    c->stall_bytes = 0;
}

/* The thread's connection that stalled first, or NULL. */
static rt_conn_t *oldest_stalled(rt_thread_t *t)
{
    rt_conn_t *old = NULL;
    for (rt_conn_t *c = t->conns; c; c = c->next)
        if (c->stall_bytes && !c->closed && (!old || c->stall_ns < old->stall_ns))
            old = c;
    return old;
}

/*
 * Counts a stalled connection's output against the thread's share of
 * limits.max_output_total and closes the connections that stalled first while
 * over it (this one too, last, if it alone is over).
 */
static void stall_begin(rt_conn_t *c)
{
    rt_thread_t *t = c->t;
    rdl_server_t *srv = t->srv;
    uint64_t share = srv->opts.max_output_total / (uint64_t)(srv->nthreads > 0 ? srv->nthreads : 1);
    c->stall_bytes = pending_output(c);
    c->stall_ns = rdl_now_ns();
    t->stalled_bytes += c->stall_bytes;
    rt_conn_t *old;
    while (t->stalled_bytes > share && (old = oldest_stalled(t)) != NULL) {
        uint64_t n = atomic_fetch_add(&srv->output_sheds, 1) + 1;
        rdl_log_field_t f[] = { rdl_lf_str("peer", rdl__rt_conn_peer(old)),
                                rdl_lf_int("unsent_bytes", (int64_t)old->stall_bytes),
                                rdl_lf_int("thread_stalled_bytes", (int64_t)t->stalled_bytes),
                                rdl_lf_int("closed_total", (int64_t)n) };
        rdl_log(srv->log, RDL_LOG_WARN,
                "limits.max_output_total reached: closing the connection stalled longest", f, 4);
        conn_close_now(old);
    }
}

/* Starts the send timeout when the connection has just stalled on its output. */
static void watch_send(rt_conn_t *c)
{
    if (c->closed || !send_stalled(c))
        return;
    if (!c->stall_bytes)
        stall_begin(c);
    if (c->closed || timer_kind(c) == T_SEND)
        return;
    c->send_mark = queued_in_uv(c);
    arm(c, T_SEND, c->t->srv->opts.send_timeout_ms);
}

/* The stall is over: the state's own timeout again (conn_process sets the idle ones). */
static void unwatch_send(rt_conn_t *c)
{
    if (send_stalled(c))
        return;
    stall_end(c);
    if (timer_kind(c) != T_SEND)
        return;
    const rdl_server_opts_t *o = &c->t->srv->opts;
    if (c->state == RT_HEAD)
        arm(c, T_HEADER, o->header_timeout_ms);
    else if (c->state == RT_BODY)
        arm(c, T_BODY, o->body_timeout_ms);
    else
        arm(c, T_NONE, 0);
}

/* T_SEND fired: bytes left since the period began, or the peer is not reading at all. */
static void on_send_timeout(rt_conn_t *c)
{
    size_t queued = queued_in_uv(c);
    if (!send_stalled(c) || queued < c->send_mark) {
        c->send_mark = queued;           /* progress (or no stall): another period */
        if (send_stalled(c))
            arm(c, T_SEND, c->t->srv->opts.send_timeout_ms);
        else
            unwatch_send(c);
        return;
    }
    rdl_server_t *srv = c->t->srv;
    uint64_t n = atomic_fetch_add(&srv->send_timeouts, 1) + 1;
    rdl_log_field_t f[] = { rdl_lf_str("peer", rdl__rt_conn_peer(c)),
                            rdl_lf_int("unsent_bytes", (int64_t)pending_output(c)),
                            rdl_lf_dur("send_timeout_ms", srv->opts.send_timeout_ms * 1000000ull),
                            rdl_lf_int("send_timeouts", (int64_t)n) };
    rdl_log(srv->log, RDL_LOG_WARN, "send timeout: the client stopped reading; closing", f, 4);
    conn_close_now(c);
}

static void after_flush(rt_conn_t *c)
{
    if (c->state == RT_CLOSING && !c->writing && c->out.len == 0) {
        if (c->eof)
            conn_close_now(c);
        else
            conn_shutdown(c);
    }
}

static void on_write(uv_write_t *w, int status)
{
    rt_conn_t *c = w->data;
    c->writing = false;
    rdl_buf_reset(&c->wbuf);
    if (status < 0) {
        conn_close_now(c);
        return;
    }
    if (c->closed)
        return;
    if (c->out.len) {
        rdl__rt_conn_flush(c);
        return;
    }
    unwatch_send(c);
    after_flush(c);
    conn_process(c);                     /* output drained: pipelined requests may go on */
}

void rdl__rt_conn_flush(rt_conn_t *c)
{
    if (c->closed)
        return;
    if (c->writing || c->out.len == 0) {
        after_flush(c);
        watch_send(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->out.len) {
        rdl_buf_reset(&c->out);
        after_flush(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close_now(c);
        return;
    }
    if (n < 0)
        n = 0;
    rdl_buf_t tmp = c->wbuf;             /* swap: out is being written, wbuf collects */
    c->wbuf = c->out;
    c->out = tmp;
    rdl_buf_reset(&c->out);
    b = uv_buf_init(c->wbuf.data + n, (unsigned)(c->wbuf.len - (size_t)n));
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        conn_close_now(c);
        return;
    }
    c->writing = true;
    update_reading(c);
    watch_send(c);
}

/* ---- parsing and dispatch -------------------------------------------- */

static rdl_h1_limits_t limits_of(const rdl_server_opts_t *o)
{
    rdl_h1_limits_t l = {
        .max_request_line = (size_t)o->max_request_line,
        .max_header_bytes = (size_t)o->max_header_bytes,
        .max_headers = (size_t)o->max_headers,
        .max_body = o->max_body,
    };
    return l;
}

static const char *error_code(int status)
{
    switch (status) {
    case 408: return "request_timeout";
    case 413: return "body_too_large";
    case 414: return "uri_too_long";
    case 417: return "expectation_failed";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 505: return "http_version_not_supported";
    default:  return "bad_request";
    }
}

/* 1: head parsed; 0: need more; -1: answered with an error. */
static int parse_head(rt_conn_t *c)
{
    const rdl_server_opts_t *o = &c->t->srv->opts;
    rdl_h1_limits_t lim = limits_of(o);
    int r = rdl_h1_parse_head(c->buf, c->len, &lim, c->headers, (size_t)o->max_headers, &c->h1);
    if (r == RDL_H1_INCOMPLETE) {
        if (c->len == c->cap)
            grow(c, c->cap * 2);
        return 0;
    }
    if (r < 0) {
        char msg[160];   /* name the place: the byte offset in the request head */
        snprintf(msg, sizeof(msg), "%s (at offset %zu of the request)",
                 c->h1.error ? c->h1.error : "malformed request", c->h1.error_offset);
        rdl__rt_send_error_and_close(c, c->h1.status, error_code(c->h1.status), msg);
        return -1;
    }
    c->state = RT_BODY;
    return 1;
}

static void send_continue(rt_conn_t *c)
{
    if (c->h1.expect_continue && !c->continue_sent) {
        c->continue_sent = true;
        rdl_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    }
}

/* 1: body complete (c->req.body set); 0: need more; -1: answered with an error. */
static int read_body(rt_conn_t *c)
{
    rdl_h1_request_t *h = &c->h1;
    size_t head = h->head_len;
    if (h->body == RDL_H1_BODY_NONE) {
        c->req.body = NULL;
        c->req.body_len = 0;
        c->consumed = head;
        return 1;
    }
    if (h->body == RDL_H1_BODY_LENGTH) {
        size_t need = head + (size_t)h->content_length;
        if (c->len >= need) {
            c->req.body = c->buf + head;
            c->req.body_len = (size_t)h->content_length;
            c->consumed = need;
            return 1;
        }
        grow(c, need);
    } else {
        if (c->body_src == 0) {
            rdl_h1_chunked_init(&c->chunked, c->t->srv->opts.max_body);
            c->body_src = c->body_dst = head;
        }
        int r = rdl_h1_chunked_decode(&c->chunked, c->buf, c->len, &c->body_src, &c->body_dst);
        if (r < 0) {
            rdl__rt_send_error_and_close(c, c->chunked.status, error_code(c->chunked.status),
                                    c->chunked.error ? c->chunked.error : "malformed chunked body");
            return -1;
        }
        if (r == 1) {
            c->req.body = c->buf + head;
            c->req.body_len = c->body_dst - head;
            c->consumed = c->body_src;
            c->body_src = c->body_dst = 0;
            return 1;
        }
        /* Keep decoded data contiguous and the undecoded rest right behind it. */
        size_t gap = c->body_src - c->body_dst;
        if (gap) {
            memmove(c->buf + c->body_dst, c->buf + c->body_src, c->len - c->body_src);
            c->len -= gap;
            c->body_src = c->body_dst;
        }
        if (c->len == c->cap)
            grow(c, c->cap * 2);
    }
    send_continue(c);
    if (timer_kind(c) != T_BODY)
        arm(c, T_BODY, c->t->srv->opts.body_timeout_ms);
    return 0;
}

/* Middleware enter hooks from index from on, then the handler (or 404/405). */
static void run_chain(rt_conn_t *c, int from)
{
    rdl_req_t *req = &c->req;
    char allow[96];
    int mr = rdl__rt_router_match(c->t->router, c->h1.method_id, c->h1.path, c->h1.path_len,
                             &req->match, allow, sizeof(allow));
    if (mr != RT_MATCH_OK)
        req->match.route = NULL;
    const rt_chain_t *chain = c->t->chain;
    for (int i = from; i < chain->n; i++) {
        req->mw_entered = i + 1;
        if (chain->mw[i].enter && chain->mw[i].enter(req, chain->mw[i].arg))
            return;
    }
    if (mr == RT_MATCH_OK) {
        rdl__rt_route_call(req->match.route, req);
    } else if (mr == RT_MATCH_NO_METHOD) {
        rdl_resp_header(req, "Allow", allow);
        rdl_resp_error(req, 405, "method_not_allowed", "this path does not support the method");
    } else {
        rdl_resp_error(req, 404, "not_found", "no route for this path");
    }
}

static void dispatch(rt_conn_t *c, const char *head_buf)
{
    rdl_server_t *srv = c->t->srv;
    rdl_req_t *req = &c->req;
    /* The buffer may have moved while the body arrived: re-parse the head in place. */
    if (head_buf != c->buf) {
        rdl_h1_limits_t lim = limits_of(&srv->opts);
        rdl_h1_parse_head(c->buf, c->len, &lim, c->headers, (size_t)srv->opts.max_headers, &c->h1);
        if (c->req.body)
            c->req.body = c->buf + c->h1.head_len;
    }
    req->conn = c;
    req->h1 = &c->h1;
    req->is_head = c->h1.method_id == RDL_METHOD_HEAD;
    req->bytes_in = req->body_len;
    rdl_ctx_init(&req->ctx, srv->opts.request_timeout_ms * 1000000ull);
    c->state = RT_HANDLER;
    arm(c, T_REQUEST, srv->opts.request_timeout_ms);

    rdl_ctx_t *prev = rdl_ctx_set_current(&req->ctx);
    run_chain(c, 0);
    rdl_ctx_set_current(prev);
}

int rdl_req_resume(rdl_req_t *req)
{
    rt_conn_t *c = req->conn;
    if (!c || req->answered || req->offloaded || c->closed || c->state != RT_HANDLER)
        return RDL_ESTATE;
    c->in_process = true;
    rdl_ctx_t *prev = rdl_ctx_set_current(&req->ctx);
    run_chain(c, req->mw_entered);
    rdl_ctx_set_current(prev);
    c->in_process = false;
    conn_process(c);
    return 0;
}

/*
 * The connection's main loop: finish an answered exchange, parse the next
 * request, complete its body, dispatch it; repeat while pipelined requests are
 * buffered and the peer keeps up with our output.
 */
static void conn_process(rt_conn_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    for (;;) {
        if (c->state == RT_HANDLER) {
            if (c->req.offloaded || (!c->req.answered && !c->closed))
                break;
            finish_exchange(c);
        }
        if (c->closed || c->state == RT_CLOSING)
            break;
        if (pending_output(c) > c->t->srv->opts.max_output_buffer)
            break;
        if (c->state == RT_IDLE || c->state == RT_HEAD) {
            if (c->len == 0 && c->eof) {
                c->state = RT_CLOSING;   /* half-closed and everything asked is answered */
                break;
            }
            if (c->len == 0) {
                c->state = RT_IDLE;
                uint64_t idle = c->t->draining ? RT_DRAIN_IDLE_MS : c->t->srv->opts.idle_timeout_ms;
                if (c->first_request) {
                    if (timer_kind(c) != T_FIRST)
                        arm(c, T_FIRST, c->t->srv->opts.header_timeout_ms);
                } else if (timer_kind(c) != T_IDLE) {
                    arm(c, T_IDLE, idle);
                }
                break;
            }
            if (c->state == RT_IDLE) {
                c->state = RT_HEAD;
                if (!c->first_request)
                    arm(c, T_HEADER, c->t->srv->opts.header_timeout_ms);
            }
            int r = parse_head(c);
            if (r == 0 && c->eof)
                c->state = RT_CLOSING;   /* half-closed in the middle of a head */
            if (r <= 0)
                break;
            c->head_buf = c->buf;
        }
        if (c->state == RT_BODY) {
            int r = read_body(c);
            if (r == 0 && c->eof)
                c->state = RT_CLOSING;   /* half-closed before the body was complete */
            if (r <= 0)
                break;
            dispatch(c, c->head_buf);
        }
    }
    c->in_process = false;
    if (c->closed) {
        conn_maybe_free(c);
        return;
    }
    rdl__rt_conn_flush(c);
    if (!c->closed)
        update_reading(c);
}

void rdl__rt_conn_request_done(rt_conn_t *c)
{
    if (!c->in_process)
        conn_process(c);
}

static void on_timer(uv_timer_t *timer)
{
    rt_conn_t *c = conn_of_timer(timer);
    if (fired_early(c))
        return;
    switch (timer_kind(c)) {
    case T_FIRST:
        if (c->len == 0 && c->state == RT_IDLE) {
            conn_close_now(c);           /* connected, never sent a byte */
            break;
        }
        /* part of the first request arrived: a header timeout */
        /* fall through */
    case T_HEADER:
    case T_BODY:
        rdl__rt_send_error_and_close(c, 408, "request_timeout", timer_kind(c) == T_BODY
                                ? "request body not received in time"
                                : "request head not received in time");
        update_reading(c);
        break;
    case T_REQUEST:
        rdl_ctx_cancel(&c->req.ctx);
        if (c->req.head_sent || c->req.answered) {
            conn_close_now(c);
            break;
        }
        c->h1.keep_alive = false;        /* a late handler must not race the next request */
        rdl_resp_header(&c->req, "Retry-After", "1");
        c->in_process = true;
        rdl_resp_error(&c->req, 503, "timeout", "the request took longer than the server allows");
        c->in_process = false;
        conn_process(c);
        break;
    case T_IDLE:
    case T_LINGER:
        conn_close_now(c);
        break;
    case T_SEND:
        on_send_timeout(c);
        break;
    default:
        break;
    }
}

/* ---- accept, drain, abort -------------------------------------------- */

void rdl__rt_conn_refused(rdl_server_t *srv, int reason)
{
    uint64_t n = atomic_fetch_add_explicit(&srv->refused[reason], 1, memory_order_relaxed) + 1;
    uint64_t now = rdl_now_ns();
    uint64_t last = atomic_load_explicit(&srv->refused_log_ns[reason], memory_order_relaxed);
    if ((last && now - last < 1000000000ull) ||
        !atomic_compare_exchange_strong(&srv->refused_log_ns[reason], &last, now))
        return;                          /* a line went out less than a second ago */
    uint64_t since = n - atomic_exchange(&srv->refused_logged[reason], n);
    rdl_log_field_t f[] = { rdl_lf_int("refused", (int64_t)since),
                            rdl_lf_int("refused_total", (int64_t)n),
                            rdl_lf_int("max_connections", (int64_t)srv->opts.max_connections) };
    if (reason == RT_REFUSED_LIMIT)
        rdl_log(srv->log, RDL_LOG_WARN,
                "server.max_connections reached: refusing connections with 503", f, 3);
    else
        rdl_log(srv->log, RDL_LOG_ERROR,
                "out of file descriptors: accepting paused", f, 2);
}

/*
 * Over the limit: a short 503 if the socket takes it at once (a client that
 * sent its request already reads an answer, not a bare reset), then close.
 * What the client sent is read first, so the close is less likely a reset.
 */
static void refuse_over_limit(rdl_server_t *srv, int fd)
{
    static const char answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 20\r\n"
                                 "Connection: close\r\n"
                                 "Retry-After: 1\r\n\r\n"
                                 "too many connections";
    char sink[512];
    ssize_t got = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    (void)got;
    ssize_t sent = send(fd, answer, sizeof(answer) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)sent;                          /* a full socket buffer: closed without it */
    close(fd);
    rdl__rt_conn_refused(srv, RT_REFUSED_LIMIT);
}

void rdl__rt_conn_accept(rt_thread_t *t, int fd)
{
    rdl_server_t *srv = t->srv;
    const rdl_server_opts_t *o = &srv->opts;
    /* Per process, as users read the limit: the app threads share one relaxed counter. */
    atomic_int *open = t->admin ? &srv->admin_conns : &srv->app_conns;
    if (atomic_fetch_add_explicit(open, 1, memory_order_relaxed) >= (int)o->max_connections) {
        atomic_fetch_sub_explicit(open, 1, memory_order_relaxed);
        refuse_over_limit(srv, fd);
        return;
    }
    rt_conn_t *c = calloc(1, sizeof(*c) + (size_t)o->max_headers * sizeof(rdl_h1_header_t));
    if (!c) {
        atomic_fetch_sub_explicit(open, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    c->headers = (rdl_h1_header_t *)(c + 1);
    c->t = t;
    uv_tcp_init(&t->loop, &c->tcp);
    uv_timer_init(&t->loop, &c->timer);
    c->handles_open = 2;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->nconns++;
    rdl_buf_init(&c->out);
    rdl_buf_init(&c->wbuf);
    rdl_buf_init(&c->req.resp_headers);
    c->state = RT_IDLE;
    c->first_request = true;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0)
        close(fd);
    if (rc != 0 || !grow(c, RT_BUF_INITIAL)) {
        conn_close_now(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    arm(c, T_FIRST, o->header_timeout_ms);
    update_reading(c);
}

void rdl__rt_conn_drain(rt_conn_t *c)
{
    if (!c->closed && c->state == RT_IDLE && c->len == 0 && timer_kind(c) != T_FIRST)
        arm(c, T_IDLE, RT_DRAIN_IDLE_MS);
    else if (!c->closed && c->state == RT_IDLE && c->len == 0)
        arm(c, T_FIRST, RT_DRAIN_IDLE_MS);
}

void rdl__rt_conn_abort(rt_conn_t *c)
{
    conn_close_now(c);
    conn_maybe_free(c);
}
