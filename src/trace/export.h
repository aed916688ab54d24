/*
 * export.h: the batch exporter's life, for tracer.c alone (rdl_tracer_new
 * starts it, rdl_tracer_free stops it). Apart from internal.h so that the
 * files the exporter builds on (threads.c, otlp.c, env.c) cannot call up
 * into it: the exporter depends on them, never the reverse.
 */
#ifndef REDLINE_TRACE_EXPORT_H
#define REDLINE_TRACE_EXPORT_H

#include "trace/internal.h"

/* Starts the exporter thread of t (t->o.export). 0 or a negative RDL_E* code. */
int rdl__trace_exporter_start(rdl_tracer_t *t);
/* Drains what it can within o.shutdown_ms and joins the exporter thread. */
void rdl__trace_exporter_stop(rdl_tracer_t *t);

#endif
