/*
 * upstream-sim: a small upstream service on the redline runtime whose latency
 * and error rate change at run time. It exists so that the resilience paths
 * of a service (breakers opening, fallbacks, fail-fast 503s, warm-up) can be
 * shown and tested against a real HTTP peer that misbehaves on demand.
 *
 *   GET  /                      200 "ok"          (warm-up target)
 *   GET  /recommend?course=N    200 {"suggestions":[...]}       (a weak dependency)
 *   POST /authorize             200 {"authorized":true,...}    (a strong dependency)
 *                               402 {"authorized":false} when the body has "decline"
 *   admin listener:
 *   PUT  /sim/{endpoint}        {"latency_ms":N,"error_rate":0..1,"error_status":503}
 *   GET  /sim                   behaviour, request counts and the last propagated headers
 *                               (X-Request-Id, traceparent, x-redline-color, baggage) of
 *                               every endpoint
 *
 * usage: upstream-sim [--listen H:P] [--admin-listen H:P] [--set KEY=VALUE]...
 */
#define _GNU_SOURCE             /* memmem */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redline/runtime.h"

enum { EP_ROOT, EP_RECOMMEND, EP_AUTHORIZE, EP_COUNT };
static const char *ep_names[EP_COUNT] = { "root", "recommend", "authorize" };

typedef struct behaviour {
    atomic_long latency_ms;
    atomic_long error_ppm;      /* errors per million requests */
    atomic_int error_status;
    atomic_ulong requests;
    atomic_ulong errors;
    pthread_mutex_t mu;         /* guards the last_* headers */
    char last[4][160];          /* the latest request's propagated headers ("" = none) */
} behaviour_t;

/* Headers the sim remembers, so tests can see what a caller propagated. */
static const char *const remembered[4] = { "X-Request-Id", "traceparent", "x-redline-color",
                                           "baggage" };
static const char *const remembered_keys[4] = { "last_request_id", "last_traceparent",
                                                "last_color", "last_baggage" };

static behaviour_t eps[EP_COUNT];

static uint64_t rnd(void)
{
    static _Thread_local uint64_t s;
    if (!s)
        s = rdl_now_ns() | 1;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

typedef struct job {
    int ep;
    int status;
    char body[256];
} job_t;

static void sleep_work(rdl_req_t *req, void *arg)
{
    job_t *j = arg;
    long ms = atomic_load(&eps[j->ep].latency_ms);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void reply(rdl_req_t *req, void *arg)
{
    job_t *j = arg;
    rdl_resp_send(req, j->status, "application/json", j->body, strlen(j->body));
}

/* Decides the answer (error or not), then answers now or after the latency. */
/* Keeps the caller's propagated headers (all baggage headers joined with ','). */
static void remember_headers(rdl_req_t *req, behaviour_t *b)
{
    pthread_mutex_lock(&b->mu);
    for (int k = 0; k < 4; k++) {
        char *out = b->last[k];
        size_t used = 0, cap = sizeof(b->last[k]) - 1;
        const char *name, *value;
        size_t nlen, vlen;
        for (size_t i = 0; rdl_req_header_at(req, i, &name, &nlen, &value, &vlen); i++) {
            if (!rdl_ascii_ieq(name, nlen, remembered[k], strlen(remembered[k])))
                continue;
            if (used && used < cap)
                out[used++] = ',';
            size_t n = vlen < cap - used ? vlen : cap - used;
            memcpy(out + used, value, n);
            used += n;
        }
        out[used] = '\0';
    }
    pthread_mutex_unlock(&b->mu);
}

static void serve(rdl_req_t *req, job_t *j)
{
    behaviour_t *b = &eps[j->ep];
    atomic_fetch_add(&b->requests, 1);
    remember_headers(req, b);
    long ppm = atomic_load(&b->error_ppm);
    if (ppm > 0 && (long)(rnd() % 1000000) < ppm) {
        atomic_fetch_add(&b->errors, 1);
        j->status = atomic_load(&b->error_status);
        snprintf(j->body, sizeof(j->body), "{\"code\":\"simulated\",\"message\":\"simulated failure\"}\n");
    }
    if (atomic_load(&b->latency_ms) > 0) {
        int rc = rdl_req_offload(req, sleep_work, reply, j);
        if (rc == RDL_ECANCELED)        /* RDL_EBUSY: the runtime answered already */
            rdl_resp_error(req, 503, "unavailable", "shutting down");
        return;
    }
    reply(req, j);
}

static job_t *job_new(rdl_req_t *req, int ep)
{
    job_t *j = rdl_arena_alloc(&rdl_req_ctx(req)->arena, sizeof(*j));
    if (!j) {
        rdl_resp_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    j->ep = ep;
    j->status = 200;
    return j;
}

static void root(rdl_req_t *req, void *arg)
{
    job_t *j = job_new(req, EP_ROOT);
    if (!j)
        return;
    snprintf(j->body, sizeof(j->body), "{\"status\":\"ok\"}\n");
    serve(req, j);
}

static void recommend(rdl_req_t *req, void *arg)
{
    job_t *j = job_new(req, EP_RECOMMEND);
    if (!j)
        return;
    size_t qlen;
    const char *q = rdl_req_query(req, &qlen);
    long course = 0;
    if (qlen > 7 && strncmp(q, "course=", 7) == 0)
        course = strtol(q + 7, NULL, 10);
    /* Deterministic suggestions: the next two course ids, wrapping at 6. */
    snprintf(j->body, sizeof(j->body), "{\"course\":%ld,\"suggestions\":[%ld,%ld]}\n", course,
             course % 6 + 1, (course + 1) % 6 + 1);
    serve(req, j);
}

static void authorize(rdl_req_t *req, void *arg)
{
    job_t *j = job_new(req, EP_AUTHORIZE);
    if (!j)
        return;
    size_t len;
    const char *body = rdl_req_body(req, &len);
    if (len && memmem(body, len, "decline", 7)) {
        j->status = 402;
        snprintf(j->body, sizeof(j->body), "{\"authorized\":false,\"reason\":\"declined\"}\n");
    } else {
        snprintf(j->body, sizeof(j->body), "{\"authorized\":true,\"authorization\":\"sim-%lu\"}\n",
                 (unsigned long)atomic_load(&eps[EP_AUTHORIZE].requests) + 1);
    }
    serve(req, j);
}

static int ep_named(const char *name)
{
    for (int i = 0; name && i < EP_COUNT; i++)
        if (strcmp(name, ep_names[i]) == 0)
            return i;
    return -1;
}

static void sim_get(rdl_req_t *req, void *arg)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_buf_putc(&b, '{');
    for (int i = 0; i < EP_COUNT; i++) {
        rdl_buf_printf(&b, "%s\"%s\":{\"latency_ms\":%ld,\"error_rate\":%.6f,\"error_status\":%d,"
                       "\"requests\":%lu,\"errors\":%lu", i ? "," : "",
                       ep_names[i], atomic_load(&eps[i].latency_ms),
                       atomic_load(&eps[i].error_ppm) / 1e6, atomic_load(&eps[i].error_status),
                       atomic_load(&eps[i].requests), atomic_load(&eps[i].errors));
        pthread_mutex_lock(&eps[i].mu);
        for (int k = 0; k < 4; k++) {
            rdl_buf_printf(&b, ",\"%s\":", remembered_keys[k]);
            rdl_json_str(&b, eps[i].last[k], strlen(eps[i].last[k]));
        }
        pthread_mutex_unlock(&eps[i].mu);
        rdl_buf_putc(&b, '}');
    }
    rdl_buf_puts(&b, "}\n");
    rdl_resp_send(req, 200, "application/json", b.data, b.len);
    rdl_buf_close(&b);
}

static void sim_put(rdl_req_t *req, void *arg)
{
    int ep = ep_named(rdl_req_param(req, "endpoint"));
    if (ep < 0) {
        rdl_resp_error(req, 404, "no_endpoint", "endpoints are root, recommend, authorize");
        return;
    }
    size_t len;
    const char *body = rdl_req_body(req, &len);
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    if (!json_is_object(doc)) {
        json_decref(doc);
        rdl_resp_error(req, 400, "invalid_json", "expected {\"latency_ms\":N,\"error_rate\":R,\"error_status\":S}");
        return;
    }
    json_t *lat = json_object_get(doc, "latency_ms"), *rate = json_object_get(doc, "error_rate");
    json_t *st = json_object_get(doc, "error_status");
    bool ok = (!lat || (json_is_integer(lat) && json_integer_value(lat) >= 0 &&
                        json_integer_value(lat) <= 60000)) &&
              (!rate || (json_is_number(rate) && json_number_value(rate) >= 0 &&
                         json_number_value(rate) <= 1)) &&
              (!st || (json_is_integer(st) && json_integer_value(st) >= 200 &&
                       json_integer_value(st) <= 599));
    if (!ok) {
        json_decref(doc);
        rdl_resp_error(req, 422, "invalid_behaviour",
                       "latency_ms 0..60000, error_rate 0..1, error_status 200..599");
        return;
    }
    if (lat)
        atomic_store(&eps[ep].latency_ms, (long)json_integer_value(lat));
    if (rate)
        atomic_store(&eps[ep].error_ppm, (long)(json_number_value(rate) * 1e6 + 0.5));
    if (st)
        atomic_store(&eps[ep].error_status, (int)json_integer_value(st));
    json_decref(doc);
    sim_get(req, arg);
}

int main(int argc, char **argv)
{
    rdl_server_opts_t opts;
    rdl_server_opts_default(&opts);
    opts.service = "upstream-sim";
    opts.listen = "127.0.0.1:8081";
    opts.admin_listen = "127.0.0.1:9091";
    opts.pool_threads = 64;         /* latency is simulated by sleeping on pool workers */
    opts.drain_delay_ms = 0;
    for (int i = 0; i < EP_COUNT; i++) {
        atomic_store(&eps[i].error_status, 503);
        pthread_mutex_init(&eps[i].mu, NULL);
    }
    rdl_config_t *cfg = NULL;
    rdl_error_t err;
    rdl_error_clear(&err);
    int rc = rdl_config_new(&cfg);
    if (!rc)
        rc = rdl_server_opts_config(&opts, cfg);
    /* Every flag takes one value: "--flag VALUE". */
    for (int i = 1; rc == 0 && i < argc; i += 2) {
        const char *key = NULL, *value = i + 1 < argc ? argv[i + 1] : NULL;
        const char *eq = value ? strchr(value, '=') : NULL;
        char path[128];
        if (strcmp(argv[i], "--listen") == 0) {
            key = "server.listen";
        } else if (strcmp(argv[i], "--admin-listen") == 0) {
            key = "server.admin_listen";
        } else if (strcmp(argv[i], "--set") == 0 && eq && (size_t)(eq - value) < sizeof(path)) {
            memcpy(path, value, (size_t)(eq - value));
            path[eq - value] = '\0';
            key = path;
            value = eq + 1;
        }
        if (!key || !value) {
            fprintf(stderr, "usage: upstream-sim [--listen H:P] [--admin-listen H:P] [--set KEY=VALUE]...\n");
            rdl_config_free(cfg);
            return 2;
        }
        rc = rdl_config_set(cfg, key, value, &err);
    }
    if (!rc)
        rc = rdl_server_opts_check(&opts, &err);
    if (rc) {                       /* a configuration error: exit 2, as coursed */
        char text[1024];
        fprintf(stderr, "upstream-sim: %s\n", err.msg[0] ? rdl_error_format(&err, text, sizeof(text))
                                                        : rdl_strerror(rc));
        rdl_config_free(cfg);
        return 2;
    }
    rdl_server_t *srv = NULL;
    if (!rc)
        rc = rdl_server_new(&opts, &srv);
    if (!rc)
        rc = rdl_server_route(srv, "GET", "/", root, NULL);
    if (!rc)
        rc = rdl_server_route(srv, "GET", "/recommend", recommend, NULL);
    if (!rc)
        rc = rdl_server_route(srv, "POST", "/authorize", authorize, NULL);
    if (!rc)
        rc = rdl_server_admin_route(srv, "GET", "/sim", sim_get, NULL);
    if (!rc)
        rc = rdl_server_admin_route(srv, "PUT", "/sim/{endpoint}", sim_put, NULL);
    if (!rc)
        rc = rdl_server_run(srv, &err);
    if (rc < 0) {
        char text[1024];
        fprintf(stderr, "upstream-sim: %s\n", err.msg[0] ? rdl_error_format(&err, text, sizeof(text))
                                                        : rdl_strerror(rc));
    }
    rdl_server_free(srv);
    rdl_config_free(cfg);
    return rc < 0 ? 1 : rc;
}
