/*
 * store.h: coursed's SQLite store (WAL mode, DATA_DIR/coursed.db).
 *
 * One store object per process. Every thread that calls into it (the pool's
 * workers) gets its own connection, opened on first use with its prepared
 * statements; store_close() closes all of them, so call it only once no
 * thread uses the store any more (after the server, and its pool, stopped).
 *
 *   store_t *st;
 *   if (store_open("./var", true, &st, &err)) die(&err);
 *   store_get_course(st, 3, print_course, NULL);     // on any thread
 *   store_close(st);
 *
 * Thread-safety: store_open/store_close from one controlling thread; every
 * other function from any thread, concurrently.
 */
#ifndef COURSED_STORE_H
#define COURSED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "redline/util.h"

typedef struct store store_t;

/* Bounds of the API's inputs, checked by the handlers before they reach the store. */
#define STORE_STUDENT_MAX 200
#define STORE_IDEM_KEY_MAX 255

/* A course row. Strings point into SQLite's memory: valid during the callback only. */
typedef struct store_course {
    int64_t id;
    const char *code;
    size_t code_len;
    const char *title;
    size_t title_len;
    int64_t capacity;
    int64_t seats_taken;
} store_course_t;

/* An enrollment row; strings as above. */
typedef struct store_enrollment {
    int64_t id;
    int64_t course_id;
    const char *student;
    size_t student_len;
    const char *created_at;     /* RFC 3339, UTC, milliseconds */
    size_t created_at_len;
} store_enrollment_t;

typedef void (*store_course_fn)(const store_course_t *c, void *arg);
typedef void (*store_enrollment_fn)(const store_enrollment_t *e, void *arg);

/*
 * Creates dir/coursed.db if needed, switches it to WAL, migrates the schema
 * (PRAGMA user_version) and, when seed is true and there are no courses,
 * inserts the six reference courses. The directory must exist.
 * Errors: RDL_EIO (err names the file and SQLite's message), RDL_ENOMEM.
 */
int store_open(const char *dir, bool seed, store_t **out, rdl_error_t *err);
/* Closes every thread's connection and frees the store. NULL is fine. */
void store_close(store_t *st);

/* Calls fn for course id: 0, RDL_ENOENT, RDL_ETIMEDOUT or RDL_EIO. */
int store_get_course(store_t *st, int64_t id, store_course_fn fn, void *arg);
/* Calls fn for every course in id order: 0, RDL_ETIMEDOUT or RDL_EIO. */
int store_list_courses(store_t *st, store_course_fn fn, void *arg);
/* Calls fn for enrollment id: 0, RDL_ENOENT, RDL_ETIMEDOUT or RDL_EIO. */
int store_get_enrollment(store_t *st, int64_t id, store_enrollment_fn fn, void *arg);

/* JSON objects of the API, written into b. */
void store_course_json(rdl_buf_t *b, const store_course_t *c);
void store_enrollment_json(rdl_buf_t *b, const store_enrollment_t *e);

typedef struct store_enroll_in {
    int64_t course_id;
    const char *student;
    size_t student_len;
    const char *idem_key;       /* NULL: no Idempotency-Key */
    size_t idem_key_len;
    uint64_t deadline_ns;       /* monotonic; SQLITE_BUSY is retried until then (0: 5 s) */
} store_enroll_in_t;

typedef struct store_enroll_out {
    int status;                 /* HTTP status: 201, 404 or 409 (or 422 on key reuse) */
    int64_t enrollment_id;      /* when status is 201 */
    bool replayed;              /* answered from the idempotency record */
    rdl_buf_t body;             /* the JSON response body; caller frees */
} store_enroll_out_t;

/*
 * Enrolls a student in one BEGIN IMMEDIATE transaction: idempotency lookup,
 * seat check, seats_taken + 1, new enrollment, idempotency record, COMMIT.
 * Any failure rolls everything back. With an idempotency key the outcome
 * (201, 404 or 409 and its body) is recorded, and a retry with the same key
 * and the same course and student gets it back (replayed) without taking a
 * seat; the same key with another request gets 422 idempotency_key_reused.
 * out->body is initialised here. Returns 0 when out is filled, else
 * RDL_ETIMEDOUT (still busy at the deadline), RDL_ENOSPC (the disk, a quota
 * or the file size limit is full: nothing was written), RDL_EIO or RDL_ENOMEM.
 */
int store_enroll(store_t *st, const store_enroll_in_t *in, store_enroll_out_t *out);

/* Whether the last write found no space (and no write has committed since). Any thread. */
bool store_full(store_t *st);
/*
 * One small write that changes nothing (a course row rewritten as it is, in
 * its own transaction): 0 when it committed, which ends the full state (the
 * store_on_full listener hears it); RDL_ENOSPC while there is still no room;
 * RDL_ENOENT when there is no course to rewrite; RDL_EIO, RDL_ETIMEDOUT or
 * RDL_ENOMEM. Blocks: call on a pool worker.
 */
int store_probe_space(store_t *st);

/*
 * Told when the store turns full (a write failed with SQLITE_FULL, or an I/O
 * error whose errno is ENOSPC, EDQUOT or EFBIG; cause is SQLite's message and
 * the system's) and when it is no longer full (the next write that commits;
 * cause NULL): once per change, not per request, on the thread of that write.
 */
typedef void (*store_full_fn)(bool full, const char *cause, void *arg);
/* Sets the one listener (NULL: none). Before the store is used from threads. */
void store_on_full(store_t *st, store_full_fn fn, void *arg);

#endif
