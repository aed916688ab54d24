/*
 * test_runtime.c: the HTTP runtime, in-process. Routing rules are checked
 * through the internal router API; everything else runs a real server on
 * loopback (ephemeral ports, two I/O threads, the admin listener) on a thread
 * of its own, driven by a small blocking socket client that checks response
 * framing byte by byte. Handlers, middleware, pool work and start-up steps
 * record what they saw under one mutex, and blocking work waits on a gate the
 * test opens, so assertions are about order and state, never about timing.
 */
#define _GNU_SOURCE             /* pthread_timedjoin_np, memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "redline/runtime.h"
#include "redline/metrics.h"
#include "runtime/internal.h"

#define WAIT_MS 5000            /* bounded waits: a hang becomes a failure, not a stuck ctest */
#define GATE_MS 10000           /* blocked work gives up after this, so a failed test still stops */
#define JOIN_MS 15000

/* ---- time ------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- what the server's threads saw, under one mutex ------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

#define NCASES 21

typedef struct shared {
    bool gate_open;             /* blocked work and start-up steps may go on */
    int gate_arrived;           /* how many reached the gate */
    char trace[256];            /* middleware and handler events: " e1 e2 h b2 b1 l2 l1" */
    char route_seen[64];        /* rdl_req_route() in the first middleware's enter */
    int leaves;                 /* the first middleware's leave ran */
    int leave_status;
    uint64_t leave_bytes;
    int handler_runs;
    int stream_rc[5];           /* begin, write, write, end, write after end */
    pthread_t handler_tid, work_tid, done_tid;
    bool work_ctx_ok, done_ctx_ok, handler_ctx_ok;
    int works, dones, works_canceled;
    int done_send_rc;
    int offload_rc[3];          /* per request, by its query "A", "B", "C" */
    bool offload_answered[3];   /* rdl_req_answered right after the offload returned */
    int offloads;
    rdl_pool_t *pool;
    int hdr_rc[NCASES];
    int hdr_late_rc;
} shared_t;

static shared_t G;

/* A copy to assert on: never assert while holding mu (a failure would leave it locked). */
static shared_t snapshot(void)
{
    pthread_mutex_lock(&mu);
    shared_t g = G;
    pthread_mutex_unlock(&mu);
    return g;
}

static void bump(int *counter)
{
    pthread_mutex_lock(&mu);
    (*counter)++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits until *counter >= n (bounded); returns its value. */
static int wait_count(const int *counter, int n)
{
    struct timespec until = rdl_timespec_in(CLOCK_REALTIME, WAIT_MS * 1000000ull);
    pthread_mutex_lock(&mu);
    while (*counter < n && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    int v = *counter;
    pthread_mutex_unlock(&mu);
    return v;
}

static int get_int(const int *v)
{
    pthread_mutex_lock(&mu);
    int x = *v;
    pthread_mutex_unlock(&mu);
    return x;
}

static void trace_add(const char *ev)
{
    pthread_mutex_lock(&mu);
    size_t n = strlen(G.trace);
    snprintf(G.trace + n, sizeof(G.trace) - n, " %s", ev);
    pthread_mutex_unlock(&mu);
}

static void trace_get(char *out, size_t n)
{
    pthread_mutex_lock(&mu);
    snprintf(out, n, "%s", G.trace);
    G.trace[0] = '\0';
    pthread_mutex_unlock(&mu);
}

/* Blocks until the test opens the gate (or GATE_MS passes). */
static void gate_pass(void)
{
    struct timespec until = rdl_timespec_in(CLOCK_REALTIME, GATE_MS * 1000000ull);
    pthread_mutex_lock(&mu);
    G.gate_arrived++;
    pthread_cond_broadcast(&cv);
    while (!G.gate_open && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    pthread_mutex_unlock(&mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&mu);
    G.gate_open = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- the server under test, on its own thread ------------------------- */

static struct {
    rdl_server_t *srv;
    pthread_t tid;
    bool running;               /* thread started, not yet joined */
    int rc;                     /* rdl_server_run's result; read after the join */
    char addr[96];
    char admin[96];
} S;

static void test_opts(rdl_server_opts_t *o)
{
    rdl_server_opts_default(o);
    o->listen = "127.0.0.1:0";
    o->admin_listen = "127.0.0.1:0";
    o->threads = 2;
    o->drain_delay_ms = 50;
    o->pool_threads = 2;
}

static rdl_server_t *server_new(const rdl_server_opts_t *o)
{
    assert_int_equal(rdl_server_new(o, &S.srv), 0);
    assert_non_null(S.srv);
    return S.srv;
}

static void *run_main(void *arg)
{
    rdl_error_t err;
    memset(&err, 0, sizeof(err));
    S.rc = rdl_server_run(arg, &err);
    return NULL;
}

static void server_spawn(void)
{
    assert_int_equal(pthread_create(&S.tid, NULL, run_main, S.srv), 0);
    S.running = true;
}

/* Starts the server and waits (bounded) until both listeners have an address. */
static void server_start(void)
{
    server_spawn();
    char a[96] = "", b[96] = "";
    uint64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end) {
        /* The address is written while we poll: take it once two reads agree. */
        if (a[0] && b[0] && strcmp(a, rdl_server_addr(S.srv)) == 0 &&
            strcmp(b, rdl_server_admin_addr(S.srv)) == 0) {
            snprintf(S.addr, sizeof(S.addr), "%s", a);
            snprintf(S.admin, sizeof(S.admin), "%s", b);
            return;
        }
        snprintf(a, sizeof(a), "%s", rdl_server_addr(S.srv));
        snprintf(b, sizeof(b), "%s", rdl_server_admin_addr(S.srv));
        sleep_ms(1);
    }
    fail_msg("the server did not report its addresses within %d ms", WAIT_MS);
}

/* Joins the run thread (bounded), frees the server, returns rdl_server_run's result. */
static int server_join(void)
{
    struct timespec until = rdl_timespec_in(CLOCK_REALTIME, JOIN_MS * 1000000ull);
    int jr = pthread_timedjoin_np(S.tid, NULL, &until);
    assert_int_equal(jr, 0);
    S.running = false;
    int rc = S.rc;
    rdl_server_free(S.srv);
    S.srv = NULL;
    return rc;
}

static void server_stop(void)
{
    rdl_server_shutdown(S.srv);
    assert_int_equal(server_join(), 0);
}

/* ---- a blocking HTTP client ------------------------------------------ */

typedef struct client {
    int fd;
    size_t len;
    char buf[32768];
} client_t;

typedef struct resp {
    int status;
    int minor;
    char head[4096];            /* status line and fields, through the blank line */
    char body[16384];
    size_t body_len;
    bool chunked;
    bool until_close;           /* close-delimited body */
} resp_t;

static client_t clients[4];     /* static: a failed assertion leaks nothing; teardown closes them */
static resp_t resp_buf;

/* rcvbuf > 0: the socket's receive buffer, set before connecting (a client that reads little). */
static bool client_open_rcvbuf(client_t *c, const char *addr, int rcvbuf)
{
    c->len = 0;
    c->fd = -1;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon - addr >= 64)
        return false;
    char host[64];
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct timeval tv = { WAIT_MS / 1000, 0 };
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return false;
    }
    c->fd = fd;
    return true;
}

static bool client_open(client_t *c, const char *addr)
{
    return client_open_rcvbuf(c, addr, 0);
}

static void client_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Closes with a reset (SO_LINGER 0): the peer sees the connection lost, not a half-close. */
static void client_abort(client_t *c)
{
    struct linger lg = { 1, 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    client_close(c);
}

static bool client_send(client_t *c, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    return true;
}

/* One recv into the buffer: > 0 bytes, 0 at EOF, < 0 on error or timeout. */
static ssize_t client_fill(client_t *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static bool client_need(client_t *c, size_t n)
{
    while (c->len < n)
        if (client_fill(c) <= 0)
            return false;
    return true;
}

static void client_consume(client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* True when the peer closes without sending anything more. */
static bool client_wait_closed(client_t *c)
{
    size_t before = c->len;
    ssize_t n = client_fill(c);
    return (n == 0 || (n < 0 && errno == ECONNRESET)) && c->len == before;
}

static bool resp_header(const resp_t *r, const char *name, char *out, size_t n)
{
    size_t nlen = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        const char *line = p + 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(eol - v);
            if (vl >= n)
                vl = n - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        p = eol;
    }
    return false;
}

static bool read_head(client_t *c, resp_t *r)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (client_fill(c) <= 0)
            return false;
    size_t n = (size_t)(end - c->buf) + 4;
    if (n >= sizeof(r->head))
        return false;
    memcpy(r->head, c->buf, n);
    r->head[n] = '\0';
    client_consume(c, n);
    return sscanf(r->head, "HTTP/1.%d %d ", &r->minor, &r->status) == 2;
}

/* Strict chunked framing, as our server writes it: hex size CRLF data CRLF ... 0 CRLF CRLF. */
static bool read_chunked(client_t *c, resp_t *r)
{
    for (;;) {
        char *eol;
        while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
            if (client_fill(c) <= 0)
                return false;
        size_t line = (size_t)(eol - c->buf), size = 0;
        if (line == 0 || line > 8)
            return false;
        for (size_t i = 0; i < line; i++) {
            char ch = c->buf[i];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
            if (d < 0)
                return false;
            size = size * 16 + (size_t)d;
        }
        client_consume(c, line + 2);
        if (size == 0) {
            if (!client_need(c, 2) || memcmp(c->buf, "\r\n", 2) != 0)
                return false;
            client_consume(c, 2);
            return true;
        }
        if (r->body_len + size > sizeof(r->body) || !client_need(c, size + 2) ||
            memcmp(c->buf + size, "\r\n", 2) != 0)
            return false;
        memcpy(r->body + r->body_len, c->buf, size);
        r->body_len += size;
        client_consume(c, size + 2);
    }
}

/* Reads one response; no_body for the answer to HEAD. */
static bool read_response(client_t *c, resp_t *r, bool no_body)
{
    memset(r, 0, sizeof(*r));
    if (!read_head(c, r))
        return false;
    if (no_body || r->status < 200 || r->status == 204 || r->status == 304)
        return true;
    char v[64];
    if (resp_header(r, "Transfer-Encoding", v, sizeof(v))) {
        r->chunked = true;
        return strcasecmp(v, "chunked") == 0 && !resp_header(r, "Content-Length", v, sizeof(v)) &&
               read_chunked(c, r);
    }
    if (resp_header(r, "Content-Length", v, sizeof(v))) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end || n > sizeof(r->body) || !client_need(c, n))
            return false;
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        client_consume(c, n);
        return true;
    }
    r->until_close = true;
    for (;;) {
        ssize_t n = client_fill(c);
        if (n == 0)
            break;
        if (n < 0)
            return false;
    }
    if (c->len > sizeof(r->body))
        return false;
    memcpy(r->body, c->buf, c->len);
    r->body_len = c->len;
    client_consume(c, c->len);
    return true;
}

/* One request on a fresh connection (Connection: close); the response in r. */
static void http_do(const char *addr, const char *method, const char *target, resp_t *r)
{
    client_t *c = &clients[3];
    char req[512];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s\r\n",
             method, target, strcmp(method, "POST") == 0 ? "Content-Length: 0\r\n" : "");
    bool ok = client_open(c, addr) && client_send(c, req) &&
              read_response(c, r, strcmp(method, "HEAD") == 0);
    client_close(c);
    assert_true(ok);
}

static bool body_is(const resp_t *r, const char *s)
{
    return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

static bool body_has(resp_t *r, const char *s)
{
    if (r->body_len >= sizeof(r->body))
        return false;
    r->body[r->body_len] = '\0';
    return strstr(r->body, s) != NULL;
}

/* ---- per-test state ---------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    pthread_mutex_lock(&mu);
    memset(&G, 0, sizeof(G));
    pthread_mutex_unlock(&mu);
    memset(&S, 0, sizeof(S));
    for (int i = 0; i < 4; i++)
        clients[i].fd = -1;
    return 0;
}

/* After a failed assertion: release blocked work and stop the server if it still runs. */
static int teardown(void **state)
{
    (void)state;
    gate_open();
    if (S.running) {
        rdl_server_shutdown(S.srv);
        struct timespec until = rdl_timespec_in(CLOCK_REALTIME, JOIN_MS * 1000000ull);
        if (pthread_timedjoin_np(S.tid, NULL, &until) == 0) {
            S.running = false;
            rdl_server_free(S.srv);
        }
    } else if (S.srv) {
        rdl_server_free(S.srv);
    }
    S.srv = NULL;
    for (int i = 0; i < 4; i++)
        client_close(&clients[i]);
    return 0;
}

/* ---- handlers and middleware ----------------------------------------- */

static void h_hello(rdl_req_t *req, void *arg)
{
    (void)arg;
    rdl_resp_send(req, 200, "text/plain", "hello", 5);
}

/* Answers "param|query|route" so the test sees what the runtime decoded. */
static void h_echo(rdl_req_t *req, void *arg)
{
    (void)arg;
    size_t qlen;
    const char *q = rdl_req_query(req, &qlen);
    const char *w = rdl_req_param(req, "word");
    const char *none = rdl_req_param(req, "nope");
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_printf(&b, "%s|%.*s|%s|%s", w ? w : "(null)", (int)qlen, q, rdl_req_route(req),
                   none ? "nope-set" : "nope-null");
    rdl_resp_send(req, 200, "text/plain", b.data, b.len);
    rdl_buf_close(&b);
}

/* Answers "id name": the method as the parser classified it. */
static void h_method(rdl_req_t *req, void *arg)
{
    (void)arg;
    char b[32];
    int n = snprintf(b, sizeof(b), "%d %s", (int)rdl_req_method_id(req), rdl_req_method(req));
    rdl_resp_send(req, 200, "text/plain", b, (size_t)n);
}

static void h_traced(rdl_req_t *req, void *arg)
{
    (void)arg;
    trace_add("h");
    bump(&G.handler_runs);
    rdl_resp_send(req, 200, "text/plain", "ok", 2);
}

typedef struct mw_tag {
    const char *name;           /* "1", "2", ... in the trace */
    bool stops;                 /* enter answers 403 and stops the chain */
} mw_tag_t;

static int mw_enter(rdl_req_t *req, void *arg)
{
    const mw_tag_t *t = arg;
    char ev[8];
    snprintf(ev, sizeof(ev), "e%s", t->name);
    trace_add(ev);
    if (strcmp(t->name, "1") == 0) {
        const char *route = rdl_req_route(req);
        pthread_mutex_lock(&mu);
        snprintf(G.route_seen, sizeof(G.route_seen), "%s", route ? route : "(null)");
        pthread_mutex_unlock(&mu);
    }
    if (t->stops) {
        rdl_resp_send(req, 403, "text/plain", "denied", 6);
        return 1;
    }
    return 0;
}

static void mw_before_send(rdl_req_t *req, void *arg)
{
    const mw_tag_t *t = arg;
    char ev[8];
    (void)req;
    snprintf(ev, sizeof(ev), "b%s", t->name);
    trace_add(ev);
}

static void mw_leave(rdl_req_t *req, void *arg)
{
    const mw_tag_t *t = arg;
    char ev[8];
    snprintf(ev, sizeof(ev), "l%s", t->name);
    trace_add(ev);
    if (strcmp(t->name, "1") == 0) {
        pthread_mutex_lock(&mu);
        G.leave_status = rdl_req_status(req);
        G.leave_bytes = rdl_req_bytes_out(req);
        G.leaves++;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}

static mw_tag_t tag1 = { "1", false }, tag2 = { "2", false }, tag2_stops = { "2", true },
                tag3 = { "3", false };

static void use_mw(rdl_server_t *srv, mw_tag_t *tag)
{
    rdl_middleware_t mw = { tag->name, mw_enter, mw_before_send, mw_leave, tag };
    assert_int_equal(rdl_server_use(srv, &mw), 0);
}

static void h_stream(rdl_req_t *req, void *arg)
{
    (void)arg;
    int rc[5];
    rc[0] = rdl_resp_begin(req, 200, "text/plain");
    rc[1] = rdl_resp_write(req, "hello ", 6);
    rc[2] = rdl_resp_write(req, "world", 5);
    rc[3] = rdl_resp_end(req);
    rc[4] = rdl_resp_write(req, "late", 4);
    pthread_mutex_lock(&mu);
    memcpy(G.stream_rc, rc, sizeof(rc));
    G.handler_runs++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* -- offload: where each part runs -- */

static void off_work(rdl_req_t *req, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    G.work_tid = pthread_self();
    G.work_ctx_ok = rdl_ctx_current() == rdl_req_ctx(req);
    G.works++;
    pthread_mutex_unlock(&mu);
}

static void off_done(rdl_req_t *req, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    G.done_tid = pthread_self();
    G.done_ctx_ok = rdl_ctx_current() == rdl_req_ctx(req);
    pthread_mutex_unlock(&mu);
    int rc = rdl_resp_send(req, 200, "text/plain", "done", 4);
    pthread_mutex_lock(&mu);
    G.done_send_rc = rc;
    G.dones++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void h_offload(rdl_req_t *req, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    G.handler_tid = pthread_self();
    G.handler_ctx_ok = rdl_ctx_current() == rdl_req_ctx(req);
    pthread_mutex_unlock(&mu);
    int rc = rdl_req_offload(req, off_work, off_done, NULL);
    pthread_mutex_lock(&mu);
    G.offload_rc[0] = rc;
    G.offloads++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* -- offload: work that blocks on the gate -- */

static void gate_work(rdl_req_t *req, void *arg)
{
    (void)arg;
    gate_pass();
    if (rdl_ctx_canceled(rdl_req_ctx(req)))
        bump(&G.works_canceled);
    bump(&G.works);
}

static void gate_done(rdl_req_t *req, void *arg)
{
    (void)arg;
    int rc = rdl_resp_send(req, 200, "text/plain", "released", 8);
    pthread_mutex_lock(&mu);
    G.done_send_rc = rc;
    G.dones++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* The query names the request ("A", "B", "C"): its offload result lands in that slot. */
static void h_block(rdl_req_t *req, void *arg)
{
    (void)arg;
    size_t qlen;
    const char *q = rdl_req_query(req, &qlen);
    int slot = qlen == 1 && q[0] >= 'A' && q[0] <= 'C' ? q[0] - 'A' : 0;
    rdl_pool_t *pool = rdl_server_pool(S.srv);
    int rc = rdl_req_offload(req, gate_work, gate_done, NULL);
    pthread_mutex_lock(&mu);
    G.pool = pool;
    G.offload_rc[slot] = rc;
    G.offload_answered[slot] = rdl_req_answered(req);
    G.offloads++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* -- offload: the pool is shutting down (arg: a pool whose free has begun) -- */

static void h_pool_closing(rdl_req_t *req, void *arg)
{
    rdl_server_t *srv = req->conn->t->srv;
    rdl_pool_t *real = srv->pool;
    srv->pool = arg;            /* on the I/O thread, with no other request in flight */
    int rc = rdl_req_offload(req, off_work, off_done, NULL);
    srv->pool = real;
    bool answered = rdl_req_answered(req);
    if (rc == RDL_ECANCELED)
        rdl_resp_error(req, 503, "unavailable", "the handler says: shutting down");
    pthread_mutex_lock(&mu);
    G.offload_rc[0] = rc;
    G.offload_answered[0] = answered;
    G.offloads++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void pool_gate_work(rdl_pool_task_t *task) { (void)task; gate_pass(); }
static void pool_noop_work(rdl_pool_task_t *task) { (void)task; }
static void pool_noop_done(rdl_pool_task_t *task, int status) { (void)task; (void)status; }

static void *pool_free_main(void *arg)
{
    rdl_pool_free(arg);         /* blocks until the gate opens: the pool stays "stopping" */
    return NULL;
}

/* -- offload: work that waits for the client to go away -- */

static void cancel_work(rdl_req_t *req, void *arg)
{
    (void)arg;
    bump(&G.gate_arrived);
    uint64_t end = mono_ms() + WAIT_MS;
    while (!rdl_ctx_canceled(rdl_req_ctx(req)) && mono_ms() < end)
        sleep_ms(1);
    if (rdl_ctx_canceled(rdl_req_ctx(req)))
        bump(&G.works_canceled);
    bump(&G.works);
}

static void h_cancel(rdl_req_t *req, void *arg)
{
    (void)arg;
    int rc = rdl_req_offload(req, cancel_work, gate_done, NULL);
    pthread_mutex_lock(&mu);
    G.offload_rc[0] = rc;
    G.offloads++;
    pthread_mutex_unlock(&mu);
}

/* -- response header validation -- */

static const struct {
    const char *name, *value;
    int want;
} hdr_cases[NCASES] = {
    { "X-Ok", "yes", 0 },
    { "X-Tab", "a\tb", 0 },                      /* HTAB is allowed in a value */
    { "X-Empty", "", 0 },
    { "X-Bad\r\nInjected", "1", RDL_EINVAL },
    { "X-Bad\nInjected", "1", RDL_EINVAL },
    { "X-Bad\rInjected", "1", RDL_EINVAL },
    { "X-Val", "v\r\nInjected: 1", RDL_EINVAL },
    { "X-Val", "v\nInjected: 1", RDL_EINVAL },
    { "X-Val", "v\rInjected: 1", RDL_EINVAL },
    { "X-Val", "bell\a", RDL_EINVAL },
    { "X-Val", "del\x7f", RDL_EINVAL },
    { "X:Colon", "1", RDL_EINVAL },
    { "X Space", "1", RDL_EINVAL },
    { "X\tTab", "1", RDL_EINVAL },
    { "", "1", RDL_EINVAL },
    { "X-Null", NULL, RDL_EINVAL },
    { NULL, "1", RDL_EINVAL },
    { "X-Utf8", "caf\xc3\xa9", 0 },               /* obs-text passes through */
    { "X-Del\x7f", "1", RDL_EINVAL },
    { "X-Ctl\x01", "1", RDL_EINVAL },
    { "X-Val", "nul\x01", RDL_EINVAL },
};

static void h_headers(rdl_req_t *req, void *arg)
{
    (void)arg;
    int rc[NCASES];
    for (int i = 0; i < NCASES; i++)
        rc[i] = rdl_resp_header(req, hdr_cases[i].name, hdr_cases[i].value);
    rdl_resp_send(req, 200, "text/plain", "ok", 2);
    int late = rdl_resp_header(req, "X-Late", "1");
    pthread_mutex_lock(&mu);
    memcpy(G.hdr_rc, rc, sizeof(rc));
    G.hdr_late_rc = late;
    G.handler_runs++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* -- start-up steps -- */

static int step_block(rdl_server_t *srv, void *arg)
{
    (void)srv;
    (void)arg;
    gate_pass();
    return 0;
}

static int step_ok(rdl_server_t *srv, void *arg)
{
    (void)srv;
    bump(arg);
    return 0;
}

static int step_fail(rdl_server_t *srv, void *arg)
{
    (void)srv;
    (void)arg;
    return -1;
}

/* ---- 1. router ------------------------------------------------------- */

static void h_a(rdl_req_t *req, void *arg) { (void)req; (void)arg; }

static rt_router_t R;           /* freed by router_teardown, also after a failed assertion */

static int router_teardown(void **state)
{
    (void)state;
    rdl__rt_router_free(&R);
    return 0;
}

static const char *match_tmpl(const rt_router_t *r, rdl_method_t method, const char *path)
{
    rt_match_t m;
    char allow[96];
    if (rdl__rt_router_match(r, method, path, strlen(path), &m, allow, sizeof(allow)) != RT_MATCH_OK)
        return "(none)";
    return rdl__rt_route_template(m.route);
}

static void test_router_specificity(void **state)
{
    (void)state;
    static const char *const tmpls[3] = { "/v1/courses/featured", "/v1/courses/{id}", "/v1/{rest...}" };
    static const int orders[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                      { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    for (int o = 0; o < 6; o++) {
        for (int i = 0; i < 3; i++)
            assert_int_equal(rdl__rt_router_add(&R, "GET", tmpls[orders[o][i]], h_a, NULL), 0);
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses/featured"), "/v1/courses/featured");
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses/42"), "/v1/courses/{id}");
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses/42/sections"), "/v1/{rest...}");
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/other"), "/v1/{rest...}");
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v2/courses/42"), "(none)");

        rt_match_t m;
        const char *p = "/v1/courses/42/sections";
        assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_GET, p, strlen(p), &m, NULL, 0), RT_MATCH_OK);
        assert_int_equal(m.nparams, 1);
        assert_string_equal(m.names[0], "rest");
        assert_int_equal(m.lens[0], strlen("courses/42/sections"));
        assert_memory_equal(m.values[0], "courses/42/sections", m.lens[0]);
        rdl__rt_router_free(&R);
    }
}

/* router.c: "a literal segment beats a parameter, which beats a rest parameter, compared left to right". */
static void test_router_left_to_right(void **state)
{
    (void)state;
    for (int o = 0; o < 2; o++) {
        const char *a = "/static/{path...}", *b = "/{lang}/docs/{page}";
        assert_int_equal(rdl__rt_router_add(&R, "GET", o ? b : a, h_a, NULL), 0);
        assert_int_equal(rdl__rt_router_add(&R, "GET", o ? a : b, h_a, NULL), 0);
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/en/docs/intro"), "/{lang}/docs/{page}");
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/static/css/site.css"), "/static/{path...}");
        /* Both match; the first segment decides: literal "static" beats {lang}. */
        assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/static/docs/intro"), "/static/{path...}");
        rdl__rt_router_free(&R);
    }
}

static void test_router_methods(void **state)
{
    (void)state;
    assert_int_equal(rdl__rt_router_add(&R, "POST", "/items/{id}", h_a, NULL), 0);
    assert_int_equal(rdl__rt_router_add(&R, "GET", "/items/{id}", h_a, NULL), 0);
    assert_int_equal(rdl__rt_router_add(&R, "PUT", "/items/{id}", h_a, NULL), 0);
    assert_int_equal(rdl__rt_router_add(&R, "DELETE", "/only-delete", h_a, NULL), 0);

    rt_match_t m;
    char allow[96];
    const char *p = "/items/7";
    assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_HEAD, p, strlen(p), &m, allow, sizeof(allow)), RT_MATCH_OK);
    assert_string_equal(rdl__rt_route_template(m.route), "/items/{id}");
    assert_int_equal(m.nparams, 1);
    assert_memory_equal(m.values[0], "7", 1);

    assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_PATCH, p, strlen(p), &m, allow, sizeof(allow)),
                     RT_MATCH_NO_METHOD);
    /* The Allow list names every method of the path once, HEAD with GET. */
    const char *want[] = { "GET", "HEAD", "POST", "PUT" };
    int tokens = 0;
    char copy[96], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", allow);
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        bool known = false;
        for (size_t i = 0; i < 4; i++)
            known |= strcmp(tok, want[i]) == 0;
        assert_true(known);
        tokens++;
    }
    assert_int_equal(tokens, 4);
    for (size_t i = 0; i < 4; i++)
        assert_non_null(strstr(allow, want[i]));

    /* A DELETE-only path: HEAD and GET are not allowed, the list names DELETE only. */
    p = "/only-delete";
    assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_HEAD, p, strlen(p), &m, allow, sizeof(allow)),
                     RT_MATCH_NO_METHOD);
    assert_string_equal(allow, "DELETE");
    p = "/nothing";
    assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_GET, p, strlen(p), &m, allow, sizeof(allow)),
                     RT_MATCH_NO_PATH);
    rdl__rt_router_free(&R);
}

static void h_b(rdl_req_t *req, void *arg) { (void)req; (void)arg; }

/* An explicit HEAD route beats the GET route's implicit HEAD, in either registration order. */
static void test_router_explicit_head(void **state)
{
    (void)state;
    for (int o = 0; o < 2; o++) {
        assert_int_equal(rdl__rt_router_add(&R, o ? "HEAD" : "GET", "/doc", h_a, NULL), 0);
        assert_int_equal(rdl__rt_router_add(&R, o ? "GET" : "HEAD", "/doc", h_a, NULL), 0);
        rt_match_t m;
        assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_GET, "/doc", 4, &m, NULL, 0), RT_MATCH_OK);
        const rt_route_t *get_route = m.route;
        assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_HEAD, "/doc", 4, &m, NULL, 0), RT_MATCH_OK);
        assert_ptr_not_equal(m.route, get_route);
        rdl__rt_router_free(&R);
    }
}

static void test_router_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "v1/courses", "courses/{id}",              /* no leading '/' */
        "/a/{id", "/a/id}", "/a/{id}x", "/a/x{id}", "/{a}{b}", "/a/{{id}}",   /* braces */
        "/{rest...}/x", "/a/{rest...}/{id}",           /* rest not last */
        "/{}", "/{...}", "/{1id}", "/{a-b}", "/{a b}", "/{a.b}",   /* names */
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",        /* 9 parameters */
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{rest...}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = rdl__rt_router_add(&R, "GET", bad[i], h_a, NULL);
        if (rc != RDL_EINVAL)
            fail_msg("template '%s': got %d, want RDL_EINVAL", bad[i], rc);
    }
    assert_null(R.routes);
    assert_int_equal(rdl__rt_router_add(&R, "", "/x", h_a, NULL), RDL_EINVAL);
    /* Methods are the parser's (case-sensitive): any other could never match a request. */
    assert_int_equal(rdl__rt_router_add(&R, "get", "/x", h_a, NULL), RDL_EINVAL);
    assert_int_equal(rdl__rt_router_add(&R, "PROPFIND", "/x", h_a, NULL), RDL_EINVAL);
    assert_int_equal(rdl__rt_router_add(&R, NULL, "/x", h_a, NULL), RDL_EINVAL);
    assert_int_equal(rdl__rt_router_add(&R, "GET", "/x", NULL, NULL), RDL_EINVAL);

    /* Eight parameters are fine, and all are bound. */
    const char *eight = "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h_9}";
    assert_int_equal(rdl__rt_router_add(&R, "GET", eight, h_a, NULL), 0);
    rt_match_t m;
    const char *p = "/1/2/3/4/5/6/7/8";
    assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_GET, p, strlen(p), &m, NULL, 0), RT_MATCH_OK);
    assert_int_equal(m.nparams, 8);
    assert_string_equal(m.names[7], "h_9");
    assert_memory_equal(m.values[7], "8", 1);

    /* Duplicates: same method and template; another method is a different route. */
    assert_int_equal(rdl__rt_router_add(&R, "GET", "/v1/courses/{id}", h_a, NULL), 0);
    assert_int_equal(rdl__rt_router_add(&R, "GET", "/v1/courses/{id}", h_b, NULL), RDL_EEXIST);
    assert_int_equal(rdl__rt_router_add(&R, "POST", "/v1/courses/{id}", h_a, NULL), 0);

    /* A trailing slash does not bind {id}, and the parameter route does not take "/a/b". */
    assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses/"), "(none)");
    assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses"), "(none)");
    assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses/1/2"), "(none)");
    assert_string_equal(match_tmpl(&R, RDL_METHOD_GET, "/v1/courses/1"), "/v1/courses/{id}");
    rdl__rt_router_free(&R);
}

/* ---- 2. path parameters and query ------------------------------------ */

static void test_params_and_query(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/echo/{word}", h_echo, NULL), 0);
    assert_int_equal(rdl_server_route(srv, "GET", "/files/{path...}", h_echo, NULL), 0);
    assert_int_equal(rdl_server_route(srv, "DELETE", "/method", h_method, NULL), 0);
    assert_int_equal(rdl_server_route(srv, "GET", "/method", h_method, NULL), 0);
    server_start();

    static const struct { const char *target, *body; } cases[] = {
        { "/echo/a%20b", "a b||/echo/{word}|nope-null" },
        { "/echo/%zz", "%zz||/echo/{word}|nope-null" },          /* malformed: kept */
        { "/echo/a%2", "a%2||/echo/{word}|nope-null" },          /* truncated: kept */
        { "/echo/%41%62c", "Abc||/echo/{word}|nope-null" },
        { "/echo/a%2Fb", "a/b||/echo/{word}|nope-null" },        /* an encoded '/' stays in the segment */
        { "/echo/x?q=1&r=%20", "x|q=1&r=%20|/echo/{word}|nope-null" },
        { "/echo/y?", "y||/echo/{word}|nope-null" },
        { "/echo/z?a/b/c", "z|a/b/c|/echo/{word}|nope-null" },  /* '/' in the query is not a segment */
        { "/files/a/b%20c.txt?v=2", "(null)|v=2|/files/{path...}|nope-null" },
    };
    resp_t *r = &resp_buf;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_do(S.addr, "GET", cases[i].target, r);
        assert_int_equal(r->status, 200);
        if (!body_is(r, cases[i].body))
            fail_msg("%s: got '%.*s', want '%s'", cases[i].target, (int)r->body_len, r->body,
                     cases[i].body);
    }
    http_do(S.addr, "GET", "/echo/", r);
    assert_int_equal(r->status, 404);
    http_do(S.addr, "GET", "/echo/a/b", r);
    assert_int_equal(r->status, 404);

    /* Through the server: 405 with Allow, HEAD on the GET route. */
    char allow[96];
    http_do(S.addr, "POST", "/echo/x", r);
    assert_int_equal(r->status, 405);
    assert_true(resp_header(r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD");
    http_do(S.addr, "HEAD", "/echo/x", r);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);

    /* The method travels as the parser's id; the name comes from the one table. */
    char want[32];
    http_do(S.addr, "DELETE", "/method", r);
    snprintf(want, sizeof(want), "%d DELETE", (int)RDL_METHOD_DELETE);
    assert_true(body_is(r, want));
    http_do(S.addr, "GET", "/method", r);
    snprintf(want, sizeof(want), "%d GET", (int)RDL_METHOD_GET);
    assert_true(body_is(r, want));
    http_do(S.addr, "PUT", "/method", r);
    assert_int_equal(r->status, 405);
    assert_true(resp_header(r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "DELETE, GET, HEAD");
    server_stop();
}

/* rest parameters are percent-decoded too */
static void test_rest_param_decoded(void **state)
{
    (void)state;
    assert_int_equal(rdl__rt_router_add(&R, "GET", "/files/{path...}", h_a, NULL), 0);
    rdl_req_t req;
    memset(&req, 0, sizeof(req));
    const char *p = "/files/a/b%20c/%zz";
    assert_int_equal(rdl__rt_router_match(&R, RDL_METHOD_GET, p, strlen(p), &req.match, NULL, 0), RT_MATCH_OK);
    rdl_ctx_init(&req.ctx, 0);
    assert_string_equal(rdl_req_param(&req, "path"), "a/b c/%zz");
    assert_null(rdl_req_param(&req, "other"));
    rdl_ctx_close(&req.ctx);
    rdl__rt_router_free(&R);
}

/* ---- 3. middleware --------------------------------------------------- */

static void test_middleware_order(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    use_mw(srv, &tag1);
    use_mw(srv, &tag2);
    assert_int_equal(rdl_server_route(srv, "GET", "/mw/{id}", h_traced, NULL), 0);
    server_start();

    resp_t *r = &resp_buf;
    char trace[256];
    http_do(S.addr, "GET", "/mw/7", r);
    assert_int_equal(r->status, 200);
    assert_true(body_is(r, "ok"));
    assert_int_equal(wait_count(&G.leaves, 1), 1);
    trace_get(trace, sizeof(trace));
    assert_string_equal(trace, " e1 e2 h b2 b1 l2 l1");
    shared_t g = snapshot();
    assert_string_equal(g.route_seen, "/mw/{id}");
    assert_int_equal(g.leave_status, 200);
    assert_int_equal(g.leave_bytes, 2);

    /* No route: the chain still runs around the runtime's 404. */
    http_do(S.addr, "GET", "/nope", r);
    assert_int_equal(r->status, 404);
    assert_int_equal(wait_count(&G.leaves, 2), 2);
    trace_get(trace, sizeof(trace));
    assert_string_equal(trace, " e1 e2 b2 b1 l2 l1");
    g = snapshot();
    assert_string_equal(g.route_seen, "(null)");
    assert_int_equal(g.leave_status, 404);
    assert_int_equal(g.leave_bytes, r->body_len);
    assert_int_equal(get_int(&G.handler_runs), 1);
    server_stop();
}

static void test_middleware_stops_chain(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    use_mw(srv, &tag1);
    use_mw(srv, &tag2_stops);
    use_mw(srv, &tag3);
    assert_int_equal(rdl_server_route(srv, "GET", "/mw/{id}", h_traced, NULL), 0);
    server_start();

    resp_t *r = &resp_buf;
    http_do(S.addr, "GET", "/mw/7", r);
    assert_int_equal(r->status, 403);
    assert_true(body_is(r, "denied"));
    assert_int_equal(wait_count(&G.leaves, 1), 1);
    char trace[256];
    trace_get(trace, sizeof(trace));
    /* enter3 and the handler never ran; leave only for 2 and 1, whose enter ran */
    assert_string_equal(trace, " e1 e2 b2 b1 l2 l1");
    assert_int_equal(get_int(&G.handler_runs), 0);
    shared_t g = snapshot();
    assert_int_equal(g.leave_status, 403);
    assert_int_equal(g.leave_bytes, 6);
    server_stop();
}

/* ---- 4. streaming ---------------------------------------------------- */

static void test_streaming(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    use_mw(srv, &tag1);
    assert_int_equal(rdl_server_route(srv, "GET", "/stream", h_stream, NULL), 0);
    assert_int_equal(rdl_server_route(srv, "GET", "/hello", h_hello, NULL), 0);
    server_start();

    client_t *c = &clients[0];
    resp_t *r = &resp_buf;
    char v[64];

    /* HTTP/1.1: chunked, and the connection stays usable. */
    assert_true(client_open(c, S.addr));
    assert_true(client_send(c, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(read_response(c, r, false));
    assert_int_equal(r->status, 200);
    assert_true(r->chunked);
    assert_false(resp_header(r, "Content-Length", v, sizeof(v)));
    assert_false(resp_header(r, "Connection", v, sizeof(v)));
    assert_true(body_is(r, "hello world"));
    assert_int_equal(wait_count(&G.leaves, 1), 1);
    shared_t g = snapshot();
    assert_int_equal(g.leave_bytes, 11);
    assert_int_equal(g.stream_rc[0], 0);
    assert_int_equal(g.stream_rc[1], 0);
    assert_int_equal(g.stream_rc[2], 0);
    assert_int_equal(g.stream_rc[3], 0);
    assert_int_equal(g.stream_rc[4], RDL_ESTATE);

    /* HEAD: the head only. The next request on the connection must find no stray body bytes. */
    assert_true(client_send(c, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(read_response(c, r, true));
    assert_int_equal(r->status, 200);
    assert_int_equal(wait_count(&G.leaves, 2), 2);
    g = snapshot();
    assert_int_equal(g.leave_bytes, 0);
    assert_true(client_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    assert_true(read_response(c, r, false));
    assert_int_equal(r->status, 200);
    assert_true(body_is(r, "hello"));
    assert_true(client_wait_closed(c));
    client_close(c);

    /* HTTP/1.0: no chunked coding; the body ends when the server closes. */
    assert_true(client_open(c, S.addr));
    assert_true(client_send(c, "GET /stream HTTP/1.0\r\n\r\n"));
    assert_true(read_response(c, r, false));
    assert_int_equal(r->status, 200);
    assert_false(r->chunked);
    assert_true(r->until_close);
    assert_false(resp_header(r, "Content-Length", v, sizeof(v)));
    assert_true(resp_header(r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_true(body_is(r, "hello world"));
    client_close(c);

    /* HTTP/1.0 asking for keep-alive still gets a close-delimited stream. */
    assert_true(client_open(c, S.addr));
    assert_true(client_send(c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    assert_true(read_response(c, r, false));
    assert_true(r->until_close);
    assert_true(body_is(r, "hello world"));
    client_close(c);
    server_stop();
}

/* ---- 5. offload ------------------------------------------------------ */

static void test_offload_threads(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/offload", h_offload, NULL), 0);
    server_start();

    resp_t *r = &resp_buf;
    http_do(S.addr, "GET", "/offload", r);
    assert_int_equal(r->status, 200);
    assert_true(body_is(r, "done"));
    assert_int_equal(wait_count(&G.dones, 1), 1);
    shared_t g = snapshot();
    assert_int_equal(g.offload_rc[0], 0);
    assert_int_equal(g.works, 1);
    assert_true(g.handler_ctx_ok);
    assert_true(g.work_ctx_ok);
    assert_true(g.done_ctx_ok);
    assert_false(pthread_equal(g.handler_tid, g.work_tid));
    assert_true(pthread_equal(g.handler_tid, g.done_tid));
    assert_int_equal(g.done_send_rc, 0);
    server_stop();
}

static bool wait_depth(rdl_pool_t *pool, uint64_t depth)
{
    uint64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end) {
        rdl_pool_stats_t st;
        rdl_pool_stats(pool, &st);
        if (st.depth == depth)
            return true;
        sleep_ms(1);
    }
    return false;
}

static void test_offload_queue_full(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    o.pool_threads = 1;
    o.pool_queue = 1;
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/block", h_block, NULL), 0);
    server_start();

    client_t *c = clients;
    resp_t *r = &resp_buf;
    for (int i = 0; i < 3; i++)
        assert_true(client_open(&c[i], S.addr));

    /* A runs on the only worker and blocks; B waits in the queue; C finds it full. */
    assert_true(client_send(&c[0], "GET /block?A HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(wait_count(&G.gate_arrived, 1), 1);
    assert_true(client_send(&c[1], "GET /block?B HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(wait_count(&G.offloads, 2), 2);
    shared_t g = snapshot();
    rdl_pool_t *pool = g.pool;
    assert_non_null(pool);
    assert_true(wait_depth(pool, 1));
    assert_true(client_send(&c[2], "GET /block?C HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(read_response(&c[2], r, false));
    assert_int_equal(r->status, 503);
    char v[64];
    assert_true(resp_header(r, "Retry-After", v, sizeof(v)));
    assert_true(body_has(r, "\"code\":\"overloaded\""));
    assert_int_equal(wait_count(&G.offloads, 3), 3);
    g = snapshot();
    assert_int_equal(g.offload_rc[0], 0);
    assert_int_equal(g.offload_rc[1], 0);
    assert_int_equal(g.offload_rc[2], RDL_EBUSY);
    assert_false(g.offload_answered[1]);
    assert_true(g.offload_answered[2]);            /* RDL_EBUSY: the runtime has answered */
    assert_int_equal(g.works, 0);
    rdl_pool_stats_t st;
    rdl_pool_stats(pool, &st);
    assert_int_equal(st.rejected, 1);

    /* Release: both accepted requests complete; C's work never ran. */
    gate_open();
    for (int i = 0; i < 2; i++) {
        assert_true(read_response(&c[i], r, false));
        assert_int_equal(r->status, 200);
        assert_true(body_is(r, "released"));
    }
    assert_int_equal(wait_count(&G.dones, 2), 2);
    g = snapshot();
    assert_int_equal(g.works, 2);
    assert_int_equal(g.gate_arrived, 2);
    assert_int_equal(g.works_canceled, 0);
    assert_int_equal(g.done_send_rc, 0);
    for (int i = 0; i < 3; i++)
        client_close(&c[i]);
    server_stop();
}

/* ---- 5b. connection timeouts moved lazily ------------------------------- */

/* A server with GET /hello and the given header and idle timeouts; one keep-alive client on it. */
static client_t *hello_server(uint64_t header_ms, uint64_t idle_ms)
{
    rdl_server_opts_t o;
    test_opts(&o);
    o.header_timeout_ms = header_ms;
    o.idle_timeout_ms = idle_ms;
    o.request_timeout_ms = 5000;
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/hello", h_hello, NULL), 0);
    server_start();
    assert_true(client_open(&clients[0], S.addr));
    return &clients[0];
}

static int hello_status(client_t *c, const char *req)
{
    assert_true(client_send(c, req));
    assert_true(read_response(c, &resp_buf, false));
    return resp_buf.status;
}

#define HELLO "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"

/*
 * The connection's timer is only moved to an earlier deadline; a later one is
 * written down and the timer, firing early, is set again for the rest. So a
 * timer set for the first-request timeout (300 ms) must not close a
 * connection whose idle timeout (1 s) has not passed, and an idle connection
 * must still close once its idle time has passed.
 */
static void test_timeouts_deferred(void **state)
{
    (void)state;
    client_t *c = hello_server(300, 1000);
    assert_int_equal(hello_status(c, HELLO), 200);
    usleep(600 * 1000);
    assert_int_equal(hello_status(c, HELLO), 200);

    /* Idle past 1 s: closed (the recv waits WAIT_MS at most), and not before the idle timeout. */
    uint64_t t0 = mono_ms();
    assert_true(client_wait_closed(c));
    assert_true(mono_ms() - t0 >= 900);
    client_close(c);
    server_stop();
}

/* An earlier deadline moves the timer: the next request's header timeout fires long before the idle one. */
static void test_timeouts_earlier_deadline(void **state)
{
    (void)state;
    client_t *c = hello_server(300, 60000);
    assert_int_equal(hello_status(c, HELLO), 200);
    usleep(500 * 1000);         /* the first-request timer has fired: the timer is set for the idle deadline */
    uint64_t t0 = mono_ms();
    /* within WAIT_MS: not at the 60 s idle deadline the timer was set for */
    assert_int_equal(hello_status(c, "GET /hello HTTP/1.1\r\n"), 408);
    assert_true(mono_ms() - t0 >= 250);
    client_close(c);
    server_stop();
}

/* ---- 6. request timeout ---------------------------------------------- */

/*
 * The pool refuses because it is shutting down: nothing is answered, the
 * offload says so (RDL_ECANCELED, not RDL_EBUSY), and the handler's own
 * answer reaches the client, not a "queue full" 503.
 */
static void test_offload_pool_closing(void **state)
{
    (void)state;
    rdl_pool_opts_t po = { .threads = 1, .queue_max = 1000, .name = "closing" };
    rdl_pool_t *closing;
    assert_int_equal(rdl_pool_new(&po, &closing), 0);
    static rdl_pool_task_t blocker, probes[1000];
    blocker = (rdl_pool_task_t){ .work = pool_gate_work, .done = pool_noop_done };
    assert_int_equal(rdl_pool_submit(closing, &blocker, NULL), 0);
    assert_int_equal(wait_count(&G.gate_arrived, 1), 1);
    pthread_t freer;
    assert_int_equal(pthread_create(&freer, NULL, pool_free_main, closing), 0);
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        probes[i] = (rdl_pool_task_t){ .work = pool_noop_work, .done = pool_noop_done };
        rc = rdl_pool_submit(closing, &probes[i], NULL);
        if (rc == 0)
            sleep_ms(1);
    }
    assert_int_equal(rc, RDL_ESTATE);              /* the pool is stopping now */

    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/closing", h_pool_closing, closing), 0);
    server_start();
    resp_t *r = &resp_buf;
    http_do(S.addr, "GET", "/closing", r);
    assert_int_equal(r->status, 503);
    assert_true(body_has(r, "the handler says: shutting down"));
    assert_false(body_has(r, "overloaded"));
    shared_t g = snapshot();
    assert_int_equal(g.offload_rc[0], RDL_ECANCELED);
    assert_false(g.offload_answered[0]);
    assert_int_equal(g.works, 0);
    server_stop();
    gate_open();
    assert_int_equal(pthread_join(freer, NULL), 0);
}


static void test_request_timeout(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    o.request_timeout_ms = 200;
    rdl_server_t *srv = server_new(&o);
    use_mw(srv, &tag1);
    assert_int_equal(rdl_server_route(srv, "GET", "/block", h_block, NULL), 0);
    server_start();

    client_t *c = &clients[0];
    resp_t *r = &resp_buf;
    assert_true(client_open(c, S.addr));
    assert_true(client_send(c, "GET /block?A HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(read_response(c, r, false));
    assert_int_equal(r->status, 503);
    char v[64];
    assert_true(resp_header(r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_true(resp_header(r, "Retry-After", v, sizeof(v)));
    assert_true(body_has(r, "\"code\":\"timeout\""));
    assert_int_equal(get_int(&G.dones), 0);

    /* The work finishes late: done runs, its answer is refused, the connection then closes. */
    gate_open();
    assert_int_equal(wait_count(&G.dones, 1), 1);
    assert_int_equal(wait_count(&G.leaves, 1), 1);
    shared_t g = snapshot();
    assert_int_equal(g.offload_rc[0], 0);
    assert_int_equal(g.done_send_rc, RDL_ESTATE);
    assert_int_equal(g.works_canceled, 1);       /* the deadline canceled the ctx */
    assert_int_equal(g.leave_status, 503);
    assert_true(client_wait_closed(c));
    client_close(c);
    server_stop();
}

/* ---- 7. readiness ---------------------------------------------------- */

static void test_readiness(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/hello", h_hello, NULL), 0);
    assert_int_equal(rdl_server_on_startup(srv, "warm-db", step_block, NULL), 0);
    server_start();
    assert_int_equal(wait_count(&G.gate_arrived, 1), 1);

    resp_t *r = &resp_buf;
    http_do(S.admin, "GET", "/readyz", r);
    assert_int_equal(r->status, 503);
    assert_true(body_has(r, "\"pending\":[\"warm-db\"]"));
    assert_true(body_has(r, "\"status\":\"starting\""));
    assert_false(rdl_server_ready(srv));
    http_do(S.admin, "GET", "/livez", r);
    assert_int_equal(r->status, 200);
    http_do(S.addr, "GET", "/hello", r);          /* listening before ready */
    assert_int_equal(r->status, 200);

    gate_open();
    uint64_t end = mono_ms() + WAIT_MS;
    do {
        http_do(S.admin, "GET", "/readyz", r);
        if (r->status == 200)
            break;
        sleep_ms(5);
    } while (mono_ms() < end);
    assert_int_equal(r->status, 200);
    assert_true(body_has(r, "ready"));
    assert_true(rdl_server_ready(srv));
    server_stop();
}

/* Polls /readyz (bounded) until it answers want; returns the last status. */
static int readyz_until(int want, resp_t *r)
{
    uint64_t end = mono_ms() + WAIT_MS;
    do {
        http_do(S.admin, "GET", "/readyz", r);
        if (r->status == want)
            break;
        sleep_ms(5);
    } while (mono_ms() < end);
    return r->status;
}

/* rdl_server_set_ready: ANDed with start-up and drain, from any thread, before run too. */
static void test_set_ready(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    o.drain_delay_ms = 3000;                      /* long enough to look at a draining server */
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_on_startup(srv, "warm-db", step_block, NULL), 0);
    rdl_server_set_ready(srv, false);             /* before run: held off from the start */
    server_start();
    assert_int_equal(wait_count(&G.gate_arrived, 1), 1);
    resp_t *r = &resp_buf;
    http_do(S.admin, "GET", "/readyz", r);
    assert_int_equal(r->status, 503);
    assert_true(body_has(r, "\"status\":\"starting\""));

    /* Start-up done, but the application still says no. */
    gate_open();
    uint64_t end = mono_ms() + WAIT_MS;
    while (!atomic_load(&srv->ready) && mono_ms() < end)
        sleep_ms(1);
    assert_true(atomic_load(&srv->ready));
    http_do(S.admin, "GET", "/readyz", r);
    assert_int_equal(r->status, 503);
    assert_true(body_has(r, "\"status\":\"not_ready\""));
    assert_false(rdl_server_ready(srv));

    rdl_server_set_ready(srv, true);
    assert_true(rdl_server_ready(srv));
    assert_int_equal(readyz_until(200, r), 200);
    rdl_server_set_ready(srv, false);
    rdl_server_set_ready(srv, false);             /* no change: no second log line */
    assert_int_equal(readyz_until(503, r), 503);
    assert_true(body_has(r, "not_ready"));
    rdl_server_set_ready(srv, true);
    assert_int_equal(readyz_until(200, r), 200);

    /* Draining: the application's yes does not bring it back. */
    rdl_server_shutdown(srv);
    assert_int_equal(readyz_until(503, r), 503);
    assert_true(body_has(r, "\"status\":\"draining\""));
    rdl_server_set_ready(srv, true);
    assert_false(rdl_server_ready(srv));
    http_do(S.admin, "GET", "/readyz", r);
    assert_int_equal(r->status, 503);
    assert_int_equal(server_join(), 0);
}

/* rdl_server_set_not_ready: /readyz names the reason while held, not after; liveness stays. */
static void test_set_not_ready_reason(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    server_start();
    resp_t *r = &resp_buf;
    assert_int_equal(readyz_until(200, r), 200);
    rdl_server_set_not_ready(srv, "storage_full");
    assert_false(rdl_server_ready(srv));
    assert_int_equal(readyz_until(503, r), 503);
    assert_true(body_has(r, "\"status\":\"not_ready\""));
    assert_true(body_has(r, "\"reason\":\"storage_full\""));
    http_do(S.admin, "GET", "/livez", r);
    assert_int_equal(r->status, 200);
    rdl_server_set_ready(srv, true);
    assert_int_equal(readyz_until(200, r), 200);
    rdl_server_set_ready(srv, false);             /* no reason this time: none shown */
    assert_int_equal(readyz_until(503, r), 503);
    assert_false(body_has(r, "reason"));
    rdl_server_shutdown(srv);
    assert_int_equal(server_join(), 0);
}

static void test_startup_failure(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    int before = 0, after = 0;
    assert_int_equal(rdl_server_on_startup(srv, "first", step_ok, &before), 0);
    assert_int_equal(rdl_server_on_startup(srv, "broken", step_fail, NULL), 0);
    assert_int_equal(rdl_server_on_startup(srv, "never", step_ok, &after), 0);
    server_spawn();
    assert_int_equal(server_join(), 1);
    assert_int_equal(get_int(&before), 1);
    assert_int_equal(get_int(&after), 0);
}

/*
 * rdl_server_shutdown is "any thread", so a watchdog may call it after the
 * server already stopped (here: start-up failed). Run in a child process: if
 * it aborts, only the child dies and this test fails.
 */
static void test_shutdown_after_stop(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rdl_server_opts_t o;
        test_opts(&o);
        rdl_server_t *srv = NULL;
        if (rdl_server_new(&o, &srv) != 0 || rdl_server_on_startup(srv, "broken", step_fail, NULL) != 0)
            _exit(2);
        int rc = rdl_server_run(srv, NULL);
        rdl_server_shutdown(srv);
        rdl_server_free(srv);
        _exit(rc == 1 ? 0 : 3);
    }
    int status = 0;
    pid_t got = 0;
    uint64_t end = mono_ms() + JOIN_MS;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && mono_ms() < end)
        sleep_ms(5);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child did not finish within %d ms", JOIN_MS);
    }
    assert_int_equal(got, pid);
    if (WIFSIGNALED(status))
        fail_msg("rdl_server_shutdown after rdl_server_run returned killed the process (signal %d)",
                 WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- 8. response header validation ----------------------------------- */

static void test_resp_header_validation(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/headers", h_headers, NULL), 0);
    server_start();

    resp_t *r = &resp_buf;
    http_do(S.addr, "GET", "/headers", r);
    assert_int_equal(r->status, 200);
    assert_int_equal(wait_count(&G.handler_runs, 1), 1);
    shared_t g = snapshot();
    for (int i = 0; i < NCASES; i++)
        if (g.hdr_rc[i] != hdr_cases[i].want)
            fail_msg("case %d (%s): got %d, want %d", i, hdr_cases[i].name, g.hdr_rc[i],
                     hdr_cases[i].want);
    assert_int_equal(g.hdr_late_rc, RDL_ESTATE);

    char v[64];
    assert_true(resp_header(r, "X-Ok", v, sizeof(v)));
    assert_string_equal(v, "yes");
    assert_true(resp_header(r, "X-Tab", v, sizeof(v)));
    assert_string_equal(v, "a\tb");
    assert_true(resp_header(r, "X-Empty", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(resp_header(r, "X-Utf8", v, sizeof(v)));
    assert_string_equal(v, "caf\xc3\xa9");
    assert_null(strstr(r->head, "X-Del"));
    assert_null(strstr(r->head, "X-Ctl"));
    assert_null(strstr(r->head, "Injected"));
    assert_null(strstr(r->head, "X-Val"));
    assert_null(strstr(r->head, "X-Late"));
    server_stop();
}

/* ---- 9. client disconnect while work is offloaded --------------------- */

static void test_disconnect_cancels(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_server_t *srv = server_new(&o);
    use_mw(srv, &tag1);
    assert_int_equal(rdl_server_route(srv, "GET", "/cancel", h_cancel, NULL), 0);
    server_start();

    client_t *c = &clients[0];
    assert_true(client_open(c, S.addr));
    assert_true(client_send(c, "GET /cancel HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(wait_count(&G.gate_arrived, 1), 1);     /* the work is running */
    client_abort(c);        /* a reset: the connection is lost, not half-closed */

    /* done still runs; its answer reaches no one, so leave must see 499, not done's 200 */
    assert_int_equal(wait_count(&G.dones, 1), 1);
    assert_int_equal(wait_count(&G.leaves, 1), 1);
    shared_t g = snapshot();
    assert_int_equal(g.offload_rc[0], 0);
    assert_int_equal(g.works, 1);
    assert_int_equal(g.works_canceled, 1);
    assert_int_equal(g.leave_status, 499);
    server_stop();
}

/* ---- default thread count from the cgroup CPU quota ---------------- */

/*
 * The log red line's wiring: a made request id echoed, the server's logger
 * counting the access line, its counters in the default registry while the
 * server lives and gone after, /debug/log on the admin listener.
 */
static void test_log_wiring(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    rdl_log_part_opts_t *lo = rdl_server_opts_part(&o, &rdl_part_log);
    lo->sink = RDL_LOG_FILE;
    lo->file = "/dev/null";
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/hello", h_hello, NULL), 0);
    server_start();
    resp_t *r = &resp_buf;
    http_do(S.addr, "GET", "/hello", r);
    assert_int_equal(r->status, 200);
    const char *id = strcasestr(r->head, "\r\nX-Request-ID: ");
    assert_non_null(id);
    assert_int_equal(strcspn(id + 16, "\r"), 32);          /* 32 hex digits, made */

    rdl_logger_t *lg = rdl_server_logger(srv);
    assert_non_null(lg);
    assert_ptr_equal(rdl_log_default(), lg);
    rdl_log_stats_t st;
    uint64_t end = mono_ms() + WAIT_MS;
    for (;;) {                             /* the access line is written as the exchange ends */
        rdl_log_stats(lg, &st);
        if (st.lines >= 3 || mono_ms() >= end)
            break;
        sleep_ms(1);
    }
    assert_true(st.lines >= 3);            /* listening, ready, the access line */
    rdl_buf_t b;
    rdl_buf_init(&b);
    assert_int_equal(rdl_metrics_expose(NULL, RDL_FMT_TEXT, &b), 0);
    assert_non_null(strstr(b.data, "# TYPE log_dropped_total counter\nlog_dropped_total 0\n"));
    assert_non_null(strstr(b.data, "\nlog_lines_total "));
    http_do(S.admin, "GET", "/debug/log", r);
    assert_int_equal(r->status, 200);
    assert_true(body_has(r, "\"dropped\":0"));
    server_stop();                         /* rdl_server_free: the collector goes with it */
    rdl_buf_reset(&b);
    assert_int_equal(rdl_metrics_expose(NULL, RDL_FMT_TEXT, &b), 0);
    assert_null(strstr(b.data, "log_lines_total"));
    assert_null(rdl_log_set_default(NULL));  /* the default it replaced (built-in) is back */
    rdl_buf_close(&b);
}

/* ---- 10b. a client that stops reading (slow read) ---------------------- */

#define BIG_BODY (8u << 20)     /* more than the kernel's send and receive buffers hold */

static void h_big(rdl_req_t *req, void *arg)
{
    (void)arg;
    char *b = malloc(BIG_BODY);
    if (!b) {
        rdl_resp_error(req, 500, "oom", "no memory");
        return;
    }
    memset(b, 'x', BIG_BODY);
    rdl_resp_send(req, 200, "application/octet-stream", b, BIG_BODY);
    free(b);
}

/* Reads until EOF, a reset or a timeout; step > 0: that many bytes, then a pause of pause_ms. */
static uint64_t drain_socket(int fd, size_t step, long pause_ms, uint64_t want)
{
    static char buf[1 << 16];
    uint64_t total = 0, in_step = 0;
    while (total < want) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        total += (uint64_t)n;
        in_step += (uint64_t)n;
        if (step && in_step >= step) {
            in_step = 0;
            sleep_ms(pause_ms);
        }
    }
    return total;
}

static uint64_t send_timeouts(void)
{
    return atomic_load(&S.srv->send_timeouts);
}

/*
 * Output waits on a client: one that reads nothing is closed after
 * timeouts.send without progress (before: held forever, no timer ran); one
 * that reads slowly but steadily gets its whole answer.
 */
static void test_send_timeout(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    o.max_output_buffer = 4096;
    o.send_timeout_ms = 1000;                    /* well above a loaded test machine's stalls */
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/big", h_big, NULL), 0);
    server_start();

    client_t *c = &clients[0];
    assert_true(client_open_rcvbuf(c, S.addr, 4096));
    assert_true(client_send(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    uint64_t end = mono_ms() + WAIT_MS;
    while (send_timeouts() < 1 && mono_ms() < end)
        sleep_ms(10);
    assert_int_equal(send_timeouts(), 1);
    uint64_t got = drain_socket(c->fd, 0, 0, 2ull * BIG_BODY);
    assert_true(got < BIG_BODY);                 /* cut: the rest was never sent */
    client_close(c);

    c = &clients[1];
    assert_true(client_open(c, S.addr));
    assert_true(client_send(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    got = drain_socket(c->fd, 256u << 10, 100, BIG_BODY + 100);  /* ~10 steps per period */
    assert_true(got > BIG_BODY);                 /* the head and the whole body */
    assert_int_equal(send_timeouts(), 1);
    client_close(c);
    server_stop();
}

/*
 * Stalled output is bounded per process: past limits.max_output_total the
 * connection that stalled first is closed; the later one is still served.
 */
static void test_output_total(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    o.threads = 1;                               /* the whole bound on one thread */
    o.max_output_buffer = 4096;
    o.max_output_total = 12u << 20;              /* one stalled 8 MiB answer fits, two do not */
    o.send_timeout_ms = 20000;                   /* not the send timeout: the bound */
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/big", h_big, NULL), 0);
    server_start();

    client_t *a = &clients[0], *b = &clients[1];
    assert_true(client_open_rcvbuf(a, S.addr, 4096));
    assert_true(client_send(a, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    sleep_ms(300);                               /* a's answer is written and stalls */
    assert_int_equal(atomic_load(&srv->output_sheds), 0);
    assert_true(client_open_rcvbuf(b, S.addr, 4096));
    assert_true(client_send(b, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    uint64_t end = mono_ms() + WAIT_MS;
    while (atomic_load(&srv->output_sheds) < 1 && mono_ms() < end)
        sleep_ms(10);
    assert_int_equal(atomic_load(&srv->output_sheds), 1);
    assert_true(drain_socket(b->fd, 0, 0, BIG_BODY + 100) > BIG_BODY);   /* b is whole */
    assert_true(drain_socket(a->fd, 0, 0, 2ull * BIG_BODY) < BIG_BODY); /* a was cut */
    assert_int_equal(atomic_load(&srv->output_sheds), 1);
    assert_int_equal(send_timeouts(), 0);
    client_close(a);
    client_close(b);
    server_stop();
}

/* ---- 11. admin plane: changes need the bearer token -------------------- */

static char auth_dir[64];                /* scratch: the token file and the log file */

static void auth_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", auth_dir, name);
}

/* Writes text to name in auth_dir through a rename, as a rotated Secret appears. */
static void auth_write(const char *name, const char *text)
{
    char path[128], tmp[140];
    auth_path(path, sizeof(path), name);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void auth_setup_dir(void)
{
    snprintf(auth_dir, sizeof(auth_dir), "/tmp/rdl-auth-XXXXXX");
    assert_non_null(mkdtemp(auth_dir));
}

static void auth_cleanup_dir(void)
{
    const char *names[] = { "token", "log" };
    char path[128];
    for (size_t i = 0; i < 2; i++) {
        auth_path(path, sizeof(path), names[i]);
        unlink(path);
    }
    rmdir(auth_dir);
}

/* PUT /debug/loglevel with an Authorization value (NULL: none). */
static void admin_put(const char *authorization, const char *level, resp_t *r)
{
    client_t *c = &clients[3];
    char req[512], auth[256] = "";
    if (authorization)
        snprintf(auth, sizeof(auth), "Authorization: %s\r\n", authorization);
    snprintf(req, sizeof(req), "PUT /debug/loglevel HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
             "%sContent-Length: %zu\r\n\r\n%s", auth, strlen(level), level);
    bool ok = client_open(c, S.admin) && client_send(c, req) && read_response(c, r, false);
    client_close(c);
    assert_true(ok);
}

static void assert_unauthorized(const resp_t *r)
{
    char v[96];
    assert_int_equal(r->status, 401);
    assert_true(resp_header(r, "WWW-Authenticate", v, sizeof(v)));
    assert_string_equal(v, "Bearer realm=\"redline-admin\"");
}

static void assert_level(const char *want)
{
    resp_t *r = &resp_buf;
    char body[64];
    http_do(S.admin, "GET", "/debug/loglevel", r);  /* reading stays open */
    assert_int_equal(r->status, 200);
    snprintf(body, sizeof(body), "\"level\":\"%s\"", want);
    assert_true(body_has(r, body));
}

static void test_admin_token(void **state)
{
    (void)state;
    auth_setup_dir();
    char token_path[128], log_path[128];
    auth_path(token_path, sizeof(token_path), "token");
    auth_path(log_path, sizeof(log_path), "log");
    auth_write("token", "first-Secret-42\n");      /* one trailing newline: trimmed */
    rdl_server_opts_t o;
    test_opts(&o);
    o.admin_token_file = token_path;
    rdl_log_part_opts_t *lo = rdl_server_opts_part(&o, &rdl_part_log);
    lo->sink = RDL_LOG_FILE;
    lo->file = log_path;
    server_new(&o);
    server_start();
    resp_t *r = &resp_buf;

    admin_put(NULL, "debug", r);
    assert_unauthorized(r);
    admin_put("Bearer wrong-Secret-42", "debug", r);
    assert_unauthorized(r);
    admin_put("Bearer first-Secret-4", "debug", r);          /* a prefix */
    assert_unauthorized(r);
    admin_put("Bearer first-Secret-42\t", "debug", r);       /* HTAB is trimmed as OWS */
    assert_int_equal(r->status, 200);
    admin_put("Basic Zmlyc3Q6U2VjcmV0", "warn", r);
    assert_unauthorized(r);
    assert_level("debug");
    admin_put("Bearer first-Secret-42", "info", r);
    assert_int_equal(r->status, 200);
    assert_true(body_has(r, "\"previous\":\"debug\""));
    assert_level("info");

    /* The Secret rotates: the new token works within a second or so, the old one no more. */
    auth_write("token", "second-Secret-77");
    sleep_ms(1100);
    admin_put("Bearer first-Secret-42", "debug", r);
    assert_unauthorized(r);
    admin_put("Bearer second-Secret-77", "debug", r);
    assert_int_equal(r->status, 200);
    assert_level("debug");

    /* The file goes away: every change is refused, none with the old token. */
    unlink(token_path);
    sleep_ms(1100);
    admin_put("Bearer second-Secret-77", "info", r);
    assert_unauthorized(r);
    assert_level("debug");
    server_stop();

    /* On record: the refusals and the change with its peer; never a token. */
    char *log = NULL;
    size_t len = 0;
    assert_int_equal(rdl_read_file(log_path, 1 << 20, &log, &len, NULL), 0);
    bool refused = strstr(log, "\"msg\":\"admin change refused\"") != NULL;
    bool changed = strstr(log, "\"msg\":\"log level changed\"") != NULL &&
                   strstr(log, "\"peer\":\"127.0.0.1:") != NULL;
    bool unusable = strstr(log, "admin token unusable") != NULL;
    bool leaked = strstr(log, "Secret-") != NULL || strstr(log, "Zmlyc3") != NULL ||
                  strstr(log, "Bearer") != NULL;
    free(log);
    auth_cleanup_dir();
    assert_true(refused);
    assert_true(changed);
    assert_true(unusable);
    assert_false(leaked);
}


/* ---- 12. listeners: one address, one plane, one process ------------------ */

/* A listening socket like another process's server would hold (SO_REUSEPORT too); its port. */
static int listen_like_a_server(const char *ip, int *fd)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    int one = 1;
    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    assert_int_equal(bind(*fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(*fd, 16), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&sa, &sl), 0);
    return ntohs(sa.sin_port);
}

/* A port nothing listens on now. */
static int free_port(void)
{
    int fd;
    int port = listen_like_a_server("127.0.0.1", &fd);
    close(fd);
    return port;
}

/*
 * Runs a server on these listeners, asked to stop before it starts: the
 * error it refuses with (code in err->code), or 0 when it started and drained.
 */
static int run_once(char *listen, char *admin, rdl_error_t *err)
{
    rdl_server_opts_t o;
    test_opts(&o);
    o.listen = listen;
    o.admin_listen = admin;
    rdl_server_t *srv = server_new(&o);
    rdl_server_shutdown(srv);
    memset(err, 0, sizeof(*err));
    int rc = rdl_server_run(srv, err);
    rdl_server_free(srv);
    S.srv = NULL;
    err->code = rc;
    return rc;
}

/*
 * The app and admin listeners on one address (before: both bound through
 * SO_REUSEPORT and the planes answered each other's requests at random): a
 * configuration error naming both keys, a wildcard covering the other too.
 */
static void test_planes_share_address(void **state)
{
    (void)state;
    int p = free_port();
    char a[32], b[32], any[32], v6any[32];
    snprintf(a, sizeof(a), "127.0.0.1:%d", p);
    snprintf(b, sizeof(b), "127.0.0.1:%d", p);
    snprintf(any, sizeof(any), "0.0.0.0:%d", p);
    snprintf(v6any, sizeof(v6any), "[::]:%d", p);
    char fresh[] = "127.0.0.1:0", fresh2[] = "127.0.0.1:0";
    char *pairs[][2] = { { a, b }, { any, a }, { a, any }, { v6any, a } };
    rdl_error_t err;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        assert_int_equal(run_once(pairs[i][0], pairs[i][1], &err), RDL_EINVAL);
        assert_string_equal(err.key, "server.admin_listen");
        assert_non_null(strstr(err.msg, "server.listen"));
        assert_non_null(strstr(err.msg, "server.admin_listen"));
    }
    assert_int_equal(run_once(fresh, fresh2, &err), 0);      /* two fresh ports */
}

/*
 * A port another process listens on (before: joined its SO_REUSEPORT group
 * and took half its connections): refused, naming the address and the cause,
 * also when the other one holds the wildcard address.
 */
static void test_port_taken_refused(void **state)
{
    (void)state;
    char fresh[] = "127.0.0.1:0";
    int other;
    int p = listen_like_a_server("127.0.0.1", &other);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", p);
    rdl_error_t err;
    int rc = run_once(addr, fresh, &err);
    int rc_admin = rc == RDL_EIO ? run_once(fresh, addr, &err) : rc;
    close(other);
    assert_int_equal(rc, RDL_EIO);
    assert_int_equal(rc_admin, RDL_EIO);
    assert_string_equal(err.key, "server.admin_listen");
    assert_non_null(strstr(err.msg, addr));
    assert_non_null(strstr(err.msg, "another process listens on it"));

    p = listen_like_a_server("0.0.0.0", &other);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", p);
    rc = run_once(addr, fresh, &err);
    close(other);
    assert_int_equal(rc, RDL_EIO);
    assert_string_equal(err.key, "server.listen");
    assert_int_equal(run_once(addr, fresh, &err), 0);    /* free again: it starts */
}

/* No token file: changes are refused (403) unless allowed outright; reads stay open. */
static void test_admin_without_token_file(void **state)
{
    (void)state;
    for (int allow = 0; allow < 2; allow++) {
        memset(&S, 0, sizeof(S));
        rdl_server_opts_t o;
        test_opts(&o);
        o.admin_allow_unauthenticated = allow;
        server_new(&o);
        server_start();
        resp_t *r = &resp_buf;
        admin_put("Bearer anything", "debug", r);
        if (allow) {
            assert_int_equal(r->status, 200);
            assert_level("debug");
        } else {
            char v[96];
            assert_int_equal(r->status, 403);
            assert_true(body_has(r, "admin.token_file"));
            assert_false(resp_header(r, "WWW-Authenticate", v, sizeof(v)));
            assert_level("info");
        }
        http_do(S.admin, "GET", "/debug/log", r);
        assert_int_equal(r->status, 200);
        server_stop();
    }
}

/* ---- 13. connection limits: refused with an answer, counted -------------- */

/* The value of one exposed series ("name{labels}") on the default registry; -1: absent. */
static double exposed(const char *series)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    double v = -1;
    char want[160];
    snprintf(want, sizeof(want), "\n%s ", series);
    if (rdl_metrics_expose(NULL, RDL_FMT_TEXT, &b) == 0 && b.data) {
        const char *at = strstr(b.data, want);
        if (at)
            v = strtod(at + strlen(want), NULL);
    }
    rdl_buf_close(&b);
    return v;
}

static bool wait_exposed(const char *series, double want)
{
    uint64_t end = mono_ms() + WAIT_MS;
    while (exposed(series) != want && mono_ms() < end)
        sleep_ms(5);
    return exposed(series) == want;
}

/*
 * server.max_connections is per process (before: per I/O thread, so two
 * threads took 4 with a limit of 2, and the ones over it got a bare close
 * with no count): the third client gets a 503 with Retry-After and
 * Connection: close, the refusal is counted, the gauge shows the open ones,
 * and a freed slot takes a new client.
 */
static void test_max_connections_per_process(void **state)
{
    (void)state;
    rdl_server_opts_t o;
    test_opts(&o);
    o.max_connections = 2;
    rdl_server_t *srv = server_new(&o);
    assert_int_equal(rdl_server_route(srv, "GET", "/hello", h_hello, NULL), 0);
    server_start();
    const char *limit = "http_server_connections_rejected_total{reason=\"limit\"}";
    const char *open = "http_server_connections{plane=\"app\"}";
    double before = exposed(limit);
    resp_t *r = &resp_buf;
    for (int i = 0; i < 2; i++) {                /* each accepted: its answer came back */
        assert_true(client_open(&clients[i], S.addr));
        assert_true(client_send(&clients[i], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_true(read_response(&clients[i], r, false));
        assert_int_equal(r->status, 200);
    }
    for (int k = 0; k < 3; k++) {                /* whichever thread takes it */
        client_t *c = &clients[2];
        assert_true(client_open(c, S.addr));
        assert_true(read_response(c, r, false));
        assert_int_equal(r->status, 503);
        char v[32];
        assert_true(resp_header(r, "Retry-After", v, sizeof(v)));
        assert_string_equal(v, "1");
        assert_true(resp_header(r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "close");
        assert_true(client_wait_closed(c));
        client_close(c);
    }
    assert_true(before <= 0);
    assert_true(wait_exposed(limit, 3));
    assert_true(wait_exposed(open, 2));
    http_do(S.admin, "GET", "/healthz", r);      /* the admin plane has its own count */
    assert_int_equal(r->status, 200);

    client_close(&clients[0]);
    assert_true(wait_exposed(open, 1));
    assert_true(client_open(&clients[0], S.addr));
    assert_true(client_send(&clients[0], "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(read_response(&clients[0], r, false));
    assert_int_equal(r->status, 200);
    assert_true(exposed(limit) == 3);
    server_stop();
}


static void test_cpu_quota(void **state)
{
    (void)state;
    assert_int_equal(rdl__rt_cpu_quota("max", "100000"), 0);      /* v2: no limit */
    assert_int_equal(rdl__rt_cpu_quota("-1", "100000"), 0);       /* v1: no limit */
    assert_int_equal(rdl__rt_cpu_quota("200000", "100000"), 2);
    assert_int_equal(rdl__rt_cpu_quota("150000", "100000"), 2);   /* 1.5 CPUs: round up */
    assert_int_equal(rdl__rt_cpu_quota("50000\n", "100000\n"), 1); /* as read from the files */
    assert_int_equal(rdl__rt_cpu_quota("100000", "0"), 0);
    assert_int_equal(rdl__rt_cpu_quota("junk", "100000"), 0);
    assert_int_equal(rdl__rt_cpu_quota(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_router_specificity, router_teardown),
        cmocka_unit_test_teardown(test_router_left_to_right, router_teardown),
        cmocka_unit_test_teardown(test_router_methods, router_teardown),
        cmocka_unit_test_teardown(test_router_explicit_head, router_teardown),
        cmocka_unit_test_teardown(test_router_rejects, router_teardown),
        cmocka_unit_test_teardown(test_rest_param_decoded, router_teardown),
        cmocka_unit_test_setup_teardown(test_params_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_middleware_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_middleware_stops_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offload_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offload_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offload_pool_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_not_ready_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_total, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_without_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts_earlier_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_after_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resp_header_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_wiring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planes_share_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_taken_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_per_process, setup, teardown),
        cmocka_unit_test(test_cpu_quota),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
