/*
 * store.c: coursed's data on SQLite. It exists so that the handlers see a few
 * calls with plain results while the rules that keep the data right live in
 * one place: the schema and its migrations, one connection per thread with its
 * statements prepared once (the read path never re-prepares), and enrollment
 * as one BEGIN IMMEDIATE transaction so that a seat, its enrollment and the
 * idempotency record are written together or not at all.
 */
#include "store.h"

#include <sqlite3.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_FILE "coursed.db"
#define STORE_BUSY_MS 5000
#define NS_PER_MS 1000000ull

/* The statements every connection prepares once, indexed by this enum. */
enum {
    Q_GET_COURSE,
    Q_LIST_COURSES,
    Q_GET_ENROLLMENT,
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_IDEM_GET,
    Q_SEATS,
    Q_TAKE_SEAT,
    Q_ADD_ENROLLMENT,
    Q_IDEM_PUT,
    Q_PROBE,
    Q_COUNT
};

static const char *const query_sql[Q_COUNT] = {
    [Q_GET_COURSE] = "SELECT id, code, title, capacity, seats_taken FROM courses WHERE id = ?1",
    [Q_LIST_COURSES] = "SELECT id, code, title, capacity, seats_taken FROM courses ORDER BY id",
    [Q_GET_ENROLLMENT] = "SELECT id, course_id, student, created_at FROM enrollments WHERE id = ?1",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_IDEM_GET] = "SELECT course_id, request_hash, status, body, enrollment_id "
                   "FROM idempotency WHERE key = ?1",
    [Q_SEATS] = "SELECT capacity, seats_taken FROM courses WHERE id = ?1",
    [Q_TAKE_SEAT] = "UPDATE courses SET seats_taken = seats_taken + 1 "
                    "WHERE id = ?1 AND seats_taken < capacity",
    [Q_ADD_ENROLLMENT] = "INSERT INTO enrollments(course_id, student, created_at) "
                         "VALUES (?1, ?2, ?3)",
    [Q_IDEM_PUT] = "INSERT INTO idempotency(key, course_id, request_hash, status, body, "
                   "enrollment_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* rewrites one row as it is: a real write (a WAL frame, synced) that changes nothing */
    [Q_PROBE] = "UPDATE courses SET seats_taken = seats_taken "
                "WHERE id = (SELECT min(id) FROM courses)",
};

/*
 * migrations[i] takes the schema from version i to i + 1 (PRAGMA user_version).
 * A new version appends a step; a released step never changes.
 */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE courses ("
    "  id INTEGER PRIMARY KEY,"
    "  code TEXT NOT NULL UNIQUE,"
    "  title TEXT NOT NULL,"
    "  capacity INTEGER NOT NULL CHECK (capacity >= 0),"
    "  seats_taken INTEGER NOT NULL DEFAULT 0"
    "    CHECK (seats_taken >= 0 AND seats_taken <= capacity));"
    "CREATE TABLE enrollments ("
    "  id INTEGER PRIMARY KEY,"
    "  course_id INTEGER NOT NULL REFERENCES courses(id),"
    "  student TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE INDEX enrollments_course ON enrollments(course_id);"
    "CREATE TABLE idempotency ("
    "  key TEXT PRIMARY KEY,"
    "  course_id INTEGER NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  enrollment_id INTEGER,"
    "  created_at TEXT NOT NULL);",
};
#define STORE_SCHEMA_VERSION ((int64_t)(sizeof(migrations) / sizeof(migrations[0])))

/* The reference courses; the integration tests rely on exactly these. */
static const char seed_sql[] =
    "INSERT INTO courses(id, code, title, capacity) VALUES"
    " (1, 'C101', 'Intro to C', 120),"
    " (2, 'SYS201', 'Systems Programming', 80),"
    " (3, 'OBS301', 'Distributed Tracing', 50),"
    " (4, 'SRE210', 'SRE Fundamentals', 60),"
    " (5, 'KRN499', 'Kernel Hacking Seminar', 3),"
    " (6, 'CMP330', 'Compilers', 40);";

typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    struct conn *next;
    /* the failed write's error, kept before ROLLBACK overwrites it */
    int fail_errno;
    char fail_msg[128];
} conn_t;

struct store {
    char *path;
    uint64_t generation;        /* tells this store's connections from a closed one's */
    pthread_mutex_t mu;         /* guards conns (taken once per thread, at open) */
    conn_t *conns;
    atomic_bool full;           /* the last write found no space (store_on_full) */
    store_full_fn on_full;
    void *on_full_arg;
};

/*
 * The calling thread's connection. The generation check makes a pointer left
 * over from a store that was closed (tests open several) harmless.
 */
static _Thread_local struct {
    uint64_t generation;
    conn_t *conn;
} tls_conn;

static atomic_uint_fast64_t store_generations;

static void conn_free(conn_t *c)
{
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(c->q[i]);
    sqlite3_close(c->db);
    free(c);
}

static void report(const store_t *st, sqlite3 *db, const char *what)
{
    fprintf(stderr, "coursed: store %s: %s: %s\n", st->path, what,
            db ? sqlite3_errmsg(db) : "out of memory");
}

static conn_t *conn_open(store_t *st)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(st->path, &c->db, flags, NULL) != SQLITE_OK) {
        report(st, c->db, "open");
        goto fail;
    }
    sqlite3_busy_timeout(c->db, STORE_BUSY_MS);
    /* FULL: an enrollment answered 201 survives a power cut, not only a crash. */
    if (sqlite3_exec(c->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        report(st, c->db, "pragmas");
        goto fail;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(c->db, query_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &c->q[i], NULL) != SQLITE_OK) {
            report(st, c->db, query_sql[i]);
            goto fail;
        }
    }
    return c;
fail:
    conn_free(c);
    return NULL;
}

/* The calling thread's connection to st, opened (and registered) on first use. */
static conn_t *conn_get(store_t *st)
{
    if (tls_conn.conn && tls_conn.generation == st->generation)
        return tls_conn.conn;
    conn_t *c = conn_open(st);
    if (!c)
        return NULL;
    pthread_mutex_lock(&st->mu);
    c->next = st->conns;
    st->conns = c;
    pthread_mutex_unlock(&st->mu);
    tls_conn.generation = st->generation;
    tls_conn.conn = c;
    return c;
}

static int exec_one_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int fail_db(store_t *st, sqlite3 *db, rdl_error_t *err, const char *what)
{
    return rdl_error_set(err, RDL_EIO, 0, 0, "", "%s: %s: %s", st->path, what,
                         db ? sqlite3_errmsg(db) : "out of memory");
}

/* Schema migration and seeding, in one transaction on a connection of their own. */
static int store_setup(store_t *st, bool seed, rdl_error_t *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = RDL_EIO;
    int64_t version = 0, courses = 0;
    char mode[16] = "";

    if (sqlite3_open_v2(st->path, &db, flags, NULL) != SQLITE_OK) {
        rc = fail_db(st, db, err, "cannot open database");
        goto out;
    }
    sqlite3_busy_timeout(db, STORE_BUSY_MS);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK) {
        rc = fail_db(st, db, err, "journal_mode");
        goto out;
    }
    if (sqlite3_step(s) == SQLITE_ROW)
        snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (strcmp(mode, "wal") != 0) {
        rc = rdl_error_set(err, RDL_EIO, 0, 0, "", "%s: cannot switch to WAL (journal mode \"%s\")",
                           st->path, mode);
        goto out;
    }
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail_db(st, db, err, "begin");
        goto out;
    }
    if (exec_one_int(db, "PRAGMA user_version", &version) != 0) {
        rc = fail_db(st, db, err, "user_version");
        goto rollback;
    }
    if (version > STORE_SCHEMA_VERSION) {
        rc = rdl_error_set(err, RDL_EIO, 0, 0, "", "%s: schema version %lld is newer than "
                           "this coursed understands (%lld)", st->path, (long long)version,
                           (long long)STORE_SCHEMA_VERSION);
        goto rollback;
    }
    for (; version < STORE_SCHEMA_VERSION; version++) {
        char sql[48];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)version + 1);
        if (sqlite3_exec(db, migrations[version], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            rc = fail_db(st, db, err, "schema migration");
            goto rollback;
        }
    }
    if (exec_one_int(db, "SELECT count(*) FROM courses", &courses) != 0) {
        rc = fail_db(st, db, err, "count courses");
        goto rollback;
    }
    if (seed && courses == 0 && sqlite3_exec(db, seed_sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail_db(st, db, err, "seed");
        goto rollback;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail_db(st, db, err, "commit");
        goto rollback;
    }
    rc = 0;
    goto out;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_close(db);
    return rc;
}

int store_open(const char *dir, bool seed, store_t **out, rdl_error_t *err)
{
    *out = NULL;
    store_t *st = calloc(1, sizeof(*st));
    size_t n = strlen(dir) + sizeof("/" STORE_FILE);
    if (!st || !(st->path = malloc(n))) {
        free(st);
        return rdl_error_set(err, RDL_ENOMEM, 0, 0, "", "out of memory");
    }
    snprintf(st->path, n, "%s/%s", dir, STORE_FILE);
    st->generation = atomic_fetch_add(&store_generations, 1) + 1;
    pthread_mutex_init(&st->mu, NULL);
    int rc = store_setup(st, seed, err);
    if (rc) {
        store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    conn_t *c = st->conns;
    while (c) {
        conn_t *next = c->next;
        conn_free(c);
        c = next;
    }
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st);
}

static int map_rc(int rc)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return RDL_ETIMEDOUT;
    return rc == SQLITE_NOMEM ? RDL_ENOMEM : RDL_EIO;
}

void store_on_full(store_t *st, store_full_fn fn, void *arg)
{
    st->on_full = fn;
    st->on_full_arg = arg;
}

/*
 * Whether a failed write means no space: SQLITE_FULL (the VFS saw ENOSPC), or
 * an I/O error whose errno says the same in other words: a quota (EDQUOT) or
 * the process's file size limit (EFBIG, RLIMIT_FSIZE with SIGXFSZ ignored).
 */
static bool no_space(const conn_t *c, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL)
        return true;
    if ((rc & 0xff) != SQLITE_IOERR)
        return false;
    return c->fail_errno == ENOSPC || c->fail_errno == EDQUOT || c->fail_errno == EFBIG;
}

/* Records the store's state; the listener hears of a change only. */
static void set_full(store_t *st, const conn_t *c, bool full)
{
    if (atomic_load(&st->full) == full || atomic_exchange(&st->full, full) == full)
        return;
    if (!st->on_full)
        return;
    if (!full) {
        st->on_full(false, NULL, st->on_full_arg);
        return;
    }
    char cause[256];
    int e = c->fail_errno;
    snprintf(cause, sizeof(cause), "%s: %s%s%s%s", st->path, c->fail_msg,
             e ? " (" : "", e ? strerror(e) : "", e ? ")" : "");
    st->on_full(true, cause, st->on_full_arg);
}

static void read_course(sqlite3_stmt *s, store_course_t *c)
{
    c->id = sqlite3_column_int64(s, 0);
    c->code = (const char *)sqlite3_column_text(s, 1);
    c->code_len = (size_t)sqlite3_column_bytes(s, 1);
    c->title = (const char *)sqlite3_column_text(s, 2);
    c->title_len = (size_t)sqlite3_column_bytes(s, 2);
    c->capacity = sqlite3_column_int64(s, 3);
    c->seats_taken = sqlite3_column_int64(s, 4);
}

int store_get_course(store_t *st, int64_t id, store_course_fn fn, void *arg)
{
    conn_t *c = conn_get(st);
    if (!c)
        return RDL_EIO;
    sqlite3_stmt *s = c->q[Q_GET_COURSE];
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        store_course_t course;
        read_course(s, &course);
        fn(&course, arg);
    } else if (rc != SQLITE_DONE) {
        report(st, c->db, "get course");
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? RDL_ENOENT : map_rc(rc);
}

int store_list_courses(store_t *st, store_course_fn fn, void *arg)
{
    conn_t *c = conn_get(st);
    if (!c)
        return RDL_EIO;
    sqlite3_stmt *s = c->q[Q_LIST_COURSES];
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_course_t course;
        read_course(s, &course);
        fn(&course, arg);
    }
    if (rc != SQLITE_DONE)
        report(st, c->db, "list courses");
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static void read_enrollment(sqlite3_stmt *s, store_enrollment_t *e)
{
    e->id = sqlite3_column_int64(s, 0);
    e->course_id = sqlite3_column_int64(s, 1);
    e->student = (const char *)sqlite3_column_text(s, 2);
    e->student_len = (size_t)sqlite3_column_bytes(s, 2);
    e->created_at = (const char *)sqlite3_column_text(s, 3);
    e->created_at_len = (size_t)sqlite3_column_bytes(s, 3);
}

int store_get_enrollment(store_t *st, int64_t id, store_enrollment_fn fn, void *arg)
{
    conn_t *c = conn_get(st);
    if (!c)
        return RDL_EIO;
    sqlite3_stmt *s = c->q[Q_GET_ENROLLMENT];
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        store_enrollment_t e;
        read_enrollment(s, &e);
        fn(&e, arg);
    } else if (rc != SQLITE_DONE) {
        report(st, c->db, "get enrollment");
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? RDL_ENOENT : map_rc(rc);
}

void store_course_json(rdl_buf_t *b, const store_course_t *c)
{
    rdl_buf_puts(b, "{\"id\":");
    rdl_buf_put_i64(b, c->id);
    rdl_buf_puts(b, ",\"code\":");
    rdl_json_str(b, c->code, c->code_len);
    rdl_buf_puts(b, ",\"title\":");
    rdl_json_str(b, c->title, c->title_len);
    rdl_buf_puts(b, ",\"capacity\":");
    rdl_buf_put_i64(b, c->capacity);
    rdl_buf_puts(b, ",\"seats_taken\":");
    rdl_buf_put_i64(b, c->seats_taken);
    rdl_buf_puts(b, ",\"seats_remaining\":");
    rdl_buf_put_i64(b, c->capacity - c->seats_taken);
    rdl_buf_putc(b, '}');
}

void store_enrollment_json(rdl_buf_t *b, const store_enrollment_t *e)
{
    rdl_buf_puts(b, "{\"id\":");
    rdl_buf_put_i64(b, e->id);
    rdl_buf_puts(b, ",\"course_id\":");
    rdl_buf_put_i64(b, e->course_id);
    rdl_buf_puts(b, ",\"student\":");
    rdl_json_str(b, e->student, e->student_len);
    rdl_buf_puts(b, ",\"created_at\":");
    rdl_json_str(b, e->created_at, e->created_at_len);
    rdl_buf_putc(b, '}');
}

/* {"code":..,"message":..}: the same shape rdl_resp_error sends. */
static void error_json(rdl_buf_t *b, const char *code, const char *message)
{
    rdl_buf_puts(b, "{\"code\":");
    rdl_json_str(b, code, strlen(code));
    rdl_buf_puts(b, ",\"message\":");
    rdl_json_str(b, message, strlen(message));
    rdl_buf_putc(b, '}');
}

/* "2024-05-01T12:34:56.789Z" */
static void rfc3339_now(char out[32])
{
    uint64_t ns = rdl_wall_ns();
    time_t secs = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ns / NS_PER_MS % 1000));
}

/*
 * What a retry must repeat to be the same request: the course and the
 * student. FNV-1a is enough: the key already scopes the comparison to one
 * client's retries, this only tells a changed request from a repeated one.
 */
static void request_hash(const store_enroll_in_t *in, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    char id[24];
    int idn = snprintf(id, sizeof(id), "%lld", (long long)in->course_id);
    for (int i = 0; i <= idn; i++) {        /* includes the NUL as a separator */
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ull;
    }
    for (size_t i = 0; i < in->student_len; i++) {
        h ^= (unsigned char)in->student[i];
        h *= 0x100000001b3ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/*
 * The system's errno of the calling thread's last failed step. SQLite's own
 * (sqlite3_system_errno) is read from errno later, after other calls, and
 * comes back 0 for a failed WAL write: right after the step, errno is still
 * the failed write's (meaningful only for SQLITE_IOERR and SQLITE_FULL).
 */
static _Thread_local int step_errno;

static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        int e = errno, sys = sqlite3_system_errno(sqlite3_db_handle(s));
        step_errno = sys ? sys : e;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Looks the key up: SQLITE_ROW with out filled (replay or reuse), SQLITE_DONE when new. */
static int idem_lookup(conn_t *c, const store_enroll_in_t *in, const char *hash,
                       store_enroll_out_t *out)
{
    sqlite3_stmt *s = c->q[Q_IDEM_GET];
    sqlite3_bind_text(s, 1, in->idem_key, (int)in->idem_key_len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *stored_hash = (const char *)sqlite3_column_text(s, 1);
        if (sqlite3_column_int64(s, 0) != in->course_id || !stored_hash ||
            strcmp(stored_hash, hash) != 0) {
            out->status = 422;
            error_json(&out->body, "idempotency_key_reused", "this Idempotency-Key was "
                       "used with a different request; use a new key for a new request");
        } else {
            out->status = sqlite3_column_int(s, 2);
            out->enrollment_id = sqlite3_column_int64(s, 4);
            out->replayed = true;
            rdl_buf_put(&out->body, sqlite3_column_text(s, 3), (size_t)sqlite3_column_bytes(s, 3));
        }
    }
    sqlite3_reset(s);
    return rc;
}

static void course_full(store_enroll_out_t *out, int64_t id, int64_t capacity)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "course %lld is full (%lld seats)", (long long)id,
             (long long)capacity);
    out->status = 409;
    error_json(&out->body, "course_full", msg);
}

/* The outcome of a new request (without committing): SQLITE_OK or SQLite's error. */
static int enroll_new(conn_t *c, const store_enroll_in_t *in, store_enroll_out_t *out)
{
    sqlite3_stmt *s = c->q[Q_SEATS];
    sqlite3_bind_int64(s, 1, in->course_id);
    int rc = sqlite3_step(s);
    int64_t capacity = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    int64_t taken = rc == SQLITE_ROW ? sqlite3_column_int64(s, 1) : 0;
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no course with id %lld", (long long)in->course_id);
        out->status = 404;
        error_json(&out->body, "course_not_found", msg);
        return SQLITE_OK;
    }
    if (rc != SQLITE_ROW)
        return rc;
    if (taken >= capacity) {
        course_full(out, in->course_id, capacity);
        return SQLITE_OK;
    }
    s = c->q[Q_TAKE_SEAT];
    sqlite3_bind_int64(s, 1, in->course_id);
    if ((rc = step_done(s)) != SQLITE_OK)
        return rc;
    if (sqlite3_changes(c->db) != 1) {      /* the UPDATE's own guard; the lock makes it rare */
        course_full(out, in->course_id, capacity);
        return SQLITE_OK;
    }

    store_enrollment_t e = {
        .course_id = in->course_id, .student = in->student, .student_len = in->student_len,
    };
    char created[32];
    rfc3339_now(created);
    e.created_at = created;
    e.created_at_len = strlen(created);
    s = c->q[Q_ADD_ENROLLMENT];
    sqlite3_bind_int64(s, 1, in->course_id);
    sqlite3_bind_text(s, 2, in->student, (int)in->student_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, created, (int)e.created_at_len, SQLITE_STATIC);
    if ((rc = step_done(s)) != SQLITE_OK)
        return rc;
    e.id = sqlite3_last_insert_rowid(c->db);
    out->status = 201;
    out->enrollment_id = e.id;
    store_enrollment_json(&out->body, &e);
    return SQLITE_OK;
}

static int idem_store(conn_t *c, const store_enroll_in_t *in, const char *hash,
                      const store_enroll_out_t *out)
{
    char created[32];
    rfc3339_now(created);
    sqlite3_stmt *s = c->q[Q_IDEM_PUT];
    sqlite3_bind_text(s, 1, in->idem_key, (int)in->idem_key_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, in->course_id);
    sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, out->status);
    sqlite3_bind_text(s, 5, out->body.data, (int)out->body.len, SQLITE_STATIC);
    if (out->status == 201)
        sqlite3_bind_int64(s, 6, out->enrollment_id);
    else
        sqlite3_bind_null(s, 6);
    sqlite3_bind_text(s, 7, created, -1, SQLITE_STATIC);
    return step_done(s);
}

/* One attempt of the transaction: SQLITE_OK when committed (or nothing to write). */
static int enroll_txn(conn_t *c, const store_enroll_in_t *in, const char *hash,
                      store_enroll_out_t *out)
{
    int rc = step_done(c->q[Q_BEGIN]);
    if (rc != SQLITE_OK)
        return rc;
    if (in->idem_key) {
        rc = idem_lookup(c, in, hash, out);
        if (rc == SQLITE_ROW) {             /* answered from the record: nothing to write */
            step_done(c->q[Q_ROLLBACK]);
            return SQLITE_OK;
        }
        if (rc != SQLITE_DONE)
            goto rollback;
    }
    if ((rc = enroll_new(c, in, out)) != SQLITE_OK)
        goto rollback;
    if (out->body.oom) {
        rc = SQLITE_NOMEM;
        goto rollback;
    }
    if (in->idem_key && (rc = idem_store(c, in, hash, out)) != SQLITE_OK)
        goto rollback;
    if ((rc = step_done(c->q[Q_COMMIT])) == SQLITE_OK)
        return SQLITE_OK;
rollback:
    c->fail_errno = step_errno;
    snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", sqlite3_errmsg(c->db));
    if (!sqlite3_get_autocommit(c->db))
        step_done(c->q[Q_ROLLBACK]);
    return rc;
}

bool store_full(store_t *st)
{
    return atomic_load(&st->full);
}

int store_probe_space(store_t *st)
{
    conn_t *c = conn_get(st);
    if (!c)
        return RDL_EIO;
    int64_t changes = sqlite3_total_changes64(c->db);
    int rc = step_done(c->q[Q_BEGIN]);
    if (rc == SQLITE_OK && (rc = step_done(c->q[Q_PROBE])) == SQLITE_OK)
        rc = step_done(c->q[Q_COMMIT]);
    if (rc != SQLITE_OK) {
        c->fail_errno = step_errno;
        snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", sqlite3_errmsg(c->db));
        if (!sqlite3_get_autocommit(c->db))
            step_done(c->q[Q_ROLLBACK]);
        return no_space(c, rc) ? RDL_ENOSPC : map_rc(rc);
    }
    if (sqlite3_total_changes64(c->db) == changes)
        return RDL_ENOENT;              /* no course to rewrite: nothing was written */
    set_full(st, c, false);
    return 0;
}

int store_enroll(store_t *st, const store_enroll_in_t *in, store_enroll_out_t *out)
{
    rdl_buf_init(&out->body);
    conn_t *c = conn_get(st);
    if (!c)
        return RDL_EIO;
    char hash[17];
    request_hash(in, hash);
    uint64_t deadline = in->deadline_ns ? in->deadline_ns
                                        : rdl_now_ns() + STORE_BUSY_MS * NS_PER_MS;
    for (;;) {
        uint64_t now = rdl_now_ns();
        if (now >= deadline)
            return RDL_ETIMEDOUT;
        int64_t changes = sqlite3_total_changes64(c->db);
        /* Wait for the write lock no longer than the request may. */
        uint64_t left_ms = (deadline - now) / NS_PER_MS;
        sqlite3_busy_timeout(c->db, left_ms < 1 ? 1 : left_ms > STORE_BUSY_MS ? STORE_BUSY_MS
                                                                             : (int)left_ms);
        out->status = 0;
        out->enrollment_id = 0;
        out->replayed = false;
        rdl_buf_reset(&out->body);
        int rc = enroll_txn(c, in, hash, out);
        if (rc == SQLITE_OK) {
            if (sqlite3_total_changes64(c->db) != changes)     /* a write committed: room again */
                set_full(st, c, false);
            break;
        }
        if (no_space(c, rc)) {          /* told once per change, not per request */
            set_full(st, c, true);
            return RDL_ENOSPC;
        }
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
            report(st, c->db, "enroll");
            return map_rc(rc);
        }
    }
    sqlite3_busy_timeout(c->db, STORE_BUSY_MS);
    return out->body.oom ? RDL_ENOMEM : 0;
}
