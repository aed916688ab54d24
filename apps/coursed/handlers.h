/*
 * handlers.h: coursed's HTTP API on the redline runtime.
 *
 *   GET  /ping                          200 "pong\n" (no pool, no database)
 *   GET  /v1/courses                    200 {"courses":[...]}
 *   GET  /v1/courses/{id}               200 course | 400 invalid_id | 404 course_not_found
 *                                       (+ "suggestions" from the weak `recommend` upstream
 *                                       when configured; [] and X-Redline-Degraded when it fails)
 *   POST /v1/courses/{id}/enrollments   201 enrollment + Location | 400 | 404 | 409 | 415 | 422
 *                                       (the strong `payment` upstream authorises first when
 *                                       configured: 402 payment_declined, 503 when it fails;
 *                                       503 storage_full + Retry-After when the disk is full,
 *                                       and /readyz says not_ready "storage_full" until a
 *                                       write succeeds again)
 *   GET  /v1/enrollments/{id}           200 enrollment | 400 invalid_id | 404 enrollment_not_found
 *
 *   handlers_t h = { .st = store, .recommend = true, .payment = false };
 *   handlers_register(srv, &h, &err);   // before rdl_server_run; h outlives srv
 *
 * Database work runs on the server's pool (rdl_req_offload); the store must
 * outlive the server. Thread-safety: call from the main thread.
 */
#ifndef COURSED_HANDLERS_H
#define COURSED_HANDLERS_H

#include "redline/runtime.h"
#include "store.h"

typedef struct handlers {
    store_t *st;
    bool recommend;             /* the `recommend` upstream is configured */
    bool payment;               /* the `payment` upstream is configured */
    uint64_t space_probe_ms;    /* while the store is full, a write is tried this often */
} handlers_t;

/* Registers every route: 0 or the runtime's error (err names the route). */
int handlers_register(rdl_server_t *srv, const handlers_t *h, rdl_error_t *err);

#endif
