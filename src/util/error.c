/*
 * error.c: error codes and rdl_error_t, the one way every redline parser tells
 * a person where their input went wrong (file, key, line, column) and what was
 * expected instead.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "redline/util.h"

const char *rdl_strerror(int err)
{
    switch (err) {
    case RDL_OK:        return "ok";
    case RDL_EINVAL:    return "invalid argument";
    case RDL_ENOMEM:    return "out of memory";
    case RDL_EBUSY:     return "busy";
    case RDL_ENOENT:    return "not found";
    case RDL_EEXIST:    return "already exists";
    case RDL_EIO:       return "i/o error";
    case RDL_ECANCELED: return "canceled";
    case RDL_ETIMEDOUT: return "timed out";
    case RDL_ENOSPC:    return "no space left";
    case RDL_ESTATE:    return "invalid state";
    default:            return "unknown error";
    }
}

void rdl_error_clear(rdl_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
}

/* Copies without overflowing dst; snprintf would warn about truncation under -Wformat. */
static void copy_str(char *dst, size_t dstlen, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= dstlen)
        n = dstlen - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

int rdl_error_set(rdl_error_t *err, int code, int line, int column, const char *key,
                  const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    /* file is left alone: callers set it once and report many errors against it. */
    err->code = code;
    err->line = line;
    err->column = column;
    copy_str(err->key, sizeof(err->key), key);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* Parts that are unknown (empty file, line 0, empty key) are left out. */
const char *rdl_error_format(const rdl_error_t *err, char *out, size_t outlen)
{
    char loc[sizeof(err->file) + 32];

    if (out == NULL || outlen == 0)
        return out;
    out[0] = '\0';
    if (err == NULL)
        return out;
    loc[0] = '\0';
    if (err->file[0] != '\0' && err->line > 0)
        snprintf(loc, sizeof(loc), "%s:%d:%d", err->file, err->line, err->column);
    else if (err->file[0] != '\0')
        snprintf(loc, sizeof(loc), "%s", err->file);
    else if (err->line > 0)
        snprintf(loc, sizeof(loc), "%d:%d", err->line, err->column);
    snprintf(out, outlen, "%s%s%s%s%s", loc, loc[0] != '\0' ? ": " : "", err->key,
             err->key[0] != '\0' ? ": " : "", err->msg[0] != '\0' ? err->msg : rdl_strerror(err->code));
    return out;
}
