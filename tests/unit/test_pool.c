/*
 * test_pool.c: the bounded work queue. Tasks block on gates the test opens, so
 * depth, in-flight count and refusals are asserted exactly, never by timing;
 * results are checked on real libuv loops, and a stress run with 8 submitting
 * loops checks that every task's work and done run exactly once.
 */
#define _GNU_SOURCE         /* pthread_getname_np */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "redline/pool.h"

#define WAIT_LIMIT_MS 30000     /* a hang becomes a failure, not a stuck ctest */

/* ---- a gate that blocked work waits on, opened by the test ---- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int started;                /* works that reached the gate */
} gate_t;

static void gate_init(gate_t *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
    g->started = 0;
}

static void gate_destroy(gate_t *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void gate_pass(gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->started++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Waits until n works are blocked at the gate; returns how many are. */
static int gate_wait_started(gate_t *g, int n)
{
    struct timespec until = rdl_timespec_in(CLOCK_REALTIME, WAIT_LIMIT_MS * 1000000ull);
    pthread_mutex_lock(&g->mu);
    while (g->started < n && pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0)
        ;
    int started = g->started;
    pthread_mutex_unlock(&g->mu);
    return started;
}

/* ---- a counter a worker bumps and the test waits on ---- */

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
} counter_t;

static void counter_init(counter_t *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->n = 0;
}

static void counter_destroy(counter_t *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void counter_bump(counter_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int counter_wait(counter_t *c, int n)
{
    struct timespec until = rdl_timespec_in(CLOCK_REALTIME, WAIT_LIMIT_MS * 1000000ull);
    pthread_mutex_lock(&c->mu);
    while (c->n < n && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
        ;
    int got = c->n;
    pthread_mutex_unlock(&c->mu);
    return got;
}

/* ---- running a loop until a loop-thread counter reaches a value ---- */

static void timeout_cb(uv_timer_t *timer)
{
    *(int *)timer->data = 1;
}

/* Runs loop until *count >= want or WAIT_LIMIT_MS passed; returns *count. */
static int run_until(uv_loop_t *loop, const int *count, int want)
{
    uv_timer_t timer;
    int timed_out = 0;

    uv_timer_init(loop, &timer);
    timer.data = &timed_out;
    uv_timer_start(&timer, timeout_cb, WAIT_LIMIT_MS, 0);
    while (*count < want && !timed_out)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *count;
}

/* ---- the test task ---- */

typedef struct env {
    uv_loop_t loop;
    rdl_pool_sink_t *sink;
    pthread_t main;
    int done_count;             /* loop thread only */
    int done_order[256];
    int work_count;             /* written by work_in_order: one worker only */
    int work_order[256];
    counter_t worker_done;      /* for dones that run on workers */
    rdl_pool_sink_t *free_sink_in_done;
} env_t;

typedef struct ttask {
    rdl_pool_task_t task;
    env_t *env;
    int index;
    gate_t *gate;               /* work blocks here when set */
    int work_runs;
    int done_runs;
    int status;
    pthread_t work_thread;
    pthread_t done_thread;
    char thread_name[16];
    rdl_ctx_t *ctx_in_work;
    rdl_ctx_t *ctx_in_done;
} ttask_t;

static void work_record(rdl_pool_task_t *task)
{
    ttask_t *t = task->data;
    t->work_runs++;
    t->work_thread = pthread_self();
    t->ctx_in_work = rdl_ctx_current();
    pthread_getname_np(pthread_self(), t->thread_name, sizeof(t->thread_name));
    if (t->gate)
        gate_pass(t->gate);
}

static void work_in_order(rdl_pool_task_t *task)
{
    ttask_t *t = task->data;
    work_record(task);
    t->env->work_order[t->env->work_count++ % 256] = t->index;
}

/* Runs on the sink's loop. */
static void done_on_loop(rdl_pool_task_t *task, int status)
{
    ttask_t *t = task->data;
    env_t *e = t->env;
    t->done_runs++;
    t->status = status;
    t->done_thread = pthread_self();
    e->done_order[e->done_count++ % 256] = t->index;
    if (e->free_sink_in_done) {
        rdl_pool_sink_t *s = e->free_sink_in_done;
        e->free_sink_in_done = NULL;
        rdl_pool_sink_free(s);
    }
}

/* Runs on a worker (no sink, or its sink was freed). */
static void done_on_worker(rdl_pool_task_t *task, int status)
{
    ttask_t *t = task->data;
    t->done_runs++;
    t->status = status;
    t->done_thread = pthread_self();
    t->ctx_in_done = rdl_ctx_current();
    counter_bump(&t->env->worker_done);
}

static void env_init(env_t *e)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(rdl_pool_sink_new(&e->loop, &e->sink), 0);
    e->main = pthread_self();
    counter_init(&e->worker_done);
}

/* Frees the sink (when still held), lets its handle close and checks the loop is empty. */
static void env_close(env_t *e)
{
    rdl_pool_sink_free(e->sink);
    e->sink = NULL;
    assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    counter_destroy(&e->worker_done);
}

static void ttask_init(ttask_t *t, env_t *e, int index, rdl_pool_done_fn done)
{
    memset(t, 0, sizeof(*t));
    t->env = e;
    t->index = index;
    t->task.work = work_record;
    t->task.done = done;
    t->task.data = t;
}

static rdl_pool_t *pool_make(int threads, int queue_max)
{
    rdl_pool_opts_t o = { .threads = threads, .queue_max = queue_max };
    rdl_pool_t *pool = NULL;
    assert_int_equal(rdl_pool_new(&o, &pool), 0);
    assert_non_null(pool);
    return pool;
}

/* ---- tests ---- */

static void test_done_runs_on_loop_thread(void **state)
{
    enum { N = 16 };
    env_t e;
    ttask_t t[N];
    env_init(&e);
    rdl_pool_t *pool = pool_make(2, 0);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    assert_int_equal(run_until(&e.loop, &e.done_count, N), N);

    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].work_runs, 1);
        assert_int_equal(t[i].done_runs, 1);
        assert_int_equal(t[i].status, 0);
        assert_false(pthread_equal(t[i].work_thread, e.main));
        assert_true(pthread_equal(t[i].done_thread, e.main));
        assert_int_equal(strncmp(t[i].thread_name, "rdl-pool-", 9), 0);
    }
    rdl_pool_stats_t st;
    rdl_pool_stats(pool, &st);
    assert_int_equal(st.completed, N);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.oldest_age_ns, 0);
    assert_int_equal(st.threads, 2);
    assert_int_equal(st.queue_max, 1024);
    rdl_pool_free(pool);
    env_close(&e);
}

static void test_fifo_with_one_worker(void **state)
{
    enum { N = 200 };
    env_t e;
    ttask_t *t = calloc(N, sizeof(*t));
    assert_non_null(t);
    env_init(&e);
    rdl_pool_t *pool = pool_make(1, N);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        t[i].task.work = work_in_order;
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    assert_int_equal(run_until(&e.loop, &e.done_count, N), N);
    assert_int_equal(e.work_count, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(e.work_order[i], i);
        assert_int_equal(e.done_order[i], i);
    }
    rdl_pool_free(pool);
    env_close(&e);
    free(t);
}

static void test_thread_name_prefix(void **state)
{
    env_t e;
    ttask_t t;
    env_init(&e);
    rdl_pool_opts_t o = { .threads = 1, .name = "a-very-long-prefix" };
    rdl_pool_t *pool = NULL;
    assert_int_equal(rdl_pool_new(&o, &pool), 0);

    ttask_init(&t, &e, 0, done_on_worker);
    assert_int_equal(rdl_pool_submit(pool, &t.task, NULL), 0);
    assert_int_equal(counter_wait(&e.worker_done, 1), 1);
    /* Cut to 10 bytes so the index still fits in Linux's 15. */
    assert_string_equal(t.thread_name, "a-very-lon-0");
    rdl_pool_free(pool);
    env_close(&e);
}

static void test_full_queue_refuses(void **state)
{
    env_t e;
    gate_t gate;
    ttask_t t[5];
    env_init(&e);
    gate_init(&gate);
    rdl_pool_t *pool = pool_make(1, 3);

    ttask_init(&t[0], &e, 0, done_on_loop);
    t[0].gate = &gate;
    assert_int_equal(rdl_pool_submit(pool, &t[0].task, e.sink), 0);
    assert_int_equal(gate_wait_started(&gate, 1), 1);
    for (int i = 1; i <= 3; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    ttask_init(&t[4], &e, 4, done_on_loop);
    assert_int_equal(rdl_pool_submit(pool, &t[4].task, e.sink), RDL_EBUSY);
    assert_int_equal(rdl_pool_submit(pool, &t[4].task, NULL), RDL_EBUSY);

    rdl_pool_stats_t st;
    rdl_pool_stats(pool, &st);
    assert_int_equal(st.depth, 3);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.queue_max, 3);

    gate_open(&gate);
    assert_int_equal(run_until(&e.loop, &e.done_count, 4), 4);
    assert_int_equal(t[4].work_runs, 0);
    assert_int_equal(t[4].done_runs, 0);

    /* Room again: the refused task goes through now. */
    assert_int_equal(rdl_pool_submit(pool, &t[4].task, e.sink), 0);
    assert_int_equal(run_until(&e.loop, &e.done_count, 5), 5);
    assert_int_equal(t[4].work_runs, 1);
    assert_int_equal(t[4].done_runs, 1);
    rdl_pool_stats(pool, &st);
    assert_int_equal(st.completed, 5);
    assert_int_equal(st.rejected, 2);
    rdl_pool_free(pool);
    env_close(&e);
    gate_destroy(&gate);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_stats_signals_while_blocked(void **state)
{
    enum { THREADS = 3, QUEUED = 5, N = THREADS + QUEUED };
    env_t e;
    gate_t gate;
    ttask_t t[N];
    env_init(&e);
    gate_init(&gate);
    rdl_pool_t *pool = pool_make(THREADS, 16);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        t[i].gate = &gate;
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    assert_int_equal(gate_wait_started(&gate, THREADS), THREADS);

    rdl_pool_stats_t a, b;
    rdl_pool_stats(pool, &a);
    assert_int_equal(a.depth, QUEUED);
    assert_int_equal(a.in_flight, THREADS);
    assert_true(a.oldest_age_ns > 0);
    assert_int_equal(a.completed, 0);
    assert_int_equal(a.threads, THREADS);
    assert_int_equal(a.queue_max, 16);

    sleep_ms(20);
    rdl_pool_stats(pool, &b);
    assert_int_equal(b.depth, QUEUED);
    assert_int_equal(b.in_flight, THREADS);
    assert_true(b.oldest_age_ns > a.oldest_age_ns);
    /* The oldest task has waited at least as long as the test slept. */
    assert_true(b.oldest_age_ns >= 20 * 1000000ull);

    gate_open(&gate);
    assert_int_equal(run_until(&e.loop, &e.done_count, N), N);
    rdl_pool_stats(pool, &b);
    assert_int_equal(b.depth, 0);
    assert_int_equal(b.in_flight, 0);
    assert_int_equal(b.oldest_age_ns, 0);
    assert_int_equal(b.completed, N);
    rdl_pool_free(pool);
    env_close(&e);
    gate_destroy(&gate);
}

static void test_oldest_age_counts_running_tasks(void **state)
{
    enum { N = 2 };
    env_t e;
    gate_t gate;
    ttask_t t[N];
    env_init(&e);
    gate_init(&gate);
    rdl_pool_t *pool = pool_make(N, 0);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        t[i].gate = &gate;
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    assert_int_equal(gate_wait_started(&gate, N), N);
    sleep_ms(20);
    rdl_pool_stats_t st;
    rdl_pool_stats(pool, &st);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.in_flight, N);
    assert_true(st.oldest_age_ns >= 20 * 1000000ull);

    gate_open(&gate);
    assert_int_equal(run_until(&e.loop, &e.done_count, N), N);
    rdl_pool_free(pool);
    env_close(&e);
    gate_destroy(&gate);
}

static void test_ctx_current_on_worker(void **state)
{
    static rdl_ctx_t ctx;       /* only its address matters here */
    env_t e;
    ttask_t with, without;
    env_init(&e);
    rdl_pool_t *pool = pool_make(1, 0);

    ttask_init(&with, &e, 0, done_on_worker);
    with.task.ctx = &ctx;
    ttask_init(&without, &e, 1, done_on_worker);
    assert_int_equal(rdl_pool_submit(pool, &with.task, NULL), 0);
    assert_int_equal(rdl_pool_submit(pool, &without.task, NULL), 0);
    assert_int_equal(counter_wait(&e.worker_done, 2), 2);

    assert_ptr_equal(with.ctx_in_work, &ctx);
    assert_null(with.ctx_in_done);          /* restored after work */
    assert_null(without.ctx_in_work);
    assert_false(pthread_equal(with.done_thread, e.main));
    assert_true(pthread_equal(with.done_thread, with.work_thread));
    assert_null(rdl_ctx_current());         /* the submitter's own is untouched */
    rdl_pool_free(pool);
    env_close(&e);
}

static void *free_pool_thread(void *arg)
{
    rdl_pool_free(arg);
    return NULL;
}

static void test_shutdown_runs_queued_tasks(void **state)
{
    enum { QUEUED = 10, N = QUEUED + 1 };
    env_t e;
    gate_t gate;
    ttask_t t[N], probe;
    env_init(&e);
    gate_init(&gate);
    rdl_pool_t *pool = pool_make(1, QUEUED);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        t[i].gate = i == 0 ? &gate : NULL;
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
        if (i == 0)
            assert_int_equal(gate_wait_started(&gate, 1), 1);
    }

    pthread_t freer;
    assert_int_equal(pthread_create(&freer, NULL, free_pool_thread, pool), 0);
    /* The queue is full, so submits are refused until shutdown begins. */
    ttask_init(&probe, &e, -1, done_on_loop);
    int rc = RDL_EBUSY;
    for (int tries = 0; rc == RDL_EBUSY && tries < WAIT_LIMIT_MS; tries++) {
        rc = rdl_pool_submit(pool, &probe.task, e.sink);
        if (rc == RDL_EBUSY)
            sleep_ms(1);
    }
    assert_int_equal(rc, RDL_ESTATE);
    assert_int_equal(t[1].work_runs, 0);

    gate_open(&gate);
    assert_int_equal(pthread_join(freer, NULL), 0);
    /* Every queued task ran; their dones wait for this loop. */
    assert_int_equal(e.done_count, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(t[i].work_runs, 1);
    assert_int_equal(run_until(&e.loop, &e.done_count, N), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].done_runs, 1);
        assert_int_equal(t[i].status, 0);
        assert_int_equal(e.done_order[i], i);
    }
    assert_int_equal(probe.work_runs, 0);
    assert_int_equal(probe.done_runs, 0);
    env_close(&e);
    gate_destroy(&gate);
}

static void test_sink_free_delivers_finished(void **state)
{
    enum { N = 20 };
    env_t e;
    ttask_t t[N];
    env_init(&e);
    rdl_pool_t *pool = pool_make(2, 0);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    rdl_pool_free(pool);            /* all finished, waiting in the sink */
    assert_int_equal(e.done_count, 0);

    rdl_pool_sink_free(e.sink);
    e.sink = NULL;
    assert_int_equal(e.done_count, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].done_runs, 1);
        assert_true(pthread_equal(t[i].done_thread, e.main));
    }
    env_close(&e);
}

static void test_done_may_free_its_sink(void **state)
{
    enum { N = 5 };
    env_t e;
    ttask_t t[N];
    env_init(&e);
    rdl_pool_t *pool = pool_make(1, 0);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_loop);
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
    }
    rdl_pool_free(pool);
    e.free_sink_in_done = e.sink;   /* the first done frees it */
    e.sink = NULL;
    assert_int_equal(run_until(&e.loop, &e.done_count, N), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].done_runs, 1);
        assert_int_equal(e.done_order[i], i);
    }
    env_close(&e);
}

static void test_sink_freed_before_tasks_finish(void **state)
{
    enum { N = 6 };
    env_t e;
    gate_t gate;
    ttask_t t[N], late;
    env_init(&e);
    gate_init(&gate);
    rdl_pool_t *pool = pool_make(1, 0);

    for (int i = 0; i < N; i++) {
        ttask_init(&t[i], &e, i, done_on_worker);
        t[i].gate = i == 0 ? &gate : NULL;
        assert_int_equal(rdl_pool_submit(pool, &t[i].task, e.sink), 0);
        if (i == 0)
            assert_int_equal(gate_wait_started(&gate, 1), 1);
    }
    rdl_pool_sink_free(e.sink);
    ttask_init(&late, &e, N, done_on_worker);
    assert_int_equal(rdl_pool_submit(pool, &late.task, e.sink), RDL_ESTATE);
    e.sink = NULL;
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);   /* the handle closes */

    gate_open(&gate);
    rdl_pool_free(pool);
    assert_int_equal(counter_wait(&e.worker_done, N), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].work_runs, 1);
        assert_int_equal(t[i].done_runs, 1);
        assert_false(pthread_equal(t[i].done_thread, e.main));
    }
    assert_int_equal(late.work_runs + late.done_runs, 0);
    env_close(&e);
    gate_destroy(&gate);
}

static void test_bad_arguments(void **state)
{
    rdl_pool_t *pool = NULL;
    rdl_pool_opts_t o = { .threads = -1 };
    assert_int_equal(rdl_pool_new(&o, &pool), RDL_EINVAL);
    assert_null(pool);
    o.threads = 1025;
    assert_int_equal(rdl_pool_new(&o, &pool), RDL_EINVAL);
    o.threads = 1;
    o.queue_max = -5;
    assert_int_equal(rdl_pool_new(&o, &pool), RDL_EINVAL);
    assert_int_equal(rdl_pool_new(NULL, NULL), RDL_EINVAL);

    assert_int_equal(rdl_pool_new(NULL, &pool), 0);
    rdl_pool_stats_t st;
    rdl_pool_stats(pool, &st);
    assert_int_equal(st.threads, 4);
    assert_int_equal(st.queue_max, 1024);

    rdl_pool_task_t task = { 0 };
    assert_int_equal(rdl_pool_submit(pool, NULL, NULL), RDL_EINVAL);
    assert_int_equal(rdl_pool_submit(pool, &task, NULL), RDL_EINVAL);
    task.work = work_record;
    assert_int_equal(rdl_pool_submit(pool, &task, NULL), RDL_EINVAL);   /* no done */
    task.work = NULL;
    task.done = done_on_worker;
    assert_int_equal(rdl_pool_submit(pool, &task, NULL), RDL_EINVAL);   /* no work */
    assert_int_equal(rdl_pool_submit(NULL, &task, NULL), RDL_EINVAL);
    rdl_pool_free(pool);

    rdl_pool_sink_t *sink = NULL;
    assert_int_equal(rdl_pool_sink_new(NULL, &sink), RDL_EINVAL);
    rdl_pool_stats(NULL, &st);
    assert_int_equal(st.threads, 0);
    rdl_pool_stats(NULL, NULL);
    rdl_pool_free(NULL);
    rdl_pool_sink_free(NULL);
}

/* ---- stress: 8 loops submitting 20,000 tasks each ---- */

enum { STRESS_SUBMITTERS = 8, STRESS_TASKS = 20000 };

typedef struct submitter submitter_t;

typedef struct stask {
    rdl_pool_task_t task;
    submitter_t *owner;
    int work_runs;
    int done_runs;
    int done_wrong;             /* off its loop thread, or a non-zero status */
} stask_t;

struct submitter {
    pthread_t tid;
    pthread_t self;             /* as the thread sees itself */
    rdl_pool_t *pool;
    stask_t *tasks;
    int done;                   /* its loop thread only */
    uint64_t busy;              /* RDL_EBUSY answers it got */
    int errors;                 /* any other failure, asserted on by main */
};

static atomic_int stress_works;

static void stress_work(rdl_pool_task_t *task)
{
    stask_t *t = task->data;
    t->work_runs++;
    atomic_fetch_add_explicit(&stress_works, 1, memory_order_relaxed);
}

static void stress_done(rdl_pool_task_t *task, int status)
{
    stask_t *t = task->data;
    t->done_runs++;
    if (!pthread_equal(pthread_self(), t->owner->self) || status != 0)
        t->done_wrong++;
    t->owner->done++;
}

static void *submitter_main(void *arg)
{
    submitter_t *s = arg;
    uv_loop_t loop;
    rdl_pool_sink_t *sink;

    s->self = pthread_self();
    if (uv_loop_init(&loop) != 0 || rdl_pool_sink_new(&loop, &sink) != 0) {
        s->errors++;
        return NULL;
    }
    for (int i = 0; i < STRESS_TASKS; i++) {
        stask_t *t = &s->tasks[i];
        t->owner = s;
        t->task.work = stress_work;
        t->task.done = stress_done;
        t->task.data = t;
        int rc;
        /* Back-pressure: deliver what finished, let the workers catch up. */
        while ((rc = rdl_pool_submit(s->pool, &t->task, sink)) == RDL_EBUSY) {
            s->busy++;
            uv_run(&loop, UV_RUN_NOWAIT);
            sched_yield();
        }
        if (rc != 0)
            s->errors++;
    }
    if (run_until(&loop, &s->done, STRESS_TASKS) != STRESS_TASKS)
        s->errors++;
    rdl_pool_sink_free(sink);
    if (uv_run(&loop, UV_RUN_DEFAULT) != 0 || uv_loop_close(&loop) != 0)
        s->errors++;
    return NULL;
}

static void test_stress_many_loops(void **state)
{
    submitter_t subs[STRESS_SUBMITTERS];
    rdl_pool_t *pool = pool_make(4, 256);

    atomic_store(&stress_works, 0);
    memset(subs, 0, sizeof(subs));
    for (int i = 0; i < STRESS_SUBMITTERS; i++) {
        subs[i].pool = pool;
        subs[i].tasks = calloc(STRESS_TASKS, sizeof(stask_t));
        assert_non_null(subs[i].tasks);
    }
    for (int i = 0; i < STRESS_SUBMITTERS; i++)
        assert_int_equal(pthread_create(&subs[i].tid, NULL, submitter_main, &subs[i]), 0);
    for (int i = 0; i < STRESS_SUBMITTERS; i++)
        assert_int_equal(pthread_join(subs[i].tid, NULL), 0);

    uint64_t busy = 0;
    for (int i = 0; i < STRESS_SUBMITTERS; i++) {
        submitter_t *s = &subs[i];
        assert_int_equal(s->errors, 0);
        assert_int_equal(s->done, STRESS_TASKS);
        for (int j = 0; j < STRESS_TASKS; j++) {
            assert_int_equal(s->tasks[j].work_runs, 1);
            assert_int_equal(s->tasks[j].done_runs, 1);
            assert_int_equal(s->tasks[j].done_wrong, 0);
        }
        busy += s->busy;
        free(s->tasks);
    }
    rdl_pool_stats_t st;
    rdl_pool_stats(pool, &st);
    assert_int_equal(atomic_load(&stress_works), STRESS_SUBMITTERS * STRESS_TASKS);
    assert_int_equal(st.completed, STRESS_SUBMITTERS * STRESS_TASKS);
    assert_int_equal(st.rejected, busy);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.in_flight, 0);
    rdl_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_runs_on_loop_thread),
        cmocka_unit_test(test_fifo_with_one_worker),
        cmocka_unit_test(test_thread_name_prefix),
        cmocka_unit_test(test_full_queue_refuses),
        cmocka_unit_test(test_stats_signals_while_blocked),
        cmocka_unit_test(test_oldest_age_counts_running_tasks),
        cmocka_unit_test(test_ctx_current_on_worker),
        cmocka_unit_test(test_shutdown_runs_queued_tasks),
        cmocka_unit_test(test_sink_free_delivers_finished),
        cmocka_unit_test(test_done_may_free_its_sink),
        cmocka_unit_test(test_sink_freed_before_tasks_finish),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_stress_many_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
