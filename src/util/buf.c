/*
 * buf.c: the growable byte buffer every writer in redline appends to (metrics
 * exposition, log lines, JSON replies), and the exact JSON string escaper.
 * Writers never check each append: a failed allocation sets b->oom, keeps the
 * bytes already there and turns later appends into no-ops, so the caller
 * checks once at the end.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redline/util.h"

/* What data points at before the first allocation, so it is always a C string. */
static char empty_data[1];

void rdl_buf_init(rdl_buf_t *b)
{
    b->data = empty_data;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void rdl_buf_close(rdl_buf_t *b)
{
    if (b == NULL)
        return;
    if (b->cap > 0)
        free(b->data);
    rdl_buf_init(b);
}

void rdl_buf_reset(rdl_buf_t *b)
{
    b->len = 0;
    b->oom = false;
    if (b->cap > 0)
        b->data[0] = '\0';
}

/* cap counts the terminating NUL: len + extra + 1 bytes must fit. */
int rdl_buf_reserve(rdl_buf_t *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (b->oom)
        return RDL_ENOMEM;
    if (extra > SIZE_MAX - b->len - 1)
        goto fail;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->cap > 0 ? b->data : NULL, cap);
    if (p == NULL)
        goto fail;
    if (b->cap == 0)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
fail:
    b->oom = true;
    return RDL_ENOMEM;
}

void rdl_buf_put(rdl_buf_t *b, const void *p, size_t n)
{
    if (n == 0 || rdl_buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void rdl_buf_puts(rdl_buf_t *b, const char *s)
{
    rdl_buf_put(b, s, strlen(s));
}

void rdl_buf_putc(rdl_buf_t *b, char c)
{
    if (rdl_buf_reserve(b, 1) != 0)
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void rdl_buf_printf(rdl_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        /* Did not fit (or nothing allocated yet): grow, then format again. */
        if (rdl_buf_reserve(b, (size_t)n) != 0) {
            if (b->cap > 0)
                b->data[b->len] = '\0';    /* undo the truncated attempt */
            return;
        }
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void rdl_buf_put_u64(rdl_buf_t *b, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    rdl_buf_put(b, tmp + i, sizeof(tmp) - i);
}

void rdl_buf_put_i64(rdl_buf_t *b, int64_t v)
{
    if (v < 0) {
        rdl_buf_putc(b, '-');
        /* -(INT64_MIN) does not fit in int64_t; negate in unsigned arithmetic. */
        rdl_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        rdl_buf_put_u64(b, (uint64_t)v);
    }
}

/* 1 for bytes a JSON string holds as they are (printable ASCII but '"' and '\\'); 0 for NUL. */
const unsigned char rdl_json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Bytes that can be copied as they are: printable ASCII except '"' and '\\'. */
static bool is_plain(unsigned char c)
{
    return rdl_json_plain[c];
}

/* The JSON escape of c (a quote, a backslash or a control), into e; returns its length (2 or 6). */
static size_t escape_of(unsigned char c, char e[6])
{
    e[0] = '\\';
    switch (c) {
    case '"':  e[1] = '"'; return 2;
    case '\\': e[1] = '\\'; return 2;
    case '\n': e[1] = 'n'; return 2;
    case '\r': e[1] = 'r'; return 2;
    case '\t': e[1] = 't'; return 2;
    case '\b': e[1] = 'b'; return 2;
    case '\f': e[1] = 'f'; return 2;
    default:
        e[1] = 'u';
        e[2] = '0';
        e[3] = '0';
        rdl_hex_lower(e + 4, &c, 1);
        return 6;
    }
}

static void put_escape(rdl_buf_t *b, unsigned char c)
{
    char e[6];
    rdl_buf_put(b, e, escape_of(c, e));
}

/*
 * The second byte's range excludes overlongs (E0, F0), surrogates (ED) and code
 * points above U+10FFFF (F4); a stray continuation, C0/C1 or F5..FF is one
 * invalid byte.
 */
size_t rdl_utf8_seq(const char *str, size_t n, size_t *skip)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len, i, ignored;

    if (skip == NULL)
        skip = &ignored;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else {
        *skip = 1;
        return 0;
    }
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    for (i = 1; i < len; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *skip = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

void rdl_utf8_put(rdl_buf_t *b, const char *s, size_t n)
{
    size_t start = 0, i = 0, len, skip;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
        } else if ((len = rdl_utf8_seq(s + i, n - i, &skip)) > 0) {
            i += len;
        } else {
            rdl_buf_put(b, s + start, i - start);
            rdl_buf_put(b, "\xEF\xBF\xBD", 3);
            i += skip;
            start = i;
        }
    }
    rdl_buf_put(b, s + start, n - start);
}

size_t rdl_utf8_clean_len(const char *s, size_t n)
{
    size_t out = 0, i = 0, len, skip;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            out++;
        } else if ((len = rdl_utf8_seq(s + i, n - i, &skip)) > 0) {
            i += len;
            out += len;
        } else {
            i += skip;
            out += 3;
        }
    }
    return out;
}

void rdl_json_str(rdl_buf_t *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t start = b->len, i = 0;

    rdl_buf_putc(b, '"');
    while (i < n && !b->oom) {
        size_t run = i, len, skip;

        while (run < n && is_plain(s[run]))
            run++;
        if (run > i) {
            rdl_buf_put(b, s + i, run - i);
            i = run;
            continue;
        }
        if (s[i] < 0x80) {
            put_escape(b, s[i]);
            i++;
        } else if ((len = rdl_utf8_seq((const char *)s + i, n - i, &skip)) > 0) {
            rdl_buf_put(b, s + i, len);
            i += len;
        } else {
            rdl_buf_put(b, "\xEF\xBF\xBD", 3);
            i += skip;
        }
    }
    rdl_buf_putc(b, '"');
    if (b->oom && b->cap > 0) {
        /* Never leave half a string behind: drop the whole attempt. */
        b->len = start;
        b->data[start] = '\0';
    }
}


size_t rdl_json_escape(char *out, size_t cap, const char *str, size_t n, size_t *used)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0;

    while (i < n) {
        size_t len, skip;
        const char *src;
        char e[6];
        uint64_t x;

        /* Plain text eight bytes at a time, copied as it is checked. */
        while (i + 8 <= n && o + 8 <= cap) {
            memcpy(&x, s + i, 8);
            if (!rdl_json_plain8(x))
                break;
            memcpy(out + o, &x, 8);
            i += 8;
            o += 8;
        }
        if (i == n)
            break;
        /*
         * Fewer than eight left: the last eight bytes read again (or, in a
         * string shorter than that, two overlapping fours) decide them at once.
         */
        if (n - i < 8 && (n >= 8 || n - i >= 4) && n - i <= cap - o) {
            uint32_t a, b;
            if (n >= 8) {
                memcpy(&x, s + n - 8, 8);
            } else {
                memcpy(&a, s + i, 4);
                memcpy(&b, s + n - 4, 4);
                x = a | (uint64_t)b << 32;
            }
            if (rdl_json_plain8(x)) {
                memcpy(out + o, s + i, n - i);
                o += n - i;
                i = n;
                break;
            }
        }
        if (is_plain(s[i])) {
            if (o == cap)
                break;
            out[o++] = (char)s[i++];
            /* in a short tail, the rest of a plain run here rather than back through the loop */
            while (n - i < 8 && i < n && o < cap && is_plain(s[i]))
                out[o++] = (char)s[i++];
            continue;
        }
        if (s[i] < 0x80) {
            len = escape_of(s[i], e);
            src = e;
            skip = 1;
        } else if ((len = rdl_utf8_seq((const char *)s + i, n - i, &skip)) > 0) {
            src = (const char *)s + i;
            skip = len;
        } else {
            src = "\xEF\xBF\xBD";
            len = 3;
        }
        if (len > cap - o)
            break;
        for (size_t k = 0; k < len; k++)
            out[o + k] = src[k];
        o += len;
        i += skip;
    }
    if (used)
        *used = i;
    return o;
}
