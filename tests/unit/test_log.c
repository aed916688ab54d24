/*
 * test_log.c: structured logs. The line formatter against an escaping table
 * and a property test (random bytes in every field, every line parsed by
 * jansson and each value compared with what went in), typed fields, the
 * timestamp, trace context, truncation at every size, then the logger with
 * its writer thread: level filter and run-time changes, lines stamped with
 * a given monotonic reading, sampling, the drop
 * and block policies against a pipe nobody reads, file reopen, flush, many
 * threads at once and threads that come and go.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "redline/log.h"

#define FFFD "\xEF\xBF\xBD"
#define LINE_CAP 65536

static char line[LINE_CAP];

/* Parses one line (must end with exactly one '\n'); the caller json_decref()s. */
static json_t *parse_line(const char *s, size_t n)
{
    json_error_t jerr;
    json_t *doc;

    assert_true(n > 0);
    if (s[n - 1] != '\n' || memchr(s, '\n', n - 1) != NULL)
        fail_msg("not one line: %.*s", (int)n, s);
    doc = json_loadb(s, n - 1, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc))
        fail_msg("jansson rejected (%s): %.*s", doc ? "not an object" : jerr.text, (int)n, s);
    return doc;
}

static size_t fmt(size_t max_line, const rdl_ctx_t *ctx, const char *msg,
                  const rdl_log_field_t *f, size_t n, bool *cut)
{
    size_t len = rdl_log_format(line, sizeof(line), max_line, 1764000000123456789ull,
                                RDL_LOG_INFO, "svc", ctx, msg, f, n, cut);
    assert_true(len > 0 && len <= max_line);
    return len;
}

static void assert_str_field(json_t *doc, const char *key, const char *want, size_t want_len)
{
    json_t *v = json_object_get(doc, key);
    if (!json_is_string(v))
        fail_msg("field %s missing or not a string", key);
    assert_int_equal(json_string_length(v), want_len);
    assert_memory_equal(json_string_value(v), want, want_len);
}

/* ---- escaping ------------------------------------------------------------ */

struct esc_case {
    const char *in;
    size_t n;                   /* 0: strlen(in) */
    const char *out;            /* exact bytes between the quotes */
};

static const struct esc_case esc_cases[] = {
    { "plain", 0, "plain" },
    { "a\"b\\c", 0, "a\\\"b\\\\c" },
    { "\n\r\t\b\f", 0, "\\n\\r\\t\\b\\f" },
    { "\x01\x1f\x7f", 0, "\\u0001\\u001f\x7f" },
    { "nul\0in", 6, "nul\\u0000in" },
    { "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 0, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80" },
    { "\xC3", 0, FFFD },                          /* truncated sequence */
    { "\x80\xBF", 0, FFFD FFFD },                 /* stray continuations */
    { "\xC0\xAF", 0, FFFD FFFD },                 /* overlong '/' */
    { "\xED\xA0\x80", 0, FFFD FFFD FFFD },        /* surrogate half */
    { "\xF4\x90\x80\x80", 0, FFFD FFFD FFFD FFFD },   /* above U+10FFFF */
    { "\xE2\x82x", 0, FFFD "x" },                 /* maximal subpart is one U+FFFD */
    { "\xFF", 0, FFFD },
    { "</script>", 0, "</script>" },
};

static void test_escape_table(void **state)
{
    for (size_t i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++) {
        const struct esc_case *c = &esc_cases[i];
        size_t n = c->n ? c->n : strlen(c->in), used;
        char out[256];
        size_t len = rdl_json_escape(out, sizeof(out), c->in, n, &used);
        if (len != strlen(c->out) || memcmp(out, c->out, len) != 0)
            fail_msg("case %zu: got '%.*s', want '%s'", i, (int)len, out, c->out);
        assert_int_equal(used, n);
        /* the same bytes through a log field: exact in the line, and parsed back */
        rdl_log_field_t f = rdl_lf_strn("v", c->in, n);
        size_t ll = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "m", &f, 1, NULL);
        char want[300];
        snprintf(want, sizeof(want), ",\"v\":\"%s\"}\n", c->out);
        assert_true(ll > strlen(want));
        assert_memory_equal(line + ll - strlen(want), want, strlen(want));
        json_decref(parse_line(line, ll));
    }
}

/* The escaper never splits an escape or a UTF-8 sequence when out is short. */
static void test_escape_bounded(void **state)
{
    static const struct { const char *in; size_t cap; const char *out; size_t used; } cases[] = {
        { "ab\ncd", 3, "ab", 2 },               /* "\n" needs 2 */
        { "ab\ncd", 4, "ab\\n", 3 },
        { "a\x01", 6, "a", 1 },                 /* \u0001 needs 6 */
        { "a\x01", 7, "a\\u0001", 2 },
        { "x\xE2\x82\xAC", 3, "x", 1 },         /* the euro sign needs 3 */
        { "x\xE2\x82\xAC", 4, "x\xE2\x82\xAC", 4 },
        { "x\xFF", 3, "x", 1 },                 /* U+FFFD needs 3 */
        { "abc", 0, "", 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[16];
        size_t used, len = rdl_json_escape(out, cases[i].cap, cases[i].in, strlen(cases[i].in), &used);
        assert_int_equal(len, strlen(cases[i].out));
        assert_memory_equal(out, cases[i].out, len);
        assert_int_equal(used, cases[i].used);
    }
}

/* ---- property: random bytes in every field -------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Mostly bytes that matter to JSON and UTF-8, some plain text. */
static size_t random_bytes(char *out, size_t max)
{
    static const unsigned char interesting[] = {
        '"', '\\', '\n', 0, 0x1f, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe2, 0x82, 0xac, 0xed,
        0xa0, 0xf0, 0x9f, 0x98, 0xf4, 0x90, 0xff, 'a', 'z', '/',
    };
    size_t n = next_rand() % max;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = next_rand();
        out[i] = (char)(r & 1 ? interesting[(r >> 1) % sizeof(interesting)] : (r >> 8) & 0xff);
    }
    return n;
}

/* What a value must decode to: jansson's reading of rdl_json_str's output. */
static json_t *expected_of(const char *s, size_t n)
{
    rdl_buf_t b;
    json_error_t jerr;
    rdl_buf_init(&b);
    rdl_buf_putc(&b, '[');
    rdl_json_str(&b, s, n);
    rdl_buf_putc(&b, ']');
    json_t *doc = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &jerr);
    rdl_buf_close(&b);
    assert_non_null(doc);
    return doc;
}

static void test_property_random_fields(void **state)
{
    char keys[3][24], vals[3][200], msg[200], svc[40];
    int valid_seen = 0;

    for (int iter = 0; iter < 10000; iter++) {
        rdl_log_field_t f[3];
        size_t kn[3], vn[3];
        /* keys: NUL-terminated, so no NUL inside; must differ from each other and the fixed ones */
        for (int k = 0; k < 3; k++) {
            kn[k] = random_bytes(keys[k], sizeof(keys[k]) - 4);
            for (size_t j = 0; j < kn[k]; j++)
                if (keys[k][j] == 0)
                    keys[k][j] = 'k';
            keys[k][kn[k]++] = '#';
            keys[k][kn[k]++] = (char)('0' + k);
            keys[k][kn[k]] = '\0';
            vn[k] = random_bytes(vals[k], sizeof(vals[k]));
            f[k] = rdl_lf_strn(keys[k], vals[k], vn[k]);
        }
        size_t mn = random_bytes(msg, sizeof(msg) - 1), sn = random_bytes(svc, sizeof(svc) - 1);
        for (size_t j = 0; j < mn; j++)
            if (msg[j] == 0)
                msg[j] = 'm';
        for (size_t j = 0; j < sn; j++)
            if (svc[j] == 0)
                svc[j] = 's';
        msg[mn] = svc[sn] = '\0';
        bool cut;
        size_t len = rdl_log_format(line, sizeof(line), RDL_LOG_MAX_LINE_DEFAULT, next_rand(),
                                    (rdl_log_level_t)(next_rand() % 5), svc, NULL, msg, f, 3, &cut);
        assert_false(cut);
        json_t *doc = parse_line(line, len);
        for (int k = 0; k < 3; k++) {
            json_t *want = expected_of(vals[k], vn[k]);
            json_t *wk = expected_of(keys[k], kn[k]);
            const char *key = json_string_value(json_array_get(wk, 0));
            json_t *got = json_object_get(doc, key);
            if (!got || !json_equal(got, json_array_get(want, 0)))
                fail_msg("iteration %d field %d differs: %s", iter, k, line);
            json_t *direct = json_stringn(vals[k], vn[k]);
            if (direct != NULL)     /* valid UTF-8: came back byte for byte */
                valid_seen++;
            json_decref(direct);
            json_decref(want);
            json_decref(wk);
        }
        json_t *wm = expected_of(msg, mn), *ws = expected_of(svc, sn);
        assert_true(json_equal(json_object_get(doc, "msg"), json_array_get(wm, 0)));
        assert_true(json_equal(json_object_get(doc, "service"), json_array_get(ws, 0)));
        json_decref(wm);
        json_decref(ws);
        json_decref(doc);
    }
    assert_true(valid_seen > 100);   /* some values were valid UTF-8 and came back exactly */
}

/* ---- typed fields, timestamp, context ------------------------------------ */

static void test_typed_fields(void **state)
{
    rdl_log_field_t f[] = {
        rdl_lf_int("imin", INT64_MIN), rdl_lf_int("imax", INT64_MAX), rdl_lf_int("zero", 0),
        rdl_lf_float("tenth", 0.1), rdl_lf_float("big", 1e300), rdl_lf_float("third", 1.0 / 3),
        rdl_lf_float("nan", NAN), rdl_lf_float("ninf", -INFINITY), rdl_lf_float("three", 3.0),
        rdl_lf_bool("yes", true), rdl_lf_bool("no", false),
        rdl_lf_dur("d1", 12345678), rdl_lf_dur("d0", 0), rdl_lf_dur("dbig", 3600000000001ull),
        rdl_lf_err("e1", RDL_EINVAL), rdl_lf_err("e2", ENOENT), rdl_lf_str("null", NULL),
    };
    size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "typed", f, sizeof(f) / sizeof(f[0]), NULL);
    json_t *doc = parse_line(line, len);
    assert_true(json_integer_value(json_object_get(doc, "imin")) == INT64_MIN);
    assert_true(json_integer_value(json_object_get(doc, "imax")) == INT64_MAX);
    assert_true(json_real_value(json_object_get(doc, "tenth")) == 0.1);
    assert_true(json_real_value(json_object_get(doc, "big")) == 1e300);
    assert_true(json_real_value(json_object_get(doc, "third")) == 1.0 / 3);
    assert_non_null(strstr(line, "\"tenth\":0.1,"));
    assert_non_null(strstr(line, "\"three\":3,"));
    assert_str_field(doc, "nan", "NaN", 3);
    assert_str_field(doc, "ninf", "-Inf", 4);
    assert_true(json_is_true(json_object_get(doc, "yes")));
    assert_true(json_is_false(json_object_get(doc, "no")));
    assert_non_null(strstr(line, "\"d1\":12.345678,"));
    assert_non_null(strstr(line, "\"d0\":0.000000,"));
    assert_non_null(strstr(line, "\"dbig\":3600000.000001,"));
    assert_str_field(doc, "e1", "invalid argument", strlen("invalid argument"));
    assert_str_field(doc, "e2", "No such file or directory", strlen("No such file or directory"));
    assert_str_field(doc, "null", "", 0);
    json_decref(doc);
}

static void test_timestamp_and_head(void **state)
{
    /* 2025-11-24T16:00:00.123456789Z = 1764000000 s + 123456789 ns */
    size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "hello", NULL, 0, NULL);
    const char want[] = "{\"ts\":\"2025-11-24T16:00:00.123456789Z\",\"level\":\"info\","
                        "\"service\":\"svc\",\"msg\":\"hello\"}\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(line, want, len);

    /* every level name, and leading zeros in the nanoseconds */
    static const char *const names[] = { "debug", "info", "warn", "error", "fatal" };
    for (int l = 0; l <= RDL_LOG_FATAL; l++) {
        len = rdl_log_format(line, sizeof(line), 512, 951782400000000007ull, (rdl_log_level_t)l,
                             NULL, NULL, "m", NULL, 0, NULL);
        json_t *doc = parse_line(line, len);
        assert_str_field(doc, "level", names[l], strlen(names[l]));
        assert_str_field(doc, "ts", "2000-02-29T00:00:00.000000007Z", 30);
        assert_str_field(doc, "service", "redline", 7);
        json_decref(doc);
    }
}

static void test_context_fields(void **state)
{
    rdl_ctx_t ctx;
    rdl_ctx_init(&ctx, 0);

    /* no trace, no request id: neither field */
    size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, &ctx, "m", NULL, 0, NULL);
    assert_null(memmem(line, len, "trace_id", 8));
    assert_null(memmem(line, len, "request_id", 10));

    for (int i = 0; i < 16; i++)
        ctx.trace_id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++)
        ctx.span_id[i] = (uint8_t)i;
    strcpy(ctx.request_id, "req-\"1\"");
    len = fmt(RDL_LOG_MAX_LINE_DEFAULT, &ctx, "m", NULL, 0, NULL);
    json_t *doc = parse_line(line, len);
    assert_str_field(doc, "trace_id", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", 32);
    assert_str_field(doc, "span_id", "0001020304050607", 16);
    assert_str_field(doc, "request_id", "req-\"1\"", 7);
    json_decref(doc);

    /* the current context reaches rdl_log without being passed */
    char path[] = "/tmp/rdl-log-ctx-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.sink = RDL_LOG_FILE;
    o.path = path;
    rdl_logger_t *lg;
    assert_int_equal(rdl_logger_new(&o, &lg), 0);
    rdl_ctx_t *prev = rdl_ctx_set_current(&ctx);
    rdl_log(lg, RDL_LOG_INFO, "inside", NULL, 0);
    rdl_ctx_set_current(prev);
    rdl_log(lg, RDL_LOG_INFO, "outside", NULL, 0);
    rdl_logger_free(lg);
    FILE *f = fopen(path, "r");
    char buf[1024];
    assert_non_null(fgets(buf, sizeof(buf), f));
    doc = parse_line(buf, strlen(buf));
    assert_str_field(doc, "msg", "inside", 6);
    assert_str_field(doc, "trace_id", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", 32);
    json_decref(doc);
    assert_non_null(fgets(buf, sizeof(buf), f));
    doc = parse_line(buf, strlen(buf));
    assert_str_field(doc, "msg", "outside", 7);
    assert_null(json_object_get(doc, "trace_id"));
    json_decref(doc);
    fclose(f);
    unlink(path);
    rdl_ctx_close(&ctx);
}

/* Lowercase hex of n bytes, for the expected ids. */
static void hex_of(const uint8_t *id, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* The ids a line must carry for ctx, checked against what it carries. */
static void assert_ident(json_t *doc, const rdl_ctx_t *ctx)
{
    static const uint8_t zero[16];
    char hex[33];
    bool traced = memcmp(ctx->trace_id, zero, 16) != 0;

    if (traced) {
        hex_of(ctx->trace_id, 16, hex);
        assert_str_field(doc, "trace_id", hex, 32);
    } else {
        assert_null(json_object_get(doc, "trace_id"));
    }
    if (traced && memcmp(ctx->span_id, zero, 8) != 0) {
        hex_of(ctx->span_id, 8, hex);
        assert_str_field(doc, "span_id", hex, 16);
    } else {
        assert_null(json_object_get(doc, "span_id"));
    }
    size_t rn = strnlen(ctx->request_id, RDL_REQUEST_ID_MAX);
    if (rn)
        assert_str_field(doc, "request_id", ctx->request_id, rn);
    else
        assert_null(json_object_get(doc, "request_id"));
}

/*
 * A thread keeps the text of the last identity it wrote: every change of any
 * id (one byte of the trace or span id, a request id one byte shorter or
 * longer, 64 bytes with no NUL, back to an earlier one) must show in the next line.
 */
static void test_context_changes(void **state)
{
    rdl_ctx_t c[10];
    for (int i = 0; i < 10; i++) {
        rdl_ctx_init(&c[i], 0);
        for (int k = 0; k < 16; k++)
            c[i].trace_id[k] = (uint8_t)(0x30 + k);
        for (int k = 0; k < 8; k++)
            c[i].span_id[k] = (uint8_t)(0xf0 + k);
        strcpy(c[i].request_id, "abc");
    }
    c[1].span_id[7] ^= 1;                  /* another span of the same trace */
    c[2].trace_id[0] ^= 0x80;              /* another trace */
    strcpy(c[3].request_id, "ab");         /* a prefix of the request id */
    strcpy(c[4].request_id, "abcd");       /* one byte longer */
    memset(c[5].trace_id, 0, 16);          /* no trace: no span either */
    memset(c[6].span_id, 0, 8);            /* a trace without a span */
    memset(c[7].request_id, 'x', RDL_REQUEST_ID_MAX);   /* 64 bytes, no NUL among them */
    c[7].request_id[RDL_REQUEST_ID_MAX] = '\0';
    memcpy(&c[8], &c[7], sizeof(c[8]));
    c[8].request_id[RDL_REQUEST_ID_MAX - 1] = 'y';
    c[9].request_id[0] = '\0';             /* no request id */
    memset(c[9].trace_id, 0, 16);
    static const int order[] = { 0, 0, 1, 0, 2, 0, 3, 4, 3, 0, 5, 0, 6, 7, 8, 7, 9, 0, 9, 5 };
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const rdl_ctx_t *ctx = &c[order[i]];
        bool cut;
        size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, ctx, "m", NULL, 0, &cut);
        assert_false(cut);
        json_t *doc = parse_line(line, len);
        assert_ident(doc, ctx);
        json_decref(doc);
    }
    /* the same ids from another ctx, and a context edited in place between lines */
    rdl_ctx_t same;
    memcpy(&same, &c[0], sizeof(same));
    size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, &same, "m", NULL, 0, NULL);
    json_t *doc = parse_line(line, len);
    assert_ident(doc, &c[0]);
    json_decref(doc);
    same.trace_id[15] = 0xee;
    strcpy(same.request_id, "ab\"c");
    len = fmt(RDL_LOG_MAX_LINE_DEFAULT, &same, "m", NULL, 0, NULL);
    doc = parse_line(line, len);
    assert_ident(doc, &same);
    json_decref(doc);

    /* a long service leaves little room: the ids are then written one by one, as they fit */
    char svc[201];
    memset(svc, 's', 200);
    svc[200] = '\0';
    size_t whole = rdl_log_format(line, sizeof(line), RDL_LOG_MAX_LINE_DEFAULT, 1, RDL_LOG_INFO,
                                  svc, &c[0], "m", NULL, 0, NULL);
    for (size_t max = RDL_LOG_MAX_LINE_MIN; max <= whole + 20; max++) {
        bool cut;
        len = rdl_log_format(line, sizeof(line), max, 1, RDL_LOG_INFO, svc, &c[0], "m", NULL,
                             0, &cut);
        assert_true(len > 0 && len <= max);
        doc = parse_line(line, len);
        json_t *t = json_object_get(doc, "trace_id"), *r = json_object_get(doc, "request_id");
        if (t)
            assert_string_equal(json_string_value(t), "303132333435363738393a3b3c3d3e3f");
        if (r)
            assert_true(strncmp(json_string_value(r), "abc", json_string_length(r)) == 0);
        if (!cut)
            assert_ident(doc, &c[0]);
        /* cut exactly when the whole line does not fit with room kept for ,"truncated":true */
        assert_int_equal(cut, max < whole + strlen(",\"truncated\":true"));
        json_decref(doc);
    }
    for (int i = 0; i < 10; i++)
        rdl_ctx_close(&c[i]);
}

/* Numbers around every digit-count boundary, against printf. */
static void test_numbers(void **state)
{
    static const int64_t ints[] = { 0, -1, 9, 10, -10, 99, 100, 999, 1000, 12345, 999999999,
                                    1000000000, 99999999999999999, 100000000000000000,
                                    999999999999999999, 1000000000000000000, INT64_MAX, INT64_MIN };
    static const uint64_t durs[] = { 0, 1, 999999, 1000000, 9999999, 10000000, 1234567891,
                                     10000000000000000000ull, UINT64_MAX };
    char key[16], want[64];

    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        rdl_log_field_t f = rdl_lf_int("i", ints[i]);
        size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "m", &f, 1, NULL);
        line[len] = '\0';
        snprintf(want, sizeof(want), ",\"i\":%lld}\n", (long long)ints[i]);
        assert_true(len > strlen(want));
        assert_string_equal(line + len - strlen(want), want);
    }
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        /* a field made without the helpers: key_len 0 means "count it" */
        snprintf(key, sizeof(key), "d%zu_ms", i);
        rdl_log_field_t f = { .key = key, .type = RDL_LF_DURATION, .v.u = durs[i] };
        size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "m", &f, 1, NULL);
        line[len] = '\0';
        snprintf(want, sizeof(want), ",\"%s\":%llu.%06llu}\n", key,
                 (unsigned long long)(durs[i] / 1000000), (unsigned long long)(durs[i] % 1000000));
        assert_true(len > strlen(want));
        assert_string_equal(line + len - strlen(want), want);
    }
    /* key_len counts bytes: a key with an escape in it, given its length */
    rdl_log_field_t f = { .key = "a\"b\tc", .type = RDL_LF_BOOL, .key_len = 5, .v.b = true };
    size_t len = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "m", &f, 1, NULL);
    line[len] = '\0';
    assert_non_null(strstr(line, ",\"a\\\"b\\tc\":true}\n"));
}

/* ---- truncation ---------------------------------------------------------- */

static void test_truncation_long_msg(void **state)
{
    size_t n = 50000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    rdl_log_field_t f[] = { rdl_lf_int("after", 1) };
    bool cut;
    size_t len = fmt(1024, NULL, big, f, 1, &cut);
    assert_true(cut);
    assert_true(len <= 1024 && len > 900);        /* cut near the limit, not far before */
    json_t *doc = parse_line(line, len);
    assert_true(json_is_true(json_object_get(doc, "truncated")));
    const char *m = json_string_value(json_object_get(doc, "msg"));
    assert_non_null(m);
    assert_memory_equal(m, big, strlen(m));       /* a prefix of what was sent */
    assert_null(json_object_get(doc, "after"));   /* fields after the cut are left out */
    json_decref(doc);

    /* a line that fits exactly is not marked */
    len = fmt(RDL_LOG_MAX_LINE_DEFAULT, NULL, "short", f, 1, &cut);
    assert_false(cut);
    assert_null(memmem(line, len, "truncated", 9));
    free(big);
}

/* At every limit, with escapes and multi-byte text around the cut: valid JSON, never over. */
static void test_truncation_every_size(void **state)
{
    char v[600];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = "ab\"\\\n\x01\xE2\x82\xAC\xC3\xA9z"[i % 12];
    rdl_ctx_t ctx;
    rdl_ctx_init(&ctx, 0);
    memset(ctx.trace_id, 0x11, 16);
    strcpy(ctx.request_id, "rid");
    for (size_t max = RDL_LOG_MAX_LINE_MIN; max <= 1400; max++) {
        rdl_log_field_t f[] = {
            rdl_lf_int("n", 42), rdl_lf_strn("v", v, sizeof(v)), rdl_lf_float("x", 0.5),
            rdl_lf_strn("w", v, 100),
        };
        bool cut;
        size_t len = fmt(max, &ctx, "message", f, 4, &cut);
        json_t *doc = parse_line(line, len);
        assert_int_equal(cut, json_is_true(json_object_get(doc, "truncated")));
        assert_non_null(json_object_get(doc, "trace_id"));   /* identity survives the cut */
        assert_non_null(json_object_get(doc, "msg"));
        json_t *jv = json_object_get(doc, "v");
        if (jv) {       /* a cut value is a prefix of the escaped-and-decoded original */
            json_t *want = expected_of(v, sizeof(v));
            const char *w = json_string_value(json_array_get(want, 0));
            assert_true(json_string_length(jv) <= strlen(w));
            assert_memory_equal(json_string_value(jv), w, json_string_length(jv));
            json_decref(want);
        }
        json_decref(doc);
    }
    rdl_ctx_close(&ctx);
}

/* ---- the logger ---------------------------------------------------------- */

typedef struct file_lines {
    char **lines;
    size_t n;
} file_lines_t;

static file_lines_t read_lines(const char *path)
{
    file_lines_t fl = { NULL, 0 };
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0, room = 0;
    ssize_t r;
    assert_non_null(f);
    while ((r = getline(&buf, &cap, f)) > 0) {
        if (fl.n == room) {
            room = room ? room * 2 : 64;
            fl.lines = realloc(fl.lines, room * sizeof(char *));
        }
        fl.lines[fl.n++] = strndup(buf, (size_t)r);
    }
    free(buf);
    fclose(f);
    return fl;
}

static void free_lines(file_lines_t *fl)
{
    for (size_t i = 0; i < fl->n; i++)
        free(fl->lines[i]);
    free(fl->lines);
}

static const char *msg_of(json_t *doc)
{
    return json_string_value(json_object_get(doc, "msg"));
}

static rdl_logger_t *file_logger(char *path, rdl_log_opts_t *o)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    o->sink = RDL_LOG_FILE;
    o->path = path;
    rdl_logger_t *lg;
    assert_int_equal(rdl_logger_new(o, &lg), 0);
    return lg;
}

static void test_level_filter(void **state)
{
    char path[] = "/tmp/rdl-log-level-XXXXXX";
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.level = RDL_LOG_WARN;
    rdl_logger_t *lg = file_logger(path, &o);
    assert_false(rdl_log_enabled(lg, RDL_LOG_INFO));
    assert_true(rdl_log_enabled(lg, RDL_LOG_WARN));
    rdl_log(lg, RDL_LOG_DEBUG, "d1", NULL, 0);
    rdl_log(lg, RDL_LOG_INFO, "i1", NULL, 0);
    rdl_log(lg, RDL_LOG_WARN, "w1", NULL, 0);
    rdl_log(lg, RDL_LOG_ERROR, "e1", NULL, 0);
    rdl_log_set_level(lg, RDL_LOG_DEBUG);           /* at run time */
    assert_int_equal(rdl_log_level(lg), RDL_LOG_DEBUG);
    rdl_log(lg, RDL_LOG_DEBUG, "d2", NULL, 0);
    rdl_log_set_level(lg, RDL_LOG_FATAL);
    rdl_log(lg, RDL_LOG_ERROR, "e2", NULL, 0);
    rdl_log(lg, RDL_LOG_FATAL, "f1", NULL, 0);       /* fatal is flushed before returning */
    file_lines_t fl = read_lines(path);
    assert_int_equal(fl.n, 4);
    static const char *const want[] = { "w1", "e1", "d2", "f1" };
    for (size_t i = 0; i < fl.n; i++) {
        json_t *doc = parse_line(fl.lines[i], strlen(fl.lines[i]));
        assert_string_equal(msg_of(doc), want[i]);
        json_decref(doc);
    }
    free_lines(&fl);
    rdl_logger_free(lg);
    unlink(path);

    rdl_log_level_t l;
    assert_int_equal(rdl_log_parse_level("WARNING", 7, &l), 0);
    assert_int_equal(l, RDL_LOG_WARN);
    assert_int_equal(rdl_log_parse_level("Debug", 5, &l), 0);
    assert_int_equal(l, RDL_LOG_DEBUG);
    assert_int_equal(rdl_log_parse_level("verbose", 7, &l), RDL_EINVAL);
    assert_int_equal(rdl_log_parse_level("info", 3, &l), RDL_EINVAL);
    assert_string_equal(rdl_log_level_name(RDL_LOG_ERROR), "error");
}

/* A line's ts (RFC 3339 UTC with nine digits) as ns since the epoch. */
static uint64_t ts_ns_of(json_t *doc)
{
    const char *ts = json_string_value(json_object_get(doc, "ts"));
    struct tm tm = { 0 };
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 30);
    const char *rest = strptime(ts, "%Y-%m-%dT%H:%M:%S.", &tm);
    assert_non_null(rest);
    uint64_t ns = strtoull(rest, NULL, 10);
    return (uint64_t)timegm(&tm) * 1000000000u + ns;
}

static uint64_t distance(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/*
 * rdl_log_ctx_at stamps a line with the monotonic reading it is given, as
 * wall time: a reading 5 s old gives a ts 5 s ago, 0 gives now, and two
 * readings 1.234567 ms apart give stamps that far apart.
 */
static void test_stamped_at(void **state)
{
    char path[] = "/tmp/rdl-log-at-XXXXXX";
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    rdl_logger_t *lg = file_logger(path, &o);
    uint64_t wall0 = rdl_wall_ns(), mono0 = rdl_now_ns();
    rdl_log_ctx_at(lg, RDL_LOG_INFO, NULL, mono0 - 5000000000ull, "past", NULL, 0);
    rdl_log_ctx_at(lg, RDL_LOG_INFO, NULL, 0, "now", NULL, 0);
    uint64_t m = rdl_now_ns();
    rdl_log_ctx_at(lg, RDL_LOG_INFO, NULL, m, "a", NULL, 0);
    rdl_log_ctx_at(lg, RDL_LOG_INFO, NULL, m + 1234567, "b", NULL, 0);
    rdl_log_ctx_at(lg, RDL_LOG_INFO, NULL, m + 3000000000ull, "later", NULL, 0);
    assert_int_equal(rdl_log_flush(lg, 0), 0);
    file_lines_t fl = read_lines(path);
    assert_int_equal(fl.n, 5);
    uint64_t ts[5];
    for (size_t i = 0; i < fl.n; i++) {
        json_t *doc = parse_line(fl.lines[i], strlen(fl.lines[i]));
        ts[i] = ts_ns_of(doc);
        json_decref(doc);
    }
    /* loose bounds (a shared machine can stall), far tighter than the 5 s and 3 s offsets */
    assert_true(distance(ts[0], wall0 - 5000000000ull) < 500000000u);
    assert_true(distance(ts[1], wall0) < 500000000u);
    assert_true(distance(ts[3] - ts[2], 1234567) < 10000);
    assert_true(distance(ts[4] - ts[2], 3000000000ull) < 10000);
    free_lines(&fl);
    rdl_logger_free(lg);
    unlink(path);
}

static void test_sampling(void **state)
{
    /* The budget is per second: retry when the burst straddles a second boundary. */
    for (int attempt = 0; attempt < 5; attempt++) {
        char path[] = "/tmp/rdl-log-sample-XXXXXX";
        rdl_log_opts_t o;
        rdl_log_opts_default(&o);
        o.sample_first = 3;
        o.sample_every = 5;
        rdl_logger_t *lg = file_logger(path, &o);
        time_t before = time(NULL);
        for (int i = 0; i < 23; i++) {
            rdl_log_field_t f = rdl_lf_int("i", i);
            rdl_log(lg, RDL_LOG_INFO, "flood", &f, 1);
            rdl_log(lg, RDL_LOG_WARN, "flood", &f, 1);  /* another level: its own budget */
        }
        rdl_log(lg, RDL_LOG_INFO, "other", NULL, 0);    /* another message: its own budget */
        time_t after = time(NULL);
        rdl_log_stats_t st;
        rdl_log_flush(lg, 0);
        rdl_log_stats(lg, &st);
        file_lines_t fl = read_lines(path);
        rdl_logger_free(lg);
        unlink(path);
        if (before != after) {
            free_lines(&fl);
            continue;
        }
        /* kept: i = 0,1,2 then every 5th after the first 3: i = 7, 12, 17, 22 */
        static const int kept[] = { 0, 1, 2, 7, 12, 17, 22 };
        size_t info = 0;
        for (size_t i = 0; i < fl.n; i++) {
            json_t *doc = parse_line(fl.lines[i], strlen(fl.lines[i]));
            if (strcmp(msg_of(doc), "flood") == 0 &&
                strcmp(json_string_value(json_object_get(doc, "level")), "info") == 0) {
                assert_true(info < 7);
                assert_int_equal(json_integer_value(json_object_get(doc, "i")), kept[info]);
                info++;
            }
            json_decref(doc);
        }
        assert_int_equal(info, 7);
        assert_int_equal(fl.n, 7 + 7 + 1);
        assert_int_equal(st.sampled, 32);
        assert_int_equal(st.lines, 15);
        free_lines(&fl);
        return;
    }
    fail_msg("every attempt straddled a second");
}

/* A sink that nobody reads until the test says so: a pipe, through /proc/self/fd. */
typedef struct pipe_sink {
    int rd, wr;
    char path[64];
    pthread_t reader;
    char *data;
    size_t len, cap;
    int delay_us;               /* per read: a slow consumer */
} pipe_sink_t;

static void pipe_open(pipe_sink_t *p)
{
    int fds[2];
    memset(p, 0, sizeof(*p));
    assert_int_equal(pipe(fds), 0);
    p->rd = fds[0];
    p->wr = fds[1];
    snprintf(p->path, sizeof(p->path), "/proc/self/fd/%d", p->wr);
}

static void *pipe_reader(void *arg)
{
    pipe_sink_t *p = arg;
    char buf[4096];
    ssize_t r;
    while ((r = read(p->rd, buf, sizeof(buf))) > 0) {
        if (p->len + (size_t)r > p->cap) {
            p->cap = (p->cap + (size_t)r) * 2;
            p->data = realloc(p->data, p->cap);
        }
        memcpy(p->data + p->len, buf, (size_t)r);
        p->len += (size_t)r;
        if (p->delay_us) {
            struct timespec ts = { 0, p->delay_us * 1000L };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Closes the write end (the logger holds its own), reads to EOF, returns the valid lines. */
static size_t pipe_finish(pipe_sink_t *p)
{
    close(p->wr);
    pthread_join(p->reader, NULL);
    close(p->rd);
    size_t lines = 0, start = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->data[i] != '\n')
            continue;
        json_decref(parse_line(p->data + start, i + 1 - start));
        lines++;
        start = i + 1;
    }
    assert_int_equal(start, p->len);         /* nothing torn at the end */
    free(p->data);
    return lines;
}

static void test_drop_policy(void **state)
{
    pipe_sink_t p;
    pipe_open(&p);
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.sink = RDL_LOG_FILE;
    o.path = p.path;
    o.ring_bytes = 4096;
    o.max_line = 512;
    o.policy = RDL_LOG_DROP;
    rdl_logger_t *lg;
    assert_int_equal(rdl_logger_new(&o, &lg), 0);
    /* 2,000 lines of ~200 bytes: far more than the pipe (64 KiB) and the ring hold */
    char pad[120];
    memset(pad, 'p', sizeof(pad));
    for (int i = 0; i < 2000; i++) {
        rdl_log_field_t f[] = { rdl_lf_int("i", i), rdl_lf_strn("pad", pad, sizeof(pad)) };
        rdl_log(lg, RDL_LOG_INFO, "drop me maybe", f, 2);
    }
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    assert_true(st.dropped > 0);
    assert_int_equal(st.lines + st.dropped, 2000);
    pthread_create(&p.reader, NULL, pipe_reader, &p);   /* now let it drain */
    assert_int_equal(rdl_log_flush(lg, 10000), 0);
    rdl_logger_free(lg);
    assert_int_equal(pipe_finish(&p), st.lines);
}

static void test_block_policy(void **state)
{
    pipe_sink_t p;
    pipe_open(&p);
    p.delay_us = 200;                                   /* slower than the producer */
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.sink = RDL_LOG_FILE;
    o.path = p.path;
    o.ring_bytes = 4096;
    o.max_line = 512;
    rdl_logger_t *lg;
    assert_int_equal(rdl_logger_new(&o, &lg), 0);
    pthread_create(&p.reader, NULL, pipe_reader, &p);
    for (int i = 0; i < 3000; i++) {
        rdl_log_field_t f = rdl_lf_int("i", i);
        rdl_log(lg, RDL_LOG_INFO, "keep me", &f, 1);
    }
    rdl_logger_free(lg);           /* flushes: everything accepted is written */
    size_t got = pipe_finish(&p);
    assert_int_equal(got, 3000);
}

/* A logger on a pipe's write end with pipe_bytes asked for; returns what its stats report. */
static size_t pipe_logger_size(pipe_sink_t *p, size_t pipe_bytes)
{
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.sink = RDL_LOG_FILE;
    o.path = p->path;
    o.pipe_bytes = pipe_bytes;
    rdl_logger_t *lg;
    assert_int_equal(rdl_logger_new(&o, &lg), 0);
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    rdl_logger_free(lg);
    return (size_t)st.pipe_bytes;
}

/* The sink's pipe is raised to pipe_bytes (as far as the system allows), never lowered. */
static void test_pipe_buffer(void **state)
{
    (void)state;
    long max = 0;
    FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld", &max), 1);
    fclose(f);
    rdl_log_opts_t def;
    rdl_log_opts_default(&def);
    assert_int_equal(def.pipe_bytes, 1 << 20);

    pipe_sink_t p;
    pipe_open(&p);
    int before = fcntl(p.rd, F_GETPIPE_SZ);
    size_t got = pipe_logger_size(&p, 1 << 20);
    assert_int_equal(got, (size_t)fcntl(p.rd, F_GETPIPE_SZ));  /* the stats tell the truth */
    if (max >= 1 << 20)
        assert_int_equal(got, 1 << 20);
    else
        assert_true(got >= (size_t)before);
    assert_int_equal(pipe_logger_size(&p, 128 * 1024), got);   /* never lowered */
    close(p.rd);
    close(p.wr);

    pipe_open(&p);
    before = fcntl(p.rd, F_GETPIPE_SZ);
    assert_int_equal(pipe_logger_size(&p, 0), (size_t)before); /* 0: left alone */
    assert_int_equal(fcntl(p.rd, F_GETPIPE_SZ), before);
    close(p.rd);
    close(p.wr);

    char path[] = "/tmp/rdl-log-notpipe-XXXXXX";
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    rdl_logger_t *lg = file_logger(path, &o);
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    assert_int_equal(st.pipe_bytes, 0);                       /* a file is not a pipe */
    rdl_logger_free(lg);
    unlink(path);
}

static void test_reopen(void **state)
{
    char path[] = "/tmp/rdl-log-reopen-XXXXXX";
    char moved[64];
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    rdl_logger_t *lg = file_logger(path, &o);
    rdl_log(lg, RDL_LOG_INFO, "before", NULL, 0);
    assert_int_equal(rdl_log_flush(lg, 10000), 0);
    snprintf(moved, sizeof(moved), "%s.1", path);
    assert_int_equal(rename(path, moved), 0);           /* what logrotate does */
    /* no flush: a line accepted before the reopen is asked for belongs to the old file */
    rdl_log(lg, RDL_LOG_INFO, "still old", NULL, 0);
    rdl_log_reopen(lg);
    rdl_log_stats_t st;
    for (int i = 0; i < 1000; i++) {                    /* the writer reopens on its next pass */
        rdl_log_stats(lg, &st);
        if (st.reopens == 1)
            break;
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    assert_int_equal(st.reopens, 1);
    rdl_log(lg, RDL_LOG_INFO, "after", NULL, 0);
    rdl_logger_free(lg);

    file_lines_t old = read_lines(moved), cur = read_lines(path);
    assert_int_equal(old.n, 2);
    assert_int_equal(cur.n, 1);
    json_t *doc = parse_line(cur.lines[0], strlen(cur.lines[0]));
    assert_string_equal(msg_of(doc), "after");
    json_decref(doc);
    free_lines(&old);
    free_lines(&cur);
    unlink(path);
    unlink(moved);
}

/*
 * A sink that refuses every write (ENOSPC: /dev/full): every accepted line is
 * counted as lost, not as dropped, and the first loss is told on stderr once.
 */
static void test_lost_lines_disk_full(void **state)
{
    char errpath[] = "/tmp/rdl-log-stderr-XXXXXX";
    int errfd = mkstemp(errpath);
    assert_true(errfd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(errfd, STDERR_FILENO), STDERR_FILENO);

    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.sink = RDL_LOG_FILE;
    o.path = "/dev/full";
    rdl_logger_t *lg;
    assert_int_equal(rdl_logger_new(&o, &lg), 0);
    for (int i = 0; i < 100; i++) {
        rdl_log_field_t f[] = { rdl_lf_int("i", i) };
        rdl_log(lg, RDL_LOG_INFO, "into a full disk", f, 1);
        if (i == 49)
            rdl_log_flush(lg, 10000);       /* two batches: two failures, one stderr line */
    }
    rdl_log_flush(lg, 10000);
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    rdl_logger_free(lg);

    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    char text[1024] = "";
    ssize_t n = pread(errfd, text, sizeof(text) - 1, 0);
    close(errfd);
    unlink(errpath);
    assert_true(n > 0);
    text[n] = '\0';

    assert_int_equal(st.lines, 100);
    assert_int_equal(st.lost, 100);
    assert_int_equal(st.dropped, 0);
    assert_true(st.write_errors >= 2);
    assert_int_equal(st.bytes_written, 0);
    /* one line, naming the sink and the cause */
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
    assert_non_null(strstr(text, "/dev/full"));
    assert_non_null(strstr(text, strerror(ENOSPC)));
    assert_non_null(strstr(text, "lost"));
}

/* ---- threads --------------------------------------------------------------- */

#define T_THREADS 4
#define T_LINES 20000

typedef struct worker {
    rdl_logger_t *lg;
    int id;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < T_LINES; i++) {
        rdl_log_field_t f[] = { rdl_lf_int("t", w->id), rdl_lf_int("seq", i),
                                rdl_lf_str("s", "some \"text\" here") };
        rdl_log(w->lg, RDL_LOG_INFO, "burst", f, 3);
    }
    return NULL;
}

static void test_threads_whole_lines_in_order(void **state)
{
    char path[] = "/tmp/rdl-log-threads-XXXXXX";
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.ring_bytes = 8192;                                /* small: the writer must keep up */
    rdl_logger_t *lg = file_logger(path, &o);
    pthread_t th[T_THREADS];
    worker_t w[T_THREADS];
    for (int i = 0; i < T_THREADS; i++) {
        w[i] = (worker_t){ lg, i };
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < T_THREADS; i++)
        pthread_join(th[i], NULL);
    rdl_log_stats_t st;
    assert_int_equal(rdl_log_flush(lg, 0), 0);
    rdl_log_stats(lg, &st);
    assert_int_equal(st.lines, T_THREADS * T_LINES);
    assert_int_equal(st.dropped, 0);
    rdl_logger_free(lg);

    file_lines_t fl = read_lines(path);
    assert_int_equal(fl.n, T_THREADS * T_LINES);
    int64_t next[T_THREADS] = { 0 };
    for (size_t i = 0; i < fl.n; i++) {
        json_t *doc = parse_line(fl.lines[i], strlen(fl.lines[i]));
        int64_t t = json_integer_value(json_object_get(doc, "t"));
        assert_true(t >= 0 && t < T_THREADS);
        assert_int_equal(json_integer_value(json_object_get(doc, "seq")), next[t]);
        next[t]++;                                      /* each thread's lines in its order */
        json_decref(doc);
    }
    free_lines(&fl);
    unlink(path);
}

static void *one_line(void *arg)
{
    rdl_log(arg, RDL_LOG_INFO, "short-lived thread", NULL, 0);
    return NULL;
}

/* Threads that log once and exit, one after another: each line arrives. */
static void test_short_lived_threads(void **state)
{
    char path[] = "/tmp/rdl-log-short-XXXXXX";
    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    rdl_logger_t *lg = file_logger(path, &o);
    for (int i = 0; i < 50; i++) {
        pthread_t th;
        pthread_create(&th, NULL, one_line, lg);
        pthread_join(th, NULL);
        if (i % 10 == 0)
            rdl_log_flush(lg, 0);       /* drained rings become reusable */
    }
    rdl_logger_free(lg);
    file_lines_t fl = read_lines(path);
    assert_int_equal(fl.n, 50);
    free_lines(&fl);
    unlink(path);
}

typedef struct reserve_case {
    rdl_logger_t *lg;
    size_t bytes;
    int rc;                     /* out: what rdl_log_reserve returned */
    uint64_t ring_bytes;        /* out: the logger's rings after the thread's line */
} reserve_case_t;

/* On its own thread: reserve, then a line; the line must go to the reserved ring. */
static void *reserve_then_line(void *arg)
{
    reserve_case_t *c = arg;
    rdl_log_stats_t st;
    c->rc = rdl_log_reserve(c->lg, c->bytes);
    rdl_log(c->lg, RDL_LOG_INFO, "reserved", NULL, 0);
    rdl_log_stats(c->lg, &st);
    c->ring_bytes = st.ring_bytes;
    return NULL;
}

static uint64_t reserve_on_thread(reserve_case_t *c)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reserve_then_line, c), 0);
    pthread_join(th, NULL);
    return c->ring_bytes;
}

/*
 * rdl_log_reserve makes the calling thread's ring of the size asked for
 * (rounded up to a power of two of at least four lines), before its first
 * line and instead of the logger's default; a thread's ring is never resized;
 * a drained ring of an exited thread goes to the next thread that fits in it.
 */
static void test_reserve(void **state)
{
    char path[] = "/tmp/rdl-log-reserve-XXXXXX";
    rdl_log_opts_t o;
    rdl_log_stats_t st;
    rdl_log_opts_default(&o);                   /* 256 KiB rings, 10 KiB lines */
    rdl_logger_t *lg = file_logger(path, &o);
    rdl_log_stats(lg, &st);
    assert_int_equal(st.ring_bytes, 0);

    reserve_case_t big = { .lg = lg, .bytes = 1000000 };
    assert_int_equal(reserve_on_thread(&big), 1 << 20);     /* one ring, rounded up */
    assert_int_equal(big.rc, 0);

    /* 100 bytes asks for the least, four lines: the exited thread's 1 MiB ring, once drained, fits */
    reserve_case_t small = { .lg = lg, .bytes = 100 };
    assert_int_equal(rdl_log_flush(lg, 0), 0);
    assert_int_equal(reserve_on_thread(&small), 1 << 20);   /* taken, not made again */
    assert_int_equal(small.rc, 0);

    /* this thread takes that ring now; the next small thread makes its own, of 64 KiB */
    assert_int_equal(rdl_log_flush(lg, 0), 0);
    rdl_log(lg, RDL_LOG_INFO, "main", NULL, 0);
    reserve_case_t small2 = { .lg = lg, .bytes = 100 };
    assert_int_equal(reserve_on_thread(&small2), (1 << 20) + (64 << 10));
    /* a drained 64 KiB ring is too small for a default (256 KiB) one */
    assert_int_equal(rdl_log_flush(lg, 0), 0);
    reserve_case_t other = { .lg = lg, .bytes = 0 };
    assert_int_equal(reserve_on_thread(&other), (1 << 20) + (64 << 10) + (256 << 10));

    /* a ring is never resized */
    assert_int_equal(rdl_log_reserve(lg, 1 << 20), 0);      /* this thread has 1 MiB already */
    assert_int_equal(rdl_log_reserve(lg, 0), 0);
    assert_int_equal(rdl_log_reserve(lg, 2 << 20), RDL_EBUSY);
    assert_int_equal(rdl_log_reserve(lg, RDL_LOG_RING_MAX + 1), RDL_EINVAL);
    rdl_log_stats(lg, &st);
    assert_int_equal(st.ring_bytes, (1 << 20) + (64 << 10) + (256 << 10));

    rdl_logger_free(lg);
    file_lines_t fl = read_lines(path);
    assert_int_equal(fl.n, 5);                              /* "reserved" x 4, "main" */
    free_lines(&fl);
    unlink(path);
}

static void test_options_rejected(void **state)
{
    rdl_log_opts_t o;
    rdl_logger_t *lg = (rdl_logger_t *)&o;
    rdl_log_opts_default(&o);
    o.max_line = 100;
    assert_int_equal(rdl_logger_new(&o, &lg), RDL_EINVAL);
    assert_null(lg);
    rdl_log_opts_default(&o);
    o.sink = RDL_LOG_FILE;
    assert_int_equal(rdl_logger_new(&o, &lg), RDL_EINVAL);
    o.path = "/nonexistent-dir/x.log";
    assert_int_equal(rdl_logger_new(&o, &lg), RDL_EIO);
    rdl_logger_free(NULL);
    /* format refuses a buffer smaller than the line limit */
    assert_int_equal(rdl_log_format(line, 300, 400, 0, RDL_LOG_INFO, "s", NULL, "m", NULL, 0, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_escape_bounded),
        cmocka_unit_test(test_property_random_fields),
        cmocka_unit_test(test_typed_fields),
        cmocka_unit_test(test_timestamp_and_head),
        cmocka_unit_test(test_context_fields),
        cmocka_unit_test(test_context_changes),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_truncation_long_msg),
        cmocka_unit_test(test_truncation_every_size),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_stamped_at),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_drop_policy),
        cmocka_unit_test(test_block_policy),
        cmocka_unit_test(test_pipe_buffer),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_lost_lines_disk_full),
        cmocka_unit_test(test_threads_whole_lines_in_order),
        cmocka_unit_test(test_short_lived_threads),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_options_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
