/*
 * bench_breaker.c: what resilience costs on the call path.
 *
 * 1. Breaker acquire+record, ns per call, 1 and 2 threads on one breaker,
 *    against a mutex-based breaker (the obvious design: a ring and counters
 *    under one pthread mutex) measured in the same run.
 * 2. An outbound call through the whole stack (breaker -> bulkhead -> retry ->
 *    libcurl multi on a libuv loop) against a bare libcurl easy call
 *    (curl_easy_perform, same keep-alive connection), sequential GETs to a
 *    loopback server in this process.
 *
 *   bench_breaker [iterations] [http_requests]
 */
#define _GNU_SOURCE             /* memmem */
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redline/breaker.h"
#include "redline/client.h"
#include "bench_util.h"

/* ---- the mutex-based peer ---------------------------------------------------- */

typedef struct mutex_breaker {
    pthread_mutex_t mu;
    int state;
    uint8_t ring[100];
    uint32_t pos, calls, failed;
} mutex_breaker_t;

static int mb_acquire(mutex_breaker_t *b)
{
    pthread_mutex_lock(&b->mu);
    int ok = b->state == 0;
    pthread_mutex_unlock(&b->mu);
    return ok ? 0 : -1;
}

static void mb_record(mutex_breaker_t *b, int failed)
{
    pthread_mutex_lock(&b->mu);
    uint8_t old = b->ring[b->pos];
    if (!old)
        b->calls++;
    if (old == 2)
        b->failed--;
    b->ring[b->pos] = failed ? 2 : 1;
    b->failed += failed ? 1u : 0u;
    b->pos = (b->pos + 1) % 100;
    if (b->calls >= 100 && b->failed * 2 >= b->calls)
        b->state = 1;
    pthread_mutex_unlock(&b->mu);
}

/* ---- breaker loops -------------------------------------------------------------- */

typedef struct loop_arg {
    rdl_breaker_t *b;
    mutex_breaker_t *mb;
    long n;
    atomic_int *go;
    double ns;
} loop_arg_t;

static void *ours(void *p)
{
    loop_arg_t *a = p;
    while (!atomic_load(a->go))
        ;
    uint64_t t0 = rdl_now_ns();
    for (long i = 0; i < a->n; i++) {
        rdl_breaker_permit_t permit;
        if (rdl_breaker_acquire(a->b, &permit) == 0)
            rdl_breaker_record(a->b, &permit, RDL_OUTCOME_OK, 1000);
    }
    a->ns = (double)(rdl_now_ns() - t0) / (double)a->n;
    return NULL;
}

static void *theirs(void *p)
{
    loop_arg_t *a = p;
    while (!atomic_load(a->go))
        ;
    uint64_t t0 = rdl_now_ns();
    for (long i = 0; i < a->n; i++)
        if (mb_acquire(a->mb) == 0)
            mb_record(a->mb, 0);
    a->ns = (double)(rdl_now_ns() - t0) / (double)a->n;
    return NULL;
}

/* Runs fn on `threads` threads at once; returns the mean ns per acquire+record. */
static double run_threads(void *(*fn)(void *), int threads, long n)
{
    rdl_breaker_opts_t o;
    rdl_breaker_opts_default(&o);
    rdl_breaker_t *b;
    rdl_breaker_new("bench", &o, &b);
    mutex_breaker_t mb = { .mu = PTHREAD_MUTEX_INITIALIZER };
    atomic_int go = 0;
    pthread_t t[2];
    loop_arg_t a[2];
    for (int i = 0; i < threads; i++) {
        a[i] = (loop_arg_t){ b, &mb, n, &go, 0 };
        pthread_create(&t[i], NULL, fn, &a[i]);
    }
    atomic_store(&go, 1);
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += a[i].ns;
    }
    rdl_breaker_free(b);
    return sum / threads;
}

static double median3(double a, double b, double c)
{
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

/* ---- a loopback HTTP server ---------------------------------------------------------- */

static void *conn_main(void *p)
{
    int fd = (int)(intptr_t)p;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        char *end;
        while ((end = memmem(buf, have, "\r\n\r\n", 4)) != NULL) {
            size_t used = (size_t)(end + 4 - buf);
            if (write(fd, resp, sizeof(resp) - 1) < 0)
                goto out;
            memmove(buf, buf + used, have - used);
            have -= used;
        }
    }
out:
    close(fd);
    return NULL;
}

static void *server_main(void *p)
{
    int lfd = (int)(intptr_t)p;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static int start_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    listen(fd, 64);
    getsockname(fd, (struct sockaddr *)&a, &len);
    pthread_t t;
    pthread_create(&t, NULL, server_main, (void *)(intptr_t)fd);
    pthread_detach(t);
    return ntohs(a.sin_port);
}

/* ---- HTTP: bare libcurl vs the stack -------------------------------------------------- */

static size_t sink(char *d, size_t s, size_t n, void *a)
{
    return s * n;
}

static double bare_curl(const char *url, long n)
{
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(e);                       /* connect outside the timing */
    uint64_t t0 = rdl_now_ns();
    for (long i = 0; i < n; i++)
        if (curl_easy_perform(e) != CURLE_OK)
            fprintf(stderr, "bare curl failed\n");
    double ns = (double)(rdl_now_ns() - t0) / (double)n;
    curl_easy_cleanup(e);
    return ns;
}

typedef struct chain {
    rdl_client_t *c;
    rdl_upstream_t *up;
    rdl_call_t call;
    long left;
    long errors;
} chain_t;

static void next_call(const rdl_call_result_t *res, void *arg)
{
    chain_t *ch = arg;
    if (res->err || res->status != 200)
        ch->errors++;
    if (--ch->left > 0)
        rdl_client_call(ch->c, ch->up, NULL, &ch->call, next_call, ch);
}

static double stack(uv_loop_t *loop, rdl_client_t *c, rdl_upstream_t *up, long n, long *errors)
{
    chain_t ch = { c, up, { .method = "GET", .path = "/", .idempotent = -1 }, n, 0 };
    uint64_t t0 = rdl_now_ns();
    rdl_client_call(c, up, NULL, &ch.call, next_call, &ch);
    while (ch.left > 0)
        uv_run(loop, UV_RUN_ONCE);
    *errors += ch.errors;
    return (double)(rdl_now_ns() - t0) / (double)n;
}

static void bench_http(long n)
{
    int port = start_server();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    rdl_config_t *cfg;
    rdl_upstreams_t *ups;
    rdl_error_t err;
    rdl_config_new(&cfg);
    rdl_upstreams_new(&ups);
    rdl_upstreams_declare(ups, cfg, "bench", RDL_UPSTREAM_WEAK);
    rdl_config_set(cfg, "upstreams.bench.url", url, &err);
    if (rdl_upstreams_finish(ups, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    rdl_client_t *c;
    rdl_client_new(&loop, ups, &c);
    rdl_upstream_t *up = rdl_upstreams_get(ups, "bench");
    long errors = 0;
    stack(&loop, c, up, 100, &errors);                  /* warm: connection open */
    bare_curl(url, 100);
    /* Many short interleaved rounds: load that comes and goes hits both sides alike. */
    enum { ROUNDS = 21 };
    double s[ROUNDS], b[ROUNDS];
    long per = n / ROUNDS > 0 ? n / ROUNDS : 1;
    for (int r = 0; r < ROUNDS; r++) {
        b[r] = bare_curl(url, per);
        s[r] = stack(&loop, c, up, per, &errors);
    }
    double bm = bench_median(b, ROUNDS), sm = bench_median(s, ROUNDS);
    printf("outbound GET, loopback, sequential keep-alive (median of %d interleaved rounds x %ld):\n",
           ROUNDS, per);
    printf("  bare libcurl easy       %9.0f ns/call\n", bm);
    printf("  redline stack (uv+multi)%9.0f ns/call   overhead %+.0f ns (%.2fx)%s\n", sm, sm - bm,
           sm / bm, errors ? "   ERRORS" : "");
    rdl_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000000;
    long reqs = argc > 2 ? atol(argv[2]) : 20000;
    printf("breaker acquire+record (count window 100, all successes), %ld calls per thread, median of 3:\n",
           iters);
    for (int threads = 1; threads <= 2; threads++) {
        double o[3], m[3];
        for (int r = 0; r < 3; r++) {
            o[r] = run_threads(ours, threads, iters);
            m[r] = run_threads(theirs, threads, iters);
        }
        double om = median3(o[0], o[1], o[2]), mm = median3(m[0], m[1], m[2]);
        printf("  %d thread%s: rdl_breaker %6.1f ns   mutex breaker %6.1f ns   ratio %.2f\n", threads,
               threads > 1 ? "s" : " ", om, mm, om / mm);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bench_http(reqs);
    return 0;
}
