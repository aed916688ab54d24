/*
 * format.c: one log line into fixed memory, exactly.
 *
 * It exists so that the hot path never allocates and every line parses:
 * strings go through rdl_json_escape (every control byte, quote and backslash
 * escaped; invalid UTF-8 becomes U+FFFD), numbers are written by hand, and
 * a line that would pass max_line is cut at a field or inside a string value
 * (never inside an escape or a UTF-8 sequence), then closed with
 * "truncated":true, so even a cut line is one valid JSON object.
 *
 * Field order puts the request's identity before msg: a huge msg is what gets
 * cut, not the trace id that finds the line.
 */
#define _GNU_SOURCE             /* strerrordesc_np */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redline/log.h"
#include "log/internal.h"

static const char trunc_tail[] = ",\"truncated\":true}\n";
#define TRUNC_TAIL_LEN (sizeof(trunc_tail) - 1)

/* A cursor over out[0..limit); limit keeps room for the closing bytes. */
typedef struct lw {
    char *p;
    size_t len;
    size_t limit;
    bool cut;
} lw_t;

static bool put(lw_t *w, const char *s, size_t n)
{
    if (n > w->limit - w->len)
        return false;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return true;
}

/* A quoted string, cut (and w->cut set) when it does not fit whole. */
static bool put_str(lw_t *w, const char *s, size_t n)
{
    size_t used;

    if (w->limit - w->len < 2)
        return false;
    w->p[w->len++] = '"';
    w->len += rdl_json_escape(w->p + w->len, w->limit - w->len - 1, s, n, &used);
    w->p[w->len++] = '"';
    if (used < n)
        w->cut = true;
    return true;
}

/* "000102...ff": two hex digits per byte in one lookup. */
static const char hex_pairs[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/*
 * ,"key": — all or nothing. Keys are short and plain almost always: they are
 * copied in one pass, and only a key with a byte to escape goes through the
 * escaper.
 */
static bool put_key(lw_t *w, const char *key)
{
    size_t start = w->len, room, used, n;
    const char *k = key ? key : "";

    if (w->limit - w->len < 4)
        return false;
    /* locals, not w->len: stores through char * would make the compiler reload it */
    char *o = w->p + w->len, *end;
    *o++ = ',';
    *o++ = '"';
    room = w->limit - w->len - 4;
    end = o + room;
    while (rdl_json_plain[(unsigned char)*k] && o < end)   /* stops at NUL too */
        *o++ = *k++;
    w->len = (size_t)(o - w->p);
    room = (size_t)(end - o);
    if (*k) {
        n = strlen(k);
        w->len += rdl_json_escape(w->p + w->len, room, k, n, &used);
        if (used < n) {
            w->len = start;
            return false;
        }
    }
    w->p[w->len++] = '"';
    w->p[w->len++] = ':';
    return true;
}

static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp), n;

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    n = sizeof(tmp) - i;
    memcpy(out, tmp + i, n);
    return n;
}

static size_t fmt_i64(char *out, int64_t v)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return fmt_u64(out, (uint64_t)v);
}

/* Milliseconds with nanosecond precision: 12345678 ns -> "12.345678". */
static size_t fmt_duration(char *out, uint64_t ns)
{
    size_t n = fmt_u64(out, ns / 1000000u);
    uint64_t frac = ns % 1000000u;

    out[n] = '.';
    for (int i = 6; i >= 1; i--) {      /* constant divisors: no division instruction */
        out[n + (size_t)i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return n + 7;
}

/*
 * The shortest of %.15g / %.16g / %.17g that reads back as the same double,
 * so 0.1 is "0.1" and every value round-trips. Integral values get no
 * exponent below 1e15 ("3" is a JSON number too).
 */
static size_t fmt_double(char *out, size_t cap, double d)
{
    int n = 0;

    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, d);
        if (n < 0 || (size_t)n >= cap)
            return 0;
        if (strtod(out, NULL) == d)
            break;
    }
    return (size_t)n;
}

static const char *error_text(int64_t code)
{
    const char *s;

    if (code <= 0)
        return rdl_strerror((int)code);
    s = code < 4096 ? strerrordesc_np((int)code) : NULL;
    return s ? s : "unknown error";
}

/* One field; false when it did not fit (the line then ends before it). */
static bool put_field(lw_t *w, const rdl_log_field_t *f)
{
    size_t start = w->len, n = 0;
    char num[40];

    if (!put_key(w, f->key))
        return false;
    switch (f->type) {
    case RDL_LF_STR:
        if (put_str(w, f->v.s, f->n))
            return true;
        break;
    case RDL_LF_ERROR: {
        const char *s = error_text(f->v.i);
        if (put_str(w, s, strlen(s)))
            return true;
        break;
    }
    case RDL_LF_FLOAT:
        if (isnan(f->v.f) || isinf(f->v.f)) {
            const char *s = isnan(f->v.f) ? "\"NaN\"" : f->v.f > 0 ? "\"+Inf\"" : "\"-Inf\"";
            if (put(w, s, strlen(s)))
                return true;
            break;
        }
        n = fmt_double(num, sizeof(num), f->v.f);
        if (n && put(w, num, n))
            return true;
        break;
    case RDL_LF_INT:
        if (put(w, num, fmt_i64(num, f->v.i)))
            return true;
        break;
    case RDL_LF_BOOL:
        if (f->v.b ? put(w, "true", 4) : put(w, "false", 5))
            return true;
        break;
    case RDL_LF_DURATION:
        if (put(w, num, fmt_duration(num, f->v.u)))
            return true;
        break;
    default:
        if (put(w, "null", 4))
            return true;
        break;
    }
    w->len = start;
    return false;
}

static void put_hex(lw_t *w, const char *key, const uint8_t *id, size_t n)
{
    char tmp[40];
    size_t i, start = w->len;

    for (i = 0; i < n; i++)
        memcpy(tmp + 2 * i, hex_pairs + 2 * id[i], 2);
    if (!put_key(w, key) || !put(w, "\"", 1) || !put(w, tmp, 2 * n) || !put(w, "\"", 1)) {
        w->len = start;
        w->cut = true;
    }
}

static bool nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return true;
    return false;
}

size_t log_format_ts(char out[LOG_TS_LEN], uint64_t wall_ns)
{
    time_t sec = (time_t)(wall_ns / 1000000000u);
    uint32_t ns = (uint32_t)(wall_ns % 1000000000u);
    struct tm tm;

    gmtime_r(&sec, &tm);
    log_format_ts_prefix(out, &tm);
    log_format_ts_ns(out, ns);
    return LOG_TS_LEN;
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void log_format_ts_prefix(char out[LOG_TS_LEN], const struct tm *tm)
{
    int y = tm->tm_year + 1900;

    out[0] = (char)('0' + y / 1000 % 10);
    out[1] = (char)('0' + y / 100 % 10);
    two(out + 2, y % 100);
    out[4] = '-';
    two(out + 5, tm->tm_mon + 1);
    out[7] = '-';
    two(out + 8, tm->tm_mday);
    out[10] = 'T';
    two(out + 11, tm->tm_hour);
    out[13] = ':';
    two(out + 14, tm->tm_min);
    out[16] = ':';
    two(out + 17, tm->tm_sec);
    out[19] = '.';
    out[29] = 'Z';
}

void log_format_ts_ns(char out[LOG_TS_LEN], uint32_t ns)
{
    for (int i = 28; i >= 20; i--) {
        out[i] = (char)('0' + ns % 10);
        ns /= 10;
    }
}

static const char *const level_json[] = {
    "\"debug\"", "\"info\"", "\"warn\"", "\"error\"", "\"fatal\"",
};
static const size_t level_json_len[] = { 7, 6, 6, 7, 7 };

size_t log_format_line(char *out, size_t max_line, const char ts[LOG_TS_LEN],
                       rdl_log_level_t level, const char *service, size_t service_len,
                       const rdl_ctx_t *ctx, const char *msg, const rdl_log_field_t *fields,
                       size_t n, bool *truncated)
{
    lw_t w = { .p = out, .len = 0, .limit = max_line - TRUNC_TAIL_LEN, .cut = false };
    size_t i;

    /* The fixed head always fits: max_line >= RDL_LOG_MAX_LINE_MIN. */
    put(&w, "{\"ts\":\"", 7);
    put(&w, ts, LOG_TS_LEN);
    put(&w, "\",\"level\":", 10);
    if ((unsigned)level > RDL_LOG_FATAL)
        level = RDL_LOG_FATAL;
    put(&w, level_json[level], level_json_len[level]);
    put(&w, ",\"service\":", 11);
    put_str(&w, service, service_len);
    if (ctx && nonzero(ctx->trace_id, sizeof(ctx->trace_id))) {
        put_hex(&w, "trace_id", ctx->trace_id, sizeof(ctx->trace_id));
        if (nonzero(ctx->span_id, sizeof(ctx->span_id)))
            put_hex(&w, "span_id", ctx->span_id, sizeof(ctx->span_id));
    }
    if (ctx && ctx->request_id[0] && !w.cut) {
        size_t start = w.len;
        if (!put_key(&w, "request_id") ||
            !put_str(&w, ctx->request_id, strnlen(ctx->request_id, RDL_REQUEST_ID_MAX))) {
            w.len = start;
            w.cut = true;
        }
    }
    if (!w.cut) {
        size_t start = w.len;
        if (!put(&w, ",\"msg\":", 7) || !put_str(&w, msg ? msg : "", msg ? strlen(msg) : 0)) {
            w.len = start;
            w.cut = true;
        }
    }
    for (i = 0; i < n && !w.cut; i++)
        if (!put_field(&w, &fields[i]))
            w.cut = true;
    if (w.cut) {
        memcpy(out + w.len, trunc_tail, TRUNC_TAIL_LEN);
        w.len += TRUNC_TAIL_LEN;
    } else {
        out[w.len++] = '}';
        out[w.len++] = '\n';
    }
    if (truncated)
        *truncated = w.cut;
    return w.len;
}

size_t rdl_log_format(char *out, size_t cap, size_t max_line, uint64_t wall_ns,
                      rdl_log_level_t level, const char *service, const rdl_ctx_t *ctx,
                      const char *msg, const rdl_log_field_t *fields, size_t n,
                      bool *truncated)
{
    char ts[LOG_TS_LEN];

    if (max_line < RDL_LOG_MAX_LINE_MIN || cap < max_line)
        return 0;
    if (!service)
        service = "redline";
    log_format_ts(ts, wall_ns);
    return log_format_line(out, max_line, ts, level, service, strlen(service), ctx, msg,
                           fields, n, truncated);
}
