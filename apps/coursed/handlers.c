/*
 * handlers.c: coursed's routes. This file is the HTTP edge of the service: it
 * checks what arrives (ids, media type, JSON, idempotency keys) on the I/O
 * thread, where that is cheap, hands the database work to the pool, and turns
 * the store's results into responses back on the I/O thread. Every request's
 * state lives in its context's arena: the heap is used only by jansson for a POST
 * body and for the response body the worker builds.
 */
#include "handlers.h"
#include "payload.h"
#include "stats.h"
#include "redline/trace.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Room for one course or enrollment object, so its body takes one allocation. */
#define BODY_HINT 256
#define TENANT_MAX 64
/* Seconds a client waits before retrying on a full disk: freeing space takes a person or a job. */
#define STORAGE_FULL_RETRY_AFTER "30"

/* One request's work: what the worker needs and what it found. */
typedef struct job {
    store_t *st;
    const handlers_t *h;
    int64_t id;                 /* the path's course or enrollment id */
    store_enroll_in_t in;       /* POST enrollments only */
    int rc;                     /* the store's result */
    int status;                 /* response status when rc == 0 */
    bool replayed;
    int64_t enrollment_id;      /* for Location on a 201 */
    rdl_buf_t body;
    const char *tenant;         /* X-Tenant-ID when sent and well-formed, else NULL */
} job_t;

/* Parses a path id: decimal digits only, 1 .. INT64_MAX. */
static bool parse_id(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v == 0)
        return false;
    *out = (int64_t)v;
    return true;
}

static bool path_id(rdl_req_t *req, const char *what, int64_t *id)
{
    if (parse_id(rdl_req_param(req, "id"), id))
        return true;
    char msg[128];
    snprintf(msg, sizeof(msg), "%s id must be a decimal integer from 1 to 9223372036854775807",
             what);
    rdl_resp_error(req, 400, "invalid_id", msg);
    return false;
}

/* X-Tenant-ID: 1 to 64 of A-Z a-z 0-9 . _ - (anything else is not a tenant id and is ignored). */
static const char *tenant_of(rdl_req_t *req)
{
    size_t n;
    const char *v = rdl_req_header(req, "X-Tenant-ID", &n);
    if (!v || n == 0 || n > TENANT_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return NULL;
    }
    return rdl_arena_strndup(&rdl_req_ctx(req)->arena, v, n);
}

/*
 * A CLIENT span for one store call, child of the request's server span, on
 * the pool worker: the SQLite time of a request shows in its trace with the
 * business keys (course.id, tenant.id) to find it by.
 */
static rdl_span_t *db_span(rdl_req_t *req, const job_t *job, const char *op, const char *table,
                           int64_t course_id)
{
    rdl_span_t *server = rdl_req_ctx(req)->span;
    if (!server)
        return NULL;
    char name[64];
    snprintf(name, sizeof(name), "%s %s", op, table);
    rdl_span_t *s = rdl_span_start(NULL, name, RDL_SPAN_CLIENT, server);
    if (!rdl_span_recording(s))
        return s;
    /* Literal keys, each once: the one-call form the runtime's server span uses. */
    rdl_attr_t a[5] = {
        { .key = "db.system.name", .type = RDL_ATTR_STRING, .v.str = { "sqlite", 6 } },
        { .key = "db.operation.name", .type = RDL_ATTR_STRING, .v.str = { op, strlen(op) } },
        { .key = "db.collection.name", .type = RDL_ATTR_STRING, .v.str = { table, strlen(table) } },
    };
    size_t n = 3;
    if (course_id)
        a[n++] = (rdl_attr_t){ .key = "course.id", .type = RDL_ATTR_INT, .v.i = course_id };
    if (job->tenant)
        a[n++] = (rdl_attr_t){ .key = "tenant.id", .type = RDL_ATTR_STRING,
                               .v.str = { job->tenant, strlen(job->tenant) } };
    rdl_span_set_attrs(s, a, n, RDL_ATTRS_STATIC_KEYS | RDL_ATTRS_NEW_KEYS);
    return s;
}

/* Ends a store call's span: not-found is an answer, every other failure an error. */
static void db_span_end(rdl_span_t *s, int rc)
{
    if (rc && rc != RDL_ENOENT) {
        const char *type = rc == RDL_ETIMEDOUT ? "timeout"
                           : rc == RDL_ENOSPC ? "storage_full" : "sqlite_error";
        rdl_span_set_str(s, "error.type", type, strlen(type));
        rdl_span_set_status(s, RDL_STATUS_ERROR, rdl_strerror(rc));
    }
    rdl_span_end(s);
}

/* The request's business keys on its server span (I/O thread). */
static void tag_request(rdl_req_t *req, const job_t *job, const char *key, int64_t id)
{
    rdl_span_t *server = rdl_req_ctx(req)->span;
    if (key)
        rdl_span_set_int(server, key, id);
    if (job->tenant)
        rdl_span_set_str(server, "tenant.id", job->tenant, strlen(job->tenant));
}

static job_t *job_new(rdl_req_t *req, const handlers_t *h)
{
    job_t *job = rdl_arena_alloc(&rdl_req_ctx(req)->arena, sizeof(*job));
    if (!job) {
        rdl_resp_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    memset(job, 0, sizeof(*job));
    job->h = h;
    job->st = h->st;
    job->tenant = tenant_of(req);
    rdl_buf_init(&job->body);
    return job;
}

static void offload(rdl_req_t *req, rdl_req_work_fn work, rdl_req_done_fn done, job_t *job)
{
    int rc = rdl_req_offload(req, work, done, job);
    /* RDL_EBUSY: the runtime has already answered 503; RDL_ECANCELED: nothing answered yet. */
    if (rc == RDL_ECANCELED) {
        rdl_resp_header(req, "Retry-After", "1");
        rdl_resp_error(req, 503, "unavailable", "the service is shutting down");
    }
}

/*
 * Answers a job whose store call failed or found nothing. not_found is the
 * code for RDL_ENOENT ("course_not_found").
 */
static void reply_failure(rdl_req_t *req, const job_t *job, const char *not_found,
                          const char *what)
{
    char msg[96];
    switch (job->rc) {
    case RDL_ENOENT:
        snprintf(msg, sizeof(msg), "no %s with id %lld", what, (long long)job->id);
        rdl_resp_error(req, 404, not_found, msg);
        break;
    case RDL_ETIMEDOUT:
        rdl_resp_header(req, "Retry-After", "1");
        rdl_resp_error(req, 503, "unavailable",
                       "no answer from the database within the request's deadline; retry later");
        break;
    case RDL_ENOSPC:            /* nothing was written: a retry once space is freed succeeds */
        rdl_resp_header(req, "Retry-After", STORAGE_FULL_RETRY_AFTER);
        rdl_resp_error(req, 503, "storage_full",
                       "the service's storage is full; nothing was written, retry later");
        break;
    default:
        rdl_resp_error(req, 500, "internal", "internal error");
        break;
    }
}

/*
 * Run first on the worker: a request that was canceled or ran past its
 * deadline while queued is not worth a query (its answer is a 503 by now).
 */
static bool expired(rdl_req_t *req, job_t *job)
{
    if (!rdl_ctx_done(rdl_req_ctx(req)))
        return false;
    job->rc = RDL_ETIMEDOUT;
    return true;
}

/* Bodies end with a newline, as the runtime's own JSON errors do. */
static void reply_json(rdl_req_t *req, job_t *job, int status)
{
    rdl_buf_putc(&job->body, '\n');
    if (job->body.oom)
        rdl_resp_error(req, 500, "internal", "out of memory");
    else
        rdl_resp_send(req, status, PAYLOAD_JSON_TYPE, job->body.data, job->body.len);
}

/* ---- GET /ping ------------------------------------------------------- */

static void ping(rdl_req_t *req, void *arg)
{
    rdl_resp_send(req, 200, "text/plain", "pong\n", 5);
}

/* ---- courses --------------------------------------------------------- */

static void emit_course(const store_course_t *c, void *arg)
{
    store_course_json(arg, c);
}

typedef struct course_list {
    rdl_buf_t *body;
    size_t n;
} course_list_t;

static void emit_listed_course(const store_course_t *c, void *arg)
{
    course_list_t *list = arg;
    if (list->n++ > 0)
        rdl_buf_putc(list->body, ',');
    store_course_json(list->body, c);
}

static void course_work(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    if (expired(req, job))
        return;
    rdl_buf_reserve(&job->body, BODY_HINT);
    rdl_span_t *span = db_span(req, job, "SELECT", "courses", job->id);
    job->rc = store_get_course(job->st, job->id, emit_course, &job->body);
    db_span_end(span, job->rc);
}

/*
 * Copies the upstream's "suggestions" array (course ids) into the course
 * object; an answer that is not that shape is a failure like any other.
 */
static bool add_suggestions(job_t *job, const char *body, size_t len)
{
    payload_error_t e;
    if (job->body.len == 0 || job->body.data[job->body.len - 1] != '}')
        return false;
    job->body.len--;                /* reopen the object */
    rdl_buf_puts(&job->body, ",\"suggestions\":");
    size_t mark = job->body.len;
    if (payload_suggestions(body, len, &job->body, &e) != 0) {
        job->body.len = mark - strlen(",\"suggestions\":");
        rdl_buf_putc(&job->body, '}');
        rdl_log_field_t f[] = { rdl_lf_str("error.code", e.code), rdl_lf_str("error", e.message) };
        rdl_log(NULL, RDL_LOG_WARN, "recommend answer refused", f, 2);
        return false;
    }
    rdl_buf_putc(&job->body, '}');
    return true;
}

/* The weak dependency's fallback: no suggestions, the course still answers. */
static void suggestions_done(rdl_req_t *req, const rdl_call_result_t *res, void *arg)
{
    job_t *job = arg;
    bool failed = rdl_call_failed(res);         /* the runtime has marked these degraded */
    if (failed || res->status != 200 || !add_suggestions(job, res->body, res->body_len)) {
        if (!failed)
            rdl_req_degraded(req, "recommend");  /* answered, but not with suggestions */
        job->body.len--;
        rdl_buf_puts(&job->body, ",\"suggestions\":[]}");
    }
    reply_json(req, job, 200);
    rdl_buf_close(&job->body);
}

static void course_done(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    if (job->rc) {
        reply_failure(req, job, "course_not_found", "course");
    } else if (job->h->recommend) {
        char path[64];
        snprintf(path, sizeof(path), "/recommend?course=%lld", (long long)job->id);
        rdl_call_t call = { .method = "GET", .path = path, .idempotent = -1 };
        if (rdl_req_call(req, "recommend", &call, suggestions_done, job) == 0)
            return;                 /* the body is freed when the call is done */
        reply_json(req, job, 200);
    } else {
        reply_json(req, job, 200);
    }
    rdl_buf_close(&job->body);
}

static void get_course(rdl_req_t *req, void *arg)
{
    int64_t id;
    if (!path_id(req, "course", &id))
        return;
    job_t *job = job_new(req, arg);
    if (!job)
        return;
    job->id = id;
    tag_request(req, job, "course.id", id);
    offload(req, course_work, course_done, job);
}

static void courses_work(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    course_list_t list = { &job->body, 0 };
    if (expired(req, job))
        return;
    rdl_buf_reserve(&job->body, 4 * BODY_HINT);
    rdl_buf_puts(&job->body, "{\"courses\":[");
    rdl_span_t *span = db_span(req, job, "SELECT", "courses", 0);
    job->rc = store_list_courses(job->st, emit_listed_course, &list);
    db_span_end(span, job->rc);
    rdl_buf_puts(&job->body, "]}");
}

static void courses_done(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    if (job->rc)
        reply_failure(req, job, "course_not_found", "course");
    else
        reply_json(req, job, 200);
    rdl_buf_close(&job->body);
}

static void list_courses(rdl_req_t *req, void *arg)
{
    job_t *job = job_new(req, arg);
    if (!job)
        return;
    tag_request(req, job, NULL, 0);
    offload(req, courses_work, courses_done, job);
}

/* ---- enrollments ----------------------------------------------------- */

static void emit_enrollment(const store_enrollment_t *e, void *arg)
{
    store_enrollment_json(arg, e);
}

static void enrollment_work(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    if (expired(req, job))
        return;
    rdl_buf_reserve(&job->body, BODY_HINT);
    rdl_span_t *span = db_span(req, job, "SELECT", "enrollments", 0);
    rdl_span_set_int(span, "enrollment.id", job->id);
    job->rc = store_get_enrollment(job->st, job->id, emit_enrollment, &job->body);
    db_span_end(span, job->rc);
}

static void enrollment_done(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    if (job->rc)
        reply_failure(req, job, "enrollment_not_found", "enrollment");
    else
        reply_json(req, job, 200);
    rdl_buf_close(&job->body);
}

static void get_enrollment(rdl_req_t *req, void *arg)
{
    int64_t id;
    if (!path_id(req, "enrollment", &id))
        return;
    job_t *job = job_new(req, arg);
    if (!job)
        return;
    job->id = id;
    tag_request(req, job, "enrollment.id", id);
    offload(req, enrollment_work, enrollment_done, job);
}

static void enroll_work(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    store_enroll_out_t out = { 0 };
    if (expired(req, job))
        return;
    rdl_span_t *span = db_span(req, job, "INSERT", "enrollments", job->in.course_id);
    job->rc = store_enroll(job->st, &job->in, &out);
    if (job->rc == 0) {
        rdl_span_set_int(span, "coursed.outcome_status", out.status);
        rdl_span_set_bool(span, "coursed.idempotent_replay", out.replayed);
    }
    db_span_end(span, job->rc);
    job->status = out.status;
    job->replayed = out.replayed;
    job->enrollment_id = out.enrollment_id;
    job->body = out.body;
    /* On the pool worker: the request's id and trace come with the current context. */
    rdl_log_field_t f[] = {
        rdl_lf_int("course_id", job->id), rdl_lf_int("enrollment_id", out.enrollment_id),
        rdl_lf_int("status", job->rc ? 0 : out.status), rdl_lf_bool("replayed", out.replayed),
        rdl_lf_err("error", job->rc),
    };
    rdl_log(NULL, job->rc ? RDL_LOG_WARN : RDL_LOG_INFO, "enrollment", f, job->rc ? 5 : 4);
}

/* The outcome of an enrollment as the business metric counts it. */
static stats_result_t enroll_result(const job_t *job)
{
    if (job->rc)
        return job->rc == RDL_ENOENT ? STATS_NOT_FOUND
               : job->rc == RDL_ETIMEDOUT || job->rc == RDL_ENOSPC ? STATS_UNAVAILABLE
               : STATS_ERROR;
    if (job->replayed)
        return STATS_REPLAYED;
    switch (job->status) {
    case 201: return STATS_CREATED;
    case 404: return STATS_NOT_FOUND;
    case 409: return STATS_FULL;
    case 422: return STATS_KEY_REUSED;
    default: return STATS_ERROR;
    }
}

static void enroll_done(rdl_req_t *req, void *arg)
{
    job_t *job = arg;
    stats_enrollment(enroll_result(job));
    if (job->rc) {
        reply_failure(req, job, "course_not_found", "course");
    } else {
        if (job->status == 201) {
            char loc[48];
            snprintf(loc, sizeof(loc), "/v1/enrollments/%lld", (long long)job->enrollment_id);
            rdl_resp_header(req, "Location", loc);
        }
        if (job->replayed)
            rdl_resp_header(req, "Idempotent-Replayed", "true");
        reply_json(req, job, job->status);
    }
    rdl_buf_close(&job->body);
}

/*
 * The strong dependency: no seat is taken before payment says yes. When it
 * fails the runtime has already answered 503 with Retry-After; a refusal
 * (4xx) is the payment service's answer and is passed on as 402.
 */
static void authorized(rdl_req_t *req, const rdl_call_result_t *res, void *arg)
{
    job_t *job = arg;
    if (rdl_req_answered(req))
        return;
    if (res->status >= 200 && res->status < 300)
        offload(req, enroll_work, enroll_done, job);
    else
        rdl_resp_error(req, 402, "payment_declined", "the payment service declined the enrollment");
}

static void authorize(rdl_req_t *req, job_t *job)
{
    rdl_buf_t body;
    rdl_buf_init(&body);
    rdl_buf_printf(&body, "{\"course\":%lld,\"student\":", (long long)job->id);
    rdl_json_str(&body, job->in.student, job->in.student_len);
    rdl_buf_putc(&body, '}');
    rdl_call_t call = { .method = "POST", .path = "/authorize", .body = body.data,
                        .body_len = body.len, .idempotent = -1 };
    int rc = body.oom ? RDL_ENOMEM : rdl_req_call(req, "payment", &call, authorized, job);
    rdl_buf_close(&body);
    if (rc)
        rdl_resp_error(req, 500, "internal", "cannot call the payment service");
}

static void post_enrollment(rdl_req_t *req, void *arg)
{
    int64_t id;
    if (!path_id(req, "course", &id)) {
        stats_enrollment(STATS_INVALID);
        return;
    }
    payload_error_t e;
    size_t type_len, key_len = 0, body_len, student_len = 0;
    const char *type = rdl_req_header(req, "Content-Type", &type_len);
    const char *key = rdl_req_header(req, "Idempotency-Key", &key_len);
    const char *body = rdl_req_body(req, &body_len);
    const char *student;
    if (!payload_is_json_type(type, type_len, &e) ||
        payload_enrollment(body, body_len, &rdl_req_ctx(req)->arena, &student, &student_len, &e) ||
        (key && payload_idempotency_key(key, key_len, &e))) {
        stats_enrollment(STATS_INVALID);
        rdl_resp_error(req, e.status, e.code, e.message);
        return;
    }
    job_t *job = job_new(req, arg);
    if (!job)
        return;
    job->id = id;
    job->in = (store_enroll_in_t){
        .course_id = id, .student = student, .student_len = student_len,
        .idem_key = key, .idem_key_len = key_len,
        .deadline_ns = rdl_req_ctx(req)->deadline_ns,
    };
    tag_request(req, job, "course.id", id);
    if (job->h->payment)
        authorize(req, job);
    else
        offload(req, enroll_work, enroll_done, job);
}

/* ---- a full disk ------------------------------------------------------ */

/*
 * The store turned full or has room again (on the pool worker whose write
 * saw it): one line with the real cause per change, and readiness follows,
 * so the pod leaves rotation while every write would fail and liveness
 * stays green (a restart frees no disk).
 */
static void storage_full_changed(bool full, const char *cause, void *arg)
{
    rdl_server_t *srv = arg;
    if (full) {
        rdl_log_field_t f[] = { rdl_lf_str("error.code", "storage_full"),
                                rdl_lf_str("error", cause) };
        rdl_log(NULL, RDL_LOG_ERROR, "storage full: enrollments refused until space is freed",
                f, 2);
        rdl_server_set_not_ready(srv, "storage_full");
    } else {
        rdl_log(NULL, RDL_LOG_WARN, "storage has room again: enrollments accepted", NULL, 0);
        rdl_server_set_ready(srv, true);
    }
}

/*
 * While the store is full the pod is out of rotation, so no enrollment comes
 * to find that space was freed: every space_probe_ms, the first I/O thread
 * hands one small write to the pool (store_probe_space), and the first that
 * commits brings the store, and readiness, back. One probe at a time; none
 * while the store has room.
 */
static struct space_probe {
    const handlers_t *h;
    rdl_server_t *srv;
    uv_timer_t timer;
    rdl_pool_task_t task;
    atomic_bool busy;
} probe;

static void probe_work(rdl_pool_task_t *task)
{
    (void)store_probe_space(probe.h->st);     /* a change is reported by the store */
    (void)task;
}

static void probe_done(rdl_pool_task_t *task, int status)
{
    (void)task;
    (void)status;
    atomic_store(&probe.busy, false);
}

static void on_probe_timer(uv_timer_t *timer)
{
    (void)timer;
    if (!store_full(probe.h->st) || atomic_exchange(&probe.busy, true))
        return;
    probe.task = (rdl_pool_task_t){ .work = probe_work, .done = probe_done };
    if (rdl_pool_submit(rdl_server_pool(probe.srv), &probe.task, NULL) != 0)
        atomic_store(&probe.busy, false);       /* queue full: the next tick tries again */
}

static void probe_start(rdl_server_t *srv, int index, uv_loop_t *loop, void *arg)
{
    (void)srv;
    (void)arg;
    if (index != 0 || probe.h->space_probe_ms == 0)
        return;
    uv_timer_init(loop, &probe.timer);
    uv_timer_start(&probe.timer, on_probe_timer, probe.h->space_probe_ms,
                   probe.h->space_probe_ms);
}

static void probe_stop(rdl_server_t *srv, int index, uv_loop_t *loop, void *arg)
{
    (void)srv;
    (void)loop;
    (void)arg;
    if (index == 0 && probe.h->space_probe_ms != 0)
        uv_close((uv_handle_t *)&probe.timer, NULL);
}

/* ---- registration ---------------------------------------------------- */

int handlers_register(rdl_server_t *srv, const handlers_t *h, rdl_error_t *err)
{
    store_on_full(h->st, storage_full_changed, srv);
    probe.h = h;
    probe.srv = srv;
    int prc = rdl_server_on_thread(srv, probe_start, probe_stop, NULL);
    if (prc)
        return rdl_error_set(err, prc, 0, 0, "coursed.space_probe", "cannot add the space probe: %s",
                             rdl_strerror(prc));
    static const struct {
        const char *method, *path;
        rdl_handler_fn fn;
    } routes[] = {
        { "GET", "/ping", ping },
        { "GET", "/v1/courses", list_courses },
        { "GET", "/v1/courses/{id}", get_course },
        { "POST", "/v1/courses/{id}/enrollments", post_enrollment },
        { "GET", "/v1/enrollments/{id}", get_enrollment },
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = rdl_server_route(srv, routes[i].method, routes[i].path, routes[i].fn,
                                  (void *)h);
        if (rc)
            return rdl_error_set(err, rc, 0, 0, routes[i].path, "cannot register %s %s: %s",
                                 routes[i].method, routes[i].path, rdl_strerror(rc));
    }
    return 0;
}
