/*
 * test_trace.c: the tracer's promises. Propagation conformance tables (valid
 * and malformed traceparent, tracestate, baggage, B3 single and multi, with
 * the column each error names) and round trips; samplers (traceidratio at
 * 0.25 over 1,000,000 random ids within 25 % +- 0.3 %, monotone, parent-based
 * following the parent flag); spans (limits, end twice, keep-errors, threads);
 * the OTLP encodings and the reading of a collector's answer; and the exporter against a scripted HTTP peer in this
 * process (retry on 503 with Retry-After, no retry on 400, partial success,
 * gzip, drop counting when the queue is full).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "redline/trace.h"
#include "trace/internal.h"

/* ---- traceparent ----------------------------------------------------- */

static const char TP[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_traceparent_valid(void **state)
{
    static const struct { const char *in; uint8_t flags; } ok[] = {
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0x01 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0x00 },
        { "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t", 0x01 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", 0x09 },
        /* a future version: longer, extra part after '-', flags re-emitted as 00 allows */
        { "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", 0x01 },
        { "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", 0x03 },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        rdl_span_context_t sc;
        rdl_error_t err;
        rdl_error_clear(&err);
        int rc = rdl_traceparent_parse(ok[i].in, strlen(ok[i].in), &sc, &err);
        if (rc)
            fail_msg("'%s' refused: %s", ok[i].in, err.msg);
        assert_int_equal(sc.flags, ok[i].flags);
        assert_true(sc.remote);
        assert_int_equal(sc.trace_id[0], 0x4b);
        assert_int_equal(sc.trace_id[15], 0x36);
        assert_int_equal(sc.span_id[7], 0xb7);
    }
    /* Round trip: format(parse(x)) == x for version 00. */
    rdl_span_context_t sc;
    assert_int_equal(rdl_traceparent_parse(TP, strlen(TP), &sc, NULL), 0);
    char out[RDL_TRACEPARENT_LEN + 1];
    assert_int_equal(rdl_traceparent_format(&sc, out), 55);
    assert_string_equal(out, TP);
}

static void test_traceparent_malformed(void **state)
{
    static const struct { const char *in; int column; const char *msg; } bad[] = {
        { "", 1, "expected 55 characters" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", 55, "expected 55 characters" },
        { "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1, "version ff" },
        { "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 2, "version" },
        { "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", 5, "trace-id" },
        { "00-00000000000000000000000000000000-00f067aa0ba902b7-01", 4, "all zeros" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 37, "all zeros" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bX-01", 52, "parent-id" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", 55, "trace-flags" },
        { "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 3, "expected '-'" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", 36, "expected '-'" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", 56, "version 00 ends" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.", 56, "version 00 ends" },
        { "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x", 56, "expected '-' or the end" },
        { "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", 36, "expected '-'" },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x01", 56, "version 00 ends" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_span_context_t sc;
        memset(&sc, 0x5a, sizeof(sc));
        rdl_error_t err;
        rdl_error_clear(&err);
        int rc = rdl_traceparent_parse(bad[i].in, strlen(bad[i].in), &sc, &err);
        if (rc != RDL_EINVAL)
            fail_msg("'%s' accepted", bad[i].in);
        if (err.column != bad[i].column || !strstr(err.msg, bad[i].msg))
            fail_msg("'%s': column %d '%s', expected column %d '%s'", bad[i].in, err.column,
                     err.msg, bad[i].column, bad[i].msg);
        assert_string_equal(err.key, "traceparent");
        assert_int_equal(sc.trace_id[0], 0x5a);          /* untouched on failure */
    }
}

/* Every byte at every hex position: lowercase hex digits decode, anything else is refused there. */
static void test_traceparent_every_byte(void **state)
{
    static const char digits[] = "0123456789abcdef";
    char buf[RDL_TRACEPARENT_LEN + 1];
    for (int pos = 3; pos < 55; pos++) {
        if (pos == 35 || pos == 52)
            continue;
        for (int c = 1; c < 256; c++) {
            memcpy(buf, TP, sizeof(buf));
            buf[pos] = (char)c;
            rdl_span_context_t sc;
            rdl_error_t err;
            rdl_error_clear(&err);
            const char *d = strchr(digits, c);
            int rc = rdl_traceparent_parse(buf, RDL_TRACEPARENT_LEN, &sc, &err);
            if (!d) {
                if (rc != RDL_EINVAL || err.column != pos + 1)
                    fail_msg("byte 0x%02x at %d: rc %d column %d", c, pos, rc, err.column);
                continue;
            }
            if (rc != 0) {
                /* A zero digit may make an id all zeros only if the id was; ours are not. */
                fail_msg("digit '%c' at %d refused: %s", c, pos, err.msg);
            }
            int v = (int)(d - digits);
            const uint8_t *field = pos < 35 ? sc.trace_id : pos < 52 ? sc.span_id : &sc.flags;
            int off = pos < 35 ? pos - 3 : pos < 52 ? pos - 36 : pos - 53;
            int got = off % 2 ? field[off / 2] & 15 : field[off / 2] >> 4;
            if (got != v)
                fail_msg("digit '%c' at %d decoded as %d", c, pos, got);
        }
    }
}

/* ---- tracestate ------------------------------------------------------ */

static void test_tracestate(void **state)
{
    static const struct { const char *in, *out; } ok[] = {
        { "rojo=00f067aa0ba902b7", "rojo=00f067aa0ba902b7" },
        { "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" },
        { " a=1 ,, b=2 ", "a=1,b=2" },
        { "tenant@system=x,foo_bar-*/9=y", "tenant@system=x,foo_bar-*/9=y" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        rdl_span_context_t sc;
        rdl_error_t err;
        if (rdl_tracestate_parse(ok[i].in, strlen(ok[i].in), &sc, &err))
            fail_msg("'%s' refused: %s", ok[i].in, err.msg);
        assert_string_equal(sc.tracestate, ok[i].out);
        assert_int_equal(sc.tracestate_len, strlen(ok[i].out));
    }
    static const struct { const char *in; int column; const char *msg; } bad[] = {
        { "FOO=1", 1, "expected a key" },
        { "foo.bar=1", 1, "expected a key" },
        { "@foo=1", 1, "expected a key" },
        { "foo@@bar=1", 1, "expected a key" },
        { "a=1,b", 5, "key=value" },
        { "a=1,a=2", 5, "duplicate" },
        { "a=x\x01y", 3, "expected a value" },
        { "a=", 3, "expected a value" },
        { "a=b=c", 3, "expected a value" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_span_context_t sc;
        rdl_error_t err;
        rdl_error_clear(&err);
        if (rdl_tracestate_parse(bad[i].in, strlen(bad[i].in), &sc, &err) != RDL_EINVAL)
            fail_msg("'%s' accepted", bad[i].in);
        if (err.column != bad[i].column || !strstr(err.msg, bad[i].msg))
            fail_msg("'%s': column %d '%s'", bad[i].in, err.column, err.msg);
        assert_string_equal(sc.tracestate, "");
    }
    /* 33 members: invalid. 32: kept. */
    char many[600] = "";
    for (int i = 0; i < 33; i++)
        sprintf(many + strlen(many), "%sk%d=v", i ? "," : "", i);
    rdl_span_context_t sc;
    assert_int_equal(rdl_tracestate_parse(many, strlen(many), &sc, NULL), RDL_EINVAL);
    *strrchr(many, ',') = '\0';
    assert_int_equal(rdl_tracestate_parse(many, strlen(many), &sc, NULL), 0);
    assert_string_equal(sc.tracestate, many);
}

static void test_tracestate_truncation_and_set(void **state)
{
    /* Over 512 bytes: entries over 128 bytes go first, then from the right. */
    char big[200];
    memset(big, 'x', 150);
    big[150] = '\0';
    char in[1400];
    snprintf(in, sizeof(in), "a=1,long=%s,b=2", big);
    for (int i = 0; i < 4; i++)
        snprintf(in + strlen(in), sizeof(in) - strlen(in), ",m%d=%.100s", i, big);
    rdl_span_context_t sc;
    assert_int_equal(rdl_tracestate_parse(in, strlen(in), &sc, NULL), 0);
    assert_non_null(strstr(sc.tracestate, "a=1,b=2,m0="));
    assert_null(strstr(sc.tracestate, "long="));
    assert_true(sc.tracestate_len <= 512);
    assert_non_null(strstr(sc.tracestate, "m3="));    /* 3+1+3+4*105 fits once long= is gone */

    assert_int_equal(rdl_tracestate_parse("a=1,b=2,c=3", 11, &sc, NULL), 0);
    assert_int_equal(rdl_tracestate_set(&sc, "b", "9"), 0);
    assert_string_equal(sc.tracestate, "b=9,a=1,c=3");
    assert_int_equal(rdl_tracestate_set(&sc, "new", "x"), 0);
    assert_string_equal(sc.tracestate, "new=x,b=9,a=1,c=3");
    size_t len;
    const char *v = rdl_tracestate_get(&sc, "a", &len);
    assert_non_null(v);
    assert_int_equal(len, 1);
    assert_int_equal(v[0], '1');
    assert_null(rdl_tracestate_get(&sc, "zz", &len));
    assert_int_equal(rdl_tracestate_set(&sc, "BAD", "x"), RDL_EINVAL);
    assert_int_equal(rdl_tracestate_set(&sc, "ok", "a,b"), RDL_EINVAL);
}

/* ---- baggage --------------------------------------------------------- */

static void test_baggage(void **state)
{
    rdl_baggage_t *b = malloc(sizeof(*b));
    rdl_baggage_init(b);
    const char *h = "userId=alice, serverNode = DF%2028 ;prop1;p2=v,isProduction=false";
    rdl_error_t err;
    assert_int_equal(rdl_baggage_parse(b, h, strlen(h), &err), 0);
    assert_int_equal(b->n, 3);
    assert_string_equal(rdl_baggage_get(b, "userId"), "alice");
    assert_string_equal(rdl_baggage_get(b, "serverNode"), "DF 28");
    assert_string_equal(rdl_baggage_get(b, "isProduction"), "false");
    assert_null(rdl_baggage_get(b, "nope"));
    /* Percent-decoding to UTF-8, invalid UTF-8 to U+FFFD. */
    const char *u = "city=Z%C3%BCrich,bad=%FF";
    assert_int_equal(rdl_baggage_parse(b, u, strlen(u), &err), 0);
    assert_string_equal(rdl_baggage_get(b, "city"), "Z\xc3\xbcrich");
    assert_string_equal(rdl_baggage_get(b, "bad"), "\xef\xbf\xbd");
    /* Format re-encodes: space, %, non-ASCII escaped; properties kept. */
    rdl_buf_t out;
    rdl_buf_init(&out);
    rdl_baggage_format(b, &out);
    assert_string_equal(out.data, "userId=alice,serverNode=DF%2028;prop1;p2=v,isProduction=false,"
                                  "city=Z%C3%BCrich,bad=%EF%BF%BD");
    /* Round trip: parse(format(b)) == b. */
    rdl_baggage_t *c = malloc(sizeof(*c));
    rdl_baggage_init(c);
    assert_int_equal(rdl_baggage_parse(c, out.data, out.len, &err), 0);
    assert_int_equal(c->n, b->n);
    assert_string_equal(rdl_baggage_get(c, "city"), "Z\xc3\xbcrich");
    rdl_buf_close(&out);

    static const struct { const char *in; int column; } bad[] = {
        { "noequals", 1 },
        { "k=v,=v", 5 },
        { "k y=v", 2 },
        { "k=a b", 4 },
        { "k=%zz", 3 },
        { "k=%4", 3 },
        { "k=\"q\"", 3 },
        { "k=v;p\\", 6 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_baggage_init(c);
        rdl_error_clear(&err);
        if (rdl_baggage_parse(c, bad[i].in, strlen(bad[i].in), &err) != RDL_EINVAL)
            fail_msg("'%s' accepted", bad[i].in);
        if (err.column != bad[i].column)
            fail_msg("'%s': column %d, expected %d (%s)", bad[i].in, err.column, bad[i].column, err.msg);
        assert_int_equal(c->n, 0);                      /* nothing of a bad header is kept */
    }
    /* Limits: 64 members propagate; the 65th is dropped whole. */
    rdl_buf_t many;
    rdl_buf_init(&many);
    for (int i = 0; i < 65; i++)
        rdl_buf_printf(&many, "%sk%d=v%d", i ? "," : "", i, i);
    rdl_baggage_init(c);
    assert_int_equal(rdl_baggage_parse(c, many.data, many.len, &err), RDL_EBUSY);
    assert_int_equal(c->n, 64);
    assert_string_equal(rdl_baggage_get(c, "k63"), "v63");
    assert_null(rdl_baggage_get(c, "k64"));
    rdl_buf_close(&many);
    /* 8192 bytes in all: a member that would pass it is dropped, not cut. */
    char *huge = malloc(9000);
    memcpy(huge, "a=", 2);
    memset(huge + 2, 'x', 8000);
    memcpy(huge + 8002, ",b=", 3);
    memset(huge + 8005, 'y', 500);
    huge[8505] = '\0';
    rdl_baggage_init(c);
    assert_int_equal(rdl_baggage_parse(c, huge, strlen(huge), &err), RDL_EBUSY);
    assert_int_equal(c->n, 1);
    assert_int_equal(strlen(rdl_baggage_get(c, "a")), 8000);
    free(huge);
    assert_int_equal(rdl_baggage_set(c, "bad key", "v"), RDL_EINVAL);
    assert_int_equal(rdl_baggage_set(c, "z", "1 2"), 0);
    free(b);
    free(c);
}

/* ---- B3 -------------------------------------------------------------- */

static void test_b3(void **state)
{
    rdl_span_context_t sc;
    rdl_error_t err;
    const char *s = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
    assert_int_equal(rdl_b3_parse_single(s, strlen(s), &sc, &err), 0);
    assert_int_equal(sc.trace_id[0], 0x80);
    assert_int_equal(sc.span_id[0], 0xe4);
    assert_true(sc.flags & RDL_TRACE_FLAG_SAMPLED);
    char out[52];
    assert_int_equal(rdl_b3_format_single(&sc, out), 51);
    assert_string_equal(out, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    s = "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0";          /* 64-bit id: left-padded */
    assert_int_equal(rdl_b3_parse_single(s, strlen(s), &sc, &err), 0);
    assert_int_equal(sc.trace_id[0], 0);
    assert_int_equal(sc.trace_id[8], 0x64);
    assert_false(sc.flags & RDL_TRACE_FLAG_SAMPLED);
    s = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d";
    assert_int_equal(rdl_b3_parse_single(s, strlen(s), &sc, &err), 0);
    assert_true(sc.flags & RDL_TRACE_FLAG_SAMPLED);
    s = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1";
    assert_int_equal(rdl_b3_parse_single(s, strlen(s), &sc, &err), 0);
    assert_int_equal(rdl_b3_parse_single("0", 1, &sc, &err), RDL_ENOENT);
    assert_int_equal(sc.flags, 0);

    static const struct { const char *in; int column; } bad[] = {
        { "", 1 },
        { "-", 1 },
        { "80f198ee56343ba864fe8b2a57d3eff7", 33 },
        { "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1", 1 },
        { "80f198ee56343ba8-e457b5a2e4d86bd", 18 },
        { "00000000000000000000000000000000-e457b5a2e4d86bd1", 1 },
        { "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000", 34 },
        { "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x", 51 },
        { "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-", 53 },
        { "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1--", 53 },
        { "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1", 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdl_error_clear(&err);
        if (rdl_b3_parse_single(bad[i].in, strlen(bad[i].in), &sc, &err) != RDL_EINVAL)
            fail_msg("'%s' accepted", bad[i].in);
        if (err.column != bad[i].column)
            fail_msg("'%s': column %d, expected %d (%s)", bad[i].in, err.column, bad[i].column, err.msg);
    }
    /* Multi headers. */
    const char *t = "463ac35c9f6413ad48485a3953bb6124", *sp = "a2fb4a1d1a96d312";
    assert_int_equal(rdl_b3_parse_multi(t, 32, sp, 16, "1", 1, NULL, 0, &sc, &err), 0);
    assert_true(sc.flags & RDL_TRACE_FLAG_SAMPLED);
    assert_int_equal(rdl_b3_parse_multi(t, 32, sp, 16, "0", 1, NULL, 0, &sc, &err), 0);
    assert_false(sc.flags & RDL_TRACE_FLAG_SAMPLED);
    assert_int_equal(rdl_b3_parse_multi(t, 32, sp, 16, "false", 5, NULL, 0, &sc, &err), 0);
    assert_false(sc.flags & RDL_TRACE_FLAG_SAMPLED);
    assert_int_equal(rdl_b3_parse_multi(t, 32, sp, 16, "0", 1, "1", 1, &sc, &err), 0);
    assert_true(sc.flags & RDL_TRACE_FLAG_SAMPLED);      /* debug implies accept */
    assert_int_equal(rdl_b3_parse_multi(t, 32, sp, 16, "yes", 3, NULL, 0, &sc, &err), RDL_EINVAL);
    assert_string_equal(err.key, "x-b3-sampled");
    assert_int_equal(rdl_b3_parse_multi(t, 32, "-", 1, NULL, 0, NULL, 0, &sc, &err), RDL_EINVAL);
    assert_string_equal(err.key, "x-b3-spanid");
    assert_int_equal(rdl_b3_parse_multi(t, 31, sp, 16, NULL, 0, NULL, 0, &sc, &err), RDL_EINVAL);
    assert_int_equal(rdl_b3_parse_multi(t, 32, sp, 16, NULL, 0, "2", 1, &sc, &err), RDL_EINVAL);
    assert_int_equal(rdl_b3_parse_multi(NULL, 0, sp, 16, NULL, 0, NULL, 0, &sc, &err), RDL_ENOENT);
}

/* ---- composite propagation ------------------------------------------- */

typedef struct hdrs {
    int n;
    char name[16][32];
    char value[16][600];
} hdrs_t;

static bool hdr_get(void *carrier, const char *name, size_t index, const char **v, size_t *len)
{
    hdrs_t *h = carrier;
    for (int i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0 && index-- == 0) {
            *v = h->value[i];
            *len = strlen(h->value[i]);
            return true;
        }
    return false;
}

static void hdr_set(void *carrier, const char *name, const char *value)
{
    hdrs_t *h = carrier;
    snprintf(h->name[h->n], sizeof(h->name[0]), "%s", name);
    snprintf(h->value[h->n], sizeof(h->value[0]), "%s", value);
    h->n++;
}

static void test_propagation(void **state)
{
    rdl_propagators_t p;
    rdl_error_t err;
    assert_int_equal(rdl_propagators_parse("", &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.p[0], RDL_PROP_TRACECONTEXT);
    assert_int_equal(rdl_propagators_parse("b3multi, tracecontext,baggage,b3", &p, &err), 0);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.p[0], RDL_PROP_B3MULTI);
    assert_int_equal(rdl_propagators_parse("none", &p, &err), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(rdl_propagators_parse("tracecontext,jaeger", &p, &err), RDL_EINVAL);
    assert_int_equal(err.column, 14);
    assert_string_equal(err.key, "OTEL_PROPAGATORS");

    hdrs_t *h = calloc(1, sizeof(*h));
    rdl_baggage_t *bag = malloc(sizeof(*bag));
    rdl_span_context_t sc;
    rdl_propagators_parse("tracecontext,baggage,b3multi", &p, NULL);
    hdr_set(h, "Traceparent", TP);
    hdr_set(h, "tracestate", "a=1");
    hdr_set(h, "tracestate", "b=2");
    hdr_set(h, "baggage", "k=v");
    hdr_set(h, "baggage", "k2=v2");
    rdl_baggage_init(bag);
    assert_true(rdl_propagation_extract(&p, hdr_get, h, &sc, bag));
    assert_true(sc.remote);
    assert_string_equal(sc.tracestate, "a=1,b=2");
    assert_int_equal(bag->n, 2);
    /* Inject round trip. */
    hdrs_t *o = calloc(1, sizeof(*o));
    rdl_propagation_inject(&p, &sc, bag, hdr_set, o);
    assert_int_equal(o->n, 6);
    assert_string_equal(o->value[0], TP);
    assert_string_equal(o->value[1], "a=1,b=2");
    assert_string_equal(o->value[2], "k=v,k2=v2");
    assert_string_equal(o->name[3], "X-B3-TraceId");
    assert_string_equal(o->value[3], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(o->value[5], "1");
    /* Two traceparent headers: invalid; a bad tracestate never invalidates the parent. */
    h->n = 0;
    hdr_set(h, "traceparent", TP);
    hdr_set(h, "traceparent", TP);
    assert_false(rdl_propagation_extract(&p, hdr_get, h, &sc, NULL));
    h->n = 0;
    hdr_set(h, "traceparent", TP);
    hdr_set(h, "tracestate", "BAD=1");
    assert_true(rdl_propagation_extract(&p, hdr_get, h, &sc, NULL));
    assert_string_equal(sc.tracestate, "");
    /* Invalid traceparent: B3 multi is next in order. */
    h->n = 0;
    hdr_set(h, "traceparent", "00-zz");
    hdr_set(h, "X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124");
    hdr_set(h, "X-B3-SpanId", "a2fb4a1d1a96d312");
    hdr_set(h, "X-B3-Sampled", "0");
    assert_true(rdl_propagation_extract(&p, hdr_get, h, &sc, NULL));
    assert_int_equal(sc.trace_id[0], 0x46);
    assert_int_equal(sc.flags, 0);
    /* Nothing: no parent, zeroed. */
    h->n = 0;
    assert_false(rdl_propagation_extract(&p, hdr_get, h, &sc, NULL));
    assert_false(rdl_span_context_valid(&sc));
    free(h);
    free(o);
    free(bag);
}

/* ---- samplers -------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_sampler_ratio_statistics(void **state)
{
    rdl_sampler_t s, lower;
    assert_int_equal(rdl_sampler_init(&s, "traceidratio", "0.25", NULL), 0);
    assert_int_equal(rdl_sampler_init(&lower, "traceidratio", "0.1", NULL), 0);
    uint64_t seed = 0x5eed0f7ace;
    int sampled = 0, lower_sampled = 0;
    const int n = 1000000;
    for (int i = 0; i < n; i++) {
        uint8_t id[16];
        uint64_t a = splitmix(&seed), b = splitmix(&seed);
        memcpy(id, &a, 8);
        memcpy(id + 8, &b, 8);
        bool yes = rdl_sampler_should_sample(&s, NULL, id);
        bool low = rdl_sampler_should_sample(&lower, NULL, id);
        sampled += yes;
        lower_sampled += low;
        if (low && !yes)
            fail_msg("not monotone: sampled at 0.1 but not at 0.25");
        /* Deterministic on the id. */
        if (i < 1000)
            assert_int_equal(yes, rdl_sampler_should_sample(&s, NULL, id));
    }
    double share = (double)sampled / n;
    printf("traceidratio 0.25 over %d ids: %.4f %%\n", n, share * 100);
    assert_true(share > 0.247 && share < 0.253);
    assert_true(lower_sampled > 97000 && lower_sampled < 103000);
    /* The rule itself: bytes 8..15 big-endian >> 1 < 0.25 * 2^63. */
    uint8_t id[16] = { 0 };
    id[8] = 0x3f;
    id[9] = 0xff;
    assert_true(rdl_sampler_should_sample(&s, NULL, id));    /* 0x3fff... >> 1 < 2^61 */
    id[8] = 0x40;
    id[9] = 0;
    assert_false(rdl_sampler_should_sample(&s, NULL, id));   /* exactly 2^61 */
    id[8] = 0;
    id[0] = 0xff;                                            /* bytes 0..7 do not count */
    assert_true(rdl_sampler_should_sample(&s, NULL, id));
}

static void test_sampler_parent_based(void **state)
{
    rdl_sampler_t s;
    rdl_error_t err;
    uint8_t id[16];
    memset(id, 0xff, 16);                   /* never sampled by a ratio below 1 */
    rdl_span_context_t parent;
    rdl_traceparent_parse(TP, strlen(TP), &parent, NULL);
    static const char *names[] = { "parentbased_always_on", "parentbased_always_off",
                                   "parentbased_traceidratio" };
    static const bool root[] = { true, false, false };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rdl_sampler_init(&s, names[i], "0.5", &err), 0);
        parent.flags = 0x01;
        assert_true(rdl_sampler_should_sample(&s, &parent, id));
        parent.flags = 0x03;                                 /* bit test, not equality */
        assert_true(rdl_sampler_should_sample(&s, &parent, id));
        parent.flags = 0x00;
        assert_false(rdl_sampler_should_sample(&s, &parent, id));
        parent.flags = 0x02;
        assert_false(rdl_sampler_should_sample(&s, &parent, id));
        assert_int_equal(rdl_sampler_should_sample(&s, NULL, id), root[i]);
    }
    assert_int_equal(rdl_sampler_init(&s, "always_off", NULL, &err), 0);
    parent.flags = 1;
    assert_false(rdl_sampler_should_sample(&s, &parent, id));
    assert_int_equal(rdl_sampler_init(&s, "traceidratio", NULL, &err), 0);
    assert_true(rdl_sampler_should_sample(&s, NULL, id));    /* no arg: 1.0 */
    assert_int_equal(rdl_sampler_init(&s, "traceidratio", "0", &err), 0);
    memset(id, 0, 16);
    id[15] = 1;
    assert_false(rdl_sampler_should_sample(&s, NULL, id));
    char d[64];
    assert_int_equal(rdl_sampler_init(&s, "parentbased_traceidratio", "0.25", &err), 0);
    assert_string_equal(rdl_sampler_describe(&s, d, sizeof(d)), "ParentBased{root:TraceIdRatioBased{0.250000}}");
    assert_int_equal(rdl_sampler_init(&s, "jaeger_remote", NULL, &err), RDL_EINVAL);
    assert_string_equal(err.key, "OTEL_TRACES_SAMPLER");
    assert_int_equal(rdl_sampler_init(&s, "traceidratio", "1.5", &err), RDL_EINVAL);
    assert_string_equal(err.key, "OTEL_TRACES_SAMPLER_ARG");
    assert_int_equal(rdl_sampler_init(&s, "traceidratio", "0.5x", &err), RDL_EINVAL);
}

/* ---- a scripted HTTP peer -------------------------------------------- */

typedef struct peer {
    int fd;
    int port;
    pthread_t tid;
    pthread_mutex_t mu;
    int nscript;
    const char *script[8];              /* full responses, in order; the last repeats */
    int requests;
    int conns;                          /* connections accepted */
    bool keepalive;                     /* serve further requests on a connection */
    char last_body[1 << 16];
    size_t last_len;
    char last_head[4096];
    bool stop;
} peer_t;

/*
 * Reads one request from c and answers it. False when the connection closed
 * before a byte came (a keep-alive client went away).
 */
static bool peer_serve(peer_t *p, int c, bool keepalive)
{
    char buf[1 << 17];
    size_t len = 0;
    char *body = NULL;
    size_t want = 0;
    for (;;) {
        ssize_t r = recv(c, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (!body && (body = strstr(buf, "\r\n\r\n")) != NULL) {
            body += 4;
            char *cl = strcasestr(buf, "content-length:");
            want = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        }
        if (body && len - (size_t)(body - buf) >= want)
            break;
    }
    if (keepalive && len == 0)
        return false;
    pthread_mutex_lock(&p->mu);
    int k = p->requests < p->nscript ? p->requests : p->nscript - 1;
    const char *resp = p->script[k];
    p->requests++;
    if (body) {
        p->last_len = len - (size_t)(body - buf);
        memcpy(p->last_body, body, p->last_len < sizeof(p->last_body) ? p->last_len : 0);
        size_t hl = (size_t)(body - buf);
        memcpy(p->last_head, buf, hl < sizeof(p->last_head) - 1 ? hl : 0);
        p->last_head[hl < sizeof(p->last_head) - 1 ? hl : 0] = '\0';
    }
    pthread_mutex_unlock(&p->mu);
    ssize_t w = send(c, resp, strlen(resp), MSG_NOSIGNAL);
    (void)w;
    return true;
}

static void *peer_main(void *arg)
{
    peer_t *p = arg;
    for (;;) {
        int c = accept(p->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop, keepalive = p->keepalive;
        if (!stop)
            p->conns++;
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            close(c);
            return NULL;
        }
        /* Without keep-alive one request per connection: the scripts answer Connection: close. */
        while (peer_serve(p, c, keepalive) && keepalive)
            ;
        close(c);
    }
}

static peer_t *peer_start(int n, const char **script)
{
    peer_t *p = calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    p->nscript = n;
    for (int i = 0; i < n; i++)
        p->script[i] = script[i];
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(p->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t sl = sizeof(a);
    getsockname(p->fd, (struct sockaddr *)&a, &sl);
    p->port = ntohs(a.sin_port);
    listen(p->fd, 16);
    pthread_create(&p->tid, NULL, peer_main, p);
    return p;
}

static int peer_requests(peer_t *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->requests;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void peer_stop(peer_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    connect(c, (struct sockaddr *)&a, sizeof(a));
    close(c);
    pthread_join(p->tid, NULL);
    close(p->fd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static const char OK_JSON[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
static const char OK_PB[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                            "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char OK_PB_KEEPALIVE[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                                     "Content-Length: 0\r\n\r\n";
static const char BUSY[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\n"
                           "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char BAD[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char PARTIAL[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 65\r\n"
                              "Connection: close\r\n\r\n"
                              "{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":\"too old\"}}";

static int log_lines;
static void count_log(void *arg, const char *level, const char *msg, const char *k, const char *v)
{
    log_lines++;
}

static rdl_tracer_t *tracer_for(peer_t *p, rdl_otlp_protocol_t proto, bool gzip)
{
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    if (p)
        snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    snprintf(o.service_name, sizeof(o.service_name), "unit");
    snprintf(o.resource_attrs, sizeof(o.resource_attrs), "deployment.environment=test,k8s.pod.name=a%%2Cb");
    o.protocol = proto;
    o.gzip = gzip;
    o.retry_initial_ms = 10;
    o.retry_max_ms = 20;
    o.export_timeout_ms = 3000;
    o.timeout_ms = 2000;
    o.log = count_log;
    o.export = p != NULL;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    return t;
}

static void make_spans(rdl_tracer_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        rdl_span_t *s = rdl_span_start(t, "work", RDL_SPAN_INTERNAL, NULL);
        rdl_span_set_int(s, "i", i);
        rdl_span_end(s);
    }
}

/* ---- spans ----------------------------------------------------------- */

static void test_span_basics(void **state)
{
    peer_t *p = peer_start(1, (const char *[]){ OK_JSON });
    rdl_tracer_t *t = tracer_for(p, RDL_OTLP_JSON, false);
    rdl_span_t *root = rdl_span_start(t, "GET /x/{id}", RDL_SPAN_SERVER, NULL);
    assert_true(rdl_span_recording(root));
    const rdl_span_context_t *rc = rdl_span_context(root);
    assert_true(rdl_span_context_valid(rc));
    assert_true(rc->flags & RDL_TRACE_FLAG_SAMPLED);
    rdl_span_t *child = rdl_span_start(NULL, "child", RDL_SPAN_CLIENT, root);
    assert_memory_equal(rdl_span_context(child)->trace_id, rc->trace_id, 16);
    assert_memory_not_equal(rdl_span_context(child)->span_id, rc->span_id, 8);
    rdl_span_set_str(root, "http.request.method", "GET", 3);
    rdl_span_set_int(root, "http.response.status_code", 503);
    rdl_span_set_int(root, "http.response.status_code", 200);   /* replaces */
    rdl_span_set_double(root, "ratio", 0.5);
    rdl_span_set_bool(root, "ok", true);
    rdl_attr_t ea[] = { { .key = "exception.message", .type = RDL_ATTR_STRING, .v.str = { "boom", 4 } } };
    rdl_span_add_event(root, "exception", ea, 1);
    rdl_span_add_link(root, rdl_span_context(child), NULL, 0);
    rdl_span_set_status(root, RDL_STATUS_ERROR, "upstream timeout");
    rdl_span_end(child);
    rdl_span_end(root);
    rdl_span_end(root);                                          /* no-op */
    rdl_span_set_int(root, "late", 1);                           /* no-op, no crash */
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_started, 2);
    assert_int_equal(st.spans_ended, 2);
    assert_int_equal(st.spans_exported, 2);
    assert_int_equal(st.spans_dropped, 0);
    assert_int_equal(st.spans_open, 0);

    /* The body is OTLP/JSON: check it field by field. */
    json_error_t je;
    json_t *doc = json_loadb(p->last_body, p->last_len, 0, &je);
    assert_non_null(doc);
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    json_t *rattrs = json_object_get(json_object_get(rs, "resource"), "attributes");
    bool saw_service = false, saw_pod = false;
    for (size_t i = 0; i < json_array_size(rattrs); i++) {
        json_t *kv = json_array_get(rattrs, i);
        const char *k = json_string_value(json_object_get(kv, "key"));
        const char *v = json_string_value(json_object_get(json_object_get(kv, "value"), "stringValue"));
        saw_service |= strcmp(k, "service.name") == 0 && strcmp(v, "unit") == 0;
        saw_pod |= strcmp(k, "k8s.pod.name") == 0 && strcmp(v, "a,b") == 0;
    }
    assert_true(saw_service && saw_pod);
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_t *c = json_array_get(spans, 0), *r = json_array_get(spans, 1);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "child");
    assert_int_equal(json_integer_value(json_object_get(c, "kind")), 3);
    assert_string_equal(json_string_value(json_object_get(c, "parentSpanId")),
                        json_string_value(json_object_get(r, "spanId")));
    assert_null(json_object_get(r, "parentSpanId"));
    assert_int_equal(strlen(json_string_value(json_object_get(r, "traceId"))), 32);
    assert_int_equal(json_integer_value(json_object_get(r, "kind")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "flags")), 0x101);
    const char *start = json_string_value(json_object_get(r, "startTimeUnixNano"));
    const char *end = json_string_value(json_object_get(r, "endTimeUnixNano"));
    assert_true(strtoull(end, NULL, 10) >= strtoull(start, NULL, 10));
    assert_true(strtoull(start, NULL, 10) > 1700000000000000000ull);
    json_t *attrs = json_object_get(r, "attributes");
    assert_int_equal(json_array_size(attrs), 4);
    json_t *code = json_object_get(json_array_get(attrs, 1), "value");
    assert_string_equal(json_string_value(json_object_get(code, "intValue")), "200");
    assert_true(json_is_real(json_object_get(json_object_get(json_array_get(attrs, 2), "value"), "doubleValue")));
    assert_true(json_is_true(json_object_get(json_object_get(json_array_get(attrs, 3), "value"), "boolValue")));
    json_t *ev = json_array_get(json_object_get(r, "events"), 0);
    assert_string_equal(json_string_value(json_object_get(ev, "name")), "exception");
    json_t *status = json_object_get(r, "status");
    assert_int_equal(json_integer_value(json_object_get(status, "code")), 2);
    assert_string_equal(json_string_value(json_object_get(status, "message")), "upstream timeout");
    assert_int_equal(json_array_size(json_object_get(r, "links")), 1);
    assert_non_null(strstr(p->last_head, "Content-Type: application/json"));
    json_decref(doc);
    rdl_tracer_free(t);
    peer_stop(p);
}

static void test_span_limits_and_not_sampled(void **state)
{
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    o.max_attributes = 3;
    o.max_events = 1;
    o.export = false;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    /* Export off: spans carry ids but record nothing. */
    rdl_span_t *s = rdl_span_start(t, "x", RDL_SPAN_INTERNAL, NULL);
    assert_non_null(s);
    assert_false(rdl_span_recording(s));
    assert_true(rdl_span_context_valid(rdl_span_context(s)));
    rdl_span_end(s);
    rdl_tracer_free(t);

    peer_t *p = peer_start(1, (const char *[]){ OK_JSON });
    t = tracer_for(p, RDL_OTLP_JSON, false);
    rdl_tracer_free(t);
    rdl_tracer_opts_default(&o);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    o.max_attributes = 3;
    o.max_events = 1;
    o.protocol = RDL_OTLP_JSON;
    o.log = count_log;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    s = rdl_span_start(t, "x", RDL_SPAN_INTERNAL, NULL);
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        rdl_span_set_int(s, k, i);
    }
    rdl_span_set_int(s, "k0", 42);        /* an existing key still updates */
    rdl_span_add_event(s, "e1", NULL, 0);
    rdl_span_add_event(s, "e2", NULL, 0);
    /* A remote unsampled parent: the default parentbased_always_on follows it. */
    rdl_span_context_t parent;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    rdl_traceparent_parse(tp, strlen(tp), &parent, NULL);
    rdl_span_t *u = rdl_span_start_remote(t, "unsampled", RDL_SPAN_SERVER, &parent);
    assert_false(rdl_span_recording(u));
    assert_int_equal(rdl_span_context(u)->flags & RDL_TRACE_FLAG_SAMPLED, 0);
    assert_memory_equal(rdl_span_context(u)->trace_id, parent.trace_id, 16);
    rdl_span_end(u);
    rdl_span_end(s);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    json_t *doc = json_loadb(p->last_body, p->last_len, 0, NULL);
    json_t *span = json_array_get(json_object_get(json_array_get(json_object_get(
        json_array_get(json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0), "spans"), 0);
    assert_int_equal(json_array_size(json_object_get(span, "attributes")), 3);
    assert_int_equal(json_integer_value(json_object_get(span, "droppedAttributesCount")), 2);
    assert_int_equal(json_integer_value(json_object_get(span, "droppedEventsCount")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
        json_object_get(span, "attributes"), 0), "value"), "intValue")), "42");
    json_decref(doc);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_exported, 1);
    rdl_tracer_free(t);
    peer_stop(p);
}

static void test_keep_errors(void **state)
{
    peer_t *p = peer_start(1, (const char *[]){ OK_JSON });
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    o.protocol = RDL_OTLP_JSON;
    o.keep_errors = true;
    o.log = count_log;
    rdl_sampler_init(&o.sampler, "always_off", NULL, NULL);
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    /* A trace that ends well is dropped... */
    rdl_span_t *r1 = rdl_span_start(t, "ok", RDL_SPAN_SERVER, NULL);
    rdl_span_t *c1 = rdl_span_start(t, "db", RDL_SPAN_CLIENT, r1);
    assert_true(rdl_span_recording(r1));
    assert_int_equal(rdl_span_context(r1)->flags & RDL_TRACE_FLAG_SAMPLED, 0);
    rdl_span_end(c1);
    rdl_span_end(r1);
    /* ...one whose local root ends in error is exported whole, late children too. */
    rdl_span_t *r2 = rdl_span_start(t, "bad", RDL_SPAN_SERVER, NULL);
    rdl_span_t *c2 = rdl_span_start(t, "db", RDL_SPAN_CLIENT, r2);
    rdl_span_t *c3 = rdl_span_start(t, "late", RDL_SPAN_CLIENT, r2);
    rdl_span_end(c2);
    rdl_span_set_status(r2, RDL_STATUS_ERROR, NULL);
    rdl_span_end(r2);
    rdl_span_end(c3);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_exported, 3);
    json_t *doc = json_loadb(p->last_body, p->last_len, 0, NULL);
    json_t *spans = json_object_get(json_array_get(json_object_get(
        json_array_get(json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_not_equal(json_string_value(json_object_get(json_array_get(spans, i), "name")), "ok");
    json_decref(doc);
    rdl_tracer_free(t);
    peer_stop(p);
}

/* ---- exporter -------------------------------------------------------- */

static void test_export_retry_and_refusal(void **state)
{
    /* 503 with Retry-After: 0 twice, then 200: retried, exported. */
    peer_t *p = peer_start(3, (const char *[]){ BUSY, BUSY, OK_PB });
    rdl_tracer_t *t = tracer_for(p, RDL_OTLP_PROTOBUF, false);
    make_spans(t, 5);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(peer_requests(p), 3);
    assert_int_equal(st.export_requests, 3);
    assert_int_equal(st.spans_exported, 5);
    assert_int_equal(st.spans_dropped, 0);
    assert_non_null(strstr(p->last_head, "Content-Type: application/x-protobuf"));
    rdl_tracer_free(t);
    peer_stop(p);

    /* 400: never retried, dropped and counted. */
    p = peer_start(1, (const char *[]){ BAD });
    t = tracer_for(p, RDL_OTLP_PROTOBUF, false);
    log_lines = 0;
    make_spans(t, 4);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats(t, &st);
    assert_int_equal(peer_requests(p), 1);
    assert_int_equal(st.spans_exported, 0);
    assert_int_equal(st.spans_dropped, 4);
    assert_int_equal(st.export_failures, 1);
    assert_int_equal(log_lines, 1);
    rdl_tracer_free(t);
    peer_stop(p);

    /* Partial success: not retried; rejected spans counted as dropped. */
    p = peer_start(1, (const char *[]){ PARTIAL });
    t = tracer_for(p, RDL_OTLP_JSON, false);
    log_lines = 0;
    make_spans(t, 5);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats(t, &st);
    assert_int_equal(peer_requests(p), 1);
    assert_int_equal(st.spans_exported, 3);
    assert_int_equal(st.spans_dropped, 2);
    assert_int_equal(log_lines, 1);
    rdl_tracer_free(t);
    peer_stop(p);
}

static void test_export_gzip(void **state)
{
    peer_t *p = peer_start(1, (const char *[]){ OK_JSON });
    rdl_tracer_t *t = tracer_for(p, RDL_OTLP_JSON, true);
    make_spans(t, 50);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    assert_non_null(strstr(p->last_head, "Content-Encoding: gzip"));
    /* gunzip and parse */
    z_stream z;
    memset(&z, 0, sizeof(z));
    inflateInit2(&z, 31);
    static char out[1 << 17];
    z.next_in = (unsigned char *)p->last_body;
    z.avail_in = (uInt)p->last_len;
    z.next_out = (unsigned char *)out;
    z.avail_out = sizeof(out);
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    json_t *doc = json_loadb(out, z.total_out, 0, NULL);
    inflateEnd(&z);
    assert_non_null(doc);
    json_t *spans = json_object_get(json_array_get(json_object_get(
        json_array_get(json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 50);
    json_decref(doc);
    rdl_tracer_free(t);
    peer_stop(p);
}

/* Polls the tracer until n spans are exported or about 5 s have passed. */
static void wait_exported(rdl_tracer_t *t, uint64_t n)
{
    rdl_tracer_stats_t st;
    for (int i = 0; i < 500; i++) {
        rdl_tracer_stats(t, &st);
        if (st.spans_exported >= n)
            return;
        usleep(10000);
    }
}

static void test_export_full_batches_only(void **state)
{
    /* Batch 4, timer far away: 10 spans make exactly two full requests; the 2 left wait. */
    peer_t *p = peer_start(1, (const char *[]){ OK_PB });
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    o.max_batch = 4;
    o.schedule_delay_ms = 60000;
    o.log = count_log;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    make_spans(t, 10);
    wait_exported(t, 8);
    usleep(200000);                             /* time for a wrong third request to show */
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_exported, 8);
    assert_int_equal(st.export_requests, 2);
    assert_int_equal(peer_requests(p), 2);
    /* A flush sends the partial batch. */
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_exported, 10);
    assert_int_equal(st.export_requests, 3);
    rdl_tracer_free(t);
    peer_stop(p);

    /* The schedule delay sends a partial batch with no flush. */
    p = peer_start(1, (const char *[]){ OK_PB });
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    o.schedule_delay_ms = 100;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    make_spans(t, 3);
    wait_exported(t, 3);
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_exported, 3);
    assert_int_equal(st.export_requests, 1);
    rdl_tracer_free(t);
    peer_stop(p);
}

static void test_export_keeps_the_connection(void **state)
{
    /* Three exports to a keep-alive collector: one TCP connection, not one per export. */
    peer_t *p = peer_start(1, (const char *[]){ OK_PB_KEEPALIVE });
    pthread_mutex_lock(&p->mu);
    p->keepalive = true;
    pthread_mutex_unlock(&p->mu);
    rdl_tracer_t *t = tracer_for(p, RDL_OTLP_PROTOBUF, false);
    for (int i = 0; i < 3; i++) {
        make_spans(t, 2);
        assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    }
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.export_requests, 3);
    assert_int_equal(st.spans_exported, 6);
    assert_int_equal(peer_requests(p), 3);
    pthread_mutex_lock(&p->mu);
    int conns = p->conns;
    pthread_mutex_unlock(&p->mu);
    assert_int_equal(conns, 1);
    rdl_tracer_free(t);
    peer_stop(p);
}

static void test_export_down_drops_and_counts(void **state)
{
    /* Nobody listens: the queue (8) fills, the rest is dropped and counted. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t sl = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);                                  /* a port with no listener */
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", ntohs(a.sin_port));
    o.max_queue = 8;
    o.max_batch = 8;
    o.schedule_delay_ms = 60000;
    o.retry_initial_ms = 10;
    o.export_timeout_ms = 100;
    o.shutdown_ms = 500;
    o.log = count_log;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    make_spans(t, 20);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_ended, 20);
    /* How many the queue refused depends on how fast the exporter drained it (a loaded
     * machine, TSan): none is exported, so all 20 end up dropped either way. */
    assert_true(st.spans_dropped <= 20);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_dropped, 20);
    assert_int_equal(st.spans_exported, 0);
    assert_true(st.export_failures >= 1);
    rdl_tracer_free(t);
}

/* ---- threads ----------------------------------------------------------- */

typedef struct worker_arg {
    rdl_tracer_t *t;
    rdl_span_t *handoff;
} worker_arg_t;

static void *span_worker(void *arg)
{
    worker_arg_t *w = arg;
    for (int i = 0; i < 2000; i++) {
        rdl_span_t *s = rdl_span_start(w->t, "w", RDL_SPAN_INTERNAL, NULL);
        rdl_span_set_str(s, "k", "value", 5);
        rdl_span_end(s);
    }
    rdl_span_end(w->handoff);                   /* a span started elsewhere ends here */
    return NULL;
}

static void test_threads(void **state)
{
    peer_t *p = peer_start(1, (const char *[]){ OK_PB });
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    o.max_queue = 1 << 16;
    o.schedule_delay_ms = 20;
    o.log = count_log;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    pthread_t tid[3];
    worker_arg_t w[3];
    for (int i = 0; i < 3; i++) {
        w[i].t = t;
        w[i].handoff = rdl_span_start(t, "handoff", RDL_SPAN_INTERNAL, NULL);
        pthread_create(&tid[i], NULL, span_worker, &w[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(tid[i], NULL);
    assert_int_equal(rdl_tracer_flush(t, 10000), 0);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_started, 6003);
    assert_int_equal(st.spans_ended, 6003);
    assert_int_equal(st.spans_exported + st.spans_dropped, 6003);
    assert_int_equal(st.spans_dropped, 0);
    rdl_tracer_free(t);
    peer_stop(p);
}

static void test_unfinished_and_shutdown_report(void **state)
{
    peer_t *p = peer_start(1, (const char *[]){ OK_PB });
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d/v1/traces", p->port);
    o.unfinished_ms = 1;
    o.schedule_delay_ms = 10;
    o.log = count_log;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    log_lines = 0;
    rdl_span_t *open1 = rdl_span_start(t, "forgotten", RDL_SPAN_INTERNAL, NULL);
    rdl_span_t *open2 = rdl_span_start(t, "forgotten too", RDL_SPAN_INTERNAL, NULL);
    (void)open1;
    (void)open2;
    usleep(50000);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    usleep(50000);
    assert_int_equal(rdl_tracer_flush(t, 5000), 0);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_unfinished, 2);           /* each counted once */
    assert_int_equal(st.spans_open, 2);
    assert_int_equal(log_lines, 1);                     /* logged once */
    rdl_tracer_free(t);                                 /* reports the open spans */
    assert_int_equal(log_lines, 2);
    peer_stop(p);
}

/* ---- env ------------------------------------------------------------- */

static void test_env(void **state)
{
    rdl_tracer_opts_t o;
    rdl_error_t err;
    rdl_tracer_opts_default(&o);
    setenv("OTEL_SERVICE_NAME", "svc", 1);
    setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", 1);
    setenv("OTEL_TRACES_SAMPLER_ARG", "0.01", 1);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/", 1);
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1);
    setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret,x=y", 1);
    setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip", 1);
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100", 1);
    setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), 0);
    assert_string_equal(o.service_name, "svc");
    assert_int_equal(o.sampler.kind, RDL_SAMPLER_PARENTBASED_TRACEIDRATIO);
    assert_true(o.sampler.ratio == 0.01);
    assert_string_equal(o.endpoint, "http://collector:4318/v1/traces");
    assert_int_equal(o.protocol, RDL_OTLP_JSON);
    assert_true(o.gzip);
    assert_int_equal(o.max_queue, 100);
    assert_int_equal(o.max_batch, 100);                 /* never above the queue */
    assert_string_equal(o.headers, "api-key=secret,x=y");
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), 0);
    assert_string_equal(o.endpoint, "http://c:4318/custom");
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "OTEL_EXPORTER_OTLP_PROTOCOL");
    unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
    setenv("OTEL_BSP_SCHEDULE_DELAY", "-5", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "OTEL_BSP_SCHEDULE_DELAY");
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
    setenv("OTEL_TRACES_EXPORTER", "none", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), 0);
    assert_false(o.export);
    setenv("OTEL_TRACES_EXPORTER", "zipkin", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), RDL_EINVAL);
    const char *vars[] = { "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                           "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
                           "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_BSP_MAX_QUEUE_SIZE",
                           "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                           "OTEL_TRACES_EXPORTER" };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

/* OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS: what is read, and a table of what is refused. */
typedef struct kv_seen {
    char text[256];
} kv_seen_t;

static int kv_collect(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    kv_seen_t *s = arg;
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof(s->text) - used, "[%.*s|%.*s]", (int)kl, k, (int)vl, v);
    return 0;
}

static void test_env_lists(void **state)
{
    rdl_error_t err;
    kv_seen_t seen = { "" };
    assert_int_equal(rdl__trace_kv_list("L", " a = 1 ,, k8s.pod.name=a%2Cb ,e=%C3%A9,sp=x%20y,", false,
                                kv_collect, &seen, &err), 0);
    assert_string_equal(seen.text, "[a|1][k8s.pod.name|a,b][e|\xc3\xa9][sp|x y]");
    seen.text[0] = '\0';
    assert_int_equal(rdl__trace_kv_list("H", "api-key=se%3Dcret,X-Tenant=t1", true, kv_collect, &seen, &err), 0);
    assert_string_equal(seen.text, "[api-key|se=cret][X-Tenant|t1]");
    assert_int_equal(rdl__trace_kv_list("H", "", true, kv_collect, &seen, &err), 0);

    static const struct { const char *list; bool headers; int column; const char *msg; } bad[] = {
        { "novalue", false, 1, "expected key=value" },
        { "a=1, b", false, 6, "expected key=value" },
        { "=1", false, 1, "empty key" },
        { "a=%4", false, 3, "two hex digits" },
        { "a=x%G1", false, 4, "two hex digits" },
        { "a=%", false, 3, "two hex digits" },
        { "a b=1", true, 2, "a header name is a token" },
        { "x=1,k:v=2", true, 6, "a header name is a token" },
        { "a=x%0d%0aHost: evil", true, 3, "decodes to a control character" },
        { "a=%00", true, 3, "decodes to a control character" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = rdl__trace_kv_list("VAR", bad[i].list, bad[i].headers, kv_collect, &seen, &err);
        if (rc != RDL_EINVAL || err.column != bad[i].column || strcmp(err.key, "VAR") != 0 ||
            strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu '%s': rc %d column %d key '%s' msg '%s'", i, bad[i].list, rc,
                     err.column, err.key, err.msg);
    }

    /* the environment path names the variable */
    rdl_tracer_opts_t o;
    rdl_tracer_opts_default(&o);
    setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "ok=1,bad key=2", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    assert_int_equal(err.column, 9);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    setenv("OTEL_RESOURCE_ATTRIBUTES", "team=core,region", 1);
    assert_int_equal(rdl_tracer_opts_from_env(&o, &err), RDL_EINVAL);
    assert_string_equal(err.key, "OTEL_RESOURCE_ATTRIBUTES");
    assert_int_equal(err.column, 11);
    unsetenv("OTEL_RESOURCE_ATTRIBUTES");
    /* a list set in code that the tracer cannot read is refused at creation */
    rdl_tracer_opts_default(&o);
    snprintf(o.resource_attrs, sizeof(o.resource_attrs), "a=%%zz");
    rdl_tracer_t *t = NULL;
    assert_int_equal(rdl_tracer_new(&o, &t), RDL_EINVAL);
    assert_null(t);
}

/* ---- protobuf encoding ----------------------------------------------- */

/* Finds field `field` (length-delimited) in a protobuf message; returns its bytes. */
static const unsigned char *pb_find(const unsigned char *p, const unsigned char *end, unsigned field,
                                    size_t *len)
{
    while (p < end) {
        uint64_t key = 0, v = 0;
        for (int s = 0; p < end; s += 7) {
            key |= (uint64_t)(*p & 0x7f) << s;
            if (!(*p++ & 0x80))
                break;
        }
        unsigned wt = key & 7;
        if (wt == 0) {
            while (p < end && (*p++ & 0x80))
                ;
        } else if (wt == 1) {
            p += 8;
        } else if (wt == 5) {
            p += 4;
        } else if (wt == 2) {
            for (int s = 0; p < end; s += 7) {
                v |= (uint64_t)(*p & 0x7f) << s;
                if (!(*p++ & 0x80))
                    break;
            }
            if ((key >> 3) == field) {
                *len = v;
                return p;
            }
            p += v;
        } else {
            return NULL;
        }
    }
    return NULL;
}

/* A tracer that records but never reaches a receiver (its exporter waits an hour). */
static void offline_opts(rdl_tracer_opts_t *o)
{
    rdl_tracer_opts_default(o);
    o->schedule_delay_ms = 3600000;
    snprintf(o->endpoint, sizeof(o->endpoint), "http://127.0.0.1:1/v1/traces");
    o->log = count_log;
    o->shutdown_ms = 100;
    o->export_timeout_ms = 100;
}

/*
 * Times the caller already read (the runtime's request start and end): the
 * span keeps them exactly; an end before the start is a zero duration; 0
 * means now.
 */
static void test_span_given_times(void **state)
{
    rdl_tracer_opts_t o;
    offline_opts(&o);
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    uint64_t t0 = rdl_now_ns() - 5000000;                       /* 5 ms ago */
    rdl_span_t *s = rdl_span_start_remote_at(t, "given", RDL_SPAN_SERVER, NULL, t0);
    assert_int_equal(s->start_mono, t0);
    uint64_t wall_then = rdl_wall_ns() - 5000000;
    assert_true(s->start_wall + 100000000 > wall_then && s->start_wall < wall_then + 100000000);
    rdl_span_end_at(s, t0 + 1234567);
    assert_int_equal(s->end_wall - s->start_wall, 1234567);     /* queued, not yet recycled */
    rdl_span_t *back = rdl_span_start_remote_at(t, "backwards", RDL_SPAN_SERVER, NULL, t0);
    rdl_span_end_at(back, t0 - 10);
    assert_int_equal(back->end_wall, back->start_wall);
    uint64_t before = rdl_now_ns();
    rdl_span_t *now = rdl_span_start_remote_at(t, "now", RDL_SPAN_SERVER, NULL, 0);
    uint64_t after = rdl_now_ns();
    assert_true(now->start_mono >= before && now->start_mono <= after);
    rdl_span_end_at(now, 0);
    assert_true(now->end_wall >= now->start_wall);
    rdl_tracer_stats_t st;
    rdl_tracer_stats(t, &st);
    assert_int_equal(st.spans_ended, 3);
    rdl_tracer_free(t);
}

/*
 * A collector's answer, read: partial success in both encodings, and a table
 * of bodies that are not an ExportTraceServiceResponse with the place each
 * error names.
 */
static void test_otlp_response(void **state)
{
    (void)state;
    static const struct {
        rdl_otlp_protocol_t proto;
        const char *body;
        size_t n;
        int64_t rejected;
        const char *message;
    } good[] = {
        { RDL_OTLP_PROTOBUF, "", 0, 0, "" },
        { RDL_OTLP_PROTOBUF, "\x0a\x0b\x08\x03\x12\x07too old", 13, 3, "too old" },
        { RDL_OTLP_PROTOBUF, "\x0a\x02\x08\x05\x18\x01", 6, 5, "" },     /* unknown field 3 skipped */
        { RDL_OTLP_JSON, "{}", 2, 0, "" },
        { RDL_OTLP_JSON, "{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":\"too old\"}}", 0,
          2, "too old" },
        { RDL_OTLP_JSON, "{\"partialSuccess\":{\"rejectedSpans\":4}}", 0, 4, "" },
    };
    static const struct {
        rdl_otlp_protocol_t proto;
        const char *body;
        size_t n;
        int line, column;
        const char *what;
    } bad[] = {
        { RDL_OTLP_PROTOBUF, "\x0a", 1, 0, 1, "expected partial_success within the body" },
        { RDL_OTLP_PROTOBUF, "\x0a\x05\x08", 3, 0, 1, "expected partial_success within the body" },
        { RDL_OTLP_PROTOBUF, "\x80", 1, 0, 1, "expected a field key" },
        { RDL_OTLP_PROTOBUF, "\x18\x01\x1b", 3, 0, 3, "expected a field of a known wire type" },
        { RDL_OTLP_PROTOBUF, "\x0a\x02\x08\xff", 4, 0, 3, "expected the varint of rejected_spans" },
        { RDL_OTLP_PROTOBUF, "\x0a\x03\x12\x05x", 5, 0, 3, "expected error_message within the message" },
        { RDL_OTLP_JSON, "[]", 2, 1, 1, "expected a JSON object" },
        { RDL_OTLP_JSON, "{\"partialSuccess\":", 0, 1, 18, "expected a JSON object" },
        { RDL_OTLP_JSON, "nul", 3, 1, 3, "expected a JSON object" },
    };
    rdl_buf_t msg;
    rdl_buf_init(&msg);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        size_t n = good[i].n ? good[i].n : strlen(good[i].body);
        int64_t rejected = -1;
        rdl_error_t err;
        rdl_error_clear(&err);
        if (rdl_otlp_parse_response(good[i].body, n, good[i].proto, &rejected, &msg, &err) != 0)
            fail_msg("good %zu refused: %s", i, err.msg);
        assert_int_equal(rejected, good[i].rejected);
        assert_string_equal(msg.data, good[i].message);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = bad[i].n ? bad[i].n : strlen(bad[i].body);
        int64_t rejected = -1;
        rdl_error_t err;
        rdl_error_clear(&err);
        rdl_buf_puts(&msg, "stale");
        assert_int_equal(rdl_otlp_parse_response(bad[i].body, n, bad[i].proto, &rejected, &msg, &err),
                         RDL_EINVAL);
        if (err.code != RDL_EINVAL || err.line != bad[i].line || err.column != bad[i].column ||
            strstr(err.msg, bad[i].what) == NULL)
            fail_msg("bad %zu: %d:%d %s", i, err.line, err.column, err.msg);
        assert_int_equal(rejected, 0);
        assert_int_equal(msg.len, 0);
    }
    rdl_buf_close(&msg);
}

static void test_protobuf_encoding(void **state)
{
    rdl_tracer_opts_t o;
    offline_opts(&o);
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    rdl_span_t *s = rdl_span_start(t, "a-long-name-that-makes-the-span-longer-than-127-bytes-for-sure",
                                   RDL_SPAN_SERVER, NULL);
    char big[300];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rdl_span_set_str(s, "big", big, strlen(big));
    rdl_span_set_int(s, "neg", -1);
    /* Encode the live span directly (it is ended first so its end time is set). */
    rdl_span_t *arr[1] = { s };
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_otlp_encode(t, arr, 1, RDL_OTLP_PROTOBUF, &b);
    const unsigned char *p = (const unsigned char *)b.data, *end = p + b.len;
    size_t len;
    const unsigned char *rs = pb_find(p, end, 1, &len);          /* resource_spans */
    assert_non_null(rs);
    assert_int_equal(rs + len, end);
    const unsigned char *ss = pb_find(rs, rs + len, 2, &len);    /* scope_spans */
    assert_non_null(ss);
    const unsigned char *sp = pb_find(ss, ss + len, 2, &len);    /* spans */
    assert_non_null(sp);
    size_t slen = len;
    const unsigned char *tid = pb_find(sp, sp + slen, 1, &len);
    assert_int_equal(len, 16);
    assert_memory_equal(tid, rdl_span_context(s)->trace_id, 16);
    const unsigned char *name = pb_find(sp, sp + slen, 5, &len);
    assert_int_equal(len, strlen("a-long-name-that-makes-the-span-longer-than-127-bytes-for-sure"));
    assert_memory_equal(name, "a-long-name", 11);
    const unsigned char *kv = pb_find(sp, sp + slen, 9, &len);   /* first attribute */
    const unsigned char *key = pb_find(kv, kv + len, 1, &len);
    assert_memory_equal(key, "big", 3);
    rdl_buf_close(&b);
    rdl_span_end(s);
    rdl_tracer_free(t);
}

/* Whether the n bytes of needle occur in the buffer. */
static bool buf_has(const rdl_buf_t *b, const char *needle, size_t n)
{
    return memmem(b->data, b->len, needle, n) != NULL;
}

/*
 * OTLP strings are protobuf strings: invalid UTF-8 anywhere would make a
 * collector refuse the whole export. Every string a caller gives (name, keys,
 * values, event, status, resource) goes out with U+FFFD in its place.
 */
static void test_invalid_utf8_never_exported(void **state)
{
    rdl_tracer_opts_t o;
    offline_opts(&o);
    snprintf(o.resource_attrs, sizeof(o.resource_attrs), "team=a%%FFb");
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);
    rdl_span_t *s = rdl_span_start(t, "GET /caf\xc3", RDL_SPAN_SERVER, NULL);
    rdl_span_set_str(s, "user_agent.original", "bot\xff\xfe/1", 8);
    rdl_span_set_str(s, "k\xe2\x82", "ok \xc3\xa9", 5);
    rdl_attr_t ev[] = { { .key = "why", .type = RDL_ATTR_STRING, .v.str = { "x\x80", 2 } } };
    rdl_span_add_event(s, "retry\xf5", ev, 1);
    rdl_span_set_status(s, RDL_STATUS_ERROR, "boom\xc0\xaf");
    rdl_span_t *arr[1] = { s };
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_otlp_encode(t, arr, 1, RDL_OTLP_PROTOBUF, &b);
    static const char *const want[] = {
        "GET /caf\xef\xbf\xbd", "bot\xef\xbf\xbd\xef\xbf\xbd/1", "k\xef\xbf\xbd", "ok \xc3\xa9",
        "retry\xef\xbf\xbd", "x\xef\xbf\xbd", "boom\xef\xbf\xbd\xef\xbf\xbd", "a\xef\xbf\xbd\x62",
    };
    static const char *const raw[] = { "caf\xc3", "bot\xff", "k\xe2\x82", "retry\xf5", "x\x80",
                                       "boom\xc0", "a\xff" };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!buf_has(&b, want[i], strlen(want[i])))
            fail_msg("'%s' (%zu) not in the export", want[i], i);
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
        if (buf_has(&b, raw[i], strlen(raw[i])))
            fail_msg("raw bytes of case %zu were exported", i);
    rdl_buf_close(&b);
    rdl_span_end(s);
    rdl_tracer_free(t);
}

/* The attributes array of the one span in a JSON encoding of s, as text. */
static char *json_attrs_of(rdl_tracer_t *t, rdl_span_t *s)
{
    rdl_span_t *arr[1] = { s };
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_otlp_encode(t, arr, 1, RDL_OTLP_JSON, &b);
    json_t *doc = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(doc);
    json_t *span = json_array_get(json_object_get(json_array_get(json_object_get(
        json_array_get(json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0), "spans"), 0);
    json_t *dropped = json_object_get(span, "droppedAttributesCount");
    json_t *out = json_pack("{s:O,s:I}", "attributes", json_object_get(span, "attributes"),
                            "dropped", (json_int_t)(dropped ? json_integer_value(dropped) : 0));
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(doc);
    rdl_buf_close(&b);
    return text;
}

static void test_span_set_attrs(void **state)
{
    rdl_tracer_opts_t o;
    offline_opts(&o);
    o.max_attributes = 6;
    rdl_tracer_t *t;
    assert_int_equal(rdl_tracer_new(&o, &t), 0);

    /* One call with static keys gives what one setter call per key gives. */
    char path[] = "/v1/courses/3";
    rdl_span_t *a = rdl_span_start(t, "GET", RDL_SPAN_SERVER, NULL);
    rdl_span_set_str(a, "http.request.method", "GET", 3);
    rdl_span_set_str(a, "url.path", path, strlen(path));
    rdl_span_set_int(a, "server.port", 8080);
    rdl_span_set_double(a, "ratio", 0.25);
    rdl_span_set_bool(a, "ok", true);
    rdl_span_t *b = rdl_span_start(t, "GET", RDL_SPAN_SERVER, NULL);
    rdl_attr_t attrs[] = {
        { .key = "http.request.method", .key_len = 19, .type = RDL_ATTR_STRING, .v.str = { "GET", 3 } },
        { .key = "url.path", .type = RDL_ATTR_STRING, .v.str = { path, strlen(path) } },   /* key_len 0: measured */
        { .key = NULL, .type = RDL_ATTR_INT, .v.i = 1 },                                  /* skipped */
        { .key = "server.port", .key_len = 11, .type = RDL_ATTR_INT, .v.i = 8080 },
        { .key = "ratio", .key_len = 5, .type = RDL_ATTR_DOUBLE, .v.d = 0.25 },
        { .key = "ok", .key_len = 2, .type = RDL_ATTR_BOOL, .v.b = true },
    };
    rdl_span_set_attrs(b, attrs, 6, RDL_ATTRS_STATIC_KEYS | RDL_ATTRS_NEW_KEYS);
    path[1] = 'X';                                  /* values were copied */
    char *ja = json_attrs_of(t, a), *jb = json_attrs_of(t, b);
    assert_string_equal(jb, ja);
    assert_non_null(strstr(jb, "\"/v1/courses/3\""));
    free(ja);
    free(jb);

    /* Without RDL_ATTRS_NEW_KEYS a key set before is replaced; a key_len cuts the key. */
    rdl_attr_t more[] = {
        { .key = "server.port", .key_len = 11, .type = RDL_ATTR_INT, .v.i = 9090 },
        { .key = "url.query-and-more", .key_len = 9, .type = RDL_ATTR_STRING, .v.str = { "q=1", 3 } },
        { .key = "late", .key_len = 4, .type = RDL_ATTR_INT, .v.i = 7 },         /* past the limit of 6 */
    };
    rdl_span_set_attrs(b, more, 3, RDL_ATTRS_STATIC_KEYS);
    jb = json_attrs_of(t, b);
    assert_string_equal(jb,
        "{\"attributes\":[{\"key\":\"http.request.method\",\"value\":{\"stringValue\":\"GET\"}},"
        "{\"key\":\"url.path\",\"value\":{\"stringValue\":\"/v1/courses/3\"}},"
        "{\"key\":\"server.port\",\"value\":{\"intValue\":\"9090\"}},"
        "{\"key\":\"ratio\",\"value\":{\"doubleValue\":0.25}},"
        "{\"key\":\"ok\",\"value\":{\"boolValue\":true}},"
        "{\"key\":\"url.query\",\"value\":{\"stringValue\":\"q=1\"}}],\"dropped\":1}");
    free(jb);
    /* A key set by the setters after the call is found too (static keys keep their lengths). */
    rdl_span_set_int(b, "server.port", 1);
    jb = json_attrs_of(t, b);
    assert_non_null(strstr(jb, "{\"key\":\"server.port\",\"value\":{\"intValue\":\"1\"}}"));
    assert_null(strstr(jb, "9090"));
    free(jb);

    /* Keys alike in length and first and last bytes (one bit of key_bits) are still told apart. */
    rdl_span_t *d = rdl_span_start(t, "d", RDL_SPAN_INTERNAL, NULL);
    rdl_span_set_int(d, "axb", 1);
    rdl_span_set_int(d, "ayb", 2);
    rdl_span_set_int(d, "axb", 3);
    rdl_attr_t ayb = { .key = "ayb", .key_len = 3, .type = RDL_ATTR_INT, .v.i = 4 };
    rdl_span_set_attrs(d, &ayb, 1, RDL_ATTRS_STATIC_KEYS);
    char *jd = json_attrs_of(t, d);
    assert_string_equal(jd, "{\"attributes\":[{\"key\":\"axb\",\"value\":{\"intValue\":\"3\"}},"
                            "{\"key\":\"ayb\",\"value\":{\"intValue\":\"4\"}}],\"dropped\":0}");
    free(jd);
    rdl_span_end(d);

    /* Copied keys (no flag) survive the caller's buffer. */
    rdl_span_t *c = rdl_span_start(t, "c", RDL_SPAN_INTERNAL, NULL);
    char key[] = "tenant.id";
    rdl_attr_t one = { .key = key, .type = RDL_ATTR_STRING, .v.str = { "acme", 4 } };
    rdl_span_set_attrs(c, &one, 1, 0);
    key[0] = 'X';
    char *jc = json_attrs_of(t, c);
    assert_string_equal(jc, "{\"attributes\":[{\"key\":\"tenant.id\",\"value\":{\"stringValue\":\"acme\"}}],"
                            "\"dropped\":0}");
    free(jc);

    /* Keys past 65535 bytes are dropped and counted, on the span and in events. */
    char *huge = malloc(70000);
    memset(huge, 'k', 69999);
    huge[69999] = '\0';
    rdl_span_set_int(c, huge, 1);
    rdl_attr_t ev[] = { { .key = huge, .type = RDL_ATTR_INT, .v.i = 1 },
                        { .key = "ok", .type = RDL_ATTR_BOOL, .v.b = true } };
    rdl_span_add_event(c, "e", ev, 2);
    free(huge);
    rdl_span_t *arr[1] = { c };
    rdl_buf_t buf;
    rdl_buf_init(&buf);
    rdl_otlp_encode(t, arr, 1, RDL_OTLP_JSON, &buf);
    json_t *doc = json_loadb(buf.data, buf.len, 0, NULL);
    json_t *span = json_array_get(json_object_get(json_array_get(json_object_get(
        json_array_get(json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0), "spans"), 0);
    assert_int_equal(json_integer_value(json_object_get(span, "droppedAttributesCount")), 1);
    json_t *e = json_array_get(json_object_get(span, "events"), 0);
    assert_int_equal(json_integer_value(json_object_get(e, "droppedAttributesCount")), 1);
    assert_int_equal(json_array_size(json_object_get(e, "attributes")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(e, "attributes"), 0),
                                                          "key")), "ok");
    json_decref(doc);
    rdl_buf_close(&buf);

    /* No-ops: NULL span or attrs, an ended span, a span not recording. */
    rdl_span_set_attrs(NULL, attrs, 6, 0);
    rdl_span_set_attrs(c, NULL, 6, 0);
    rdl_span_end(c);
    rdl_span_set_attrs(c, attrs, 6, RDL_ATTRS_STATIC_KEYS);
    rdl_span_context_t parent;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    rdl_traceparent_parse(tp, strlen(tp), &parent, NULL);
    rdl_span_t *u = rdl_span_start_remote(t, "unsampled", RDL_SPAN_SERVER, &parent);
    rdl_span_set_attrs(u, attrs, 6, RDL_ATTRS_STATIC_KEYS | RDL_ATTRS_NEW_KEYS);
    assert_false(rdl_span_recording(u));
    rdl_span_end(u);
    rdl_span_end(a);
    rdl_span_end(b);
    rdl_tracer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_valid),
        cmocka_unit_test(test_traceparent_malformed),
        cmocka_unit_test(test_traceparent_every_byte),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_tracestate_truncation_and_set),
        cmocka_unit_test(test_baggage),
        cmocka_unit_test(test_b3),
        cmocka_unit_test(test_propagation),
        cmocka_unit_test(test_sampler_ratio_statistics),
        cmocka_unit_test(test_sampler_parent_based),
        cmocka_unit_test(test_span_basics),
        cmocka_unit_test(test_span_limits_and_not_sampled),
        cmocka_unit_test(test_keep_errors),
        cmocka_unit_test(test_export_retry_and_refusal),
        cmocka_unit_test(test_export_gzip),
        cmocka_unit_test(test_export_full_batches_only),
        cmocka_unit_test(test_export_keeps_the_connection),
        cmocka_unit_test(test_export_down_drops_and_counts),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_unfinished_and_shutdown_report),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_lists),
        cmocka_unit_test(test_span_given_times),
        cmocka_unit_test(test_protobuf_encoding),
        cmocka_unit_test(test_otlp_response),
        cmocka_unit_test(test_invalid_utf8_never_exported),
        cmocka_unit_test(test_span_set_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
