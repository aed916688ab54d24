/*
 * bench_http1.c: what redline's strict HTTP/1.1 head parser costs per
 * request, next to Debian's http_parser 2.9.4 measured in the same run.
 *
 * Two workloads: one browser-like GET with 6 header fields, and a batch of 16
 * of them pipelined in one buffer. http_parser gets callbacks that record
 * where the URL and each field are, which is the least a server does with
 * it; ours fills the same information by itself. Repetitions alternate
 * between the two parsers and the median of the rounds is printed, so a
 * noisy neighbour hurts both sides alike.
 *
 * Usage: bench_http1 [rounds] [iterations-per-round]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <http_parser.h>
#include "runtime/http1.h"
#include "bench_util.h"

#define BATCH 16
#define MAX_ROUNDS 51

static const char get_req[] =
    "GET /v1/courses/42/enrollments?limit=20&offset=40 HTTP/1.1\r\n"
    "Host: coursed.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Cookie: session=4f2a9c1e7b3d4e5f8a9b0c1d2e3f4a5b; theme=dark\r\n"
    "\r\n";

static const rdl_h1_limits_t limits = { 8192, 65536, 64, 1 << 20 };

/* What a server keeps from http_parser's callbacks: pointers into the buffer. */
typedef struct hp_sink {
    const char *url;
    size_t url_len;
    const char *field[64], *value[64];
    size_t field_len[64], value_len[64];
    int n;
    int messages;
} hp_sink_t;

static int hp_url(http_parser *p, const char *at, size_t len)
{
    hp_sink_t *s = p->data;
    s->url = at;
    s->url_len = len;
    return 0;
}

static int hp_field(http_parser *p, const char *at, size_t len)
{
    hp_sink_t *s = p->data;
    if (s->n < 64) {
        s->field[s->n] = at;
        s->field_len[s->n] = len;
    }
    return 0;
}

static int hp_value(http_parser *p, const char *at, size_t len)
{
    hp_sink_t *s = p->data;
    if (s->n < 64) {
        s->value[s->n] = at;
        s->value_len[s->n] = len;
        s->n++;
    }
    return 0;
}

static int hp_message_begin(http_parser *p)
{
    hp_sink_t *s = p->data;
    s->n = 0;
    return 0;
}

static int hp_message_complete(http_parser *p)
{
    hp_sink_t *s = p->data;
    s->messages++;
    return 0;
}

static volatile size_t sink;

/* ns per buffer: parse every request in buf[0..len) with ours. */
static double run_ours(const char *buf, size_t len, int expect, long iters)
{
    rdl_h1_header_t hdrs[64];
    rdl_h1_request_t r;
    double t0 = bench_wall_ns();
    long i;

    for (i = 0; i < iters; i++) {
        size_t off = 0;
        int n = 0;
        while (off < len) {
            int rc = rdl_h1_parse_head(buf + off, len - off, &limits, hdrs, 64, &r);
            if (rc <= 0) {
                fprintf(stderr, "bench: our parser failed (%d, %s)\n", rc, r.error ? r.error : "-");
                exit(1);
            }
            off += (size_t)rc;
            n++;
        }
        if (n != expect)
            exit(1);
        sink += r.num_headers + r.path_len;
    }
    return (bench_wall_ns() - t0) / (double)iters;
}

static double run_http_parser(const char *buf, size_t len, int expect, long iters)
{
    http_parser_settings st;
    http_parser p;
    hp_sink_t s;
    double t0;
    long i;

    memset(&st, 0, sizeof(st));
    st.on_message_begin = hp_message_begin;
    st.on_url = hp_url;
    st.on_header_field = hp_field;
    st.on_header_value = hp_value;
    st.on_message_complete = hp_message_complete;
    t0 = bench_wall_ns();
    for (i = 0; i < iters; i++) {
        memset(&s, 0, sizeof(s.n) + sizeof(s.messages));
        s.n = s.messages = 0;
        http_parser_init(&p, HTTP_REQUEST);
        p.data = &s;
        if (http_parser_execute(&p, &st, buf, len) != len || s.messages != expect) {
            fprintf(stderr, "bench: http_parser failed (%s)\n", http_errno_name(HTTP_PARSER_ERRNO(&p)));
            exit(1);
        }
        sink += (size_t)s.n + s.url_len;
    }
    return (bench_wall_ns() - t0) / (double)iters;
}

static void bench(const char *what, const char *buf, size_t len, int expect, int rounds, long iters)
{
    double ours[MAX_ROUNDS], theirs[MAX_ROUNDS], mo, mt;
    int i;

    run_ours(buf, len, expect, iters / 10 + 1);          /* warm caches and branch predictors */
    run_http_parser(buf, len, expect, iters / 10 + 1);
    for (i = 0; i < rounds; i++) {
        if (i % 2 == 0) {
            ours[i] = run_ours(buf, len, expect, iters);
            theirs[i] = run_http_parser(buf, len, expect, iters);
        } else {
            theirs[i] = run_http_parser(buf, len, expect, iters);
            ours[i] = run_ours(buf, len, expect, iters);
        }
    }
    mo = bench_median(ours, rounds);
    mt = bench_median(theirs, rounds);
    printf("%-34s %6zu B  redline %8.1f ns  http_parser %8.1f ns  http_parser/redline %.2f\n",
           what, len, mo, mt, mt / mo);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    long iters = argc > 2 ? atol(argv[2]) : 200000;
    size_t one = sizeof(get_req) - 1, i;
    char *batch = malloc(one * BATCH);

    if (batch == NULL)
        return 1;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 7;
    if (iters < 1)
        iters = 200000;
    for (i = 0; i < BATCH; i++)
        memcpy(batch + i * one, get_req, one);
    printf("median of %d interleaved rounds, %ld iterations each\n", rounds, iters);
    bench("GET, 6 header fields", get_req, one, 1, rounds, iters);
    bench("16 pipelined GETs in one buffer", batch, one * BATCH, BATCH, rounds, iters / BATCH + 1);
    free(batch);
    return 0;
}
