/*
 * util.h: the small things every redline module shares: error codes, parse
 * errors that name a place, clocks, ids as hex digits and back, an ASCII
 * case-insensitive compare, pseudo-random numbers, a growable byte buffer
 * with an exact JSON string writer, and a bump arena for per-request memory.
 *
 *   rdl_buf_t b;
 *   rdl_buf_init(&b);
 *   rdl_buf_puts(&b, "{\"msg\":");
 *   rdl_json_str(&b, user_text, strlen(user_text));   // always valid JSON
 *   rdl_buf_putc(&b, '}');  ... use b.data, b.len ...  rdl_buf_close(&b);
 *
 * Thread-safety: every function here works on caller-owned objects (or, for
 * rdl_rand64 and rdl_rand_seed, the calling thread's own state) only and is
 * safe to call from any thread; objects themselves are not shared-safe.
 */
#ifndef REDLINE_UTIL_H
#define REDLINE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <stdbool.h>
#include "redline/common.h"

/* Error codes: functions that can fail return 0 or one of these (negative). */
#define RDL_OK          0
#define RDL_EINVAL    (-22)   /* bad argument or bad input (see rdl_error_t) */
#define RDL_ENOMEM    (-12)   /* allocation failed */
#define RDL_EBUSY     (-16)   /* queue or limit full: try later */
#define RDL_ENOENT     (-2)   /* no such thing (file, key, route) */
#define RDL_EEXIST    (-17)   /* already registered */
#define RDL_EIO        (-5)   /* I/O failed (errno-level detail is in rdl_error_t) */
#define RDL_ECANCELED (-125)  /* canceled before or while running */
#define RDL_ETIMEDOUT (-110)  /* deadline passed */
#define RDL_ENOSPC    (-28)   /* storage full (disk, quota or file size limit): try later */
#define RDL_ESTATE    (-1000) /* call not valid in the object's current state */

/* A short constant name for an error code ("invalid argument"). Never NULL. */
RDL_EXTERN const char *rdl_strerror(int err);

/*
 * A parse or validation error a person can act on: where (file, key, line and
 * column, 1-based; 0 when unknown) and what was expected.
 */
typedef struct rdl_error {
    int code;           /* RDL_E* */
    int line;
    int column;
    char file[256];
    char key[128];      /* dotted config key, header name, ... ("" if none) */
    char msg[384];
} rdl_error_t;

RDL_EXTERN void rdl_error_clear(rdl_error_t *err);
/* Fills err (when not NULL) and returns code. printf-style message. */
RDL_EXTERN int rdl_error_set(rdl_error_t *err, int code, int line, int column, const char *key,
                             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* "file:line:column: key: msg" into out; returns out. */
RDL_EXTERN const char *rdl_error_format(const rdl_error_t *err, char *out, size_t outlen);

/*
 * YAML text helpers for the YAML readers (config, route), around libfyaml
 * 0.7.12's faults. rdl_yaml_check_text refuses text that is not printable
 * UTF-8, holds a tab, or a CR without LF (err names line and column). rdl_yaml_single_quoted
 * decodes the raw body of a single-quoted scalar (YAML 1.2 section 7.3.2)
 * into a malloc'ed string the caller frees; NULL when out of memory.
 */
RDL_EXTERN int rdl_yaml_check_text(const char *yaml, size_t len, rdl_error_t *err);
RDL_EXTERN char *rdl_yaml_single_quoted(const char *raw, size_t n, size_t *outlen);

/*
 * Reads the whole regular file at path into *out, a NUL-terminated heap copy
 * the caller frees, and its length into *len (the file may hold NUL bytes).
 * Refuses, with err naming the path (err->file) and saying what it is and the
 * limit: a directory, a device, a FIFO or socket (opened without blocking), a
 * file larger than max_bytes, including one that grows past it while read.
 * Returns 0, RDL_ENOENT (no such file), RDL_EIO (not a regular file, cannot
 * be read), RDL_EINVAL (too large) or RDL_ENOMEM; *out is NULL on failure.
 * Any thread.
 */
RDL_EXTERN int rdl_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                             rdl_error_t *err);

/* in[0..n) as 2n lowercase hex digits at out (not NUL-terminated). */
RDL_EXTERN void rdl_hex_lower(char *out, const void *in, size_t n);
/* The value (0 to 15) of the hex digit c in either case; -1 when c (a byte) is not one. */
RDL_EXTERN int rdl_hex_value(int c);
/*
 * The strict inverse of rdl_hex_lower, for ids in headers: 2n lowercase hex
 * digits at in into n bytes at out. Returns 2n when all are lowercase hex
 * digits, else the offset of the first that is not (out is then undefined).
 */
RDL_EXTERN size_t rdl_hex_decode_lower(void *out, const char *in, size_t n);

/*
 * Whether a[0..alen) and b[0..blen) are the same ignoring ASCII case: header
 * names, methods and config words. Locale-independent (only A-Z fold, where
 * strcasecmp follows the locale), so a byte above 0x7f matches only itself.
 * Inline because the HTTP parser compares every framing header with a
 * literal: at such a call the compiler folds the literal's side away. Pure.
 */
static inline bool rdl_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = x >= 'A' && x <= 'Z' ? (unsigned char)(x + ('a' - 'A')) : x;
        y = y >= 'A' && y <= 'Z' ? (unsigned char)(y + ('a' - 'A')) : y;
        if (x != y)
            return false;
    }
    return true;
}

/*
 * The library's pseudo-random numbers (xoshiro256**; not for secrets).
 * rdl_rand64 draws from the calling thread's own state, seeded from the
 * kernel on its first draw; rdl_rand_seed makes the calling thread's
 * sequence repeatable (tests). A caller that wants a sequence of its own keeps
 * an rdl_rand_t: rdl_rand_init seeds it, rdl_rand_next draws from it (not
 * shared-safe). rdl_rand_unit maps a draw to a double in [0, 1).
 */
typedef struct rdl_rand {
    uint64_t s[4];
} rdl_rand_t;

RDL_EXTERN uint64_t rdl_rand64(void);
RDL_EXTERN void rdl_rand_seed(uint64_t seed);
RDL_EXTERN void rdl_rand_init(rdl_rand_t *r, uint64_t seed);
RDL_EXTERN uint64_t rdl_rand_next(rdl_rand_t *r);
RDL_EXTERN double rdl_rand_unit(uint64_t draw);

/* Clocks, in nanoseconds. Monotonic for durations and deadlines, wall for timestamps. */
RDL_EXTERN uint64_t rdl_now_ns(void);
RDL_EXTERN uint64_t rdl_wall_ns(void);
/* The absolute time ns from now on clock, as pthread_cond_timedwait takes it. Any thread. */
RDL_EXTERN struct timespec rdl_timespec_in(clockid_t clock, uint64_t ns);

/* Parses "250ms", "30s", "5m", "1h", "1m30s" or a bare integer of milliseconds. */
RDL_EXTERN int rdl_parse_duration_ms(const char *s, uint64_t *out_ms);
/* Parses "512", "16k"/"16KiB", "1M"/"1MiB", "1G"/"1GiB" (binary multiples) into bytes. */
RDL_EXTERN int rdl_parse_size(const char *s, uint64_t *out_bytes);
/* Room for a host in "host:port" (rdl_parse_hostport), its NUL included. */
#define RDL_HOST_MAX 64
/* Splits "host:port", "[v6]:port" or ":port" (host = "0.0.0.0"); longer hosts are RDL_EINVAL. */
RDL_EXTERN int rdl_parse_hostport(const char *s, char host[RDL_HOST_MAX], int *port);

/*
 * HTTP request methods, the one table of them: the request parser, the router,
 * the runtime's middleware and the outbound client share these ids.
 * rdl_method_parse is case-sensitive (RFC 9110 §9.1) and gives
 * RDL_METHOD_UNKNOWN for any other token; rdl_method_name gives "GET" ..., ""
 * for RDL_METHOD_UNKNOWN or a value out of range; rdl_method_idempotent is
 * RFC 9110 §9.2.2's rule (GET, HEAD, PUT, DELETE, OPTIONS; TRACE is not retried).
 */
typedef enum rdl_method {
    RDL_METHOD_UNKNOWN = 0,
    RDL_METHOD_GET, RDL_METHOD_HEAD, RDL_METHOD_POST, RDL_METHOD_PUT, RDL_METHOD_DELETE,
    RDL_METHOD_PATCH, RDL_METHOD_OPTIONS, RDL_METHOD_TRACE, RDL_METHOD_CONNECT,
    RDL_METHOD_COUNT
} rdl_method_t;
RDL_EXTERN rdl_method_t rdl_method_parse(const char *s, size_t n);
RDL_EXTERN const char *rdl_method_name(rdl_method_t m);
RDL_EXTERN bool rdl_method_idempotent(rdl_method_t m);

/* Growable byte buffer. data is always NUL-terminated for convenience. */
typedef struct rdl_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;           /* an append failed: contents are truncated */
} rdl_buf_t;

RDL_EXTERN void rdl_buf_init(rdl_buf_t *b);
RDL_EXTERN void rdl_buf_close(rdl_buf_t *b);
RDL_EXTERN void rdl_buf_reset(rdl_buf_t *b);                    /* len = 0, keeps memory */
RDL_EXTERN int rdl_buf_reserve(rdl_buf_t *b, size_t extra);     /* room for extra more bytes */
RDL_EXTERN void rdl_buf_put(rdl_buf_t *b, const void *p, size_t n);
RDL_EXTERN void rdl_buf_puts(rdl_buf_t *b, const char *s);
RDL_EXTERN void rdl_buf_putc(rdl_buf_t *b, char c);
RDL_EXTERN void rdl_buf_printf(rdl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2,
                               3)));
RDL_EXTERN void rdl_buf_put_u64(rdl_buf_t *b, uint64_t v);
RDL_EXTERN void rdl_buf_put_i64(rdl_buf_t *b, int64_t v);

/*
 * Secrets. rdl_secret_equal compares a presented credential with the
 * expected one in time that depends on their lengths only, never on where
 * they differ; false when either is empty. rdl_secret_name: whether a
 * setting, header or flag of that name holds a secret (its name contains
 * token, password, passwd, secret, authorization or api key, any case).
 * rdl_redact_put appends s with any secret replaced by RDL_REDACTED: all
 * after an '=' whose text before it names a secret ("a.password=<redacted>",
 * "h=Authorization=<redacted>"), else a URL's userinfo
 * ("https://<redacted>@host/"); other text as it is. Any thread.
 */
#define RDL_REDACTED "<redacted>"
RDL_EXTERN bool rdl_secret_equal(const void *given, size_t given_len, const void *secret,
                                 size_t secret_len);
RDL_EXTERN bool rdl_secret_name(const char *name, size_t n);
RDL_EXTERN void rdl_redact_put(rdl_buf_t *b, const char *s, size_t n);

/*
 * UTF-8 as every writer here checks it (JSON, exposition, OTLP, YAML text):
 * rdl_utf8_seq returns the length (1-4) of the valid sequence at s[0..n), n >= 1,
 * or 0 when it is not valid UTF-8 (overlong, surrogate, above U+10FFFF,
 * truncated), with *skip (may be NULL) set to its maximal invalid prefix, the
 * bytes one U+FFFD replaces (Unicode's "maximal subpart" practice).
 * rdl_utf8_put appends s with each such prefix replaced by U+FFFD;
 * rdl_utf8_clean_len is the length that appends. Any thread.
 */
RDL_EXTERN size_t rdl_utf8_seq(const char *s, size_t n, size_t *skip);
RDL_EXTERN void rdl_utf8_put(rdl_buf_t *b, const char *s, size_t n);
RDL_EXTERN size_t rdl_utf8_clean_len(const char *s, size_t n);

/*
 * Appends s as a quoted JSON string. Exact: quotes, backslashes and control
 * characters are escaped, and bytes that are not valid UTF-8 become U+FFFD, so
 * the output always parses whatever the input was.
 */
RDL_EXTERN void rdl_json_str(rdl_buf_t *b, const char *s, size_t n);

/*
 * The same escaping into fixed memory, for writers that must not allocate:
 * writes the inside of a JSON string (no quotes) for s[0..n) into out[0..cap),
 * stopping before an escape or a UTF-8 sequence that would not fit whole.
 * Returns the bytes written; *used (may be NULL) receives the input bytes
 * consumed (n when everything fit).
 */
RDL_EXTERN size_t rdl_json_escape(char *out, size_t cap, const char *s, size_t n, size_t *used);
/* 1 for the bytes a JSON string holds as they are (printable ASCII but '"' and '\\'); 0 else, NUL included. */
RDL_EXTERN extern const unsigned char rdl_json_plain[256];

/*
 * Whether all eight bytes in x are plain in that sense: no top bit set, none
 * below 0x20, none equal to '"' or '\\' (the classic "has a byte less than"
 * and "has a zero byte" tricks, exact for "is there any"). Pure.
 */
static inline bool rdl_json_plain8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');

    return ((x & high) | ((x - ones * 0x20) & ~x & high) | ((q - ones) & ~q & high) |
            ((b - ones) & ~b & high)) == 0;
}

/*
 * Bump arena: many small allocations, freed together. Chunks come from the
 * heap; rdl_arena_reset keeps the first chunk so a reused arena stops allocating.
 */
typedef struct rdl_arena_chunk rdl_arena_chunk_t;
typedef struct rdl_arena {
    rdl_arena_chunk_t *head;
    size_t chunk_size;
} rdl_arena_t;

RDL_EXTERN void rdl_arena_init(rdl_arena_t *a, size_t chunk_size);
RDL_EXTERN void rdl_arena_close(rdl_arena_t *a);
RDL_EXTERN void rdl_arena_reset(rdl_arena_t *a);
RDL_EXTERN void *rdl_arena_alloc(rdl_arena_t *a, size_t n);       /* 16-byte aligned; NULL on OOM */
RDL_EXTERN char *rdl_arena_strndup(rdl_arena_t *a, const char *s, size_t n);

#endif
