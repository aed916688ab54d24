/*
 * ctx.c: the request context. Deadline arithmetic, cancellation that any
 * thread may signal, and the per-thread "current request" that lets code deep
 * in a handler find its request without threading a parameter everywhere.
 */
#include <string.h>

#include "redline/ctx.h"

/* Per-request arenas start small: most requests need a few short strings. */
#define CTX_ARENA_CHUNK 2048

static _Thread_local rdl_ctx_t *current_ctx;

void rdl_ctx_init(rdl_ctx_t *ctx, uint64_t timeout_ns)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->start_ns = rdl_now_ns();
    if (timeout_ns > 0) {
        /* Saturate instead of wrapping: a huge timeout means "practically none". */
        ctx->deadline_ns = timeout_ns > UINT64_MAX - ctx->start_ns ? UINT64_MAX
                                                                   : ctx->start_ns + timeout_ns;
    }
    rdl_arena_init(&ctx->arena, CTX_ARENA_CHUNK);   /* allocates nothing yet */
}

void rdl_ctx_close(rdl_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    rdl_arena_close(&ctx->arena);
}

void rdl_ctx_cancel(rdl_ctx_t *ctx)
{
    __atomic_store_n(&ctx->canceled, 1, __ATOMIC_RELEASE);
}

bool rdl_ctx_canceled(const rdl_ctx_t *ctx)
{
    return __atomic_load_n(&ctx->canceled, __ATOMIC_ACQUIRE) != 0;
}

bool rdl_ctx_done(const rdl_ctx_t *ctx)
{
    return rdl_ctx_canceled(ctx) || (ctx->deadline_ns != 0 && rdl_now_ns() >= ctx->deadline_ns);
}

uint64_t rdl_ctx_remaining_ns(const rdl_ctx_t *ctx)
{
    uint64_t now;

    if (ctx->deadline_ns == 0)
        return UINT64_MAX;
    now = rdl_now_ns();
    return now >= ctx->deadline_ns ? 0 : ctx->deadline_ns - now;
}

rdl_ctx_t *rdl_ctx_current(void)
{
    return current_ctx;
}

rdl_ctx_t *rdl_ctx_set_current(rdl_ctx_t *ctx)
{
    rdl_ctx_t *prev = current_ctx;

    current_ctx = ctx;
    return prev;
}
