/*
 * bench_log.c: the cost of a log line, against a naive logger measured in the
 * same run.
 *
 *   1. ns per 5-field line into the calling thread's ring (the request-path
 *      cost, in the thread's CPU time), in a request context (trace id, span id, request id), with the
 *      writer thread draining to /dev/null meanwhile; and the heap
 *      allocations made meanwhile, counted by a malloc hook in this binary.
 *   1b. an access line as the runtime's middleware writes it (11 fields,
 *      a new trace id, span id and request id on every line, as every
 *      request brings; changing them costs a few ns and is counted in).
 *   2. the same line through a naive logger: snprintf into a stack buffer and
 *      one write(2) per line to /dev/null (no escaping at all: a floor for
 *      "format and write", not a correct logger).
 *   3. sustained lines/s through the writer to /dev/null: from the first line
 *      to the flush that saw the last one written, 1 and 2 producer threads.
 *
 * Rounds are interleaved (ours, naive, ours, ...) and medians printed.
 *   build/bench/bench_log [ROUNDS] [LINES]      (defaults 7, 200000)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redline/log.h"
#include "bench_util.h"

/* ---- the malloc hook: every allocation in the process is counted ------ */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong allocs;

void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
int posix_memalign(void **out, size_t align, size_t n);
void *aligned_alloc(size_t align, size_t n);

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    *out = __libc_memalign(align, n);
    return *out ? 0 : 12;
}

void *aligned_alloc(size_t align, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_memalign(align, n);
}

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The calling thread's CPU time: the machine is shared, and wall time would
 * charge us for other processes' turns on the cores. Kernel time (the naive
 * logger's write(2)) counts too.
 */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static rdl_ctx_t req_ctx;

static void setup_ctx(void)
{
    rdl_ctx_init(&req_ctx, 0);
    for (int i = 0; i < 16; i++)
        req_ctx.trace_id[i] = (uint8_t)(0x4b + i * 7);
    for (int i = 0; i < 8; i++)
        req_ctx.span_id[i] = (uint8_t)(0x10 + i);
    strcpy(req_ctx.request_id, "3f2a9c1d7e5b4a60b1c2d3e4f5a6b7c8");
    rdl_ctx_set_current(&req_ctx);
}

/* The line both loggers write: 5 fields, like an application line in a handler. */
__attribute__((noinline)) static void ours_line(rdl_logger_t *lg, long i)
{
    rdl_log_field_t f[] = {
        rdl_lf_str("course", "Distributed Tracing"),
        rdl_lf_int("course_id", 3),
        rdl_lf_int("seats_left", 50 - (i & 15)),
        rdl_lf_dur("db_time", 1234567 + (uint64_t)i),
        rdl_lf_bool("cached", i & 1),
    };
    rdl_log(lg, RDL_LOG_INFO, "course read", f, 5);
}

/*
 * The access middleware's line: each request has its own ids, so none is
 * reused, and the line is stamped with the request's end, a monotonic reading
 * the runtime took for every leave hook (here one 7 us after another).
 */
__attribute__((noinline)) static void access_line(rdl_logger_t *lg, rdl_ctx_t *ctx, long i)
{
    uint64_t v = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    static const char hex[] = "0123456789abcdef";
    memcpy(ctx->trace_id + 8, &v, 8);
    memcpy(ctx->span_id, &v, 8);
    for (int k = 0; k < 8; k++)
        ctx->request_id[k] = hex[(v >> (4 * k)) & 15];
    rdl_log_field_t f[] = {
        rdl_lf_str("method", "GET"),
        rdl_lf_strn("path", "/v1/courses/3", 13),
        rdl_lf_str("http_route", "/v1/courses/{id}"),
        rdl_lf_int("status", 200),
        rdl_lf_dur("duration_ms", 1164492 + (uint64_t)(i & 1023)),
        rdl_lf_int("bytes_in", 0),
        rdl_lf_int("bytes_out", 106),
        rdl_lf_str("peer", "127.0.0.1:32928"),
    };
    rdl_log_ctx_at(lg, RDL_LOG_INFO, ctx, ctx->start_ns + 7000 * (uint64_t)i, "request", f, 8);
}

static void naive_line(int fd, long i)
{
    char buf[512], ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(buf, sizeof(buf),
                     "{\"ts\":\"%s.%09ldZ\",\"level\":\"info\",\"service\":\"%s\","
                     "\"trace_id\":\"4b525960676e757c838a91989fa6adb4\",\"span_id\":\"1011121314151617\","
                     "\"request_id\":\"%s\",\"msg\":\"%s\",\"course\":\"%s\",\"course_id\":%d,"
                     "\"seats_left\":%ld,\"db_time\":%.6f,\"cached\":%s}\n",
                     ts, now.tv_nsec, "bench", req_ctx.request_id, "course read",
                     "Distributed Tracing", 3, 50 - (i & 15), (1234567 + i) / 1e6,
                     i & 1 ? "true" : "false");
    if (write(fd, buf, (size_t)n) < 0)
        abort();
}

static rdl_logger_t *devnull_logger(void)
{
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.service = "bench";
    o.sink = RDL_LOG_FILE;
    o.path = "/dev/null";
    o.ring_bytes = 8u << 20;        /* room for a round: the writer never blocks the producer */
    rdl_logger_t *lg;
    if (rdl_logger_new(&o, &lg) != 0) {
        fprintf(stderr, "cannot open /dev/null\n");
        exit(1);
    }
    return lg;
}

/* ---- sustained throughput ------------------------------------------------ */

typedef struct prod {
    rdl_logger_t *lg;
    long lines;
} prod_t;

static void *producer(void *arg)
{
    prod_t *p = arg;
    rdl_ctx_set_current(&req_ctx);
    for (long i = 0; i < p->lines; i++)
        ours_line(p->lg, i);
    return NULL;
}

/* lines/s from the first line to the flush that wrote the last one. */
static double sustained(int threads, long lines_each)
{
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.service = "bench";
    o.sink = RDL_LOG_FILE;
    o.path = "/dev/null";
    rdl_logger_t *lg;
    rdl_logger_new(&o, &lg);           /* default 256 KiB rings: the writer must keep up */
    pthread_t th[8];
    prod_t p = { lg, lines_each };
    uint64_t t0 = now_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, producer, &p);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    rdl_log_flush(lg, 0);
    uint64_t t1 = now_ns();
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    if (st.lines != (uint64_t)(threads * lines_each) || st.dropped) {
        fprintf(stderr, "lost lines: %llu of %ld\n", (unsigned long long)st.lines,
                threads * lines_each);
        exit(1);
    }
    rdl_logger_free(lg);
    return (double)(threads * lines_each) / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    long lines = argc > 2 ? atol(argv[2]) : 200000;
    if (rounds < 1 || rounds > 99 || lines < 1000)
        return 2;
    setup_ctx();
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    rdl_logger_t *lg = devnull_logger();

    for (long i = 0; i < 1000; i++)         /* warm-up: the thread's ring is made here */
        ours_line(lg, i);
    rdl_log_flush(lg, 0);

    double ours[99], naive[99], access[99];
    unsigned long alloc_ours = 0;
    rdl_ctx_t acc_ctx;                      /* the access line's request: its ids change per line */
    rdl_ctx_init(&acc_ctx, 0);
    memcpy(acc_ctx.trace_id, req_ctx.trace_id, sizeof(acc_ctx.trace_id));
    strcpy(acc_ctx.request_id, req_ctx.request_id);
    for (int r = 0; r < rounds; r++) {
        unsigned long a0 = atomic_load(&allocs);
        uint64_t t0 = cpu_ns();
        for (long i = 0; i < lines; i++)
            ours_line(lg, i);
        uint64_t t1 = cpu_ns();
        alloc_ours += atomic_load(&allocs) - a0;
        ours[r] = (double)(t1 - t0) / (double)lines;
        rdl_log_flush(lg, 0);               /* the writer catches up outside the timing */

        a0 = atomic_load(&allocs);
        t0 = cpu_ns();
        for (long i = 0; i < lines; i++)
            access_line(lg, &acc_ctx, i);
        t1 = cpu_ns();
        alloc_ours += atomic_load(&allocs) - a0;
        access[r] = (double)(t1 - t0) / (double)lines;
        rdl_log_flush(lg, 0);

        t0 = cpu_ns();
        for (long i = 0; i < lines; i++)
            naive_line(devnull, i);
        t1 = cpu_ns();
        naive[r] = (double)(t1 - t0) / (double)lines;
    }
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    rdl_logger_free(lg);
    double mo = bench_median(ours, rounds), mn = bench_median(naive, rounds);
    double ma = bench_median(access, rounds);
    printf("5-field line in a request context, %d interleaved rounds x %ld lines, "
           "median (min) of thread CPU time:\n", rounds, lines);
    printf("  redline rdl_log (into the thread's ring)   %8.1f (%.1f) ns/line   heap allocations: %lu in %ld lines\n",
           mo, ours[0], alloc_ours, 2L * rounds * lines);
    printf("  access line (11 fields, new ids each line) %8.1f (%.1f) ns/line   (allocations counted above)\n",
           ma, access[0]);
    printf("  naive snprintf + write(2) per line         %8.1f (%.1f) ns/line\n", mn, naive[0]);
    printf("  naive / redline                            %8.2f (%.2f)\n", mn / mo, naive[0] / ours[0]);
    printf("  lines accepted %llu, dropped %llu, bytes written %llu\n",
           (unsigned long long)st.lines, (unsigned long long)st.dropped,
           (unsigned long long)st.bytes_written);

    double s1[99], s2[99];
    for (int r = 0; r < rounds; r++) {
        s1[r] = sustained(1, lines * 2);
        s2[r] = sustained(2, lines);
    }
    printf("sustained through the writer to /dev/null (first line to flush), medians:\n");
    printf("  1 producer thread                          %8.2f M lines/s\n", bench_median(s1, rounds) / 1e6);
    printf("  2 producer threads                         %8.2f M lines/s\n", bench_median(s2, rounds) / 1e6);
    close(devnull);
    rdl_ctx_set_current(NULL);
    rdl_ctx_close(&acc_ctx);
    rdl_ctx_close(&req_ctx);
    return 0;
}
