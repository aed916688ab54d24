/*
 * fuzz_log_fields.c: arbitrary bytes as a log line's service, message, keys
 * and typed values, at an arbitrary line limit, through rdl_log_format. The
 * line must be one JSON object on one line within the limit that jansson
 * accepts; "truncated":true exactly when something was cut; and when nothing
 * was cut, every string value must decode to what rdl_json_str makes of the
 * same bytes (the exact escaping rdl_json_str is itself fuzzed for).
 *
 * Input: 2 bytes of line limit, 1 byte of field types (3 bits per field
 * count, then a type per field from the following bytes), then the strings
 * separated by 0xFF bytes: service, msg, and key/value per field.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "redline/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 7
#define CAP (RDL_LOG_MAX_LINE_MIN + 8192)

static char line[CAP];

/* Next 0xFF-separated piece of the input. */
static const char *piece(const uint8_t **p, const uint8_t *end, size_t *n)
{
    const uint8_t *s = *p, *e = s;
    while (e < end && *e != 0xFF)
        e++;
    *n = (size_t)(e - s);
    *p = e < end ? e + 1 : e;
    return (const char *)s;
}

static int64_t int_of(const char *s, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, s, n < 8 ? n : 8);
    return (int64_t)v;
}

/* What a string must decode to. */
static json_t *expected(const char *s, size_t n)
{
    rdl_buf_t b;
    json_error_t jerr;
    rdl_buf_init(&b);
    rdl_buf_putc(&b, '[');
    rdl_json_str(&b, s, n);
    rdl_buf_putc(&b, ']');
    json_t *doc = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &jerr);
    rdl_buf_close(&b);
    if (!doc)
        __builtin_trap();
    return doc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t max_line = RDL_LOG_MAX_LINE_MIN + ((size_t)data[0] << 8 | data[1]) % 8192;
    size_t nf = data[2] % (MAX_FIELDS + 1);
    const uint8_t *p = data + 3, *end = data + size;
    uint8_t types[MAX_FIELDS];
    for (size_t i = 0; i < nf; i++)
        types[i] = p < end ? *p++ % 6 : 0;

    /* keys and msg/service are C strings: copy them NUL-terminated */
    static char keybuf[MAX_FIELDS][512], msg[4096], svc[256];
    size_t n;
    const char *s = piece(&p, end, &n);
    n = strnlen(s, n < sizeof(svc) - 1 ? n : sizeof(svc) - 1);
    memcpy(svc, s, n);
    svc[n] = '\0';
    s = piece(&p, end, &n);
    n = strnlen(s, n < sizeof(msg) - 1 ? n : sizeof(msg) - 1);
    memcpy(msg, s, n);
    msg[n] = '\0';

    rdl_log_field_t f[MAX_FIELDS];
    for (size_t i = 0; i < nf; i++) {
        s = piece(&p, end, &n);
        n = strnlen(s, n < sizeof(keybuf[i]) - 3 ? n : sizeof(keybuf[i]) - 3);
        memcpy(keybuf[i], s, n);
        keybuf[i][n] = '#';                  /* distinct from each other and the fixed keys */
        keybuf[i][n + 1] = (char)('0' + i);
        keybuf[i][n + 2] = '\0';
        const char *v = piece(&p, end, &n);
        switch (types[i]) {
        case RDL_LF_STR: f[i] = rdl_lf_strn(keybuf[i], v, n); break;
        case RDL_LF_INT: f[i] = rdl_lf_int(keybuf[i], int_of(v, n)); break;
        case RDL_LF_FLOAT: {
            double d;
            int64_t bits = int_of(v, n);
            memcpy(&d, &bits, sizeof(d));
            f[i] = rdl_lf_float(keybuf[i], d);
            break;
        }
        case RDL_LF_BOOL: f[i] = rdl_lf_bool(keybuf[i], n & 1); break;
        case RDL_LF_DURATION: f[i] = rdl_lf_dur(keybuf[i], (uint64_t)int_of(v, n)); break;
        default: f[i] = rdl_lf_err(keybuf[i], (int)int_of(v, n > 2 ? 2 : n) - 200); break;
        }
    }

    rdl_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    if (size & 1) {
        memcpy(ctx.trace_id, data, size < 16 ? size : 16);
        ctx.trace_id[15] |= 1;
        memcpy(ctx.request_id, "fuzz-rid", 9);
    }
    bool cut;
    size_t len = rdl_log_format(line, sizeof(line), max_line, (uint64_t)int_of((const char *)data, size),
                                RDL_LOG_INFO, svc, &ctx, msg, f, nf, &cut);
    if (len == 0 || len > max_line || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
        __builtin_trap();
    json_error_t jerr;
    json_t *doc = json_loadb(line, len - 1, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    if (!doc || !json_is_object(doc))
        __builtin_trap();
    if (cut != json_is_true(json_object_get(doc, "truncated")))
        __builtin_trap();
    if (!cut) {
        for (size_t i = 0; i < nf; i++) {
            if (f[i].type != RDL_LF_STR)
                continue;
            json_t *want = expected(f[i].v.s, f[i].n), *wk = expected(keybuf[i], strlen(keybuf[i]));
            json_t *got = json_object_get(doc, json_string_value(json_array_get(wk, 0)));
            if (!got || !json_equal(got, json_array_get(want, 0)))
                __builtin_trap();
            json_decref(want);
            json_decref(wk);
        }
    }
    json_decref(doc);
    return 0;
}
