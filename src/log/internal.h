/*
 * internal.h: what log.c (the logger, rings and writer) shares with
 * format.c (the line formatter). Nothing here is public API.
 */
#ifndef REDLINE_LOG_INTERNAL_H
#define REDLINE_LOG_INTERNAL_H

#include <time.h>
#include "redline/log.h"

/* "2026-11-24T22:18:15.123456789Z" */
#define LOG_TS_LEN 30

/* ts for wall_ns; the prefix (up to the '.') and the nanoseconds can also be written apart. */
size_t rdl__log_format_ts(char out[LOG_TS_LEN], uint64_t wall_ns);
void rdl__log_format_ts_prefix(char out[LOG_TS_LEN], const struct tm *tm);
void rdl__log_format_ts_ns(char out[LOG_TS_LEN], uint32_t ns);

/*
 * What follows the timestamp, ","level":"info","service":"<escaped service>",
 * into out[0..cap), made once per logger and level so a line copies it whole.
 * Returns its length, or 0 when it does not fit in cap.
 */
size_t rdl__log_format_head(char *out, size_t cap, rdl_log_level_t level, const char *service,
                       size_t service_len);

/*
 * One line into out[0..max_line); see rdl_log_format. head (NULL: none) is
 * rdl__log_format_head's text for this level and service (head_len 0: none): copied when it fits,
 * else the head is written from level and service, cut like any field.
 */
size_t rdl__log_format_line(char *out, size_t max_line, const char ts[LOG_TS_LEN],
                       rdl_log_level_t level, const char *service, size_t service_len,
                       const char *head, size_t head_len, const rdl_ctx_t *ctx,
                       const char *msg, const rdl_log_field_t *fields, size_t n,
                       bool *truncated);

#endif
