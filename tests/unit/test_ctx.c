/*
 * test_ctx.c: the request context: deadlines and what is left of them,
 * cancellation seen across threads, the per-thread current context, and an
 * arena that costs nothing until used.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "redline/ctx.h"

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void test_no_deadline(void **state)
{
    rdl_ctx_t ctx;

    rdl_ctx_init(&ctx, 0);
    assert_int_equal(ctx.deadline_ns, 0);
    assert_true(ctx.start_ns > 0);
    assert_int_equal(rdl_ctx_remaining_ns(&ctx), UINT64_MAX);
    assert_false(rdl_ctx_done(&ctx));
    assert_false(rdl_ctx_canceled(&ctx));
    rdl_ctx_close(&ctx);
}

static void test_deadline(void **state)
{
    const uint64_t hour = 3600ull * 1000000000ull;
    rdl_ctx_t ctx;
    uint64_t left;

    rdl_ctx_init(&ctx, hour);
    assert_int_equal(ctx.deadline_ns, ctx.start_ns + hour);
    left = rdl_ctx_remaining_ns(&ctx);
    /* loose bounds: the machine may be slow, but not by a minute */
    assert_true(left <= hour);
    assert_true(left > hour - 60ull * 1000000000ull);
    assert_false(rdl_ctx_done(&ctx));
    rdl_ctx_close(&ctx);

    rdl_ctx_init(&ctx, 1000000);        /* 1ms */
    sleep_ms(20);
    assert_int_equal(rdl_ctx_remaining_ns(&ctx), 0);
    assert_true(rdl_ctx_done(&ctx));
    assert_false(rdl_ctx_canceled(&ctx));   /* expired is not canceled */
    rdl_ctx_close(&ctx);

    rdl_ctx_init(&ctx, UINT64_MAX);     /* saturates instead of wrapping into the past */
    assert_int_equal(ctx.deadline_ns, UINT64_MAX);
    assert_false(rdl_ctx_done(&ctx));
    rdl_ctx_close(&ctx);
}

static void *cancel_later(void *arg)
{
    sleep_ms(10);
    rdl_ctx_cancel(arg);
    return NULL;
}

static void test_cancel(void **state)
{
    rdl_ctx_t ctx;
    pthread_t t;
    int spins = 0;

    rdl_ctx_init(&ctx, 0);
    rdl_ctx_cancel(&ctx);
    assert_true(rdl_ctx_canceled(&ctx));
    assert_true(rdl_ctx_done(&ctx));
    rdl_ctx_close(&ctx);

    /* canceled from another thread, observed here */
    rdl_ctx_init(&ctx, 0);
    assert_int_equal(pthread_create(&t, NULL, cancel_later, &ctx), 0);
    while (!rdl_ctx_done(&ctx) && spins < 10000) {
        sleep_ms(1);
        spins++;
    }
    pthread_join(t, NULL);
    assert_true(rdl_ctx_canceled(&ctx));
    rdl_ctx_close(&ctx);

    /* init after close gives a fresh, uncanceled context */
    rdl_ctx_init(&ctx, 0);
    assert_false(rdl_ctx_canceled(&ctx));
    rdl_ctx_close(&ctx);
}

static void test_arena_lazy(void **state)
{
    rdl_ctx_t ctx;
    char *s;

    rdl_ctx_init(&ctx, 0);
    assert_null(ctx.arena.head);        /* no allocation for a request that never asks */
    s = rdl_arena_strndup(&ctx.arena, "request-scoped", 14);
    assert_string_equal(s, "request-scoped");
    assert_non_null(ctx.arena.head);
    rdl_ctx_close(&ctx);                /* LSan fails the test if this leaked */
    assert_null(ctx.arena.head);
    rdl_ctx_close(NULL);
}

struct per_thread {
    rdl_ctx_t ctx;
    pthread_barrier_t *barrier;
    rdl_ctx_t *seen_before, *seen_after, *prev;
};

static void *use_current(void *arg)
{
    struct per_thread *p = arg;

    p->seen_before = rdl_ctx_current();
    p->prev = rdl_ctx_set_current(&p->ctx);
    /* both threads have set theirs before either looks again */
    pthread_barrier_wait(p->barrier);
    p->seen_after = rdl_ctx_current();
    pthread_barrier_wait(p->barrier);
    rdl_ctx_set_current(NULL);
    return NULL;
}

static void test_current_per_thread(void **state)
{
    pthread_barrier_t barrier;
    struct per_thread a, b;
    pthread_t ta, tb;
    rdl_ctx_t mine;

    rdl_ctx_init(&mine, 0);
    assert_null(rdl_ctx_current());
    assert_null(rdl_ctx_set_current(&mine));
    assert_ptr_equal(rdl_ctx_current(), &mine);

    pthread_barrier_init(&barrier, NULL, 2);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    rdl_ctx_init(&a.ctx, 0);
    rdl_ctx_init(&b.ctx, 0);
    a.barrier = b.barrier = &barrier;
    assert_int_equal(pthread_create(&ta, NULL, use_current, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, use_current, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&barrier);

    assert_null(a.seen_before);         /* a new thread starts with none */
    assert_null(b.seen_before);
    assert_null(a.prev);
    assert_ptr_equal(a.seen_after, &a.ctx);
    assert_ptr_equal(b.seen_after, &b.ctx);
    assert_ptr_equal(rdl_ctx_current(), &mine);     /* untouched by the others */
    assert_ptr_equal(rdl_ctx_set_current(NULL), &mine);
    assert_null(rdl_ctx_current());
    rdl_ctx_close(&a.ctx);
    rdl_ctx_close(&b.ctx);
    rdl_ctx_close(&mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_deadline),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_arena_lazy),
        cmocka_unit_test(test_current_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
