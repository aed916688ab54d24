/*
 * log.h: structured logs. One JSON object per line with ts (RFC 3339 UTC,
 * nanoseconds), level, service, msg, the request's trace_id / span_id /
 * request_id when the line is written in a request context, then typed
 * fields. Writing a line costs no heap allocation and no syscall: it is
 * formatted into the calling thread's own ring buffer and one writer thread
 * batches the rings to the sink (stdout, stderr, or a file reopened on demand
 * for logrotate). Lines are never torn or interleaved.
 *
 *   rdl_log_opts_t o; rdl_log_opts_default(&o); o.service = "coursed";
 *   rdl_logger_t *lg; rdl_logger_new(&o, &lg);
 *   rdl_log_field_t f[] = { rdl_lf_str("course", name), rdl_lf_int("seats", 30) };
 *   rdl_log(lg, RDL_LOG_INFO, "course created", f, 2);
 *   rdl_logger_free(lg);          // flushes every accepted line, then stops the writer
 *
 * Thread-safety: rdl_log, rdl_log_ctx, rdl_log_ctx_at, rdl_log_enabled, the
 * level and stats accessors, rdl_log_flush and rdl_log_reopen may be called
 * from any thread at once; rdl_log_reserve from any thread, for its own ring.
 * rdl_logger_new/rdl_logger_free and rdl_log_set_default are called at
 * start-up/shut-down, when no other thread uses that logger.
 */
#ifndef REDLINE_LOG_H
#define REDLINE_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include "redline/common.h"
#include "redline/util.h"
#include "redline/ctx.h"

typedef enum rdl_log_level {
    RDL_LOG_DEBUG, RDL_LOG_INFO, RDL_LOG_WARN, RDL_LOG_ERROR, RDL_LOG_FATAL
} rdl_log_level_t;

/* What a thread does when its ring is full because the writer fell behind. */
typedef enum rdl_log_policy {
    RDL_LOG_BLOCK,              /* wait for room: nothing is lost, the caller slows down */
    RDL_LOG_DROP                /* drop the line and count it (stats.dropped) */
} rdl_log_policy_t;

typedef enum rdl_log_sink {
    RDL_LOG_STDOUT, RDL_LOG_STDERR, RDL_LOG_FILE
} rdl_log_sink_t;

#define RDL_LOG_MAX_LINE_DEFAULT 10240
#define RDL_LOG_MAX_LINE_MIN 256

typedef struct rdl_log_opts {
    const char *service;        /* "service" field (copied); NULL = "redline" */
    rdl_log_level_t level;      /* lines below it are not written */
    rdl_log_sink_t sink;
    const char *path;           /* RDL_LOG_FILE: opened O_APPEND, created 0644 (copied) */
    size_t max_line;            /* bytes with the newline; longer lines are truncated */
    size_t ring_bytes;          /* per-thread ring (rounded up to a power of two, >= 4 lines) */
    size_t pipe_bytes;          /* a sink that is a pipe: its kernel buffer raised to this
                                   (F_SETPIPE_SZ, best effort, never lowered); 0 = left alone */
    rdl_log_policy_t policy;
    uint32_t sample_first;      /* sampling: per message and level, the first N each second; 0 = off */
    uint32_t sample_every;      /* ... then 1 in M (M >= 1) */
} rdl_log_opts_t;

/* info, stdout, 10 KiB lines, 256 KiB per thread, a 1 MiB pipe, block, no sampling. */
RDL_EXTERN void rdl_log_opts_default(rdl_log_opts_t *opts);

typedef struct rdl_logger rdl_logger_t;

/* Opens the sink and starts the writer thread. RDL_EIO when the file cannot be opened. */
RDL_EXTERN int rdl_logger_new(const rdl_log_opts_t *opts, rdl_logger_t **out);
/* Writes every line accepted so far, stops the writer, closes a file sink. NULL is fine. */
RDL_EXTERN void rdl_logger_free(rdl_logger_t *lg);

/*
 * The process's default logger, used when a function below gets lg == NULL.
 * Made on first use with the default options (stdout) and flushed at exit.
 * rdl_log_set_default installs lg (NULL: back to the built-in one) and returns
 * the one it replaces (NULL when that was the built-in one); it frees nothing.
 */
RDL_EXTERN rdl_logger_t *rdl_log_default(void);
RDL_EXTERN rdl_logger_t *rdl_log_set_default(rdl_logger_t *lg);

/* ---- fields ---------------------------------------------------------- */

typedef enum rdl_log_type {
    RDL_LF_STR,                 /* s, n bytes: escaped exactly, invalid UTF-8 -> U+FFFD */
    RDL_LF_INT,                 /* i */
    RDL_LF_FLOAT,               /* f: shortest exact form; NaN/Inf as strings "NaN", "+Inf", "-Inf" */
    RDL_LF_BOOL,                /* b */
    RDL_LF_DURATION,            /* u nanoseconds, written as milliseconds: 12.345678 */
    RDL_LF_ERROR                /* i: an RDL_E* code (< 0) or an errno (> 0), written as its text */
} rdl_log_type_t;

/*
 * A typed field. Build them with the rdl_lf_* helpers; nothing is copied until
 * the line is written. The helpers fill key_len, which the compiler counts for
 * a literal key, so the line costs no strlen per key.
 */
typedef struct rdl_log_field {
    const char *key;
    rdl_log_type_t type;
    uint32_t key_len;           /* bytes of key; 0: strlen(key) when the line is written */
    size_t n;                   /* RDL_LF_STR: bytes of s */
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double f;
        bool b;
    } v;
} rdl_log_field_t;

/* A key's length for key_len (a literal's is folded at compile time). */
static inline uint32_t rdl_lf_key_len(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n <= UINT32_MAX ? (uint32_t)n : 0;
}

static inline rdl_log_field_t rdl_lf_strn(const char *key, const char *s, size_t n)
{
    rdl_log_field_t f = { .key = key, .type = RDL_LF_STR, .key_len = rdl_lf_key_len(key),
                          .n = s ? n : 0, .v.s = s ? s : "" };
    return f;
}

/* s NUL-terminated; NULL writes "". */
static inline rdl_log_field_t rdl_lf_str(const char *key, const char *s)
{
    return rdl_lf_strn(key, s, s ? strlen(s) : 0);
}

static inline rdl_log_field_t rdl_lf_int(const char *key, int64_t i)
{
    rdl_log_field_t f = { .key = key, .type = RDL_LF_INT, .key_len = rdl_lf_key_len(key),
                          .v.i = i };
    return f;
}

static inline rdl_log_field_t rdl_lf_float(const char *key, double d)
{
    rdl_log_field_t f = { .key = key, .type = RDL_LF_FLOAT, .key_len = rdl_lf_key_len(key),
                          .v.f = d };
    return f;
}

static inline rdl_log_field_t rdl_lf_bool(const char *key, bool b)
{
    rdl_log_field_t f = { .key = key, .type = RDL_LF_BOOL, .key_len = rdl_lf_key_len(key),
                          .v.b = b };
    return f;
}

static inline rdl_log_field_t rdl_lf_dur(const char *key, uint64_t ns)
{
    rdl_log_field_t f = { .key = key, .type = RDL_LF_DURATION, .key_len = rdl_lf_key_len(key),
                          .v.u = ns };
    return f;
}

static inline rdl_log_field_t rdl_lf_err(const char *key, int code)
{
    rdl_log_field_t f = { .key = key, .type = RDL_LF_ERROR, .key_len = rdl_lf_key_len(key),
                          .v.i = code };
    return f;
}

/* ---- writing --------------------------------------------------------- */

/* Whether a line at level would be written (cheap: skip building fields). */
RDL_EXTERN bool rdl_log_enabled(rdl_logger_t *lg, rdl_log_level_t level);

/*
 * Writes one line in the calling thread's request context (rdl_ctx_current()):
 * its trace_id/span_id (when the trace id is not all zero) and request_id
 * (when set) are added. fields may be NULL when n is 0. Keys are written as
 * given (escaped); do not reuse the reserved names ts, level, service, msg.
 * A FATAL line is flushed before the call returns (waiting at most 5 s);
 * exiting is the caller's call.
 */
RDL_EXTERN void rdl_log(rdl_logger_t *lg, rdl_log_level_t level, const char *msg,
                        const rdl_log_field_t *fields, size_t n);
/* Same, with an explicit context (NULL: none). */
RDL_EXTERN void rdl_log_ctx(rdl_logger_t *lg, rdl_log_level_t level, const rdl_ctx_t *ctx,
                            const char *msg, const rdl_log_field_t *fields, size_t n);
/*
 * Same, stamped at mono_ns, a CLOCK_MONOTONIC reading the caller already has
 * (rdl_now_ns(); 0 = now), so a line about an event that was just timed costs
 * no second clock reading: the access log stamps its line with the request's
 * end. The reading becomes wall time through the offset between the clocks,
 * which each thread takes again once a second (a step of the wall clock shows
 * within a second).
 */
RDL_EXTERN void rdl_log_ctx_at(rdl_logger_t *lg, rdl_log_level_t level, const rdl_ctx_t *ctx,
                               uint64_t mono_ns, const char *msg, const rdl_log_field_t *fields,
                               size_t n);

/*
 * Formats one line as the logger does, into out[0..cap) (cap >= max_line >=
 * RDL_LOG_MAX_LINE_MIN), ending with '\n'; returns its length (<= max_line).
 * wall_ns is the timestamp (ns since the epoch). *truncated (may be NULL)
 * says whether fields were cut. Pure: any thread, no allocation.
 */
RDL_EXTERN size_t rdl_log_format(char *out, size_t cap, size_t max_line, uint64_t wall_ns,
                                 rdl_log_level_t level, const char *service, const rdl_ctx_t *ctx,
                                 const char *msg, const rdl_log_field_t *fields, size_t n,
                                 bool *truncated);

/* ---- control --------------------------------------------------------- */

RDL_EXTERN rdl_log_level_t rdl_log_level(rdl_logger_t *lg);
/* Takes effect for the next line on every thread; no restart. */
RDL_EXTERN void rdl_log_set_level(rdl_logger_t *lg, rdl_log_level_t level);
/* "debug" ... "fatal"; "?" for an out-of-range value. */
RDL_EXTERN const char *rdl_log_level_name(rdl_log_level_t level);
/* Parses a level name (case-insensitive, "warning" too); RDL_EINVAL when unknown. */
RDL_EXTERN int rdl_log_parse_level(const char *s, size_t n, rdl_log_level_t *out);

/*
 * Waits until every line accepted before the call is written to the sink,
 * or timeout_ms passes (0 = no limit): 0 or RDL_ETIMEDOUT.
 */
RDL_EXTERN int rdl_log_flush(rdl_logger_t *lg, uint64_t timeout_ms);
/*
 * Asks the writer to reopen a file sink (after logrotate moved it): lines
 * written after the reopen go to a file at the configured path. Returns at
 * once; a no-op for stdout/stderr.
 */
RDL_EXTERN void rdl_log_reopen(rdl_logger_t *lg);

/*
 * Makes the calling thread's ring now, of at least bytes (0: the logger's
 * ring_bytes; rounded up as ring_bytes is; at most RDL_LOG_RING_MAX), instead
 * of at its first line: a thread that writes a line per request (an I/O
 * thread) can have more room than the rest, and its first line allocates
 * nothing. A ring's size sets how often the writer wakes for it (at half
 * full), so a bigger one means fewer, larger writes. 0 when the thread has a
 * ring that big (made now or before); RDL_EBUSY when it has a smaller one
 * (rings are never resized); RDL_EINVAL past the maximum; RDL_ENOMEM.
 * Thread-safety: any thread, for its own ring.
 */
#define RDL_LOG_RING_MAX ((size_t)1 << 30)
RDL_EXTERN int rdl_log_reserve(rdl_logger_t *lg, size_t bytes);

/* Counters since rdl_logger_new (each read atomically; the set is not a snapshot). */
typedef struct rdl_log_stats {
    uint64_t lines;             /* accepted into a ring */
    uint64_t dropped;           /* policy drop: ring full (log_dropped_total) */
    uint64_t sampled;           /* left out by sampling */
    uint64_t truncated;         /* accepted but cut to max_line */
    uint64_t bytes_written;     /* reached the sink */
    uint64_t write_errors;      /* failed writes (their lines are counted in lost) */
    uint64_t lost;              /* accepted lines the sink refused (disk full, EIO...) */
    uint64_t reopens;           /* successful file reopens */
    uint64_t pipe_bytes;        /* the sink's pipe buffer now; 0 when the sink is not a pipe */
    uint64_t ring_bytes;        /* every thread's ring, summed (kept until rdl_logger_free) */
} rdl_log_stats_t;

RDL_EXTERN void rdl_log_stats(rdl_logger_t *lg, rdl_log_stats_t *out);

#endif
