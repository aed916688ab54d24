/*
 * propagate.c: reading and writing trace context in request headers. It
 * exists because every hop of a trace depends on these parsers being strict
 * where the specs are (W3C Trace Context's fixed layout, lowercase hex, zero
 * ids) and lenient only where they say so (OWS, future versions, B3's
 * true/false): a lenient parser joins unrelated traces, a strict-by-accident
 * one breaks them. Nothing here allocates; errors name the column.
 */
#include <stddef.h>
#include <string.h>
#include "trace/internal.h"

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

void rdl__trace_trim(const char **s, size_t *n)
{
    while (*n && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

bool rdl_span_context_valid(const rdl_span_context_t *sc)
{
    return sc && !all_zero(sc->trace_id, 16) && !all_zero(sc->span_id, 8);
}

/* ---- traceparent ----------------------------------------------------- */

static int tp_fail(rdl_error_t *err, size_t col, const char *what)
{
    return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "traceparent", "%s", what);
}

int rdl_traceparent_parse(const char *s, size_t n, rdl_span_context_t *out, rdl_error_t *err)
{
    size_t lead = 0;
    while (lead < n && is_ows(s[lead]))
        lead++;
    s += lead;
    n -= lead;
    while (n && is_ows(s[n - 1]))
        n--;
    if (n < RDL_TRACEPARENT_LEN)
        return tp_fail(err, lead + n, "expected 55 characters: 00-<32 hex>-<16 hex>-<2 hex>");
    uint8_t ver;
    size_t good = rdl_hex_decode_lower(&ver, s, 1);
    if (good < 2)
        return tp_fail(err, lead + good, "expected a version of 2 lowercase hex digits");
    if (ver == 0xff)
        return tp_fail(err, lead, "version ff is invalid");
    static const size_t dash[3] = { 2, 35, 52 };
    for (int i = 0; i < 3; i++)
        if (s[dash[i]] != '-')
            return tp_fail(err, lead + dash[i], "expected '-'");
    uint8_t trace_id[16], span_id[8], flags;
    if ((good = rdl_hex_decode_lower(trace_id, s + 3, 16)) < 32)
        return tp_fail(err, lead + 3 + good, "expected 32 lowercase hex digits of trace-id");
    if ((good = rdl_hex_decode_lower(span_id, s + 36, 8)) < 16)
        return tp_fail(err, lead + 36 + good, "expected 16 lowercase hex digits of parent-id");
    if ((good = rdl_hex_decode_lower(&flags, s + 53, 1)) < 2)
        return tp_fail(err, lead + 53 + good, "expected 2 lowercase hex digits of trace-flags");
    if (all_zero(trace_id, 16))
        return tp_fail(err, lead + 3, "trace-id of all zeros is invalid");
    if (all_zero(span_id, 8))
        return tp_fail(err, lead + 36, "parent-id of all zeros is invalid");
    if (n > RDL_TRACEPARENT_LEN) {
        /* Version 00 ends after the flags; a later version may append "-<more>". */
        if (ver == 0)
            return tp_fail(err, lead + 55, "version 00 ends after trace-flags");
        if (s[55] != '-')
            return tp_fail(err, lead + 55, "expected '-' or the end after trace-flags");
    }
    if (ver != 0)
        flags &= RDL_TRACE_FLAG_SAMPLED | RDL_TRACE_FLAG_RANDOM;   /* re-emitted as 00 */
    /* Only the fields: the 513-byte tracestate is not copied, just emptied. */
    memcpy(out->trace_id, trace_id, 16);
    memcpy(out->span_id, span_id, 8);
    out->flags = flags;
    out->remote = true;
    out->tracestate_len = 0;
    out->tracestate[0] = '\0';
    return 0;
}

size_t rdl_traceparent_format(const rdl_span_context_t *sc, char out[RDL_TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    rdl_hex_lower(out + 3, sc->trace_id, 16);
    out[35] = '-';
    rdl_hex_lower(out + 36, sc->span_id, 8);
    out[52] = '-';
    rdl_hex_lower(out + 53, &sc->flags, 1);
    out[55] = '\0';
    return RDL_TRACEPARENT_LEN;
}

/* ---- tracestate ------------------------------------------------------ */

static bool ts_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '*' || c == '/';
}

/* simple-key, or tenant@system (tenant <= 241, system <= 14, system starts with a letter). */
static bool ts_key_valid(const char *k, size_t n)
{
    if (n == 0 || n > 256)
        return false;
    if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
        return false;
    const char *at = memchr(k, '@', n);
    for (size_t i = 0; i < n; i++)
        if (k + i != at && !ts_key_char(k[i]))
            return false;
    if (!at)
        return true;
    size_t tenant = (size_t)(at - k), sys = n - tenant - 1;
    return tenant <= 241 && sys >= 1 && sys <= 14 && at[1] >= 'a' && at[1] <= 'z';
}

static bool ts_value_valid(const char *v, size_t n)
{
    if (n == 0 || n > 256 || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
            return false;
    return true;
}

typedef struct ts_member {
    const char *p;
    size_t len, key_len;
} ts_member_t;

/* Writes members (skipping removed ones: len 0) joined by ',' into sc. */
static void ts_store(rdl_span_context_t *sc, const ts_member_t *m, int n)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (!m[i].len)
            continue;
        if (o)
            sc->tracestate[o++] = ',';
        memmove(sc->tracestate + o, m[i].p, m[i].len);
        o += m[i].len;
    }
    sc->tracestate[o] = '\0';
    sc->tracestate_len = (uint16_t)o;
}

/* Total bytes of members joined by ','. */
static size_t ts_joined(const ts_member_t *m, int n)
{
    size_t t = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (m[i].len) {
            t += m[i].len;
            k++;
        }
    return t + (k ? (size_t)k - 1 : 0);
}

/* Truncation per W3C: whole entries over 128 bytes first, then from the right. */
static void ts_fit(ts_member_t *m, int n)
{
    for (int i = n - 1; i >= 0 && ts_joined(m, n) > RDL_TRACESTATE_MAX; i--)
        if (m[i].len > 128)
            m[i].len = 0;
    for (int i = n - 1; i >= 0 && ts_joined(m, n) > RDL_TRACESTATE_MAX; i--)
        m[i].len = 0;
}

int rdl_tracestate_parse(const char *s, size_t n, rdl_span_context_t *sc, rdl_error_t *err)
{
    ts_member_t m[RDL_TRACESTATE_MEMBERS];
    int count = 0;
    size_t pos = 0;
    sc->tracestate[0] = '\0';
    sc->tracestate_len = 0;
    while (pos <= n) {
        const char *comma = memchr(s + pos, ',', n - pos);
        size_t end = comma ? (size_t)(comma - s) : n;
        const char *p = s + pos;
        size_t len = end - pos;
        size_t col = pos;
        rdl__trace_trim(&p, &len);
        if (len) {
            const char *eq = memchr(p, '=', len);
            if (!eq)
                return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "tracestate",
                                     "expected key=value list-member");
            size_t kl = (size_t)(eq - p);
            if (!ts_key_valid(p, kl))
                return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "tracestate",
                                     "expected a key of a-z 0-9 _ - * / (tenant@system allowed)");
            if (!ts_value_valid(eq + 1, len - kl - 1))
                return rdl_error_set(err, RDL_EINVAL, 0, (int)(col + kl + 2), "tracestate",
                                     "expected a value of 1-256 printable characters, no ',' '='");
            for (int i = 0; i < count; i++)
                if (m[i].key_len == kl && memcmp(m[i].p, p, kl) == 0)
                    return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "tracestate",
                                         "duplicate key");
            if (count == RDL_TRACESTATE_MEMBERS)
                return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "tracestate",
                                     "more than 32 list-members");
            m[count++] = (ts_member_t){ p, len, kl };
        }
        pos = end + 1;
    }
    ts_fit(m, count);
    /* The input may be longer than our buffer: copy through a scratch area. */
    char scratch[RDL_TRACESTATE_MAX + 1];
    size_t o = 0;
    for (int i = 0; i < count; i++) {
        if (!m[i].len)
            continue;
        if (o)
            scratch[o++] = ',';
        memcpy(scratch + o, m[i].p, m[i].len);
        o += m[i].len;
    }
    memcpy(sc->tracestate, scratch, o);
    sc->tracestate[o] = '\0';
    sc->tracestate_len = (uint16_t)o;
    return 0;
}

const char *rdl_tracestate_get(const rdl_span_context_t *sc, const char *key, size_t *len)
{
    size_t kl = strlen(key), n = sc->tracestate_len;
    const char *s = sc->tracestate;
    size_t pos = 0;
    while (pos < n) {
        const char *comma = memchr(s + pos, ',', n - pos);
        size_t end = comma ? (size_t)(comma - s) : n;
        if (end - pos > kl && s[pos + kl] == '=' && memcmp(s + pos, key, kl) == 0) {
            *len = end - pos - kl - 1;
            return s + pos + kl + 1;
        }
        pos = end + 1;
    }
    return NULL;
}

int rdl_tracestate_set(rdl_span_context_t *sc, const char *key, const char *value)
{
    size_t kl = strlen(key), vl = strlen(value);
    if (!ts_key_valid(key, kl) || !ts_value_valid(value, vl) || kl + vl + 1 > RDL_TRACESTATE_MAX)
        return RDL_EINVAL;
    char copy[RDL_TRACESTATE_MAX + 1];
    memcpy(copy, sc->tracestate, sc->tracestate_len);
    ts_member_t m[RDL_TRACESTATE_MEMBERS + 1];
    char first[RDL_TRACESTATE_MAX + 1];
    memcpy(first, key, kl);
    first[kl] = '=';
    memcpy(first + kl + 1, value, vl + 1);
    int count = 0;
    m[count++] = (ts_member_t){ first, kl + vl + 1, kl };
    size_t pos = 0, n = sc->tracestate_len;
    while (pos < n) {
        const char *comma = memchr(copy + pos, ',', n - pos);
        size_t end = comma ? (size_t)(comma - copy) : n;
        const char *eq = memchr(copy + pos, '=', end - pos);
        size_t mk = eq ? (size_t)(eq - copy) - pos : 0;
        if (!(mk == kl && memcmp(copy + pos, key, kl) == 0))
            m[count++] = (ts_member_t){ copy + pos, end - pos, mk };
        pos = end + 1;
    }
    if (count > RDL_TRACESTATE_MEMBERS)
        count = RDL_TRACESTATE_MEMBERS;       /* drop the right-most */
    for (int i = count - 1; i > 0 && ts_joined(m, count) > RDL_TRACESTATE_MAX; i--)
        m[i].len = 0;
    ts_store(sc, m, count);
    return 0;
}

/* ---- baggage --------------------------------------------------------- */

bool rdl__trace_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* baggage-octet: printable ASCII except space, '"', ',', ';', '\\'. */
static bool is_bag_octet(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

void rdl_baggage_init(rdl_baggage_t *b)
{
    b->n = 0;
    b->used = 0;
}

/* Checks a value: baggage-octets and %XX escapes only. Returns -1, or the index of the first bad byte. */
static long bag_check(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '%') {
            if (i + 2 >= n || rdl_hex_value(v[i + 1]) < 0 || rdl_hex_value(v[i + 2]) < 0)
                return (long)i;
            i += 2;
        } else if (!is_bag_octet(c)) {
            return (long)i;
        }
    }
    return -1;
}

/*
 * Percent-decodes a checked value into out (cap bytes); invalid UTF-8 becomes
 * U+FFFD. Returns the length, or -1 when it does not fit.
 */
static long bag_decode(const char *v, size_t n, char *out, size_t cap)
{
    unsigned char raw[RDL_BAGGAGE_MAX_BYTES * 3];
    size_t r = 0;
    for (size_t i = 0; i < n && r < sizeof(raw); i++) {
        if (v[i] == '%') {
            raw[r++] = (unsigned char)(rdl_hex_value(v[i + 1]) << 4 | rdl_hex_value(v[i + 2]));
            i += 2;
        } else {
            raw[r++] = (unsigned char)v[i];
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < r;) {
        size_t skip = 1, l = rdl_utf8_seq((const char *)raw + i, r - i, &skip);
        const void *src = l ? (const void *)(raw + i) : "\xef\xbf\xbd";
        size_t sl = l ? l : 3;
        if (o + sl > cap)
            return -1;
        memcpy(out + o, src, sl);
        o += sl;
        i += l ? l : skip;
    }
    return (long)o;
}

typedef struct bag_item {
    const char *key, *val, *props;
    size_t key_len, val_len, props_len, col;
} bag_item_t;

/* Splits one list-member "key = value ;props" (already cut at ','). */
static int bag_split(const char *p, size_t len, size_t col, bag_item_t *it, rdl_error_t *err)
{
    const char *semi = memchr(p, ';', len);
    size_t kv_len = semi ? (size_t)(semi - p) : len;
    const char *eq = memchr(p, '=', kv_len);
    if (!eq)
        return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "baggage", "expected key=value");
    const char *k = p, *v = eq + 1;
    size_t kl = (size_t)(eq - p), vl = kv_len - kl - 1;
    rdl__trace_trim(&k, &kl);
    rdl__trace_trim(&v, &vl);
    if (kl == 0)
        return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, "baggage", "expected a key");
    for (size_t i = 0; i < kl; i++)
        if (!rdl__trace_tchar((unsigned char)k[i]))
            return rdl_error_set(err, RDL_EINVAL, 0, (int)(col + (size_t)(k - p) + i) + 1,
                                 "baggage", "expected a key of token characters");
    it->key = k;
    it->key_len = kl;
    it->val = v;
    it->val_len = vl;
    it->props = semi;
    it->props_len = semi ? len - kv_len : 0;
    it->col = col;
    if (semi) {
        const char *pp = semi;
        size_t pl = it->props_len;
        rdl__trace_trim(&pp, &pl);
        it->props = pp;
        it->props_len = pl;
        for (size_t i = 1; i < pl; i++) {
            unsigned char c = (unsigned char)pp[i];
            if (!(is_bag_octet(c) || c == ';' || c == ' ' || c == '\t' || c == '='))
                return rdl_error_set(err, RDL_EINVAL, 0, (int)(col + kv_len + i) + 1,
                                     "baggage", "unexpected character in a property");
        }
    }
    return 0;
}

static int bag_find(const rdl_baggage_t *b, const char *k, size_t kl)
{
    for (int i = 0; i < b->n; i++)
        if (b->m[i].key_len == kl && memcmp(b->data + b->m[i].key, k, kl) == 0)
            return i;
    return -1;
}

/* Adds (or replaces) a decoded member; RDL_EBUSY when over a limit. */
static int bag_add(rdl_baggage_t *b, const char *k, size_t kl, const char *v, size_t vl,
                   const char *props, size_t pl)
{
    int at = bag_find(b, k, kl);
    if (at < 0 && b->n == RDL_BAGGAGE_MAX_MEMBERS)
        return RDL_EBUSY;
    /* Each member needs key, value and props plus a NUL after the value. */
    size_t need = kl + vl + 1 + pl;
    if ((size_t)b->used + need > RDL_BAGGAGE_MAX_BYTES)
        return RDL_EBUSY;
    rdl_baggage_member_t *m = at >= 0 ? &b->m[at] : &b->m[b->n];
    m->key = b->used;
    memcpy(b->data + b->used, k, kl);
    m->key_len = (uint16_t)kl;
    b->used = (uint16_t)(b->used + kl);
    m->value = b->used;
    memcpy(b->data + b->used, v, vl);
    m->value_len = (uint16_t)vl;
    b->data[b->used + vl] = '\0';
    b->used = (uint16_t)(b->used + vl + 1);
    m->props = b->used;
    if (pl)
        memcpy(b->data + b->used, props, pl);
    m->props_len = (uint16_t)pl;
    b->used = (uint16_t)(b->used + pl);
    if (at < 0)
        b->n++;
    return 0;
}

int rdl_baggage_parse(rdl_baggage_t *b, const char *s, size_t n, rdl_error_t *err)
{
    if (n > RDL_BAGGAGE_MAX_BYTES * 3)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "baggage", "header longer than 24576 bytes");
    bag_item_t items[RDL_BAGGAGE_MAX_MEMBERS * 3];
    int count = 0;
    size_t pos = 0;
    while (pos <= n) {
        const char *comma = memchr(s + pos, ',', n - pos);
        size_t end = comma ? (size_t)(comma - s) : n;
        const char *p = s + pos;
        size_t len = end - pos;
        rdl__trace_trim(&p, &len);
        if (len) {
            if (count == (int)(sizeof(items) / sizeof(items[0])))
                return rdl_error_set(err, RDL_EINVAL, 0, (int)pos + 1, "baggage",
                                     "more than 192 list-members");
            int rc = bag_split(p, len, (size_t)(p - s), &items[count], err);
            if (rc)
                return rc;
            long bad = bag_check(items[count].val, items[count].val_len);
            if (bad >= 0)
                return rdl_error_set(err, RDL_EINVAL, 0,
                                     (int)((size_t)(items[count].val - s) + (size_t)bad + 1),
                                     "baggage", "expected a value of baggage-octets and %%XX escapes");
            count++;
        }
        pos = end + 1;
    }
    int rc = 0;
    for (int i = 0; i < count; i++) {
        char tmp[RDL_BAGGAGE_MAX_BYTES];
        long vl = bag_decode(items[i].val, items[i].val_len, tmp, sizeof(tmp));
        if (vl < 0 || bag_add(b, items[i].key, items[i].key_len, tmp, (size_t)vl, items[i].props,
                              items[i].props_len) != 0)
            rc = RDL_EBUSY;
    }
    if (rc)
        rdl_error_set(err, rc, 0, 0, "baggage", "over 64 members or 8192 bytes: members dropped");
    return rc;
}

const char *rdl_baggage_get(const rdl_baggage_t *b, const char *key)
{
    int i = bag_find(b, key, strlen(key));
    return i < 0 ? NULL : b->data + b->m[i].value;
}

int rdl_baggage_set(rdl_baggage_t *b, const char *key, const char *value)
{
    size_t kl = strlen(key), vl = strlen(value);
    if (kl == 0)
        return RDL_EINVAL;
    for (size_t i = 0; i < kl; i++)
        if (!rdl__trace_tchar((unsigned char)key[i]))
            return RDL_EINVAL;
    return bag_add(b, key, kl, value, vl, "", 0);
}

void rdl_baggage_format(const rdl_baggage_t *b, rdl_buf_t *out)
{
    for (int i = 0; i < b->n; i++) {
        const rdl_baggage_member_t *m = &b->m[i];
        if (i)
            rdl_buf_putc(out, ',');
        rdl_buf_put(out, b->data + m->key, m->key_len);
        rdl_buf_putc(out, '=');
        for (size_t j = 0; j < m->value_len; j++) {
            unsigned char c = (unsigned char)b->data[m->value + j];
            if (is_bag_octet(c) && c != '%') {
                rdl_buf_putc(out, (char)c);
            } else {
                char esc[3] = { '%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15] };
                rdl_buf_put(out, esc, 3);
            }
        }
        rdl_buf_put(out, b->data + m->props, m->props_len);
    }
}

/* ---- B3 -------------------------------------------------------------- */

/* 16 or 32 lowercase hex into a 16-byte trace id (64-bit ids left-padded with zeros). */
static bool b3_trace_id(const char *s, size_t n, uint8_t out[16])
{
    memset(out, 0, 16);
    if (n == 32)
        return rdl_hex_decode_lower(out, s, 16) == 32 && !all_zero(out, 16);
    if (n == 16)
        return rdl_hex_decode_lower(out + 8, s, 8) == 16 && !all_zero(out, 16);
    return false;
}

static bool b3_span_id(const char *s, size_t n, uint8_t out[8])
{
    return n == 16 && rdl_hex_decode_lower(out, s, 8) == 16 && !all_zero(out, 8);
}

static int b3_fail(rdl_error_t *err, const char *key, size_t col, const char *what)
{
    return rdl_error_set(err, RDL_EINVAL, 0, (int)col + 1, key, "%s", what);
}

int rdl_b3_parse_single(const char *s, size_t n, rdl_span_context_t *out, rdl_error_t *err)
{
    rdl__trace_trim(&s, &n);
    if (n == 1 && (s[0] == '0' || s[0] == '1' || s[0] == 'd')) {
        /* Sampling state alone: no ids to continue, only a decision. */
        out->flags = s[0] == '0' ? 0 : RDL_TRACE_FLAG_SAMPLED;
        return rdl_error_set(err, RDL_ENOENT, 0, 1, "b3", "sampling state only, no ids");
    }
    const char *d1 = memchr(s, '-', n);
    if (!d1)
        return b3_fail(err, "b3", n, "expected {trace-id}-{span-id}");
    rdl_span_context_t sc;
    memset(&sc, 0, sizeof(sc));
    size_t tl = (size_t)(d1 - s);
    if (!b3_trace_id(s, tl, sc.trace_id))
        return b3_fail(err, "b3", 0, "expected a trace-id of 16 or 32 lowercase hex, not zero");
    const char *sp = d1 + 1;
    size_t rest = n - tl - 1;
    const char *d2 = memchr(sp, '-', rest);
    size_t sl = d2 ? (size_t)(d2 - sp) : rest;
    if (!b3_span_id(sp, sl, sc.span_id))
        return b3_fail(err, "b3", tl + 1, "expected a span-id of 16 lowercase hex, not zero");
    sc.flags = RDL_TRACE_FLAG_SAMPLED;    /* absent decision: defer, and we sample by default */
    if (d2) {
        const char *st = d2 + 1;
        size_t stl = rest - sl - 1;
        const char *d3 = memchr(st, '-', stl);
        size_t stlen = d3 ? (size_t)(d3 - st) : stl;
        size_t col = tl + sl + 2;
        if (stlen != 1 || (st[0] != '0' && st[0] != '1' && st[0] != 'd'))
            return b3_fail(err, "b3", col, "expected a sampling state 0, 1 or d");
        sc.flags = st[0] == '0' ? 0 : RDL_TRACE_FLAG_SAMPLED;
        if (d3) {
            uint8_t parent[8];
            if (!b3_span_id(d3 + 1, stl - stlen - 1, parent))
                return b3_fail(err, "b3", col + 2, "expected a parent span-id of 16 lowercase hex");
        }
    }
    sc.remote = true;
    *out = sc;
    return 0;
}

int rdl_b3_parse_multi(const char *trace_id, size_t trace_len, const char *span_id, size_t span_len,
                       const char *sampled, size_t sampled_len, const char *flags, size_t flags_len,
                       rdl_span_context_t *out, rdl_error_t *err)
{
    rdl_span_context_t sc;
    memset(&sc, 0, sizeof(sc));
    if (!trace_id || !span_id)
        return rdl_error_set(err, RDL_ENOENT, 0, 0, "x-b3-traceid", "no B3 ids");
    rdl__trace_trim(&trace_id, &trace_len);
    rdl__trace_trim(&span_id, &span_len);
    if (!b3_trace_id(trace_id, trace_len, sc.trace_id))
        return b3_fail(err, "x-b3-traceid", 0, "expected 16 or 32 lowercase hex, not zero");
    if (!b3_span_id(span_id, span_len, sc.span_id))
        return b3_fail(err, "x-b3-spanid", 0, "expected 16 lowercase hex, not zero");
    sc.flags = RDL_TRACE_FLAG_SAMPLED;
    if (flags) {
        rdl__trace_trim(&flags, &flags_len);
        if (flags_len != 1 || (flags[0] != '0' && flags[0] != '1'))
            return b3_fail(err, "x-b3-flags", 0, "expected 1 (debug) or 0");
    }
    if (flags && flags[0] == '1') {
        sc.flags = RDL_TRACE_FLAG_SAMPLED;
    } else if (sampled) {
        rdl__trace_trim(&sampled, &sampled_len);
        if (sampled_len == 1 && sampled[0] == '1')
            sc.flags = RDL_TRACE_FLAG_SAMPLED;
        else if (sampled_len == 1 && sampled[0] == '0')
            sc.flags = 0;
        else if (sampled_len == 4 && rdl_ascii_ieq(sampled, 4, "true", 4))
            sc.flags = RDL_TRACE_FLAG_SAMPLED;
        else if (sampled_len == 5 && rdl_ascii_ieq(sampled, 5, "false", 5))
            sc.flags = 0;
        else
            return b3_fail(err, "x-b3-sampled", 0, "expected 1, 0, true or false");
    }
    sc.remote = true;
    *out = sc;
    return 0;
}

size_t rdl_b3_format_single(const rdl_span_context_t *sc, char out[RDL_B3_SINGLE_LEN + 1])
{
    rdl_hex_lower(out, sc->trace_id, 16);
    out[32] = '-';
    rdl_hex_lower(out + 33, sc->span_id, 8);
    out[49] = '-';
    out[50] = (sc->flags & RDL_TRACE_FLAG_SAMPLED) ? '1' : '0';
    out[RDL_B3_SINGLE_LEN] = '\0';
    return RDL_B3_SINGLE_LEN;
}

/* ---- composite propagation ------------------------------------------- */

int rdl_propagators_parse(const char *list, rdl_propagators_t *out, rdl_error_t *err)
{
    static const struct { const char *name; rdl_propagator_t p; } names[] = {
        { "tracecontext", RDL_PROP_TRACECONTEXT }, { "baggage", RDL_PROP_BAGGAGE },
        { "b3", RDL_PROP_B3 }, { "b3multi", RDL_PROP_B3MULTI },
    };
    rdl_propagators_t r = { 0, { 0 } };
    if (!list || !*list)
        list = "tracecontext,baggage";
    const char *p = list;
    bool none = false;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *w = p;
        rdl__trace_trim(&w, &len);
        bool found = false;
        if (len == 4 && memcmp(w, "none", 4) == 0) {
            none = found = true;
        }
        for (size_t i = 0; !found && i < sizeof(names) / sizeof(names[0]); i++) {
            if (strlen(names[i].name) != len || memcmp(w, names[i].name, len) != 0)
                continue;
            found = true;
            bool dup = false;
            for (int j = 0; j < r.n; j++)
                dup |= r.p[j] == names[i].p;
            if (!dup)
                r.p[r.n++] = names[i].p;
        }
        if (!found)
            return rdl_error_set(err, RDL_EINVAL, 0, (int)(w - list) + 1, "OTEL_PROPAGATORS",
                                 "expected tracecontext, baggage, b3, b3multi or none, got '%.*s'",
                                 (int)len, w);
        if (!comma)
            break;
        p = comma + 1;
    }
    if (none)
        r.n = 0;
    *out = r;
    return 0;
}

static bool get_one(rdl_carrier_get_fn get, void *carrier, const char *name, const char **v, size_t *len)
{
    return get(carrier, name, 0, v, len);
}

static bool extract_tracecontext(rdl_carrier_get_fn get, void *carrier, rdl_span_context_t *out)
{
    const char *v, *extra;
    size_t len, elen;
    if (!get(carrier, "traceparent", 0, &v, &len) || get(carrier, "traceparent", 1, &extra, &elen))
        return false;
    if (rdl_traceparent_parse(v, len, out, NULL) != 0)
        return false;
    /* tracestate: every header joined with ','; an invalid one is dropped, never the parent. */
    char joined[RDL_TRACESTATE_MAX * 4];
    size_t o = 0;
    for (size_t i = 0; get(carrier, "tracestate", i, &v, &len); i++) {
        if (o + len + 1 > sizeof(joined))
            return true;
        if (o)
            joined[o++] = ',';
        memcpy(joined + o, v, len);
        o += len;
    }
    if (o)
        rdl_tracestate_parse(joined, o, out, NULL);
    return true;
}

static bool extract_b3(rdl_carrier_get_fn get, void *carrier, rdl_span_context_t *out)
{
    const char *v;
    size_t len;
    return get_one(get, carrier, "b3", &v, &len) && rdl_b3_parse_single(v, len, out, NULL) == 0;
}

static bool extract_b3multi(rdl_carrier_get_fn get, void *carrier, rdl_span_context_t *out)
{
    const char *t = NULL, *s = NULL, *smp = NULL, *f = NULL;
    size_t tl = 0, sl = 0, smpl = 0, fl = 0;
    if (!get_one(get, carrier, "x-b3-traceid", &t, &tl) || !get_one(get, carrier, "x-b3-spanid", &s, &sl))
        return false;
    if (!get_one(get, carrier, "x-b3-sampled", &smp, &smpl))
        smp = NULL;
    if (!get_one(get, carrier, "x-b3-flags", &f, &fl))
        f = NULL;
    return rdl_b3_parse_multi(t, tl, s, sl, smp, smpl, f, fl, out, NULL) == 0;
}

bool rdl_propagation_extract(const rdl_propagators_t *p, rdl_carrier_get_fn get, void *carrier,
                             rdl_span_context_t *parent, rdl_baggage_t *bag)
{
    bool found = false;
    memset(parent, 0, offsetof(rdl_span_context_t, tracestate) + 1);
    parent->tracestate_len = 0;
    parent->tracestate[0] = '\0';
    for (int i = 0; i < p->n; i++) {
        rdl_span_context_t sc;
        bool ok = false;
        switch (p->p[i]) {
        case RDL_PROP_TRACECONTEXT:
            ok = !found && extract_tracecontext(get, carrier, &sc);
            break;
        case RDL_PROP_B3:
            ok = !found && extract_b3(get, carrier, &sc);
            break;
        case RDL_PROP_B3MULTI:
            ok = !found && extract_b3multi(get, carrier, &sc);
            break;
        case RDL_PROP_BAGGAGE:
            if (bag) {
                const char *v;
                size_t len;
                for (size_t j = 0; get(carrier, "baggage", j, &v, &len); j++)
                    rdl_baggage_parse(bag, v, len, NULL);
            }
            break;
        }
        if (ok) {
            *parent = sc;
            found = true;
        }
    }
    return found;
}

void rdl_propagation_inject(const rdl_propagators_t *p, const rdl_span_context_t *sc,
                            const rdl_baggage_t *bag, rdl_carrier_set_fn set, void *carrier)
{
    bool valid = rdl_span_context_valid(sc);
    for (int i = 0; i < p->n; i++) {
        switch (p->p[i]) {
        case RDL_PROP_TRACECONTEXT:
            if (valid) {
                char tp[RDL_TRACEPARENT_LEN + 1];
                rdl_traceparent_format(sc, tp);
                set(carrier, "traceparent", tp);
                if (sc->tracestate_len)
                    set(carrier, "tracestate", sc->tracestate);
            }
            break;
        case RDL_PROP_B3:
            if (valid) {
                char b3[RDL_B3_SINGLE_LEN + 1];
                rdl_b3_format_single(sc, b3);
                set(carrier, "b3", b3);
            }
            break;
        case RDL_PROP_B3MULTI:
            if (valid) {
                char t[33], s[17];
                rdl_hex_lower(t, sc->trace_id, 16);
                t[32] = '\0';
                rdl_hex_lower(s, sc->span_id, 8);
                s[16] = '\0';
                set(carrier, "X-B3-TraceId", t);
                set(carrier, "X-B3-SpanId", s);
                set(carrier, "X-B3-Sampled", (sc->flags & RDL_TRACE_FLAG_SAMPLED) ? "1" : "0");
            }
            break;
        case RDL_PROP_BAGGAGE:
            if (bag && bag->n) {
                rdl_buf_t b;
                rdl_buf_init(&b);
                rdl_baggage_format(bag, &b);
                if (!b.oom)
                    set(carrier, "baggage", b.data);
                rdl_buf_close(&b);
            }
            break;
        }
    }
}
