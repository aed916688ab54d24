/*
 * export.c: the batch processor's exporter thread and the OTLP/HTTP client.
 * It exists so that a slow or absent collector costs the request path
 * nothing: requests only push ended spans into their thread's bounded queue;
 * this thread encodes batches, gzips them, POSTs them with libcurl, retries
 * 429/502/503/504 and lost connections with exponential backoff and jitter
 * (honouring Retry-After) within the export deadline, and counts what it
 * gives up. Spans go back to their threads right after encoding, so memory
 * stays flat whatever the collector does.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include "trace/threads.h"
#include "trace/export.h"

#define RESPONSE_MAX (4u << 20)         /* OTLP's recommended response limit */

typedef struct http {
    CURL *curl;
    struct curl_slist *headers;
    rdl_buf_t body;                     /* encoded batch */
    rdl_buf_t gz;                       /* gzipped batch */
    rdl_buf_t resp;
    long retry_after_s;                 /* -1 when absent */
} http_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    http_t *h = arg;
    size_t len = size * n;
    if (h->resp.len + len > RESPONSE_MAX)
        return 0;                       /* oversized: a non-retryable error */
    rdl_buf_put(&h->resp, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    http_t *h = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && rdl_ascii_ieq(p, sizeof(name) - 1, name, sizeof(name) - 1)) {
        char v[128];
        size_t vl = len - (sizeof(name) - 1);
        if (vl >= sizeof(v))
            vl = sizeof(v) - 1;
        memcpy(v, p + sizeof(name) - 1, vl);
        v[vl] = '\0';
        char *s = v;
        while (*s == ' ' || *s == '\t')
            s++;
        char *end = s + strlen(s);
        while (end > s && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            *--end = '\0';
        char *num_end;
        errno = 0;
        long secs = strtol(s, &num_end, 10);
        if (*s && !*num_end && !errno && secs >= 0) {
            h->retry_after_s = secs;
        } else {
            time_t when = curl_getdate(s, NULL);        /* an HTTP-date */
            if (when > 0) {
                time_t now = time(NULL);
                h->retry_after_s = when > now ? (long)(when - now) : 0;
            }
        }
    }
    return len;
}

/* One OTEL_EXPORTER_OTLP_HEADERS member as a curl header line "key: value". */
static int add_header(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct curl_slist **sl = arg;
    char line[sizeof(((rdl_tracer_opts_t *)0)->headers) + 4];
    snprintf(line, sizeof(line), "%.*s: %.*s", (int)kl, k, (int)vl, v);
    struct curl_slist *more = curl_slist_append(*sl, line);
    if (!more)
        return RDL_ENOMEM;
    *sl = more;
    return 0;
}

/* Aborts a request in flight once the shutdown deadline has passed. */
static int on_progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    rdl_tracer_t *t = arg;
    uint64_t cut = atomic_load(&t->deadline_ns);
    return cut && rdl_now_ns() >= cut;
}

static int http_new(rdl_tracer_t *t)
{
    pthread_once(&curl_once, curl_init_once);
    http_t *h = calloc(1, sizeof(*h));
    if (!h)
        return RDL_ENOMEM;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return RDL_ENOMEM;
    }
    rdl_buf_init(&h->body);
    rdl_buf_init(&h->gz);
    rdl_buf_init(&h->resp);
    struct curl_slist *sl = NULL;
    sl = curl_slist_append(sl, t->o.protocol == RDL_OTLP_JSON ? "Content-Type: application/json"
                                                              : "Content-Type: application/x-protobuf");
    if (t->o.gzip)
        sl = curl_slist_append(sl, "Content-Encoding: gzip");
    sl = curl_slist_append(sl, "Expect:");
    int rc = rdl__trace_kv_list("OTEL_EXPORTER_OTLP_HEADERS", t->o.headers, true, add_header, &sl, NULL);
    if (rc) {                           /* a malformed list set in code (env is checked on read) */
        curl_slist_free_all(sl);
        curl_easy_cleanup(h->curl);
        free(h);
        return rc;
    }
    h->headers = sl;
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_URL, t->o.endpoint);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "redline-otlp/0.1.0");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)t->o.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)t->o.timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");       /* gzip responses are fine */
    t->http = h;
    return 0;
}

static void http_free(rdl_tracer_t *t)
{
    http_t *h = t->http;
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    rdl_buf_close(&h->body);
    rdl_buf_close(&h->gz);
    rdl_buf_close(&h->resp);
    free(h);
    t->http = NULL;
}

/* gzip (RFC 1952) of in into out. */
static int gzip_buf(const rdl_buf_t *in, rdl_buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return RDL_ENOMEM;
    size_t bound = deflateBound(&z, in->len);
    rdl_buf_reset(out);
    if (rdl_buf_reserve(out, bound) != 0) {
        deflateEnd(&z);
        return RDL_ENOMEM;
    }
    z.next_in = (unsigned char *)in->data;
    z.avail_in = (uInt)in->len;
    z.next_out = (unsigned char *)out->data;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    out->len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : RDL_EIO;
}

static bool retryable(long status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

/* Waits ms unless stopping cuts it short; false when the wait would pass the deadline. */
static bool backoff_wait(rdl_tracer_t *t, uint64_t ms, uint64_t deadline)
{
    uint64_t until = rdl_now_ns() + ms * 1000000ull;
    pthread_mutex_lock(&t->mu);
    uint64_t stop = atomic_load(&t->deadline_ns);
    uint64_t cut = stop && stop < deadline ? stop : deadline;
    bool ok = until < cut;
    while (ok) {
        uint64_t now = rdl_now_ns();
        stop = atomic_load(&t->deadline_ns);
        cut = stop && stop < deadline ? stop : deadline;
        if (now >= until || until >= cut) {
            ok = now >= until;
            break;
        }
        uint64_t left = until - now;
        uint64_t step = left < 50000000ull ? left : 50000000ull;   /* re-check the deadline */
        struct timespec ts = rdl_timespec_in(CLOCK_REALTIME, step);
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

/* Uniformly in [ms/2, 3ms/2). */
static uint64_t jittered(uint64_t ms)
{
    return ms / 2 + (ms ? rdl_rand64() % ms : 0);
}

/* POSTs the encoded batch of n spans until accepted, refused, or out of time. */
static void send_batch(rdl_tracer_t *t, size_t n)
{
    http_t *h = t->http;
    const rdl_buf_t *payload = &h->body;
    if (t->o.gzip && gzip_buf(&h->body, &h->gz) == 0)
        payload = &h->gz;
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, payload->data);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)payload->len);
    uint64_t deadline = rdl_now_ns() + t->o.export_timeout_ms * 1000000ull;
    uint64_t backoff = t->o.retry_initial_ms;
    char detail[160];
    for (;;) {
        rdl_buf_reset(&h->resp);
        h->retry_after_s = -1;
        atomic_fetch_add(&t->requests, 1);
        CURLcode rc = curl_easy_perform(h->curl);
        long status = 0;
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            int64_t rejected = 0;
            rdl_buf_t msg;
            rdl_buf_init(&msg);
            if (rdl_otlp_parse_response(h->resp.data, h->resp.len, t->o.protocol, &rejected, &msg,
                                        NULL) == 0 && (rejected > 0 || (msg.len && msg.data[0]))) {
                snprintf(detail, sizeof(detail), "rejected %lld: %.120s", (long long)rejected, msg.data);
                rdl__trace_log(t, "warn", "OTLP partial success", "detail", detail);
            }
            rdl_buf_close(&msg);
            if (rejected < 0 || (uint64_t)rejected > n)
                rejected = rejected < 0 ? 0 : (int64_t)n;
            atomic_fetch_add(&t->exported, n - (uint64_t)rejected);
            atomic_fetch_add(&t->dropped, (uint64_t)rejected);
            return;
        }
        bool again = rc != CURLE_OK ? rc != CURLE_WRITE_ERROR : retryable(status);
        uint64_t wait = h->retry_after_s >= 0 ? (uint64_t)h->retry_after_s * 1000ull : jittered(backoff);
        if (!again || !backoff_wait(t, wait, deadline)) {
            if (rc != CURLE_OK)
                snprintf(detail, sizeof(detail), "%s", curl_easy_strerror(rc));
            else
                snprintf(detail, sizeof(detail), "HTTP %ld", status);
            rdl__trace_log(t, "warn", again ? "OTLP export gave up: out of time" : "OTLP export refused",
                   "error", detail);
            atomic_fetch_add(&t->failures, 1);
            atomic_fetch_add(&t->dropped, n);
            return;
        }
        backoff = backoff * 2 < t->o.retry_max_ms ? backoff * 2 : t->o.retry_max_ms;
    }
}

/*
 * Exports full batches while a batch's worth is queued, and first the spans
 * owed (everything queued when the schedule delay elapsed or a flush asked;
 * SIZE_MAX: until the queues are empty, at shutdown). A partial batch
 * otherwise waits for the timer: sending whatever arrived during the last
 * POST would turn sustained load into many small requests, each paying
 * curl's and the collector's fixed cost. Under sustained load this can go
 * on for long: the unfinished-span scan still runs once a second.
 */
static void drain(rdl_tracer_t *t, rdl_span_t **batch, size_t owed)
{
    http_t *h = t->http;
    size_t max = (size_t)t->o.max_batch;
    uint64_t scanned = rdl_now_ns();
    for (;;) {
        if (rdl_now_ns() - scanned > 1000000000ull) {
            rdl__trace_scan_open(t, false);
            scanned = rdl_now_ns();
        }
        if (owed == 0 && rdl__trace_queued(t) < max)
            return;
        size_t n = rdl__trace_collect(t, batch, max);
        if (n == 0)
            return;
        owed = owed > n ? owed - n : 0;
        rdl_buf_reset(&h->body);
        rdl_otlp_encode(t, batch, n, t->o.protocol, &h->body);
        for (size_t i = 0; i < n; i++)
            rdl__trace_recycle(batch[i]);
        if (h->body.oom) {
            atomic_fetch_add(&t->dropped, n);
            continue;
        }
        send_batch(t, n);
    }
}

/* Waits on t->cv until the monotonic time until_ns at the latest. Under t->mu. */
static void wait_until(rdl_tracer_t *t, uint64_t until_ns)
{
    uint64_t now = rdl_now_ns();
    if (now >= until_ns)
        return;
    struct timespec ts = rdl_timespec_in(CLOCK_REALTIME, until_ns - now);
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

/*
 * The batch processor's schedule: a queue reaching a batch wakes this thread
 * (full batches go at once); every schedule delay, on a flush and at
 * shutdown everything queued goes, partial batches included.
 */
static void *exporter_main(void *arg)
{
    rdl_tracer_t *t = arg;
    pthread_setname_np(pthread_self(), "rdl-trace");    /* how top, perf and /proc name it */
    rdl_span_t **batch = malloc((size_t)t->o.max_batch * sizeof(*batch));
    uint64_t delay = t->o.schedule_delay_ms * 1000000ull;
    uint64_t due = rdl_now_ns() + delay;        /* when partial batches go next */
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (!t->stop && !t->wake && t->flush_req == t->flush_done)
            wait_until(t, due);
        bool stop = t->stop;
        uint64_t want = t->flush_req;
        bool all = stop || want != t->flush_done || rdl_now_ns() >= due;
        t->wake = false;
        pthread_mutex_unlock(&t->mu);
        atomic_store(&t->wake_sent, false);
        rdl__trace_scan_open(t, false);
        if (batch)
            drain(t, batch, stop ? SIZE_MAX : all ? rdl__trace_queued(t) : 0);
        if (all)
            due = rdl_now_ns() + delay;
        pthread_mutex_lock(&t->mu);
        t->flush_done = want;
        pthread_cond_broadcast(&t->flushed);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&t->mu);
    free(batch);
    return NULL;
}

int rdl__trace_exporter_start(rdl_tracer_t *t)
{
    int rc = http_new(t);
    if (rc)
        return rc;
    if (pthread_create(&t->exporter, NULL, exporter_main, t) != 0) {
        http_free(t);
        return RDL_ENOMEM;
    }
    t->running = true;
    return 0;
}

void rdl__trace_exporter_stop(rdl_tracer_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    atomic_store(&t->deadline_ns, rdl_now_ns() + t->o.shutdown_ms * 1000000ull);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->exporter, NULL);
    t->running = false;
    http_free(t);
}

int rdl_tracer_flush(rdl_tracer_t *t, uint64_t timeout_ms)
{
    if (!t || !t->running)
        return 0;
    uint64_t deadline = rdl_now_ns() + timeout_ms * 1000000ull;
    pthread_mutex_lock(&t->mu);
    uint64_t ticket = ++t->flush_req;
    pthread_cond_broadcast(&t->cv);
    int rc = 0;
    while (t->flush_done < ticket) {
        uint64_t now = rdl_now_ns();
        if (now >= deadline) {
            rc = RDL_ETIMEDOUT;
            break;
        }
        struct timespec ts = rdl_timespec_in(CLOCK_REALTIME, deadline - now);
        pthread_cond_timedwait(&t->flushed, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}
