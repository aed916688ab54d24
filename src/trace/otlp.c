/*
 * otlp.c: ExportTraceServiceRequest in protobuf binary and in OTLP/JSON. It
 * exists because the few messages a tracer sends do not justify a protobuf
 * runtime: a nested message is written in place after a one-byte length
 * placeholder that is widened (one memmove) when the message turns out
 * longer than 127 bytes. The JSON form follows OTLP's deviations from proto3
 * JSON: hex ids, integer enums, 64-bit integers as decimal strings.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "trace/internal.h"

/* ---- protobuf writer ------------------------------------------------- */

/*
 * Two passes: the size of every message is computed first (arithmetic over
 * the span's fields), so the writer puts exact lengths before the contents
 * into memory reserved once, with no placeholder to widen and nothing moved.
 * Field numbers are those of opentelemetry/proto trace/v1, common/v1 and
 * collector/trace/v1.
 */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Bytes of v as a varint: 7 bits a byte, from the highest bit set (no loop). */
static size_t vlen(uint64_t v)
{
    return (size_t)(70 - __builtin_clzll(v | 1)) / 7;
}

/* A length-delimited field of content size n with a one-byte tag. */
static size_t ld(size_t n)
{
    return 1 + vlen(n) + n;
}

static size_t str_field(const char *s)
{
    return s && *s ? ld(strlen(s)) : 0;
}

static size_t uint_field(uint64_t v)
{
    return v ? 1 + vlen(v) : 0;
}

static size_t anyvalue_size(const tr_attr_t *a)
{
    switch (a->type) {
    case RDL_ATTR_STRING:
        return ld(a->len);
    case RDL_ATTR_BOOL:
        return 2;
    case RDL_ATTR_INT:
        return 1 + vlen((uint64_t)a->v.i);
    case RDL_ATTR_DOUBLE:
        return 9;
    }
    return 0;
}

static size_t keyvalue_size(const tr_attr_t *a)
{
    return ld(a->key_len) + ld(anyvalue_size(a));
}

static size_t attrs_size(const tr_attr_t *a, uint32_t n)
{
    size_t t = 0;
    for (uint32_t i = 0; i < n; i++)
        t += ld(keyvalue_size(&a[i]));
    return t;
}

static size_t event_size(const tr_event_t *e)
{
    return 9 + str_field(e->name) + attrs_size(e->attrs, e->nattrs) + uint_field(e->dropped);
}

static size_t link_size(const tr_link_t *l)
{
    return ld(16) + ld(8) + str_field(l->tracestate) + attrs_size(l->attrs, l->nattrs) +
           uint_field(l->dropped) + 5;
}

static size_t status_size(const rdl_span_t *s)
{
    return str_field(s->status_msg) + uint_field(s->status);
}

static size_t span_size(const rdl_span_t *s)
{
    size_t t = ld(16) + ld(8) + (s->sc.tracestate_len ? ld(s->sc.tracestate_len) : 0) +
               (s->has_parent ? ld(8) : 0) + (s->name_len ? ld(s->name_len) : 0) + uint_field(s->kind) + 9 + 9 +
               attrs_size(s->attrs, s->nattrs) + uint_field(s->dropped_attrs) +
               uint_field(s->dropped_events) + uint_field(s->dropped_links) + 6;   /* field 16: 2-byte tag */
    for (const tr_event_t *e = s->events; e; e = e->next)
        t += ld(event_size(e));
    for (const tr_link_t *l = s->links; l; l = l->next)
        t += ld(link_size(l));
    if (s->status != RDL_STATUS_UNSET)
        t += ld(status_size(s));
    return t;
}

static uint8_t *w_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *w_tag(uint8_t *p, unsigned field, unsigned wt)
{
    return w_varint(p, (uint64_t)field << 3 | wt);
}

/* Tag and length of a length-delimited field; the content follows. */
static uint8_t *w_len(uint8_t *p, unsigned field, size_t n)
{
    return w_varint(w_tag(p, field, WT_LEN), n);
}

/*
 * Copies n bytes to p. Attribute keys and values are mostly 3 to 32 bytes: a
 * library memcpy call for each (two per attribute) cost more than the rest
 * of writing the attribute, so short ones are moved 8 bytes at a time here
 * (the last chunk overlapping, never reading past the source).
 */
static uint8_t *copy_bytes(uint8_t *p, const uint8_t *src, size_t n)
{
    if (n > 32) {
        memcpy(p, src, n);
        return p + n;
    }
    if (n >= 8) {
        uint64_t w;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, src + i, 8);
            memcpy(p + i, &w, 8);
        }
        memcpy(&w, src + n - 8, 8);
        memcpy(p + n - 8, &w, 8);
        return p + n;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = src[i];
    return p + n;
}

static uint8_t *w_bytes(uint8_t *p, unsigned field, const void *data, size_t n)
{
    return copy_bytes(w_len(p, field, n), data, n);
}

static uint8_t *w_str(uint8_t *p, unsigned field, const char *s)
{
    return s && *s ? w_bytes(p, field, s, strlen(s)) : p;
}

static uint8_t *w_fixed64(uint8_t *p, unsigned field, uint64_t v)
{
    p = w_tag(p, field, WT_I64);
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *w_fixed32(uint8_t *p, unsigned field, uint32_t v)
{
    p = w_tag(p, field, WT_I32);
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *w_uint(uint8_t *p, unsigned field, uint64_t v)
{
    return v ? w_varint(w_tag(p, field, WT_VARINT), v) : p;
}

static uint8_t *w_keyvalue(uint8_t *p, unsigned field, const tr_attr_t *a)
{
    size_t klen = a->key_len, vsize = anyvalue_size(a);
    p = w_len(p, field, ld(klen) + ld(vsize));
    p = w_bytes(p, 1, a->key, klen);
    p = w_len(p, 2, vsize);
    switch (a->type) {
    case RDL_ATTR_STRING:
        return w_bytes(p, 1, a->v.s, a->len);
    case RDL_ATTR_BOOL:
        p = w_tag(p, 2, WT_VARINT);
        *p++ = a->v.b ? 1 : 0;
        return p;
    case RDL_ATTR_INT:
        return w_varint(w_tag(p, 3, WT_VARINT), (uint64_t)a->v.i);
    case RDL_ATTR_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &a->v.d, 8);
        return w_fixed64(p, 4, bits);
    }
    }
    return p;
}

static uint8_t *w_attrs(uint8_t *p, unsigned field, const tr_attr_t *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        p = w_keyvalue(p, field, &a[i]);
    return p;
}

/* W3C flags in bits 0-7, 0x100: "is_remote is known", 0x200: the parent is remote. */
static uint32_t span_flags(const rdl_span_t *s)
{
    return (uint32_t)s->sc.flags | 0x100u | (s->parent_remote ? 0x200u : 0);
}

static uint8_t *w_span(uint8_t *p, const rdl_span_t *s, size_t size)
{
    p = w_len(p, 2, size);
    p = w_bytes(p, 1, s->sc.trace_id, 16);
    p = w_bytes(p, 2, s->sc.span_id, 8);
    if (s->sc.tracestate_len)
        p = w_bytes(p, 3, s->sc.tracestate, s->sc.tracestate_len);
    if (s->has_parent)
        p = w_bytes(p, 4, s->parent_span_id, 8);
    if (s->name_len)
        p = w_bytes(p, 5, s->name, s->name_len);
    p = w_uint(p, 6, s->kind);
    p = w_fixed64(p, 7, s->start_wall);
    p = w_fixed64(p, 8, s->end_wall);
    p = w_attrs(p, 9, s->attrs, s->nattrs);
    p = w_uint(p, 10, s->dropped_attrs);
    for (const tr_event_t *e = s->events; e; e = e->next) {
        p = w_len(p, 11, event_size(e));
        p = w_fixed64(p, 1, e->time_ns);
        p = w_str(p, 2, e->name);
        p = w_attrs(p, 3, e->attrs, e->nattrs);
        p = w_uint(p, 4, e->dropped);
    }
    p = w_uint(p, 12, s->dropped_events);
    for (const tr_link_t *l = s->links; l; l = l->next) {
        p = w_len(p, 13, link_size(l));
        p = w_bytes(p, 1, l->trace_id, 16);
        p = w_bytes(p, 2, l->span_id, 8);
        p = w_str(p, 3, l->tracestate);
        p = w_attrs(p, 4, l->attrs, l->nattrs);
        p = w_uint(p, 5, l->dropped);
        p = w_fixed32(p, 6, (uint32_t)l->flags | 0x100u);
    }
    p = w_uint(p, 14, s->dropped_links);
    if (s->status != RDL_STATUS_UNSET) {
        p = w_len(p, 15, status_size(s));
        p = w_str(p, 2, s->status_msg);
        p = w_uint(p, 3, s->status);
    }
    return w_fixed32(p, 16, span_flags(s));
}

static tr_attr_t resource_attr(const tr_kv_t *kv)
{
    tr_attr_t a = { .key = kv->key, .key_len = (uint16_t)strlen(kv->key), .type = RDL_ATTR_STRING,
                    .v.s = kv->value, .len = (uint32_t)strlen(kv->value) };
    return a;
}

static void encode_pb(const rdl_tracer_t *t, rdl_span_t *const *spans, size_t n, rdl_buf_t *b)
{
    static const char scope_name[] = "redline", scope_version[] = "0.1.0";
    size_t resource = 0, scope = str_field(scope_name) + str_field(scope_version), spans_total = 0;
    for (int i = 0; i < t->nresource; i++) {
        tr_attr_t a = resource_attr(&t->resource[i]);
        resource += ld(keyvalue_size(&a));
    }
    size_t stack[512], *sizes = n <= 512 ? stack : malloc(n * sizeof(*sizes));
    if (!sizes) {
        b->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /*
         * The spans were written on the request threads' cores: asking for a
         * later span's lines while sizing this one overlaps those transfers
         * instead of waiting for each in turn, and the sizing pass leaves the
         * batch in this core's cache for the writing pass. (Written out here:
         * GCC 12 drops calls to a helper made only of prefetches.)
         */
        if (i + 4 < n) {
            const rdl_span_t *ahead = spans[i + 4];
            for (size_t off = 0; off < offsetof(rdl_span_t, sc) + 32; off += 64)
                __builtin_prefetch((const char *)ahead + off);
            for (size_t off = 0; off < 320; off += 64)       /* a server span's attributes */
                __builtin_prefetch((const char *)ahead->attrs_inline + off);
            for (size_t off = 0; off < 256; off += 64)
                __builtin_prefetch(ahead->store + off);
        }
        sizes[i] = span_size(spans[i]);
        spans_total += ld(sizes[i]);
    }
    size_t scope_spans = ld(scope) + spans_total;
    size_t resource_spans = ld(resource) + ld(scope_spans);
    size_t total = ld(resource_spans);
    if (rdl_buf_reserve(b, total + 1) != 0) {
        b->oom = true;
        if (sizes != stack)
            free(sizes);
        return;
    }
    uint8_t *start = (uint8_t *)b->data + b->len, *p = start;
    p = w_len(p, 1, resource_spans);
    p = w_len(p, 1, resource);
    for (int i = 0; i < t->nresource; i++) {
        tr_attr_t a = resource_attr(&t->resource[i]);
        p = w_keyvalue(p, 1, &a);
    }
    p = w_len(p, 2, scope_spans);
    p = w_len(p, 1, scope);
    p = w_str(p, 1, scope_name);
    p = w_str(p, 2, scope_version);
    for (size_t i = 0; i < n; i++)
        p = w_span(p, spans[i], sizes[i]);
    if (sizes != stack)
        free(sizes);
    if ((size_t)(p - start) != total) {
        b->oom = true;                 /* a size function disagrees with its writer: never send it */
        return;
    }
    b->len += total;
    b->data[b->len] = '\0';
}

/* ---- OTLP/JSON ------------------------------------------------------- */

/* An id (8 or 16 bytes) as a quoted hex string. */
static void js_hex(rdl_buf_t *b, const uint8_t *p, size_t n)
{
    char text[2 + 2 * 16];
    if (n > 16)
        n = 16;
    text[0] = '"';
    rdl_hex_lower(text + 1, p, n);
    text[1 + 2 * n] = '"';
    rdl_buf_put(b, text, 2 + 2 * n);
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

static void js_attrs(rdl_buf_t *b, const tr_attr_t *a, size_t n)
{
    rdl_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            rdl_buf_putc(b, ',');
        rdl_buf_puts(b, "{\"key\":");
        rdl_json_str(b, a[i].key, a[i].key_len);
        rdl_buf_puts(b, ",\"value\":{");
        switch (a[i].type) {
        case RDL_ATTR_STRING:
            js_key(b, "stringValue");
            rdl_json_str(b, a[i].v.s, a[i].len);
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

/* RDL_EINVAL naming the byte (1-based, as the column) where the protobuf body went wrong. */
static int pb_fail(rdl_error_t *err, const unsigned char *start, const unsigned char *at,
                   const char *what)
{
    return rdl_error_set(err, RDL_EINVAL, 0, (int)(at - start) + 1, "",
                         "%s (ExportTraceServiceResponse, protobuf)", what);
}

/* partialSuccess (ExportTracePartialSuccess) at [p, end); start is the body's first byte. */
static int parse_partial_pb(const unsigned char *start, const unsigned char *p,
                            const unsigned char *end, int64_t *rejected, rdl_buf_t *message,
                            rdl_error_t *err)
{
    while (p < end) {
        const unsigned char *at = p;
        uint64_t key, v;
        if (!pb_read_varint(&p, end, &key))
            return pb_fail(err, start, at, "expected a field key");
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        if (field == 1 && wt == WT_VARINT) {
            if (!pb_read_varint(&p, end, &v))
                return pb_fail(err, start, at, "expected the varint of rejected_spans");
            *rejected = (int64_t)v;
        } else if (field == 2 && wt == WT_LEN) {
            if (!pb_read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return pb_fail(err, start, at, "expected error_message within the message");
            if (message)
                rdl_buf_put(message, p, (size_t)v);
            p += v;
        } else if (!pb_skip(&p, end, wt)) {
            return pb_fail(err, start, at, "expected a field of a known wire type within the message");
        }
    }
    return 0;
}

static int parse_response_pb(const char *body, size_t n, int64_t *rejected, rdl_buf_t *message,
                             rdl_error_t *err)
{
    const unsigned char *start = (const unsigned char *)body, *p = start, *end = p + n;
    while (p < end) {
        const unsigned char *at = p;
        uint64_t key, v;
        if (!pb_read_varint(&p, end, &key))
            return pb_fail(err, start, at, "expected a field key");
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        if (field == 1 && wt == WT_LEN) {
            if (!pb_read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return pb_fail(err, start, at, "expected partial_success within the body");
            int rc = parse_partial_pb(start, p, p + v, rejected, message, err);
            if (rc)
                return rc;
            p += v;
        } else if (!pb_skip(&p, end, wt)) {
            return pb_fail(err, start, at, "expected a field of a known wire type within the body");
        }
    }
    return 0;
}

static int parse_response_json(const char *body, size_t n, int64_t *rejected, rdl_buf_t *message,
                               rdl_error_t *err)
{
    json_error_t e;
    json_t *root = json_loadb(body, n, 0, &e);
    if (!json_is_object(root)) {
        int rc = root ? rdl_error_set(err, RDL_EINVAL, 1, 1, "",
                                      "expected a JSON object (ExportTraceServiceResponse)")
                      : rdl_error_set(err, RDL_EINVAL, e.line, e.column, "",
                                      "expected a JSON object (ExportTraceServiceResponse): %s", e.text);
        json_decref(root);
        return rc;
    }
    json_t *ps = json_object_get(root, "partialSuccess");
    if (json_is_object(ps)) {
        json_t *r = json_object_get(ps, "rejectedSpans");
        if (json_is_integer(r))
            *rejected = json_integer_value(r);
        else if (json_is_string(r))
            *rejected = strtoll(json_string_value(r), NULL, 10);
        json_t *m = json_object_get(ps, "errorMessage");
        if (json_is_string(m) && message)
            rdl_buf_put(message, json_string_value(m), json_string_length(m));
    }
    json_decref(root);
    return 0;
}

int rdl_otlp_parse_response(const char *body, size_t n, rdl_otlp_protocol_t proto,
                            int64_t *rejected, rdl_buf_t *message, rdl_error_t *err)
{
    *rejected = 0;
    if (message)
        rdl_buf_reset(message);
    if (n == 0)
        return 0;
    int rc = proto == RDL_OTLP_JSON ? parse_response_json(body, n, rejected, message, err)
                                    : parse_response_pb(body, n, rejected, message, err);
    if (rc) {
        *rejected = 0;
        if (message)
            rdl_buf_reset(message);
    }
    return rc;
}
