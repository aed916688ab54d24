/*
 * handlers.h: coursed's HTTP API on the redline runtime.
 *
 *   GET  /ping                          200 "pong\n" (no pool, no database)
 *   GET  /v1/courses                    200 {"courses":[...]}
 *   GET  /v1/courses/{id}               200 course | 400 invalid_id | 404 course_not_found
 *   POST /v1/courses/{id}/enrollments   201 enrollment + Location | 400 | 404 | 409 | 415 | 422
 *   GET  /v1/enrollments/{id}           200 enrollment | 400 invalid_id | 404 enrollment_not_found
 *
 *   handlers_register(srv, store, &err);   // before rdl_server_run
 *
 * Database work runs on the server's pool (rdl_req_offload); the store must
 * outlive the server. Thread-safety: call from the main thread.
 */
#ifndef COURSED_HANDLERS_H
#define COURSED_HANDLERS_H

#include "redline/runtime.h"
#include "store.h"

/* Registers every route: 0 or the runtime's error (err names the route). */
int handlers_register(rdl_server_t *srv, store_t *st, rdl_error_t *err);

#endif
