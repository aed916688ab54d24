/*
 * pool.h: a bounded work queue with its own worker threads, for blocking work
 * (SQLite, CPU-heavy code) that must not run on an I/O thread.
 *
 * A task runs work() on a worker; done() then runs on the loop of the sink the
 * task was submitted with (the submitting I/O thread), so results go back to
 * the connection that asked without locks. The queue is bounded: a full queue
 * refuses work (RDL_EBUSY) instead of growing; the runtime answers 503.
 * Depth, in-flight count and the oldest task's age are the HPA signals.
 *
 *   rdl_pool_opts_t o = { .threads = 4, .queue_max = 1024 };
 *   rdl_pool_t *pool;  rdl_pool_new(&o, &pool);
 *   task->work = query_db; task->done = send_reply; task->data = req;
 *   if (rdl_pool_submit(pool, task, sink) == RDL_EBUSY) reply_503(req);
 *   ...  rdl_pool_free(pool);   // runs what was queued, joins workers
 *
 * Thread-safety: rdl_pool_submit and rdl_pool_stats are safe from any thread.
 * rdl_pool_new/free from one controlling thread. A sink is created, and freed,
 * on the thread that runs its loop.
 */
#ifndef REDLINE_POOL_H
#define REDLINE_POOL_H

#include <stdint.h>
#include <stddef.h>
#include <uv.h>
#include "redline/common.h"
#include "redline/util.h"
#include "redline/ctx.h"

typedef struct rdl_pool rdl_pool_t;
typedef struct rdl_pool_sink rdl_pool_sink_t;
typedef struct rdl_pool_task rdl_pool_task_t;

/* Runs on a worker thread. May block. */
typedef void (*rdl_pool_work_fn)(rdl_pool_task_t *task);
/*
 * Runs once per accepted task, after work(), with status 0 (work ran; the pool
 * runs every task it accepted, even while shutting down). With a sink it runs
 * on the sink's loop thread, in the order the tasks finished; without a sink,
 * or when the sink was freed before the task finished, it runs on the worker
 * thread right after work(). It may free the task and may submit new tasks.
 */
typedef void (*rdl_pool_done_fn)(rdl_pool_task_t *task, int status);

/* Caller-owned; must stay valid until done() has been called. */
struct rdl_pool_task {
    rdl_pool_work_fn work;
    rdl_pool_done_fn done;
    void *data;                 /* for the caller */
    rdl_ctx_t *ctx;             /* optional: made current on the worker during work() */
    /* private to the pool */
    rdl_pool_task_t *next;
    rdl_pool_sink_t *sink;
    uint64_t enqueued_ns;
    int status;
};

typedef struct rdl_pool_opts {
    int threads;                /* worker threads; 0 = 4 */
    int queue_max;              /* queued (not yet running) tasks allowed; 0 = 1024 */
    const char *name;           /* thread name prefix; NULL = "rdl-pool" */
} rdl_pool_opts_t;

typedef struct rdl_pool_stats {
    uint64_t depth;             /* queued, not yet running */
    uint64_t in_flight;         /* running now */
    uint64_t oldest_age_ns;     /* time since submit of the oldest queued or running
                                   task; 0 if none */
    uint64_t completed;         /* tasks whose work ran, since start */
    uint64_t rejected;          /* submits refused because the queue was full */
    int threads;
    int queue_max;
} rdl_pool_stats_t;

/*
 * Starts the workers. opts may be NULL (defaults). 0, RDL_EINVAL (threads
 * negative or above 1024, queue_max negative) or RDL_ENOMEM (no memory or no
 * threads to be had).
 */
RDL_EXTERN int rdl_pool_new(const rdl_pool_opts_t *opts, rdl_pool_t **out);
/*
 * Shuts the pool down. From then on submits fail with RDL_ESTATE; the workers
 * run every task already queued or running, then exit, and free joins them and
 * releases the pool. When it returns, work() has run for every accepted task
 * and each done() has either run (tasks without a sink, or whose sink was
 * freed) or waits in its sink: it runs when that sink's loop runs next, or
 * inside rdl_pool_sink_free. So whoever owns each sink must run its loop (or
 * free the sink) after this; free never waits for a loop, and it is fine to
 * call it on a sink's own loop thread. Blocks while queued tasks run. Not from
 * a worker (work or a sink-less done). No submit may start after it returns.
 * NULL is fine.
 */
RDL_EXTERN void rdl_pool_free(rdl_pool_t *pool);

/*
 * Queues task; work and done must be set. sink NULL: done runs on the worker.
 * 0, RDL_EBUSY (queue full: counted in rejected), RDL_ESTATE (pool shutting
 * down, or sink being freed) or RDL_EINVAL. On error the pool keeps no
 * reference to task and done() is not called.
 */
RDL_EXTERN int rdl_pool_submit(rdl_pool_t *pool, rdl_pool_task_t *task, rdl_pool_sink_t *sink);
/* A consistent snapshot, taken under the pool's lock. */
RDL_EXTERN void rdl_pool_stats(rdl_pool_t *pool, rdl_pool_stats_t *out);

/*
 * A completion sink bound to a libuv loop (one per I/O thread). Its handle is
 * referenced: the loop keeps running until the sink is freed. 0, RDL_EINVAL or
 * RDL_ENOMEM.
 */
RDL_EXTERN int rdl_pool_sink_new(uv_loop_t *loop, rdl_pool_sink_t **out);
/*
 * Closes the sink; call on its loop thread. Tasks that finished and wait for
 * the loop get their done() here, before this returns, on this thread. Tasks
 * submitted with the sink that are still queued or running get their done() on
 * the worker thread that ran them (the runtime avoids that by freeing sinks
 * once nothing is pending). The handle closes on the loop's next run, so the
 * loop must run once more; the memory goes when the handle has closed and the
 * last such task is done. NULL is fine.
 */
RDL_EXTERN void rdl_pool_sink_free(rdl_pool_sink_t *sink);

#endif
