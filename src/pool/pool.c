/*
 * pool.c: the bounded work queue behind rdl_pool (include/redline/pool.h).
 *
 * I/O threads must never block, so blocking work is handed to a few worker
 * threads through one FIFO guarded by one mutex. The queue is bounded so that
 * overload turns into fast refusals (RDL_EBUSY, then a 503) instead of memory
 * growth and unbounded latency, and its depth, in-flight count and oldest age
 * are what the autoscaler reads.
 *
 * Results go back through a sink: a uv_async_t on the submitting loop plus a
 * FIFO of finished tasks, so done() runs on the thread that owns the request
 * and needs no locks of its own.
 */
#define _GNU_SOURCE         /* pthread_setname_np */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redline/pool.h"

#define POOL_THREADS_DEFAULT 4
#define POOL_THREADS_MAX 1024
#define POOL_QUEUE_DEFAULT 1024
/* Linux thread names hold 15 bytes: a 10-byte prefix leaves room for "-1023". */
#define POOL_NAME_MAX 16
#define POOL_PREFIX_MAX 10

typedef struct pool_worker {
    rdl_pool_t *pool;
    pthread_t tid;
    int index;
    /* Under pool->mu: whether a task runs here and when it was submitted. */
    int busy;
    uint64_t since_ns;
} pool_worker_t;

struct rdl_pool {
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* a task was queued, or shutdown began */
    rdl_pool_task_t *head;      /* FIFO through task->next */
    rdl_pool_task_t *tail;
    uint64_t depth;
    uint64_t in_flight;
    uint64_t completed;
    uint64_t rejected;
    int stopping;
    int queue_max;
    int threads;
    char name[POOL_PREFIX_MAX + 1];
    pool_worker_t *workers;
};

struct rdl_pool_sink {
    uv_async_t async;
    pthread_mutex_t mu;
    rdl_pool_task_t *head;      /* finished tasks waiting for the loop, FIFO */
    rdl_pool_task_t *tail;
    uint64_t ready;             /* length of that list */
    /* Tasks submitted with this sink not yet handed to their done(). */
    uint64_t outstanding;
    int closing;                /* rdl_pool_sink_free was called */
    int closed;                 /* the handle's close callback ran */
};

/* ---- sinks ---- */

static void sink_destroy(rdl_pool_sink_t *sink)
{
    pthread_mutex_destroy(&sink->mu);
    free(sink);
}

/*
 * One task's done() has run. The struct lives until both the handle has
 * closed and no task refers to it; whichever happens last frees it.
 */
static void sink_release(rdl_pool_sink_t *sink)
{
    pthread_mutex_lock(&sink->mu);
    sink->outstanding--;
    int last = sink->closed && sink->outstanding == 0;
    pthread_mutex_unlock(&sink->mu);
    if (last)
        sink_destroy(sink);
}

/* Takes the oldest finished task, or NULL. */
static rdl_pool_task_t *sink_pop(rdl_pool_sink_t *sink)
{
    pthread_mutex_lock(&sink->mu);
    rdl_pool_task_t *t = sink->head;
    if (t) {
        sink->head = t->next;
        if (!sink->head)
            sink->tail = NULL;
        sink->ready--;
        sink->outstanding--;
    }
    pthread_mutex_unlock(&sink->mu);
    return t;
}

/*
 * Delivers the tasks that were ready on entry, one at a time so that a done()
 * may free the sink midway (that drains the rest). Tasks finishing meanwhile
 * wait for the next wake-up, which their worker has sent: busy workers never
 * keep the loop in here.
 */
static void sink_async_cb(uv_async_t *async)
{
    rdl_pool_sink_t *sink = async->data;
    rdl_pool_task_t *t;

    pthread_mutex_lock(&sink->mu);
    uint64_t n = sink->ready;
    pthread_mutex_unlock(&sink->mu);
    while (n-- > 0 && (t = sink_pop(sink)) != NULL) {
        t->next = NULL;
        t->done(t, t->status);
    }
}

static void sink_close_cb(uv_handle_t *h)
{
    rdl_pool_sink_t *sink = h->data;

    pthread_mutex_lock(&sink->mu);
    sink->closed = 1;
    int last = sink->outstanding == 0;
    pthread_mutex_unlock(&sink->mu);
    if (last)
        sink_destroy(sink);
}

/*
 * Called by a worker after work(). The wake-up is sent under the lock so that
 * it never races with uv_close in rdl_pool_sink_free; libuv coalesces wake-ups
 * that arrive before the loop gets to them.
 */
static void sink_push(rdl_pool_sink_t *sink, rdl_pool_task_t *t)
{
    pthread_mutex_lock(&sink->mu);
    if (!sink->closing) {
        t->next = NULL;
        if (sink->tail)
            sink->tail->next = t;
        else
            sink->head = t;
        sink->tail = t;
        sink->ready++;
        uv_async_send(&sink->async);
        pthread_mutex_unlock(&sink->mu);
        return;
    }
    pthread_mutex_unlock(&sink->mu);
    /* The loop is going away: this thread is the only one left to call done. */
    t->done(t, t->status);
    sink_release(sink);
}

int rdl_pool_sink_new(uv_loop_t *loop, rdl_pool_sink_t **out)
{
    if (!loop || !out)
        return RDL_EINVAL;
    *out = NULL;
    rdl_pool_sink_t *sink = calloc(1, sizeof(*sink));
    if (!sink)
        return RDL_ENOMEM;
    if (pthread_mutex_init(&sink->mu, NULL) != 0) {
        free(sink);
        return RDL_ENOMEM;
    }
    if (uv_async_init(loop, &sink->async, sink_async_cb) != 0) {
        sink_destroy(sink);
        return RDL_ENOMEM;
    }
    sink->async.data = sink;
    *out = sink;
    return 0;
}

void rdl_pool_sink_free(rdl_pool_sink_t *sink)
{
    if (!sink)
        return;
    pthread_mutex_lock(&sink->mu);
    sink->closing = 1;
    pthread_mutex_unlock(&sink->mu);

    /* Workers no longer push here, so this drains what finished before. */
    rdl_pool_task_t *t;
    while ((t = sink_pop(sink)) != NULL) {
        t->next = NULL;
        t->done(t, t->status);
    }
    uv_close((uv_handle_t *)&sink->async, sink_close_cb);
}

/* ---- the pool ---- */

static void pool_enqueue(rdl_pool_t *pool, rdl_pool_task_t *t)
{
    t->next = NULL;
    if (pool->tail)
        pool->tail->next = t;
    else
        pool->head = t;
    pool->tail = t;
    pool->depth++;
}

static rdl_pool_task_t *pool_dequeue(rdl_pool_t *pool)
{
    rdl_pool_task_t *t = pool->head;
    pool->head = t->next;
    if (!pool->head)
        pool->tail = NULL;
    pool->depth--;
    t->next = NULL;
    return t;
}

static void run_task(rdl_pool_task_t *t)
{
    rdl_ctx_t *prev = rdl_ctx_set_current(t->ctx);
    t->work(t);
    rdl_ctx_set_current(prev);
}

static void *worker_main(void *arg)
{
    pool_worker_t *w = arg;
    rdl_pool_t *pool = w->pool;
    char name[POOL_PREFIX_MAX + 16];

    snprintf(name, sizeof(name), "%s-%d", pool->name, w->index);
    name[POOL_NAME_MAX - 1] = '\0';
    pthread_setname_np(pthread_self(), name);

    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->mu);
        if (!pool->head)
            break;          /* stopping, and every queued task has been taken */
        rdl_pool_task_t *t = pool_dequeue(pool);
        pool->in_flight++;
        w->busy = 1;
        w->since_ns = t->enqueued_ns;
        pthread_mutex_unlock(&pool->mu);

        run_task(t);

        /* Counted before done() so that done() already sees it in stats. */
        pthread_mutex_lock(&pool->mu);
        pool->in_flight--;
        pool->completed++;
        w->busy = 0;
        pthread_mutex_unlock(&pool->mu);

        if (t->sink)
            sink_push(t->sink, t);
        else
            t->done(t, t->status);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void pool_stop_and_join(rdl_pool_t *pool, int started)
{
    pthread_mutex_lock(&pool->mu);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < started; i++)
        pthread_join(pool->workers[i].tid, NULL);
}

static void pool_destroy(rdl_pool_t *pool)
{
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mu);
    free(pool->workers);
    free(pool);
}

int rdl_pool_new(const rdl_pool_opts_t *opts, rdl_pool_t **out)
{
    static const rdl_pool_opts_t defaults;
    if (!out)
        return RDL_EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->threads < 0 || opts->threads > POOL_THREADS_MAX || opts->queue_max < 0)
        return RDL_EINVAL;

    rdl_pool_t *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return RDL_ENOMEM;
    pool->threads = opts->threads ? opts->threads : POOL_THREADS_DEFAULT;
    pool->queue_max = opts->queue_max ? opts->queue_max : POOL_QUEUE_DEFAULT;
    snprintf(pool->name, sizeof(pool->name), "%s", opts->name ? opts->name : "rdl-pool");
    pool->workers = calloc((size_t)pool->threads, sizeof(*pool->workers));
    if (!pool->workers) {
        free(pool);
        return RDL_ENOMEM;
    }
    if (pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool->workers);
        free(pool);
        return RDL_ENOMEM;
    }
    if (pthread_cond_init(&pool->wake, NULL) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool->workers);
        free(pool);
        return RDL_ENOMEM;
    }
    for (int i = 0; i < pool->threads; i++) {
        pool_worker_t *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            pool_stop_and_join(pool, i);
            pool_destroy(pool);
            return RDL_ENOMEM;
        }
    }
    *out = pool;
    return 0;
}

void rdl_pool_free(rdl_pool_t *pool)
{
    if (!pool)
        return;
    pool_stop_and_join(pool, pool->threads);
    pool_destroy(pool);
}

/* Counts the task against its sink first, so a closing sink refuses it. */
static int sink_hold(rdl_pool_sink_t *sink)
{
    pthread_mutex_lock(&sink->mu);
    int closing = sink->closing;
    if (!closing)
        sink->outstanding++;
    pthread_mutex_unlock(&sink->mu);
    return closing ? RDL_ESTATE : 0;
}

int rdl_pool_submit(rdl_pool_t *pool, rdl_pool_task_t *task, rdl_pool_sink_t *sink)
{
    if (!pool || !task || !task->work || !task->done)
        return RDL_EINVAL;
    if (sink && sink_hold(sink) != 0)
        return RDL_ESTATE;

    task->sink = sink;
    task->status = 0;
    task->next = NULL;
    task->enqueued_ns = rdl_now_ns();

    int rc = 0;
    pthread_mutex_lock(&pool->mu);
    if (pool->stopping) {
        rc = RDL_ESTATE;
    } else if (pool->depth >= (uint64_t)pool->queue_max) {
        pool->rejected++;
        rc = RDL_EBUSY;
    } else {
        pool_enqueue(pool, task);
        pthread_cond_signal(&pool->wake);
    }
    pthread_mutex_unlock(&pool->mu);

    if (rc != 0 && sink)
        sink_release(sink);
    return rc;
}

void rdl_pool_stats(rdl_pool_t *pool, rdl_pool_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    uint64_t now = rdl_now_ns();
    uint64_t oldest = 0;
    if (pool->head)
        oldest = now - pool->head->enqueued_ns;
    for (int i = 0; i < pool->threads; i++) {
        const pool_worker_t *w = &pool->workers[i];
        if (w->busy && now - w->since_ns > oldest)
            oldest = now - w->since_ns;
    }
    out->depth = pool->depth;
    out->in_flight = pool->in_flight;
    out->oldest_age_ns = oldest;
    out->completed = pool->completed;
    out->rejected = pool->rejected;
    out->threads = pool->threads;
    out->queue_max = pool->queue_max;
    pthread_mutex_unlock(&pool->mu);
}
