/*
 * ctx.h: a request's context, the analogue of Go's context.Context.
 *
 * One rdl_ctx_t lives for one request: its deadline, its cancellation, an
 * arena freed when the request ends, and what outbound calls and log lines
 * need from the request: its id, its trace context and baggage, its traffic
 * color. Anything else a red line keeps per request lives in that part's
 * request slot (runtime.h, rdl_server_req_slot), not here. Outbound calls
 * take the remaining time from it.
 *
 *   rdl_ctx_t *ctx = rdl_req_ctx(req);
 *   if (rdl_ctx_done(ctx)) return;              // canceled or past deadline
 *   uint64_t left = rdl_ctx_remaining_ns(ctx);  // budget for a downstream call
 *   char *copy = rdl_arena_strndup(&ctx->arena, s, n);  // freed with the request
 *
 * Thread-safety: a ctx belongs to its request. Reading fields and the deadline
 * is safe from a pool worker running that request's task; cancellation
 * (rdl_ctx_cancel / rdl_ctx_canceled) is safe from any thread.
 */
#ifndef REDLINE_CTX_H
#define REDLINE_CTX_H

#include <stdint.h>
#include <stdbool.h>
#include "redline/common.h"
#include "redline/util.h"

#define RDL_REQUEST_ID_MAX 64

typedef struct rdl_ctx {
    uint64_t start_ns;          /* monotonic time the request began */
    uint64_t end_ns;            /* monotonic time it ended: set by the runtime before the leave hooks */
    uint64_t deadline_ns;       /* monotonic; 0 = no deadline */
    int canceled;               /* accessed atomically through the functions below */
    rdl_arena_t arena;          /* per-request memory, released when the request ends */
    char request_id[RDL_REQUEST_ID_MAX + 1];   /* X-Request-ID taken or made */
    /* Trace context, filled by the trace module when it lands (all zero = none). */
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t trace_flags;
    struct rdl_span *span;              /* the request's server span (trace.h), NULL when none */
    struct rdl_baggage *baggage;        /* W3C baggage received (trace.h), NULL when none */
    /* Set by the route part (NULL = none): the subset, whose address outbound calls use,
     * and the traffic color, which they carry on. The route's name stays in that part's
     * request slot. */
    const char *subset;
    const char *color;
} rdl_ctx_t;

/* Prepares ctx for a new request starting now with the given timeout (0 = none). */
RDL_EXTERN void rdl_ctx_init(rdl_ctx_t *ctx, uint64_t timeout_ns);
/* Releases the arena. The ctx can be init-ed again afterwards. */
RDL_EXTERN void rdl_ctx_close(rdl_ctx_t *ctx);

RDL_EXTERN void rdl_ctx_cancel(rdl_ctx_t *ctx);
RDL_EXTERN bool rdl_ctx_canceled(const rdl_ctx_t *ctx);
/* Canceled, or past its deadline. */
RDL_EXTERN bool rdl_ctx_done(const rdl_ctx_t *ctx);
/* Nanoseconds left before the deadline; UINT64_MAX without one, 0 when past it. */
RDL_EXTERN uint64_t rdl_ctx_remaining_ns(const rdl_ctx_t *ctx);

/*
 * The context of the request the calling thread works for, or NULL. The
 * runtime sets it around handlers and pool tasks so that code deep in a
 * handler (a log line, an outbound call) finds its request without passing it.
 */
RDL_EXTERN rdl_ctx_t *rdl_ctx_current(void);
/* Sets the calling thread's current context; returns the previous one. */
RDL_EXTERN rdl_ctx_t *rdl_ctx_set_current(rdl_ctx_t *ctx);

#endif
