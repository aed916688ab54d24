/*
 * fuzz_http1_split.c: libFuzzer target proving that the HTTP/1.1 parser's
 * answers do not depend on how TCP split the stream.
 *
 * The input drives a miniature server loop: parse a head; read a
 * Content-Length body or decode a chunked one in place; go on with the next
 * pipelined request while the connection stays persistent. The loop runs
 * twice, once with the whole input available and once with it revealed in
 * pieces whose sizes come from a seed, each time from a buffer of exactly the
 * revealed size (so the sanitizers catch any read past what has arrived).
 * Every event (head fields, body digest, error status) is logged; the two
 * logs must be identical. Structural invariants (pointers inside the head,
 * trimmed values, dst <= src, a head is incomplete one byte short) are
 * checked on the way. Any violation traps: that is the fuzzer's crash signal.
 *
 * Input layout: byte 0 = flags (bit 0: small limits), byte 1 = split seed,
 * the rest = the byte stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/http1.h"

#define MAX_SLOTS 64
#define MAX_EVENTS 256

static const rdl_h1_limits_t normal_limits = { 8192, 16384, 64, 1 << 20 };
static const rdl_h1_limits_t small_limits = { 64, 256, 8, 1000 };

typedef struct log {
    uint64_t ev[MAX_EVENTS];
    size_t n;
} log_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void emit(log_t *l, uint64_t v)
{
    if (l->n < MAX_EVENTS)
        l->ev[l->n++] = v;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static bool inside(const char *p, size_t n, const char *lo, size_t len)
{
    return p >= lo && p + n <= lo + len;
}

/* Invariants of a successful head, then its digest. */
static uint64_t digest_head(const char *head, size_t avail, const rdl_h1_limits_t *lim,
                            const rdl_h1_request_t *r)
{
    rdl_h1_header_t hdrs[MAX_SLOTS];
    rdl_h1_request_t again;
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    if (r->head_len == 0 || r->head_len > avail || r->status != 0)
        __builtin_trap();
    if (!inside(r->method, r->method_len, head, r->head_len) ||
        !inside(r->target, r->target_len, head, r->head_len) ||
        (r->query && !inside(r->query, r->query_len, head, r->head_len)) ||
        (r->host && !inside(r->host, r->host_len, head, r->head_len)))
        __builtin_trap();
    for (i = 0; i < r->num_headers; i++) {
        const rdl_h1_header_t *f = &r->headers[i];
        size_t j;
        if (!inside(f->name, f->name_len, head, r->head_len) || f->name_len == 0 ||
            !inside(f->value, f->value_len, head, r->head_len))
            __builtin_trap();
        if (f->value_len && (f->value[0] == ' ' || f->value[0] == '\t' ||
                             f->value[f->value_len - 1] == ' ' || f->value[f->value_len - 1] == '\t'))
            __builtin_trap();
        for (j = 0; j < f->value_len; j++)
            if (f->value[j] == '\r' || f->value[j] == '\n' || f->value[j] == '\0')
                __builtin_trap();
        h = fnv(h, f->name, f->name_len);
        h = fnv(h, ":", 1);
        h = fnv(h, f->value, f->value_len);
    }
    /* exactly head_len bytes suffice, one fewer does not */
    if (rdl_h1_parse_head(head, r->head_len, lim, hdrs, MAX_SLOTS, &again) != (int)r->head_len ||
        rdl_h1_parse_head(head, r->head_len - 1, lim, hdrs, MAX_SLOTS, &again) != RDL_H1_INCOMPLETE)
        __builtin_trap();
    h = fnv(h, r->method, r->method_len);
    h = fnv(h, r->target, r->target_len);
    h = fnv(h, r->path, r->path_len);
    if (r->query)
        h = fnv(h, r->query, r->query_len);
    if (r->host)
        h = fnv(h, r->host, r->host_len);
    return h ^ ((uint64_t)r->method_id << 8) ^ ((uint64_t)r->version_minor << 12) ^
           ((uint64_t)r->body << 16) ^ ((uint64_t)r->keep_alive << 20) ^
           ((uint64_t)r->expect_continue << 21) ^ ((uint64_t)r->num_headers << 24) ^
           ((uint64_t)r->head_len << 32) ^ r->content_length;
}

enum { ST_HEAD, ST_LENGTH, ST_CHUNKED, ST_STOP };

typedef struct conn {
    const rdl_h1_limits_t *lim;
    char *buf;                  /* exactly avail bytes */
    size_t avail;
    size_t off;                 /* start of the current request (or body) */
    int state;
    uint64_t left;              /* Content-Length bytes still to come */
    uint64_t body_hash;
    rdl_h1_chunked_t ck;
    size_t src, dst;
    log_t log;
} conn_t;

/* Runs the server loop over what has arrived; returns when it needs more or stops. */
static void advance(conn_t *c)
{
    rdl_h1_header_t hdrs[MAX_SLOTS];
    rdl_h1_request_t r;
    int rc;

    for (;;) {
        switch (c->state) {
        case ST_HEAD:
            rc = rdl_h1_parse_head(c->buf + c->off, c->avail - c->off, c->lim, hdrs, MAX_SLOTS, &r);
            if (rc == RDL_H1_INCOMPLETE)
                return;
            if (rc == RDL_H1_ERROR) {
                if (r.status < 400 || r.status > 505 || r.error == NULL || r.error_offset > c->avail - c->off)
                    __builtin_trap();
                emit(&c->log, 0xE000000000000000ULL | (uint64_t)r.status << 32 | r.error_offset);
                c->state = ST_STOP;
                return;
            }
            emit(&c->log, digest_head(c->buf + c->off, c->avail - c->off, c->lim, &r));
            c->off += r.head_len;
            c->body_hash = 1469598103934665603ULL;
            if (r.body == RDL_H1_BODY_LENGTH) {
                c->left = r.content_length;
                c->state = ST_LENGTH;
            } else if (r.body == RDL_H1_BODY_CHUNKED) {
                rdl_h1_chunked_init(&c->ck, c->lim->max_body);
                c->src = c->dst = c->off;
                c->state = ST_CHUNKED;
            } else {
                c->state = r.keep_alive ? ST_HEAD : ST_STOP;
            }
            if (r.body != RDL_H1_BODY_NONE && !r.keep_alive)
                c->left |= 1ULL << 63;  /* remember to stop after the body */
            break;
        case ST_LENGTH: {
            uint64_t want = c->left & ~(1ULL << 63);
            size_t take = c->avail - c->off < want ? c->avail - c->off : (size_t)want;
            c->body_hash = fnv(c->body_hash, c->buf + c->off, take);
            c->off += take;
            c->left -= take;
            if ((c->left & ~(1ULL << 63)) != 0)
                return;
            emit(&c->log, c->body_hash);
            c->state = (c->left >> 63) ? ST_STOP : ST_HEAD;
            c->left = 0;
            break;
        }
        case ST_CHUNKED: {
            size_t start = c->off;
            rc = rdl_h1_chunked_decode(&c->ck, c->buf, c->avail, &c->src, &c->dst);
            if (c->dst > c->src || c->src > c->avail || c->dst < start)
                __builtin_trap();
            if (rc == 0)
                return;
            if (rc == RDL_H1_ERROR) {
                if ((c->ck.status != 400 && c->ck.status != 413) || c->ck.error == NULL)
                    __builtin_trap();
                emit(&c->log, 0xC000000000000000ULL | (uint64_t)c->ck.status << 32 | (c->src - start));
                c->state = ST_STOP;
                return;
            }
            if (c->ck.total != c->dst - start)
                __builtin_trap();
            emit(&c->log, fnv(c->body_hash, c->buf + start, c->dst - start) ^ c->ck.total);
            c->off = c->src;
            c->state = (c->left >> 63) ? ST_STOP : ST_HEAD;
            c->left = 0;
            break;
        }
        default:
            return;
        }
    }
}

/* Reveals the stream in pieces (step 0: all at once) and logs what the loop saw. */
static void run(const uint8_t *s, size_t n, const rdl_h1_limits_t *lim, unsigned seed, bool pieces, log_t *out)
{
    conn_t c;

    memset(&c, 0, sizeof(c));
    c.lim = lim;
    c.state = ST_HEAD;
    do {
        size_t piece = n - c.avail, next;
        char *grown;
        if (pieces) {
            seed = seed * 1103515245u + 12345u;
            piece = (seed >> 16) % 8 == 0 ? 64 + (seed >> 8) % 512 : 1 + (seed >> 16) % 7;
            if (piece > n - c.avail)
                piece = n - c.avail;
        }
        next = c.avail + piece;
        grown = malloc(next ? next : 1);
        if (grown == NULL)
            abort();
        if (c.avail)
            memcpy(grown, c.buf, c.avail);      /* keeps what the decoder wrote in place */
        memcpy(grown + c.avail, s + c.avail, piece);
        free(c.buf);
        c.buf = grown;
        c.avail = next;
        advance(&c);
    } while (c.state != ST_STOP && c.avail < n);
    emit(&c.log, 0xF000000000000000ULL | (uint64_t)c.state << 32 | (c.state == ST_STOP ? 0 : c.off));
    free(c.buf);
    *out = c.log;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static log_t whole, split;
    const rdl_h1_limits_t *lim;

    if (size < 2)
        return 0;
    lim = (data[0] & 1) ? &small_limits : &normal_limits;
    run(data + 2, size - 2, lim, data[1], false, &whole);
    run(data + 2, size - 2, lim, data[1], true, &split);
    if (whole.n != split.n || memcmp(whole.ev, split.ev, whole.n * sizeof(whole.ev[0])) != 0)
        __builtin_trap();
    return 0;
}
