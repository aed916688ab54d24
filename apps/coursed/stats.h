/*
 * stats.h: coursed's business metrics, on the default registry (so they come
 * out on the admin /metrics with the runtime's) and in /debug/vars:
 *
 *   coursed_enrollments_total{result}           every POST .../enrollments, by outcome
 *   coursed_course_seats_remaining{course}      read from the store at scrape time
 *   coursed_course_capacity{course}
 *
 *   stats_init(store, &err);  ...  stats_enrollment(STATS_CREATED);  ...  stats_close();
 *
 * Thread-safety: stats_init/stats_close from the main thread (close after the
 * server stopped, before the store closes); stats_enrollment from any thread.
 */
#ifndef COURSED_STATS_H
#define COURSED_STATS_H

#include "redline/util.h"
#include "store.h"

typedef enum stats_result {
    STATS_CREATED,              /* 201 */
    STATS_REPLAYED,             /* answered again from the idempotency record */
    STATS_INVALID,              /* 400 / 415 / 422 on the payload */
    STATS_NOT_FOUND,            /* 404 */
    STATS_FULL,                 /* 409 course_full */
    STATS_KEY_REUSED,           /* 422 idempotency_key_reused */
    STATS_UNAVAILABLE,          /* 503: busy database or deadline */
    STATS_ERROR,                /* 500 */
    STATS_NRESULTS
} stats_result_t;

int stats_init(store_t *st, rdl_error_t *err);
void stats_enrollment(stats_result_t r);
void stats_close(void);

#endif
