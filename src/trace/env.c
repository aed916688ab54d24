/*
 * env.c: the tracer's configuration from the OTEL_* environment variables
 * every OpenTelemetry SDK honours, so an operator configures redline exactly
 * as the Go or Java services beside it; and the resource attributes. A
 * malformed value is an error naming the variable, never a silent default.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "trace/internal.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int env_uint(const char *name, uint64_t max, uint64_t *out, rdl_error_t *err)
{
    const char *v = env(name);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-' || n > max)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name,
                             "expected an integer from 0 to %llu, got '%s'", (unsigned long long)max, v);
    *out = n;
    return 0;
}

static int env_int(const char *name, int min, int max, int *out, rdl_error_t *err)
{
    uint64_t v = (uint64_t)*out;
    int rc = env_uint(name, (uint64_t)max, &v, err);
    if (rc == 0 && (int64_t)v < min)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name, "expected at least %d", min);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static int env_copy(const char *name, char *dst, size_t n, rdl_error_t *err)
{
    const char *v = env(name);
    if (!v)
        return 0;
    if (strlen(v) >= n)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name, "longer than %zu bytes", n - 1);
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as-is, else OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces". */
static int endpoint_from_env(rdl_tracer_opts_t *o, rdl_error_t *err)
{
    const char *v = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    bool base = false;
    if (!v) {
        v = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        name = "OTEL_EXPORTER_OTLP_ENDPOINT";
        base = true;
    }
    if (!v)
        return 0;
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        rdl_buf_t shown;        /* a URL's user:password is not for the terminal either */
        rdl_buf_init(&shown);
        rdl_redact_put(&shown, v, strlen(v));
        rdl_error_set(err, RDL_EINVAL, 0, 0, name, "expected an http:// or https:// URL, got '%.*s'",
                      (int)shown.len, shown.data ? shown.data : "");
        rdl_buf_close(&shown);
        return RDL_EINVAL;
    }
    size_t len = strlen(v);
    bool slash = len && v[len - 1] == '/';
    int n = base ? snprintf(o->endpoint, sizeof(o->endpoint), "%s%sv1/traces", v, slash ? "" : "/")
                 : snprintf(o->endpoint, sizeof(o->endpoint), "%s", v);
    if (n < 0 || (size_t)n >= sizeof(o->endpoint))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name, "longer than %zu bytes", sizeof(o->endpoint) - 1);
    return 0;
}

static int protocol_from_env(rdl_tracer_opts_t *o, rdl_error_t *err)
{
    const char *name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    const char *v = env(name);
    if (!v) {
        name = "OTEL_EXPORTER_OTLP_PROTOCOL";
        v = env(name);
    }
    if (!v)
        return 0;
    if (strcmp(v, "http/protobuf") == 0)
        o->protocol = RDL_OTLP_PROTOBUF;
    else if (strcmp(v, "http/json") == 0)
        o->protocol = RDL_OTLP_JSON;
    else
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name,
                             "expected http/protobuf or http/json (grpc is not supported), got '%s'", v);
    return 0;
}

/* A rdl__trace_kv_list visitor that only lets the list be checked. */
static int kv_ignore(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    return 0;
}

static const char *first_env(const char *a, const char *b, const char **name)
{
    *name = a;
    if (env(a))
        return env(a);
    *name = b;
    return env(b);
}

static int exporter_from_env(rdl_tracer_opts_t *o, rdl_error_t *err)
{
    const char *name;
    int rc = endpoint_from_env(o, err);
    if (!rc)
        rc = protocol_from_env(o, err);
    if (rc)
        return rc;
    const char *v = first_env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", &name);
    if (v && ((rc = env_copy(name, o->headers, sizeof(o->headers), err)) != 0 ||
              (rc = rdl__trace_kv_list(name, o->headers, true, kv_ignore, NULL, err)) != 0))
        return rc;
    v = first_env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION", &name);
    if (v) {
        if (strcmp(v, "gzip") != 0 && strcmp(v, "none") != 0)
            return rdl_error_set(err, RDL_EINVAL, 0, 0, name, "expected gzip or none, got '%s'", v);
        o->gzip = strcmp(v, "gzip") == 0;
    }
    v = first_env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT", &name);
    if (v && (rc = env_uint(name, 3600000, &o->timeout_ms, err)) != 0)
        return rc;
    v = env("OTEL_TRACES_EXPORTER");
    if (v) {
        if (strcmp(v, "none") == 0)
            o->export = false;
        else if (strcmp(v, "otlp") == 0)
            o->export = true;
        else
            return rdl_error_set(err, RDL_EINVAL, 0, 0, "OTEL_TRACES_EXPORTER",
                                 "expected otlp or none, got '%s'", v);
    }
    v = env("OTEL_SDK_DISABLED");
    if (v && strcmp(v, "true") == 0)
        o->export = false;
    return 0;
}

int rdl_tracer_opts_from_env(rdl_tracer_opts_t *o, rdl_error_t *err)
{
    int rc = env_copy("OTEL_SERVICE_NAME", o->service_name, sizeof(o->service_name), err);
    if (!rc)
        rc = env_copy("OTEL_RESOURCE_ATTRIBUTES", o->resource_attrs, sizeof(o->resource_attrs), err);
    if (!rc)
        rc = rdl__trace_kv_list("OTEL_RESOURCE_ATTRIBUTES", o->resource_attrs, false, kv_ignore, NULL, err);
    if (!rc && (env("OTEL_TRACES_SAMPLER") || env("OTEL_TRACES_SAMPLER_ARG")))
        rc = rdl_sampler_init(&o->sampler, env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG"), err);
    if (!rc)
        rc = env_int("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", 0, 65535, &o->max_attributes, err);
    if (!rc)
        rc = env_int("OTEL_SPAN_EVENT_COUNT_LIMIT", 0, 65535, &o->max_events, err);
    if (!rc)
        rc = env_int("OTEL_SPAN_LINK_COUNT_LIMIT", 0, 65535, &o->max_links, err);
    if (!rc)
        rc = env_int("OTEL_BSP_MAX_QUEUE_SIZE", 1, 1 << 20, &o->max_queue, err);
    if (!rc)
        rc = env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 1 << 20, &o->max_batch, err);
    if (!rc)
        rc = env_uint("OTEL_BSP_SCHEDULE_DELAY", 3600000, &o->schedule_delay_ms, err);
    if (!rc)
        rc = env_uint("OTEL_BSP_EXPORT_TIMEOUT", 3600000, &o->export_timeout_ms, err);
    if (!rc)
        rc = exporter_from_env(o, err);

    if (!rc && o->max_batch > o->max_queue)
        o->max_batch = o->max_queue;            /* as the SDK specification asks */
    return rc;
}

/* ---- resource -------------------------------------------------------- */

/* Decodes v (vl bytes at column col) into out; -1 with err at the first bad escape. */
static long pct_decode(const char *name, const char *v, size_t vl, size_t col, char *out,
                       rdl_error_t *err)
{
    size_t o = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] != '%') {
            out[o++] = v[i];
            continue;
        }
        int hi = i + 2 < vl ? rdl_hex_value(v[i + 1]) : -1;
        int lo = hi >= 0 ? rdl_hex_value(v[i + 2]) : -1;
        if (lo < 0) {
            rdl_error_set(err, RDL_EINVAL, 0, (int)(col + i), name,
                          "expected two hex digits after '%%' (percent-encoding)");
            return -1;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return (long)o;
}

static int kv_member(const char *name, const char *p, size_t len, size_t col, bool headers,
                     tr_kv_fn fn, void *arg, char *scratch, rdl_error_t *err)
{
    const char *eq = memchr(p, '=', len);
    if (!eq)
        return rdl_error_set(err, RDL_EINVAL, 0, (int)col, name, "expected key=value");
    const char *k = p, *v = eq + 1;
    size_t kl = (size_t)(eq - p), vl = len - kl - 1;
    rdl__trace_trim(&k, &kl);
    rdl__trace_trim(&v, &vl);
    if (kl == 0)
        return rdl_error_set(err, RDL_EINVAL, 0, (int)col, name, "empty key");
    for (size_t i = 0; headers && i < kl; i++)
        if (!rdl__trace_tchar((unsigned char)k[i]))
            return rdl_error_set(err, RDL_EINVAL, 0, (int)(col + (size_t)(k - p) + i), name,
                                 "a header name is a token (letters, digits, !#$%%&'*+-.^_`|~)");
    long n = pct_decode(name, v, vl, col + (size_t)(v - p), scratch, err);
    if (n < 0)
        return RDL_EINVAL;
    for (long i = 0; headers && i < n; i++) {
        unsigned char c = (unsigned char)scratch[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return rdl_error_set(err, RDL_EINVAL, 0, (int)(col + (size_t)(v - p)), name,
                                 "the value of header '%.*s' decodes to a control character",
                                 (int)(kl < 64 ? kl : 64), k);
    }
    return fn(arg, k, kl, scratch, (size_t)n);
}

int rdl__trace_kv_list(const char *name, const char *list, bool headers, tr_kv_fn fn, void *arg,
               rdl_error_t *err)
{
    size_t total = list ? strlen(list) : 0;
    char *scratch = malloc(total + 1);
    if (!scratch)
        return rdl_error_set(err, RDL_ENOMEM, 0, 0, name, "out of memory");
    int rc = 0;
    for (size_t at = 0; at < total && rc == 0;) {
        const char *comma = memchr(list + at, ',', total - at);
        size_t len = comma ? (size_t)(comma - (list + at)) : total - at;
        const char *m = list + at;
        size_t ml = len;
        rdl__trace_trim(&m, &ml);
        if (ml)
            rc = kv_member(name, m, ml, (size_t)(m - list) + 1, headers, fn, arg, scratch, err);
        at += len + 1;
    }
    free(scratch);
    return rc;
}

/* A malloc'ed NUL-terminated copy, invalid UTF-8 replaced (OTLP strings must be UTF-8). */
static char *utf8_dup(const char *s, size_t n)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_utf8_put(&b, s, n);
    rdl_buf_putc(&b, '\0');
    if (b.oom) {
        rdl_buf_close(&b);
        return NULL;
    }
    return b.data;
}

static int resource_put(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    rdl_tracer_t *t = arg;
    for (int i = 0; i < t->nresource; i++)
        if (strlen(t->resource[i].key) == kl && memcmp(t->resource[i].key, k, kl) == 0) {
            char *nv = utf8_dup(v, vl);
            if (!nv)
                return RDL_ENOMEM;
            free(t->resource[i].value);
            t->resource[i].value = nv;
            return 0;
        }
    if (t->nresource == TR_MAX_RESOURCE)
        return 0;
    char *nk = utf8_dup(k, kl), *nv = utf8_dup(v, vl);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return RDL_ENOMEM;
    }
    t->resource[t->nresource++] = (tr_kv_t){ nk, nv };
    return 0;
}

int rdl__trace_parse_resource(rdl_tracer_t *t)
{
    int rc = rdl__trace_kv_list("OTEL_RESOURCE_ATTRIBUTES", t->o.resource_attrs, false, resource_put, t, NULL);
    /* OTEL_SERVICE_NAME wins over service.name in the attributes. */
    char name[160];
    if (t->o.service_name[0]) {
        snprintf(name, sizeof(name), "%s", t->o.service_name);
    } else {
        bool have = false;
        for (int i = 0; i < t->nresource; i++)
            have |= strcmp(t->resource[i].key, "service.name") == 0;
        char exe[128] = "";
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        const char *base = strrchr(exe, '/');
        snprintf(name, sizeof(name), "unknown_service:%s", base ? base + 1 : "c");
        if (have)
            name[0] = '\0';
    }
    if (rc == 0 && name[0])
        rc = resource_put(t, "service.name", 12, name, strlen(name));
    if (rc == 0)
        rc = resource_put(t, "telemetry.sdk.name", 18, "redline", 7);
    if (rc == 0)
        rc = resource_put(t, "telemetry.sdk.version", 21, "0.1.0", 5);
    return rc;
}
