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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

__attribute__((always_inline)) static inline bool put(lw_t *w, const char *s, size_t n)
{
    if (n > w->limit - w->len)
        return false;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return true;
}

#ifdef __SSE2__
/*
 * The bytes of v a JSON string cannot hold as they are, as a bit mask: a
 * signed compare below 0x20 catches the controls and every byte with the top
 * bit set at once, two more compares catch '"' and '\\'.
 */
__attribute__((always_inline)) static inline int unplain16(__m128i v)
{
    __m128i low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    return _mm_movemask_epi8(_mm_or_si128(low, _mm_or_si128(q, b)));
}

static inline __m128i load16(const char *s)
{
    return _mm_loadu_si128((const __m128i *)(const void *)s);
}

static inline __m128i load8(const char *s)
{
    return _mm_loadl_epi64((const __m128i *)(const void *)s);
}
#endif

/*
 * s[0..n), n <= 32, copied to o when it has nothing to escape: with SSE2
 * each byte is loaded once, checked and stored from the same register (two
 * overlapping blocks, nothing read past s + n); without, eight bytes are
 * checked at a time, then copied. False, o untouched, when a byte needs escaping.
 */
__attribute__((always_inline)) static inline bool copy_plain32(char *o, const char *s, size_t n)
{
#ifdef __SSE2__
    if (n >= 16) {
        __m128i a = load16(s), b = load16(s + n - 16);
        if (unplain16(a) | unplain16(b))
            return false;
        _mm_storeu_si128((__m128i *)(void *)o, a);
        _mm_storeu_si128((__m128i *)(void *)(o + n - 16), b);
        return true;
    }
    if (n >= 8) {
        __m128i a = load8(s), b = load8(s + n - 8);
        if (unplain16(_mm_unpacklo_epi64(a, b)))
            return false;
        _mm_storel_epi64((__m128i *)(void *)o, a);
        _mm_storel_epi64((__m128i *)(void *)(o + n - 8), b);
        return true;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        if (unplain16(_mm_cvtsi64_si128((long long)(a | (uint64_t)b << 32))) & 0xff)
            return false;       /* the upper eight lanes are zero, which reads as controls */
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &b, 4);
        return true;
    }
#else
    if (n >= 8) {
        uint64_t x;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, s + i, 8);
            if (!rdl_json_plain8(x))
                return false;
        }
        memcpy(&x, s + n - 8, 8);
        if (!rdl_json_plain8(x))
            return false;
        memcpy(o, s, n);
        return true;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        if (!rdl_json_plain8(a | (uint64_t)b << 32))
            return false;
        memcpy(o, &a, 4);
        memcpy(o + n - 4, &b, 4);
        return true;
    }
#endif
    /* 0 to 3 bytes ("GET"): the first, middle and last byte are all of them. */
    if (n == 0)
        return true;
    unsigned char x = (unsigned char)s[0], y = (unsigned char)s[n / 2];
    unsigned char z = (unsigned char)s[n - 1];
    if (!(rdl_json_plain[x] & rdl_json_plain[y] & rdl_json_plain[z]))
        return false;
    o[0] = (char)x;
    o[n / 2] = (char)y;
    o[n - 1] = (char)z;
    return true;
}

/* put_str through the escaper: long strings, bytes to escape, or little room. */
__attribute__((noinline)) static bool put_str_escaped(lw_t *w, const char *s, size_t n)
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

/*
 * A quoted string, cut (and w->cut set) when it does not fit whole. Inlined:
 * a short plain string (a method, a route, a name) is copied as it is, with
 * no call; anything else goes through the escaper.
 */
__attribute__((always_inline)) static inline bool put_str(lw_t *w, const char *s, size_t n)
{
    if (n <= 32 && n + 2 <= w->limit - w->len && copy_plain32(w->p + w->len + 1, s, n)) {
        char *o = w->p + w->len;
        o[0] = '"';
        o[n + 1] = '"';
        w->len += n + 2;
        return true;
    }
    return put_str_escaped(w, s, n);
}

/*
 * ,"key": for a key with bytes to escape (or no room): all or nothing. Kept
 * out of put_key so the common path saves no registers for it.
 */
__attribute__((noinline)) static bool put_key_escaped(lw_t *w, const char *key, size_t n)
{
    size_t start = w->len, used;

    if (w->limit - w->len < 4)
        return false;
    w->p[w->len++] = ',';
    w->p[w->len++] = '"';
    w->len += rdl_json_escape(w->p + w->len, w->limit - w->len - 2, key, n, &used);
    if (used < n) {
        w->len = start;
        return false;
    }
    w->p[w->len++] = '"';
    w->p[w->len++] = ':';
    return true;
}

/*
 * ,"key": all or nothing. A key is short and plain almost always, and its
 * length is known (key_len, counted by the compiler for a literal): it is
 * checked a word at a time and copied at once; only a key with a byte to
 * escape goes through the escaper.
 */
__attribute__((always_inline)) static inline bool put_key(lw_t *w, const char *key, size_t n)
{
    char *o = w->p + w->len;

    if (n > 32 || n + 4 > w->limit - w->len || !copy_plain32(o + 2, key, n))
        return put_key_escaped(w, key, n);
    o[0] = ',';
    o[1] = '"';
    o[n + 2] = '"';
    o[n + 3] = ':';
    w->len += n + 4;
    return true;
}

/* "00".."99": two digits per lookup, so a number costs one division per two digits. */
static const char digits2[] =
    "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849"
    "5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/*
 * How many decimal digits v has (1 to 20), with no loop: the bit length
 * times log10(2) (1233 / 4096) is the count or one less, and one compare
 * with a power of ten decides (v | 1, so that 0 has one digit).
 */
static size_t ndigits(uint64_t v)
{
    static const uint64_t pow10[20] = {
        1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
        100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
        10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
        100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
    };
    size_t t = (size_t)(64 - __builtin_clzll(v | 1)) * 1233 >> 12;

    return t + ((v | 1) >= pow10[t]);
}

/* v's digits into out[0..n), n = ndigits(v), written from the end two at a time. */
static void put_digits(char *out, size_t n, uint64_t v)
{
    char *p = out + n;

    while (v >= 100) {
        uint64_t q = v / 100;
        p -= 2;
        memcpy(p, digits2 + 2 * (v - q * 100), 2);
        v = q;
    }
    if (v >= 10)
        memcpy(p - 2, digits2 + 2 * v, 2);
    else
        p[-1] = (char)('0' + v);
}

/* v < 1000000 as exactly six digits, leading zeros kept. */
static void put_six(char *out, uint32_t v)
{
    memcpy(out, digits2 + 2 * (v / 10000), 2);
    memcpy(out + 2, digits2 + 2 * (v / 100 % 100), 2);
    memcpy(out + 4, digits2 + 2 * (v % 100), 2);
}

/* Room for n more bytes at the cursor, or NULL: numbers are written in place. */
static char *reserve(lw_t *w, size_t n)
{
    return n <= w->limit - w->len ? w->p + w->len : NULL;
}

static bool put_i64(lw_t *w, int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t neg = v < 0, n = ndigits(u);
    char *o = reserve(w, neg + n);

    if (!o)
        return false;
    o[0] = '-';             /* overwritten by the first digit when v >= 0 */
    put_digits(o + neg, n, u);
    w->len += neg + n;
    return true;
}

/* Milliseconds with nanosecond precision: 12345678 ns -> "12.345678". */
static bool put_duration(lw_t *w, uint64_t ns)
{
    uint64_t ms = ns / 1000000u;
    size_t n = ndigits(ms);
    char *o = reserve(w, n + 7);

    if (!o)
        return false;
    put_digits(o, n, ms);
    o[n] = '.';
    put_six(o + n + 1, (uint32_t)(ns % 1000000u));
    w->len += n + 7;
    return true;
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

    if (!put_key(w, f->key ? f->key : "",
                 f->key_len ? f->key_len : f->key ? strlen(f->key) : 0))
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
        if (put_i64(w, f->v.i))
            return true;
        break;
    case RDL_LF_BOOL:
        if (f->v.b ? put(w, "true", 4) : put(w, "false", 5))
            return true;
        break;
    case RDL_LF_DURATION:
        if (put_duration(w, f->v.u))
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

/* ,"key":"hex", all or nothing (key_json is ,"key":" ); when it does not fit the line is cut. */
__attribute__((always_inline)) static inline void put_hex(lw_t *w, const char *key_json,
                                                          size_t key_len, const uint8_t *id,
                                                          size_t n)
{
    char *o = reserve(w, key_len + 2 * n + 1);

    if (!o) {
        w->cut = true;
        return;
    }
    memcpy(o, key_json, key_len);
    rdl_hex_lower(o + key_len, id, n);
    o[key_len + 2 * n] = '"';
    w->len += key_len + 2 * n + 1;
}

/* Whether any of p[0..n), n a multiple of 8, is not zero: a word at a time. */
static bool nonzero(const uint8_t *p, size_t n)
{
    uint64_t any = 0, x;

    for (size_t i = 0; i < n; i += 8) {
        memcpy(&x, p + i, 8);
        any |= x;
    }
    return any != 0;
}

/*
 * The request's identity: trace_id and span_id when there is a trace, then
 * request_id (rid_len bytes of ctx->request_id).
 */
static void put_ident(lw_t *w, const rdl_ctx_t *ctx, size_t rid_len)
{
    if (nonzero(ctx->trace_id, sizeof(ctx->trace_id))) {
        put_hex(w, ",\"trace_id\":\"", 13, ctx->trace_id, sizeof(ctx->trace_id));
        if (nonzero(ctx->span_id, sizeof(ctx->span_id)))
            put_hex(w, ",\"span_id\":\"", 12, ctx->span_id, sizeof(ctx->span_id));
    }
    if (ctx->request_id[0] && !w->cut) {
        size_t start = w->len;
        if (!put_key(w, "request_id", 10) || !put_str(w, ctx->request_id, rid_len)) {
            w->len = start;
            w->cut = true;
        }
    }
}

/*
 * The identity as put_ident writes it when nothing is cut, made once per
 * request rather than once per line: each thread keeps the text of the last
 * identity it wrote, with the ids it was made from, and makes it again only
 * when the ids differ. Thread-local, so rdl_log_format stays pure and
 * lock-free.
 */
#define IDENT_MAX (46 + 29 + 16 + 6 * RDL_REQUEST_ID_MAX)   /* ids, keys, quotes, escapes */

typedef struct ident_cache {
    bool valid;
    uint8_t trace_id[16];
    uint8_t span_id[8];
    size_t rid_len;
    char request_id[RDL_REQUEST_ID_MAX];
    size_t len;
    char text[IDENT_MAX];
} ident_cache_t;

static __thread ident_cache_t ident;

static bool ident_same(const ident_cache_t *c, const rdl_ctx_t *ctx)
{
    return c->valid && memcmp(c->trace_id, ctx->trace_id, sizeof(c->trace_id)) == 0 &&
           memcmp(c->span_id, ctx->span_id, sizeof(c->span_id)) == 0 &&
           memcmp(c->request_id, ctx->request_id, c->rid_len) == 0 &&
           (c->rid_len == RDL_REQUEST_ID_MAX || ctx->request_id[c->rid_len] == '\0');
}

static void ident_fill(ident_cache_t *c, const rdl_ctx_t *ctx)
{
    lw_t w = { .p = c->text, .len = 0, .limit = sizeof(c->text), .cut = false };

    memcpy(c->trace_id, ctx->trace_id, sizeof(c->trace_id));
    memcpy(c->span_id, ctx->span_id, sizeof(c->span_id));
    c->rid_len = strnlen(ctx->request_id, RDL_REQUEST_ID_MAX);
    memcpy(c->request_id, ctx->request_id, sizeof(c->request_id));  /* a constant length: inline */
    put_ident(&w, ctx, c->rid_len);   /* IDENT_MAX holds the longest: never cut */
    c->len = w.len;
    c->valid = true;
}

/* The cached text when it fits whole (the same bytes put_ident writes), else false. */
static bool put_ident_cached(lw_t *w, const rdl_ctx_t *ctx)
{
    if (!ident_same(&ident, ctx))
        ident_fill(&ident, ctx);
    return put(w, ident.text, ident.len);
}

size_t rdl__log_format_ts(char out[LOG_TS_LEN], uint64_t wall_ns)
{
    time_t sec = (time_t)(wall_ns / 1000000000u);
    uint32_t ns = (uint32_t)(wall_ns % 1000000000u);
    struct tm tm;

    gmtime_r(&sec, &tm);
    rdl__log_format_ts_prefix(out, &tm);
    rdl__log_format_ts_ns(out, ns);
    return LOG_TS_LEN;
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void rdl__log_format_ts_prefix(char out[LOG_TS_LEN], const struct tm *tm)
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

void rdl__log_format_ts_ns(char out[LOG_TS_LEN], uint32_t ns)
{
    out[20] = (char)('0' + ns / 100000000u % 10);
    ns %= 100000000u;
    memcpy(out + 21, digits2 + 2 * (ns / 1000000u), 2);
    put_six(out + 23, ns % 1000000u);
}

static const char *const level_json[] = {
    "\"debug\"", "\"info\"", "\"warn\"", "\"error\"", "\"fatal\"",
};
static const size_t level_json_len[] = { 7, 6, 6, 7, 7 };

/*
 * After the timestamp: ","level":"info","service":"<service>". Returns whether
 * all of it fit whole (in a line it always does but for a long service, which
 * is then cut).
 */
static bool put_head(lw_t *w, rdl_log_level_t level, const char *service, size_t service_len)
{
    if ((unsigned)level > RDL_LOG_FATAL)
        level = RDL_LOG_FATAL;
    return put(w, "\",\"level\":", 10) && put(w, level_json[level], level_json_len[level]) &&
           put(w, ",\"service\":", 11) && put_str(w, service, service_len) && !w->cut;
}

size_t rdl__log_format_head(char *out, size_t cap, rdl_log_level_t level, const char *service,
                       size_t service_len)
{
    lw_t w = { .p = out, .len = 0, .limit = cap, .cut = false };

    return put_head(&w, level, service, service_len) ? w.len : 0;
}

size_t rdl__log_format_line(char *out, size_t max_line, const char ts[LOG_TS_LEN],
                       rdl_log_level_t level, const char *service, size_t service_len,
                       const char *head, size_t head_len, const rdl_ctx_t *ctx,
                       const char *msg, const rdl_log_field_t *fields, size_t n,
                       bool *truncated)
{
    lw_t w = { .p = out, .len = 0, .limit = max_line - TRUNC_TAIL_LEN, .cut = false };
    size_t i;

    /* The fixed part always fits: max_line >= RDL_LOG_MAX_LINE_MIN. */
    put(&w, "{\"ts\":\"", 7);
    put(&w, ts, LOG_TS_LEN);
    /* The head made once per logger when it fits whole (the same bytes), else piece by piece. */
    if (!head_len || !put(&w, head, head_len))
        put_head(&w, level, service, service_len);
    if (ctx && (w.cut || !put_ident_cached(&w, ctx)))   /* near the limit: as much as fits */
        put_ident(&w, ctx, strnlen(ctx->request_id, RDL_REQUEST_ID_MAX));
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
    char ts[LOG_TS_LEN], head[128];
    size_t service_len, head_len;

    if (max_line < RDL_LOG_MAX_LINE_MIN || cap < max_line)
        return 0;
    if (!service)
        service = "redline";
    service_len = strlen(service);
    /* As the logger does: the head made apart first (when it is short enough to fit here). */
    head_len = rdl__log_format_head(head, sizeof(head), level, service, service_len);
    rdl__log_format_ts(ts, wall_ns);
    return rdl__log_format_line(out, max_line, ts, level, service, service_len,
                           head_len ? head : NULL, head_len, ctx, msg, fields, n, truncated);
}
