/*
 * tracer.c: the tracer object: its options, its life (new starts the
 * exporter, free stops it and frees every thread's state), its counters and
 * the process's default tracer. It is the top of the trace module: it calls
 * export.c, threads.c and env.c, and of the module's files only span.c calls
 * it, for the default tracer (which calls nothing back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trace/threads.h"
#include "trace/export.h"

static atomic_uint_fast64_t tracer_ids = 1;
static _Atomic(rdl_tracer_t *) default_tracer;

rdl_tracer_t *rdl_tracer_default(void)
{
    return atomic_load_explicit(&default_tracer, memory_order_acquire);
}

void rdl_tracer_set_default(rdl_tracer_t *t)
{
    atomic_store_explicit(&default_tracer, t, memory_order_release);
}

void rdl_tracer_opts_default(rdl_tracer_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    rdl_sampler_init(&o->sampler, "parentbased_always_on", NULL, NULL);
    o->export = true;
    o->max_attributes = 128;
    o->max_events = 128;
    o->max_links = 128;
    o->unfinished_ms = 60000;
    o->max_queue = 2048;
    o->max_batch = 512;
    o->schedule_delay_ms = 5000;
    o->export_timeout_ms = 30000;
    snprintf(o->endpoint, sizeof(o->endpoint), "http://localhost:4318/v1/traces");
    o->protocol = RDL_OTLP_PROTOBUF;
    o->timeout_ms = 10000;
    o->retry_initial_ms = 1000;
    o->retry_max_ms = 30000;
    o->shutdown_ms = 5000;
}

int rdl_tracer_new(const rdl_tracer_opts_t *o, rdl_tracer_t **out)
{
    *out = NULL;
    if (!o || o->max_queue < 1 || o->max_batch < 1 || o->max_attributes < 0 ||
        o->max_events < 0 || o->max_links < 0)
        return RDL_EINVAL;
    rdl_tracer_t *t = calloc(1, sizeof(*t));
    if (!t)
        return RDL_ENOMEM;
    t->o = *o;
    t->id = atomic_fetch_add(&tracer_ids, 1);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_cond_init(&t->flushed, NULL);
    int rc = rdl__trace_parse_resource(t);
    if (rc == 0 && t->o.export)
        rc = rdl__trace_exporter_start(t);
    if (rc) {
        t->o.export = false;
        rdl_tracer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void rdl_tracer_free(rdl_tracer_t *t)
{
    if (!t)
        return;
    if (rdl_tracer_default() == t)
        rdl_tracer_set_default(NULL);
    if (t->running)
        rdl__trace_exporter_stop(t);
    rdl__trace_scan_open(t, true);
    rdl__trace_threads_free(t);
    for (int i = 0; i < t->nresource; i++) {
        free(t->resource[i].key);
        free(t->resource[i].value);
    }
    pthread_cond_destroy(&t->flushed);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void rdl_tracer_stats(const rdl_tracer_t *t, rdl_tracer_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    rdl_tracer_t *mt = (rdl_tracer_t *)t;
    pthread_mutex_lock(&mt->mu);
    for (tr_thread_t *st = t->threads; st; st = st->next) {
        out->spans_started += atomic_load_explicit(&st->started, memory_order_relaxed);
        out->spans_ended += atomic_load_explicit(&st->ended, memory_order_relaxed);
        out->spans_dropped += atomic_load_explicit(&st->dropped, memory_order_relaxed);
    }
    pthread_mutex_unlock(&mt->mu);
    out->spans_dropped += atomic_load(&mt->dropped);
    out->spans_exported = atomic_load(&mt->exported);
    out->export_requests = atomic_load(&mt->requests);
    out->export_failures = atomic_load(&mt->failures);
    out->spans_unfinished = atomic_load(&mt->unfinished);
    out->spans_open = out->spans_started > out->spans_ended ? out->spans_started - out->spans_ended : 0;
}

const rdl_sampler_t *rdl_tracer_sampler(const rdl_tracer_t *t)
{
    return &t->o.sampler;
}
