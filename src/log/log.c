/*
 * log.c: the logger: per-thread rings, one writer thread, sampling, the
 * default logger.
 *
 * Why this shape: a log line must cost the request path neither a lock, nor
 * an allocation, nor a syscall, and lines from many threads must never tear.
 * Each thread that logs gets its own single-producer ring (made once, on its
 * first line, and reused by a later thread when its owner exits). A line is
 * formatted straight into the ring's free space (into the thread's scratch
 * memory, then copied in whole, when that space wraps or is short) and
 * published with one release store, so the writer only ever sees whole lines.
 * The writer gathers every ring's published bytes into one writev, so a batch
 * of thousands of lines is one syscall, and then frees the space.
 *
 * After a pass the writer lingers 10 ms so lines gather (and it is woken,
 * and the rings' heads cross cores, a hundred times a second rather than per
 * line); producers wake it early only when a ring is half full, and a pass
 * that found a ring half full is followed by the next at once. After two
 * empty passes it sleeps until the next line wakes it. No lock or syscall is
 * on the producer's path unless the writer sleeps, and then one futex wake
 * and no lock; a missed wake-up costs at most the 100 ms sleep bound, never a
 * lost line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "redline/log.h"
#include "log/internal.h"

#define SAMPLE_SLOTS 1024       /* messages sampled apart (by hash); collisions share a budget */
#define WRITER_SLEEP_MS 100
/*
 * How long the writer lets lines gather after a pass. Each wake-up costs the
 * writer a futex, a timer and two context switches (a quarter of its CPU at
 * 5 ms under an access-log load), so it wakes rarely; a producer whose ring
 * is half full wakes it early, so a ring never waits on the timer.
 */
#define WRITER_LINGER_NS 10000000L

enum { W_AWAKE, W_LINGER, W_IDLE };  /* what the writer is doing (lg->sleeping) */
#define RING_MIN_LINES 4

typedef struct log_thread log_thread_t;

/* One thread's ring. head is written by its thread only, tail by the writer only. */
struct log_thread {
    rdl_logger_t *lg;
    log_thread_t *next;             /* in lg->threads; never unlinked before rdl_logger_free */
    atomic_bool orphan;             /* its thread exited: reusable once drained */
    char *ring;
    size_t size;                    /* power of two */
    _Alignas(64) atomic_size_t head;
    _Alignas(64) atomic_size_t tail;
    size_t taken;                   /* writer only: the head its current pass took */
    _Alignas(64) char *scratch;     /* max_line bytes: a line that cannot go straight into the ring */
    time_t ts_sec;                  /* the second ts_prefix was made for */
    uint64_t wall_off, off_at;      /* wall - monotonic, and when it was taken (wall_of) */
    char ts[LOG_TS_LEN];
    /* counters: written by the owning thread only, read by anyone */
    atomic_uint_fast64_t lines, dropped, sampled, truncated;
};

typedef struct sample_slot {
    atomic_int_fast64_t sec;
    atomic_uint_fast64_t n;
} sample_slot_t;

struct rdl_logger {
    uint64_t serial;                /* tells loggers apart in each thread's cached ring */
    char *service;
    size_t service_len;
    char *head[RDL_LOG_FATAL + 1];  /* per level: ","level":..,"service":".." made once */
    size_t head_len[RDL_LOG_FATAL + 1];
    atomic_int level;
    rdl_log_sink_t sink;
    char *path;
    int fd;
    size_t max_line;
    size_t ring_size;
    size_t pipe_bytes;              /* asked for (opts.pipe_bytes) */
    atomic_size_t pipe_now;         /* what the sink's pipe has (0: not a pipe) */
    rdl_log_policy_t policy;
    uint32_t sample_first, sample_every;
    pthread_key_t key;
    _Atomic(log_thread_t *) threads;
    pthread_mutex_t mu;             /* registration, flush handshake */
    pthread_cond_t flushed_cv;
    atomic_int sleeping;            /* W_AWAKE, W_LINGER or W_IDLE; the writer's futex word */
    atomic_bool stop;
    atomic_bool reopen;
    atomic_uint_fast64_t flush_req, flush_done;
    pthread_t writer;
    /* writer-only scratch */
    struct iovec *iov;
    size_t iov_cap;
    /*
     * writer counters; lost_noalloc: lines lost because a ring could not be
     * made; lost: lines taken from a ring that the sink refused (disk full)
     */
    atomic_uint_fast64_t bytes_written, write_errors, reopens, lost_noalloc, lost;
    sample_slot_t *samples;
};

/* ---- small helpers --------------------------------------------------- */

static void bump(atomic_uint_fast64_t *c)
{
    /* One writer per counter: a load and a store, no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 4096;
    while (p < n)
        p *= 2;
    return p;
}

/* A ring of at least bytes: a power of two that holds RING_MIN_LINES whole lines. */
static size_t ring_size_for(size_t bytes, size_t max_line)
{
    return pow2_at_least(bytes > RING_MIN_LINES * max_line ? bytes : RING_MIN_LINES * max_line);
}

/* CLOCK_REALTIME ms from now (what pthread_cond_timedwait takes). */
static struct timespec deadline_in(uint64_t ms)
{
    return rdl_timespec_in(CLOCK_REALTIME, ms * 1000000u);
}

/* ---- options --------------------------------------------------------- */

void rdl_log_opts_default(rdl_log_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->service = "redline";
    o->level = RDL_LOG_INFO;
    o->sink = RDL_LOG_STDOUT;
    o->max_line = RDL_LOG_MAX_LINE_DEFAULT;
    o->ring_bytes = 256 * 1024;
    o->pipe_bytes = 1024 * 1024;
    o->policy = RDL_LOG_BLOCK;
    o->sample_first = 0;
    o->sample_every = 100;
}

static const char *const level_names[] = { "debug", "info", "warn", "error", "fatal" };

const char *rdl_log_level_name(rdl_log_level_t level)
{
    return (unsigned)level <= RDL_LOG_FATAL ? level_names[level] : "?";
}

int rdl_log_parse_level(const char *s, size_t n, rdl_log_level_t *out)
{
    if (!s)
        return RDL_EINVAL;
    for (int i = 0; i <= RDL_LOG_FATAL; i++) {
        if (rdl_ascii_ieq(s, n, level_names[i], strlen(level_names[i]))) {
            *out = (rdl_log_level_t)i;
            return 0;
        }
    }
    if (rdl_ascii_ieq(s, n, "warning", 7)) {
        *out = RDL_LOG_WARN;
        return 0;
    }
    return RDL_EINVAL;
}

/* ---- sink ------------------------------------------------------------ */

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/*
 * A pipe's default 64 KiB is less than one 10 ms batch of a busy service's
 * lines, so the writer used to wait on the reader mid-batch, a pair of
 * context switches on the service's own core each time. A bigger buffer lets
 * one writev take the whole batch. Best effort: beyond the system's limit
 * (fs.pipe-max-size, the user's pipe pages) the pipe keeps its size, and a
 * pipe made bigger by someone else is never shrunk. Returns the size now,
 * 0 when fd is not a pipe.
 */
static size_t grow_pipe(int fd, size_t want)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))
        return 0;
    int now = fcntl(fd, F_GETPIPE_SZ);
    if (now < 0)
        return 0;
    if (want > (size_t)now && want <= INT_MAX) {
        int got = fcntl(fd, F_SETPIPE_SZ, (int)want);
        if (got > 0)
            now = got;
    }
    return (size_t)now;
}

/* Writes every iovec, across partial writes; false when the sink failed. */
static bool write_all(int fd, struct iovec *iov, int cnt, uint64_t *written)
{
    while (cnt > 0) {
        int batch = cnt < IOV_MAX ? cnt : IOV_MAX;
        ssize_t w = writev(fd, iov, batch);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {          /* a non-blocking stdout: wait for room */
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                poll(&p, 1, WRITER_SLEEP_MS);
                continue;
            }
            return false;
        }
        *written += (uint64_t)w;
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return true;
}

/* ---- the writer ------------------------------------------------------ */

static bool iov_room(rdl_logger_t *lg, size_t need)
{
    if (need <= lg->iov_cap)
        return true;
    size_t cap = lg->iov_cap ? lg->iov_cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    struct iovec *p = realloc(lg->iov, cap * sizeof(*p));
    if (!p)
        return false;
    lg->iov = p;
    lg->iov_cap = cap;
    return true;
}

static void do_reopen(rdl_logger_t *lg)
{
    if (lg->sink != RDL_LOG_FILE)
        return;
    int fd = open_file(lg->path);
    if (fd < 0) {
        bump(&lg->write_errors);    /* keep writing to the old file rather than nowhere */
        return;
    }
    close(lg->fd);
    lg->fd = fd;
    atomic_store(&lg->pipe_now, grow_pipe(fd, lg->pipe_bytes));
    bump(&lg->reopens);
}

/*
 * A failed write loses every line it did not finish: the bytes of this pass
 * (the rings from first on, tail to taken) past the first written are counted
 * by their newlines, a line cut in the middle included. The first loss of the
 * logger's life goes to stderr with its cause, once: the log itself may be
 * what cannot be written.
 */
static uint64_t count_newlines(const char *p, size_t len)
{
    uint64_t n = 0;
    const char *end = p + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static void count_lost(rdl_logger_t *lg, log_thread_t *first, uint64_t written, int err)
{
    uint64_t n = 0;
    for (log_thread_t *t = first; t; t = t->next) {
        size_t tl = atomic_load_explicit(&t->tail, memory_order_relaxed);
        size_t len = t->taken - tl, off = tl & (t->size - 1);
        size_t skip = written < len ? (size_t)written : len;
        written -= skip;
        len -= skip;
        off = (off + skip) & (t->size - 1);
        size_t part = t->size - off < len ? t->size - off : len;
        n += count_newlines(t->ring + off, part) + count_newlines(t->ring, len - part);
    }
    if (n == 0)
        return;
    uint64_t before = get(&lg->lost);
    atomic_store_explicit(&lg->lost, before + n, memory_order_relaxed);
    if (before == 0)
        fprintf(stderr, "redline: log sink %s: %s: log lines are being lost (counted as lost)\n",
                lg->sink == RDL_LOG_FILE ? lg->path : lg->sink == RDL_LOG_STDERR ? "stderr"
                                                                                : "stdout",
                strerror(err));
}

/*
 * One pass: every ring's published bytes in one writev, then their space
 * freed. Returns the bytes taken; *pressed is set when a ring was at least
 * half full (its thread may be waiting for room: no pause before the next pass).
 */
static size_t drain_once(rdl_logger_t *lg, bool *pressed)
{
    /* New rings are prepended: the list from this node on is fixed for the pass. */
    log_thread_t *first = atomic_load(&lg->threads);
    size_t nthreads = 0, cnt = 0, total = 0;

    for (log_thread_t *t = first; t; t = t->next)
        nthreads++;
    if (!iov_room(lg, 2 * nthreads + 2))
        return 0;
    /* Heads are read once: what the iovecs cover is exactly what is freed. */
    for (log_thread_t *t = first; t; t = t->next) {
        size_t h = atomic_load_explicit(&t->head, memory_order_acquire);
        size_t tl = atomic_load_explicit(&t->tail, memory_order_relaxed);
        t->taken = h;
        if (h == tl)
            continue;
        size_t off = tl & (t->size - 1), len = h - tl, part = t->size - off;
        if (len >= t->size / 2)
            *pressed = true;
        if (part > len)
            part = len;
        lg->iov[cnt++] = (struct iovec){ t->ring + off, part };
        if (len > part)
            lg->iov[cnt++] = (struct iovec){ t->ring, len - part };
        total += len;
    }
    if (cnt == 0)
        return 0;
    uint64_t written = 0;
    if (!write_all(lg->fd, lg->iov, (int)cnt, &written)) {
        int e = errno;
        bump(&lg->write_errors);
        count_lost(lg, first, written, e);
    }
    atomic_store_explicit(&lg->bytes_written, get(&lg->bytes_written) + written,
                          memory_order_relaxed);
    for (log_thread_t *t = first; t; t = t->next)
        atomic_store_explicit(&t->tail, t->taken, memory_order_release);
    return total;
}

static void complete_flushes(rdl_logger_t *lg, uint64_t req)
{
    if (atomic_load(&lg->flush_done) >= req)
        return;
    pthread_mutex_lock(&lg->mu);
    atomic_store(&lg->flush_done, req);
    pthread_cond_broadcast(&lg->flushed_cv);
    pthread_mutex_unlock(&lg->mu);
}

/*
 * The writer sleeps on lg->sleeping itself (a futex word): a waker sets it to
 * W_AWAKE and then wakes the futex, so a wake that comes before the writer is
 * in the kernel makes the wait return at once, and no lock is taken on either
 * side (a condition variable made the writer, woken inside the waker's lock,
 * block again on that lock: twice the switches on a loaded core).
 */
static void writer_sleep(rdl_logger_t *lg, int mode, long ns)
{
    struct timespec rel = { .tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L };

    syscall(SYS_futex, &lg->sleeping, FUTEX_WAIT_PRIVATE, mode, &rel, NULL, 0);
}

/*
 * A small batch means the producers are slow: wait a little for more rather
 * than bouncing their ring heads between cores line by line. Producers wake a
 * lingering writer only when a ring is half full; an idle one on any line.
 */
static void *writer_main(void *arg)
{
    rdl_logger_t *lg = arg;
    int empty_passes = 0;

    pthread_setname_np(pthread_self(), "rdl-log");
    for (;;) {
        uint64_t req = atomic_load(&lg->flush_req);
        bool stopping = atomic_load(&lg->stop);
        bool reopen = atomic_exchange(&lg->reopen, false), pressed = false;
        size_t n = drain_once(lg, &pressed);
        complete_flushes(lg, req);  /* the pass covered every line accepted before req */
        if (reopen)
            do_reopen(lg);          /* after the pass: lines from before the request stay in the old file */
        if (stopping) {
            if (n == 0)
                break;
            continue;
        }
        if (pressed)
            continue;           /* a thread may be waiting for room: at once */
        empty_passes = n ? 0 : empty_passes + 1;
        int mode = empty_passes > 1 ? W_IDLE : W_LINGER;
        /* Stored before the checks, which wakers make true before they look at it. */
        atomic_store(&lg->sleeping, mode);
        if (!atomic_load(&lg->stop) && atomic_load(&lg->flush_req) == req &&
            !atomic_load(&lg->reopen))
            writer_sleep(lg, mode, mode == W_IDLE ? WRITER_SLEEP_MS * 1000000L : WRITER_LINGER_NS);
        atomic_store(&lg->sleeping, W_AWAKE);
    }
    return NULL;
}

/* Wakes the writer if it sleeps, whatever its mode: for a flush, a stop or a reopen. */
static void wake_writer_now(rdl_logger_t *lg)
{
    if (atomic_exchange(&lg->sleeping, W_AWAKE) != W_AWAKE)
        syscall(SYS_futex, &lg->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Wakes the writer if it sleeps (any line wakes an idle one; force wakes a lingering one too). */
static void wake_writer(rdl_logger_t *lg, bool force)
{
    int s = atomic_load_explicit(&lg->sleeping, memory_order_relaxed);
    if (s == W_AWAKE || (s == W_LINGER && !force))
        return;
    wake_writer_now(lg);
}

/* ---- per-thread rings ------------------------------------------------ */

/*
 * The ring of the logger this thread used last, so a line costs a TLS load
 * and a compare rather than pthread_getspecific. Loggers are told apart by
 * serial, never reused, so a freed logger's ring is never taken for a later
 * logger's at the same address.
 */
typedef struct ring_cache {
    uint64_t serial;
    log_thread_t *t;
} ring_cache_t;

static __thread ring_cache_t my_ring __attribute__((tls_model("initial-exec")));
static atomic_uint_fast64_t serials;

/* Runs on the exiting thread: its ring may go to another thread, so a late line here must not use it. */
static void thread_gone(void *p)
{
    log_thread_t *t = p;
    if (my_ring.t == t)
        my_ring.serial = 0;
    atomic_store(&t->orphan, true);
}

/* A ring of size bytes (a power of two, >= RING_MIN_LINES lines) for a new thread. */
static log_thread_t *thread_new(rdl_logger_t *lg, size_t size)
{
    log_thread_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->lg = lg;
    t->size = size;
    t->ring = malloc(t->size);
    t->scratch = malloc(lg->max_line);
    t->ts_sec = -1;
    if (!t->ring || !t->scratch) {
        free(t->ring);
        free(t->scratch);
        free(t);
        return NULL;
    }
    return t;
}

/*
 * The calling thread's ring of at least size bytes: a drained one left by an
 * exited thread, or a new one.
 */
static log_thread_t *thread_register(rdl_logger_t *lg, size_t size)
{
    log_thread_t *t;

    pthread_mutex_lock(&lg->mu);
    for (t = atomic_load(&lg->threads); t; t = t->next) {
        if (t->size >= size && atomic_load(&t->orphan) &&
            atomic_load(&t->head) == atomic_load_explicit(&t->tail, memory_order_acquire)) {
            atomic_store(&t->orphan, false);
            break;
        }
    }
    if (!t && (t = thread_new(lg, size)) != NULL) {
        t->next = atomic_load(&lg->threads);
        atomic_store(&lg->threads, t);
    }
    pthread_mutex_unlock(&lg->mu);
    if (t)
        pthread_setspecific(lg->key, t);
    return t;
}

static log_thread_t *thread_of(rdl_logger_t *lg)
{
    if (my_ring.serial == lg->serial)
        return my_ring.t;
    log_thread_t *t = pthread_getspecific(lg->key);
    if (!t && !(t = thread_register(lg, lg->ring_size)))
        return NULL;
    my_ring.serial = lg->serial;
    my_ring.t = t;
    return t;
}

int rdl_log_reserve(rdl_logger_t *lg, size_t bytes)
{
    if (!lg && !(lg = rdl_log_default()))
        return RDL_ENOMEM;
    if (bytes > RDL_LOG_RING_MAX)
        return RDL_EINVAL;
    size_t want = bytes ? ring_size_for(bytes, lg->max_line) : lg->ring_size;
    log_thread_t *t = pthread_getspecific(lg->key);
    if (t)
        return t->size >= want ? 0 : RDL_EBUSY;
    if (!(t = thread_register(lg, want)))
        return RDL_ENOMEM;
    my_ring.serial = lg->serial;
    my_ring.t = t;
    return 0;
}

/*
 * Where a line of up to max bytes can be formatted in the ring itself (one
 * copy, not format then copy): free space that does not wrap. NULL when the
 * ring is that full or the free space wraps; the line then goes through
 * scratch and ring_push.
 */
static char *ring_room(log_thread_t *t, size_t max)
{
    size_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&t->tail, memory_order_acquire);
    size_t off = head & (t->size - 1);

    return t->size - (head - tail) >= max && t->size - off >= max ? t->ring + off : NULL;
}

/* Publishes len bytes written at ring_room's place. */
static void ring_publish(log_thread_t *t, size_t len)
{
    size_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
    atomic_store_explicit(&t->head, head + len, memory_order_release);
}

/* Copies a whole line into the ring, or applies the policy when it is full. */
static bool ring_push(rdl_logger_t *lg, log_thread_t *t, const char *line, size_t len)
{
    size_t head = atomic_load_explicit(&t->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&t->tail, memory_order_acquire);
    int spins = 0;

    while (t->size - (head - tail) < len) {
        if (lg->policy == RDL_LOG_DROP) {
            bump(&t->dropped);
            wake_writer(lg, true);
            return false;
        }
        wake_writer(lg, true);
        if (++spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = { 0, 50000 };
            nanosleep(&ts, NULL);
        }
        tail = atomic_load_explicit(&t->tail, memory_order_acquire);
    }
    size_t off = head & (t->size - 1), first = t->size - off;
    if (first >= len) {
        memcpy(t->ring + off, line, len);
    } else {
        memcpy(t->ring + off, line, first);
        memcpy(t->ring, line + first, len - first);
    }
    atomic_store_explicit(&t->head, head + len, memory_order_release);
    return true;
}

/* ---- sampling -------------------------------------------------------- */

/* zap's rule: per message and level, the first N each second, then every Mth. */
static bool sample_keep(rdl_logger_t *lg, rdl_log_level_t level, const char *msg, time_t sec)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)level;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    sample_slot_t *s = &lg->samples[h & (SAMPLE_SLOTS - 1)];
    int_fast64_t seen = atomic_load_explicit(&s->sec, memory_order_relaxed);
    if (seen != (int_fast64_t)sec &&
        atomic_compare_exchange_strong(&s->sec, &seen, (int_fast64_t)sec))
        atomic_store(&s->n, 0);
    uint64_t n = atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed) + 1;
    if (n <= lg->sample_first)
        return true;
    return (n - lg->sample_first) % lg->sample_every == 0;
}

/* ---- writing --------------------------------------------------------- */

bool rdl_log_enabled(rdl_logger_t *lg, rdl_log_level_t level)
{
    if (!lg)
        lg = rdl_log_default();
    return lg && (int)level >= atomic_load_explicit(&lg->level, memory_order_relaxed);
}

/*
 * The wall time of a CLOCK_MONOTONIC reading, through the offset between the
 * two clocks that the thread takes once a second: the clocks run at the same
 * (NTP-slewed) rate, so only a step of the wall clock moves the offset, and
 * that shows within a second.
 */
static uint64_t wall_of(log_thread_t *t, uint64_t mono_ns)
{
    if (!t->wall_off || mono_ns - t->off_at >= 1000000000u) {
        uint64_t m = rdl_now_ns();
        t->wall_off = rdl_wall_ns() - m;
        t->off_at = m;
    }
    return mono_ns + t->wall_off;
}

void rdl_log_ctx_at(rdl_logger_t *lg, rdl_log_level_t level, const rdl_ctx_t *ctx,
                    uint64_t mono_ns, const char *msg, const rdl_log_field_t *fields, size_t n)
{
    if (!lg && !(lg = rdl_log_default()))
        return;
    if ((int)level < atomic_load_explicit(&lg->level, memory_order_relaxed))
        return;
    log_thread_t *t = thread_of(lg);
    if (!t) {
        atomic_fetch_add(&lg->lost_noalloc, 1);
        return;
    }
    uint64_t wall = mono_ns ? wall_of(t, mono_ns) : rdl_wall_ns();
    time_t sec = (time_t)(wall / 1000000000u);
    if (lg->sample_first && !sample_keep(lg, level, msg ? msg : "", sec)) {
        bump(&t->sampled);
        return;
    }
    if (sec != t->ts_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        rdl__log_format_ts_prefix(t->ts, &tm);
        t->ts_sec = sec;
    }
    rdl__log_format_ts_ns(t->ts, (uint32_t)(wall % 1000000000u));
    bool cut;
    char *direct = ring_room(t, lg->max_line);
    unsigned lv = (unsigned)level <= RDL_LOG_FATAL ? (unsigned)level : RDL_LOG_FATAL;
    size_t len = rdl__log_format_line(direct ? direct : t->scratch, lg->max_line, t->ts, level,
                                 lg->service, lg->service_len, lg->head[lv], lg->head_len[lv],
                                 ctx, msg, fields, n, &cut);
    if (direct)
        ring_publish(t, len);
    else if (!ring_push(lg, t, t->scratch, len))
        return;
    bump(&t->lines);
    if (cut)
        bump(&t->truncated);
    size_t used = atomic_load_explicit(&t->head, memory_order_relaxed) -
                  atomic_load_explicit(&t->tail, memory_order_relaxed);
    wake_writer(lg, used > t->size / 2);
    if (level >= RDL_LOG_FATAL)
        rdl_log_flush(lg, 5000);
}

void rdl_log_ctx(rdl_logger_t *lg, rdl_log_level_t level, const rdl_ctx_t *ctx,
                 const char *msg, const rdl_log_field_t *fields, size_t n)
{
    rdl_log_ctx_at(lg, level, ctx, 0, msg, fields, n);
}

void rdl_log(rdl_logger_t *lg, rdl_log_level_t level, const char *msg,
             const rdl_log_field_t *fields, size_t n)
{
    rdl_log_ctx(lg, level, rdl_ctx_current(), msg, fields, n);
}

/* ---- lifecycle ------------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void logger_destroy(rdl_logger_t *lg)
{
    for (log_thread_t *t = atomic_load(&lg->threads), *next; t; t = next) {
        next = t->next;
        free(t->ring);
        free(t->scratch);
        free(t);
    }
    if (lg->sink == RDL_LOG_FILE && lg->fd >= 0)
        close(lg->fd);
    pthread_mutex_destroy(&lg->mu);
    pthread_cond_destroy(&lg->flushed_cv);
    free(lg->samples);
    free(lg->iov);
    for (int i = 0; i <= RDL_LOG_FATAL; i++)
        free(lg->head[i]);
    free(lg->service);
    free(lg->path);
    free(lg);
}

/* Each level's head with the service escaped, once, rather than on every line. */
static int heads_make(rdl_logger_t *lg)
{
    size_t cap = 40 + 6 * lg->service_len;      /* keys, the longest level, every byte escaped */

    for (int i = 0; i <= RDL_LOG_FATAL; i++) {
        if (!(lg->head[i] = malloc(cap)))
            return RDL_ENOMEM;
        lg->head_len[i] = rdl__log_format_head(lg->head[i], cap, (rdl_log_level_t)i, lg->service,
                                          lg->service_len);
    }
    return 0;
}

int rdl_logger_new(const rdl_log_opts_t *opts, rdl_logger_t **out)
{
    rdl_log_opts_t def;
    *out = NULL;
    if (!opts) {
        rdl_log_opts_default(&def);
        opts = &def;
    }
    if ((unsigned)opts->level > RDL_LOG_FATAL || opts->max_line < RDL_LOG_MAX_LINE_MIN ||
        (opts->sink == RDL_LOG_FILE && (!opts->path || !opts->path[0])) ||
        (opts->sample_first && opts->sample_every < 1))
        return RDL_EINVAL;
    rdl_logger_t *lg = calloc(1, sizeof(*lg));
    if (!lg)
        return RDL_ENOMEM;
    lg->fd = -1;
    lg->serial = atomic_fetch_add(&serials, 1) + 1;
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->flushed_cv, NULL);
    lg->service = dup_str(opts->service ? opts->service : "redline");
    lg->path = dup_str(opts->path ? opts->path : "");
    lg->samples = calloc(SAMPLE_SLOTS, sizeof(sample_slot_t));
    if (!lg->service || !lg->path || !lg->samples) {
        logger_destroy(lg);
        return RDL_ENOMEM;
    }
    lg->service_len = strlen(lg->service);
    if (heads_make(lg) != 0) {
        logger_destroy(lg);
        return RDL_ENOMEM;
    }
    atomic_init(&lg->level, (int)opts->level);
    lg->sink = opts->sink;
    lg->max_line = opts->max_line;
    lg->pipe_bytes = opts->pipe_bytes;
    lg->ring_size = ring_size_for(opts->ring_bytes, opts->max_line);
    lg->policy = opts->policy;
    lg->sample_first = opts->sample_first;
    lg->sample_every = opts->sample_every ? opts->sample_every : 1;
    if (lg->sink == RDL_LOG_FILE) {
        lg->fd = open_file(lg->path);
        if (lg->fd < 0) {
            logger_destroy(lg);
            return RDL_EIO;
        }
    } else {
        lg->fd = lg->sink == RDL_LOG_STDERR ? STDERR_FILENO : STDOUT_FILENO;
    }
    atomic_init(&lg->pipe_now, grow_pipe(lg->fd, lg->pipe_bytes));
    if (pthread_key_create(&lg->key, thread_gone) != 0) {
        logger_destroy(lg);
        return RDL_ENOMEM;
    }
    if (pthread_create(&lg->writer, NULL, writer_main, lg) != 0) {
        pthread_key_delete(lg->key);
        logger_destroy(lg);
        return RDL_ENOMEM;
    }
    *out = lg;
    return 0;
}

void rdl_logger_free(rdl_logger_t *lg)
{
    if (!lg)
        return;
    atomic_store(&lg->stop, true);
    wake_writer_now(lg);
    pthread_join(lg->writer, NULL);
    /* This thread's ring is freed below: make sure its destructor cannot run on it. */
    pthread_setspecific(lg->key, NULL);
    pthread_key_delete(lg->key);
    logger_destroy(lg);
}

/* ---- control --------------------------------------------------------- */

rdl_log_level_t rdl_log_level(rdl_logger_t *lg)
{
    if (!lg && !(lg = rdl_log_default()))
        return RDL_LOG_INFO;
    return (rdl_log_level_t)atomic_load(&lg->level);
}

void rdl_log_set_level(rdl_logger_t *lg, rdl_log_level_t level)
{
    if (!lg && !(lg = rdl_log_default()))
        return;
    if ((unsigned)level <= RDL_LOG_FATAL)
        atomic_store(&lg->level, (int)level);
}

int rdl_log_flush(rdl_logger_t *lg, uint64_t timeout_ms)
{
    if (!lg && !(lg = rdl_log_default()))
        return 0;
    struct timespec until = deadline_in(timeout_ms);
    int rc = 0;
    uint64_t target = atomic_fetch_add(&lg->flush_req, 1) + 1;
    wake_writer_now(lg);
    pthread_mutex_lock(&lg->mu);
    while (atomic_load(&lg->flush_done) < target && rc == 0) {
        if (timeout_ms == 0)
            pthread_cond_wait(&lg->flushed_cv, &lg->mu);
        else if (pthread_cond_timedwait(&lg->flushed_cv, &lg->mu, &until) == ETIMEDOUT)
            rc = atomic_load(&lg->flush_done) < target ? RDL_ETIMEDOUT : 0;
    }
    pthread_mutex_unlock(&lg->mu);
    return rc;
}

void rdl_log_reopen(rdl_logger_t *lg)
{
    if (!lg && !(lg = rdl_log_default()))
        return;
    atomic_store(&lg->reopen, true);
    wake_writer_now(lg);
}

void rdl_log_stats(rdl_logger_t *lg, rdl_log_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!lg && !(lg = rdl_log_default()))
        return;
    for (log_thread_t *t = atomic_load(&lg->threads); t; t = t->next) {
        out->ring_bytes += t->size;
        out->lines += get(&t->lines);
        out->dropped += get(&t->dropped);
        out->sampled += get(&t->sampled);
        out->truncated += get(&t->truncated);
    }
    out->dropped += get(&lg->lost_noalloc);
    out->bytes_written = get(&lg->bytes_written);
    out->write_errors = get(&lg->write_errors);
    out->lost = get(&lg->lost);
    out->reopens = get(&lg->reopens);
    out->pipe_bytes = atomic_load(&lg->pipe_now);
}

/* ---- the default logger ---------------------------------------------- */

static _Atomic(rdl_logger_t *) installed;
static rdl_logger_t *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_flush(void)
{
    rdl_log_flush(builtin, 2000);
}

static void builtin_make(void)
{
    if (rdl_logger_new(NULL, &builtin) == 0)
        atexit(builtin_flush);
}

rdl_logger_t *rdl_log_default(void)
{
    rdl_logger_t *lg = atomic_load_explicit(&installed, memory_order_acquire);
    if (lg)
        return lg;
    pthread_once(&builtin_once, builtin_make);
    return builtin;
}

rdl_logger_t *rdl_log_set_default(rdl_logger_t *lg)
{
    return atomic_exchange(&installed, lg);
}
