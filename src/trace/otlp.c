/*
 * otlp.c: ExportTraceServiceRequest in protobuf binary and in OTLP/JSON. It
 * exists because the few messages a tracer sends do not justify a protobuf
 * runtime: a nested message is written in place after a one-byte length
 * placeholder that is widened (one memmove) when the message turns out
 * longer than 127 bytes. The JSON form follows OTLP's deviations from proto3
 * JSON: hex ids, integer enums, 64-bit integers as decimal strings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "trace/internal.h"

/* ---- protobuf writer ------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void pb_varint(rdl_buf_t *b, uint64_t v)
{
    char tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (char)v;
    rdl_buf_put(b, tmp, n);
}

static void pb_tag(rdl_buf_t *b, unsigned field, unsigned wt)
{
    pb_varint(b, (uint64_t)field << 3 | wt);
}

static void pb_bytes(rdl_buf_t *b, unsigned field, const void *p, size_t n)
{
    pb_tag(b, field, WT_LEN);
    pb_varint(b, n);
    rdl_buf_put(b, p, n);
}

static void pb_str(rdl_buf_t *b, unsigned field, const char *s)
{
    if (s && *s)
        pb_bytes(b, field, s, strlen(s));
}

static void pb_fixed64(rdl_buf_t *b, unsigned field, uint64_t v)
{
    unsigned char tmp[8];
    for (int i = 0; i < 8; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    pb_tag(b, field, WT_I64);
    rdl_buf_put(b, tmp, 8);
}

static void pb_fixed32(rdl_buf_t *b, unsigned field, uint32_t v)
{
    unsigned char tmp[4];
    for (int i = 0; i < 4; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    pb_tag(b, field, WT_I32);
    rdl_buf_put(b, tmp, 4);
}

static void pb_uint(rdl_buf_t *b, unsigned field, uint64_t v)
{
    if (v) {
        pb_tag(b, field, WT_VARINT);
        pb_varint(b, v);
    }
}

/* Opens a length-delimited field; returns where its content starts. */
static size_t pb_open(rdl_buf_t *b, unsigned field)
{
    pb_tag(b, field, WT_LEN);
    rdl_buf_putc(b, 0);
    return b->len;
}

/* Closes it: writes the length, widening the placeholder when needed. */
static void pb_close(rdl_buf_t *b, size_t start)
{
    if (b->oom)
        return;
    size_t len = b->len - start;
    if (len < 0x80) {
        b->data[start - 1] = (char)len;
        return;
    }
    char tmp[10];
    size_t n = 0;
    for (uint64_t v = len; ; v >>= 7) {
        tmp[n++] = (char)(v >= 0x80 ? (v | 0x80) : v);
        if (v < 0x80)
            break;
    }
    if (rdl_buf_reserve(b, n - 1) != 0) {
        b->oom = true;
        return;
    }
    memmove(b->data + start + n - 1, b->data + start, len);
    memcpy(b->data + start - 1, tmp, n);
    b->len += n - 1;
    b->data[b->len] = '\0';
}

static void pb_anyvalue(rdl_buf_t *b, unsigned field, const rdl_attr_t *a)
{
    size_t m = pb_open(b, field);
    switch (a->type) {
    case RDL_ATTR_STRING:
        pb_bytes(b, 1, a->v.str.s, a->v.str.len);
        break;
    case RDL_ATTR_BOOL:
        pb_tag(b, 2, WT_VARINT);
        pb_varint(b, a->v.b ? 1 : 0);
        break;
    case RDL_ATTR_INT:
        pb_tag(b, 3, WT_VARINT);
        pb_varint(b, (uint64_t)a->v.i);
        break;
    case RDL_ATTR_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &a->v.d, 8);
        pb_fixed64(b, 4, bits);
        break;
    }
    }
    pb_close(b, m);
}

static void pb_keyvalue(rdl_buf_t *b, unsigned field, const rdl_attr_t *a)
{
    size_t kv = pb_open(b, field);
    pb_str(b, 1, a->key);
    pb_anyvalue(b, 2, a);
    pb_close(b, kv);
}

static void pb_kv_str(rdl_buf_t *b, unsigned field, const char *k, const char *v)
{
    rdl_attr_t a = { .key = k, .type = RDL_ATTR_STRING, .v.str = { v, strlen(v) } };
    pb_keyvalue(b, field, &a);
}

/* W3C flags in bits 0-7, 0x100: "is_remote is known", 0x200: the parent is remote. */
static uint32_t span_flags(const rdl_span_t *s)
{
    return (uint32_t)s->sc.flags | 0x100u | (s->parent_remote ? 0x200u : 0);
}

static void pb_span(rdl_buf_t *b, const rdl_span_t *s)
{
    size_t m = pb_open(b, 2);
    pb_bytes(b, 1, s->sc.trace_id, 16);
    pb_bytes(b, 2, s->sc.span_id, 8);
    pb_str(b, 3, s->sc.tracestate);
    if (s->has_parent)
        pb_bytes(b, 4, s->parent_span_id, 8);
    pb_str(b, 5, s->name);
    pb_uint(b, 6, s->kind);
    pb_fixed64(b, 7, s->start_wall);
    pb_fixed64(b, 8, s->end_wall);
    for (uint32_t i = 0; i < s->nattrs; i++)
        pb_keyvalue(b, 9, &s->attrs[i]);
    pb_uint(b, 10, s->dropped_attrs);
    for (const tr_event_t *e = s->events; e; e = e->next) {
        size_t em = pb_open(b, 11);
        pb_fixed64(b, 1, e->time_ns);
        pb_str(b, 2, e->name);
        for (uint32_t i = 0; i < e->nattrs; i++)
            pb_keyvalue(b, 3, &e->attrs[i]);
        pb_uint(b, 4, e->dropped);
        pb_close(b, em);
    }
    pb_uint(b, 12, s->dropped_events);
    for (const tr_link_t *l = s->links; l; l = l->next) {
        size_t lm = pb_open(b, 13);
        pb_bytes(b, 1, l->trace_id, 16);
        pb_bytes(b, 2, l->span_id, 8);
        pb_str(b, 3, l->tracestate);
        for (uint32_t i = 0; i < l->nattrs; i++)
            pb_keyvalue(b, 4, &l->attrs[i]);
        pb_uint(b, 5, l->dropped);
        pb_fixed32(b, 6, (uint32_t)l->flags | 0x100u);
        pb_close(b, lm);
    }
    pb_uint(b, 14, s->dropped_links);
    if (s->status != RDL_STATUS_UNSET) {
        size_t st = pb_open(b, 15);
        pb_str(b, 2, s->status_msg);
        pb_uint(b, 3, s->status);
        pb_close(b, st);
    }
    pb_fixed32(b, 16, span_flags(s));
    pb_close(b, m);
}

static void encode_pb(const rdl_tracer_t *t, rdl_span_t *const *spans, size_t n, rdl_buf_t *b)
{
    size_t rs = pb_open(b, 1);
    size_t res = pb_open(b, 1);
    for (int i = 0; i < t->nresource; i++)
        pb_kv_str(b, 1, t->resource[i].key, t->resource[i].value);
    pb_close(b, res);
    size_t ss = pb_open(b, 2);
    size_t scope = pb_open(b, 1);
    pb_str(b, 1, "redline");
    pb_str(b, 2, "0.1.0");
    pb_close(b, scope);
    for (size_t i = 0; i < n; i++)
        pb_span(b, spans[i]);
    pb_close(b, ss);
    pb_close(b, rs);
}

/* ---- OTLP/JSON ------------------------------------------------------- */

static void js_hex(rdl_buf_t *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    rdl_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        rdl_buf_putc(b, hex[p[i] >> 4]);
        rdl_buf_putc(b, hex[p[i] & 15]);
    }
    rdl_buf_putc(b, '"');
}

static void js_u64str(rdl_buf_t *b, uint64_t v)
{
    rdl_buf_putc(b, '"');
    rdl_buf_put_u64(b, v);
    rdl_buf_putc(b, '"');
}

static void js_key(rdl_buf_t *b, const char *k)
{
    rdl_buf_putc(b, '"');
    rdl_buf_puts(b, k);
    rdl_buf_puts(b, "\":");
}

static void js_double(rdl_buf_t *b, double d)
{
    if (d != d || d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
        /* proto3 JSON spells the non-finite doubles as strings. */
        rdl_buf_puts(b, d != d ? "\"NaN\"" : d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    rdl_buf_printf(b, "%.17g", d);
}

static void js_attrs(rdl_buf_t *b, const rdl_attr_t *a, size_t n)
{
    rdl_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            rdl_buf_putc(b, ',');
        rdl_buf_puts(b, "{\"key\":");
        rdl_json_str(b, a[i].key, strlen(a[i].key));
        rdl_buf_puts(b, ",\"value\":{");
        switch (a[i].type) {
        case RDL_ATTR_STRING:
            js_key(b, "stringValue");
            rdl_json_str(b, a[i].v.str.s, a[i].v.str.len);
            break;
        case RDL_ATTR_BOOL:
            js_key(b, "boolValue");
            rdl_buf_puts(b, a[i].v.b ? "true" : "false");
            break;
        case RDL_ATTR_INT:
            js_key(b, "intValue");
            rdl_buf_putc(b, '"');
            rdl_buf_put_i64(b, a[i].v.i);
            rdl_buf_putc(b, '"');
            break;
        case RDL_ATTR_DOUBLE:
            js_key(b, "doubleValue");
            js_double(b, a[i].v.d);
            break;
        }
        rdl_buf_puts(b, "}}");
    }
    rdl_buf_putc(b, ']');
}

static void js_span(rdl_buf_t *b, const rdl_span_t *s)
{
    rdl_buf_puts(b, "{\"traceId\":");
    js_hex(b, s->sc.trace_id, 16);
    rdl_buf_puts(b, ",\"spanId\":");
    js_hex(b, s->sc.span_id, 8);
    if (s->sc.tracestate_len) {
        rdl_buf_puts(b, ",\"traceState\":");
        rdl_json_str(b, s->sc.tracestate, s->sc.tracestate_len);
    }
    if (s->has_parent) {
        rdl_buf_puts(b, ",\"parentSpanId\":");
        js_hex(b, s->parent_span_id, 8);
    }
    rdl_buf_printf(b, ",\"flags\":%u,\"name\":", span_flags(s));
    rdl_json_str(b, s->name, strlen(s->name));
    rdl_buf_printf(b, ",\"kind\":%u,\"startTimeUnixNano\":", s->kind);
    js_u64str(b, s->start_wall);
    rdl_buf_puts(b, ",\"endTimeUnixNano\":");
    js_u64str(b, s->end_wall);
    rdl_buf_puts(b, ",\"attributes\":");
    js_attrs(b, s->attrs, s->nattrs);
    if (s->dropped_attrs)
        rdl_buf_printf(b, ",\"droppedAttributesCount\":%u", s->dropped_attrs);
    if (s->events) {
        rdl_buf_puts(b, ",\"events\":[");
        for (const tr_event_t *e = s->events; e; e = e->next) {
            rdl_buf_puts(b, e == s->events ? "{\"timeUnixNano\":" : ",{\"timeUnixNano\":");
            js_u64str(b, e->time_ns);
            rdl_buf_puts(b, ",\"name\":");
            rdl_json_str(b, e->name, strlen(e->name));
            rdl_buf_puts(b, ",\"attributes\":");
            js_attrs(b, e->attrs, e->nattrs);
            if (e->dropped)
                rdl_buf_printf(b, ",\"droppedAttributesCount\":%u", e->dropped);
            rdl_buf_putc(b, '}');
        }
        rdl_buf_putc(b, ']');
    }
    if (s->dropped_events)
        rdl_buf_printf(b, ",\"droppedEventsCount\":%u", s->dropped_events);
    if (s->links) {
        rdl_buf_puts(b, ",\"links\":[");
        for (const tr_link_t *l = s->links; l; l = l->next) {
            rdl_buf_puts(b, l == s->links ? "{\"traceId\":" : ",{\"traceId\":");
            js_hex(b, l->trace_id, 16);
            rdl_buf_puts(b, ",\"spanId\":");
            js_hex(b, l->span_id, 8);
            if (l->tracestate) {
                rdl_buf_puts(b, ",\"traceState\":");
                rdl_json_str(b, l->tracestate, strlen(l->tracestate));
            }
            rdl_buf_puts(b, ",\"attributes\":");
            js_attrs(b, l->attrs, l->nattrs);
            if (l->dropped)
                rdl_buf_printf(b, ",\"droppedAttributesCount\":%u", l->dropped);
            rdl_buf_printf(b, ",\"flags\":%u}", (unsigned)l->flags | 0x100u);
        }
        rdl_buf_putc(b, ']');
    }
    if (s->dropped_links)
        rdl_buf_printf(b, ",\"droppedLinksCount\":%u", s->dropped_links);
    if (s->status != RDL_STATUS_UNSET) {
        rdl_buf_printf(b, ",\"status\":{\"code\":%u", s->status);
        if (s->status_msg) {
            rdl_buf_puts(b, ",\"message\":");
            rdl_json_str(b, s->status_msg, strlen(s->status_msg));
        }
        rdl_buf_putc(b, '}');
    }
    rdl_buf_putc(b, '}');
}

static void encode_json(const rdl_tracer_t *t, rdl_span_t *const *spans, size_t n, rdl_buf_t *b)
{
    rdl_buf_puts(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    for (int i = 0; i < t->nresource; i++) {
        if (i)
            rdl_buf_putc(b, ',');
        rdl_buf_puts(b, "{\"key\":");
        rdl_json_str(b, t->resource[i].key, strlen(t->resource[i].key));
        rdl_buf_puts(b, ",\"value\":{\"stringValue\":");
        rdl_json_str(b, t->resource[i].value, strlen(t->resource[i].value));
        rdl_buf_puts(b, "}}");
    }
    rdl_buf_puts(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"redline\",\"version\":\"0.1.0\"},"
                    "\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            rdl_buf_putc(b, ',');
        js_span(b, spans[i]);
    }
    rdl_buf_puts(b, "]}]}]}");
}

void rdl_otlp_encode(const rdl_tracer_t *t, rdl_span_t *const *spans, size_t n,
                     rdl_otlp_protocol_t proto, rdl_buf_t *out)
{
    if (proto == RDL_OTLP_JSON)
        encode_json(t, spans, n, out);
    else
        encode_pb(t, spans, n, out);
}

/* ---- responses ------------------------------------------------------- */

/* Reads a varint at *p; false when truncated or longer than 10 bytes. */
static bool pb_read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        unsigned char c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

/* Skips a field of wire type wt; false when malformed. */
static bool pb_skip(const unsigned char **p, const unsigned char *end, unsigned wt)
{
    uint64_t v;
    switch (wt) {
    case WT_VARINT:
        return pb_read_varint(p, end, &v);
    case WT_I64:
        if (end - *p < 8)
            return false;
        *p += 8;
        return true;
    case WT_I32:
        if (end - *p < 4)
            return false;
        *p += 4;
        return true;
    case WT_LEN:
        if (!pb_read_varint(p, end, &v) || v > (uint64_t)(end - *p))
            return false;
        *p += v;
        return true;
    }
    return false;
}

static int parse_partial_pb(const unsigned char *p, const unsigned char *end, int64_t *rejected,
                            char *msg, size_t msg_len)
{
    while (p < end) {
        uint64_t key, v;
        if (!pb_read_varint(&p, end, &key))
            return RDL_EINVAL;
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        if (field == 1 && wt == WT_VARINT) {
            if (!pb_read_varint(&p, end, &v))
                return RDL_EINVAL;
            *rejected = (int64_t)v;
        } else if (field == 2 && wt == WT_LEN) {
            if (!pb_read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return RDL_EINVAL;
            snprintf(msg, msg_len, "%.*s", (int)(v < msg_len ? v : msg_len - 1), (const char *)p);
            p += v;
        } else if (!pb_skip(&p, end, wt)) {
            return RDL_EINVAL;
        }
    }
    return 0;
}

static int parse_response_pb(const char *body, size_t n, int64_t *rejected, char *msg, size_t msg_len)
{
    const unsigned char *p = (const unsigned char *)body, *end = p + n;
    while (p < end) {
        uint64_t key, v;
        if (!pb_read_varint(&p, end, &key))
            return RDL_EINVAL;
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        if (field == 1 && wt == WT_LEN) {
            if (!pb_read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return RDL_EINVAL;
            if (parse_partial_pb(p, p + v, rejected, msg, msg_len))
                return RDL_EINVAL;
            p += v;
        } else if (!pb_skip(&p, end, wt)) {
            return RDL_EINVAL;
        }
    }
    return 0;
}

static int parse_response_json(const char *body, size_t n, int64_t *rejected, char *msg, size_t msg_len)
{
    json_error_t e;
    json_t *root = json_loadb(body, n, 0, &e);
    if (!json_is_object(root)) {
        json_decref(root);
        return RDL_EINVAL;
    }
    json_t *ps = json_object_get(root, "partialSuccess");
    if (json_is_object(ps)) {
        json_t *r = json_object_get(ps, "rejectedSpans");
        if (json_is_integer(r))
            *rejected = json_integer_value(r);
        else if (json_is_string(r))
            *rejected = strtoll(json_string_value(r), NULL, 10);
        json_t *m = json_object_get(ps, "errorMessage");
        if (json_is_string(m))
            snprintf(msg, msg_len, "%s", json_string_value(m));
    }
    json_decref(root);
    return 0;
}

int rdl_otlp_parse_response(const char *body, size_t n, rdl_otlp_protocol_t proto,
                            int64_t *rejected, char *msg, size_t msg_len)
{
    *rejected = 0;
    if (msg_len)
        msg[0] = '\0';
    if (n == 0)
        return 0;
    return proto == RDL_OTLP_JSON ? parse_response_json(body, n, rejected, msg, msg_len)
                                  : parse_response_pb(body, n, rejected, msg, msg_len);
}
