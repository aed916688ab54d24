/*
 * file.c: the one way redline reads a whole file (configuration, routes,
 * upstreams, secrets such as a token file). A path from a person or an
 * environment variable can name anything: a directory, /dev/zero, a FIFO
 * nobody writes to, a log that grew to gigabytes. rdl_read_file refuses each
 * of those with a message that says what the path is and what was expected,
 * never blocks on a FIFO (O_NONBLOCK), and never holds more than the caller's
 * limit in memory, even when the file grows while it is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redline/util.h"

/* What a file that is not a regular file is, for the error message. */
static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

/* Sets err to msg for path (err->file) and returns code. */
static int fail(rdl_error_t *err, int code, const char *path, const char *msg)
{
    rdl_error_set(err, code, 0, 0, "", "%s", msg);
    if (err != NULL) {
        size_t n = strlen(path);
        if (n >= sizeof(err->file))
            n = sizeof(err->file) - 1;
        memcpy(err->file, path, n);
        err->file[n] = '\0';
    }
    return code;
}

/*
 * Reads fd to EOF into a buffer of at most max_bytes (+1 for the NUL). hint is
 * the size fstat saw; the file may have changed since, so it only sizes the
 * first allocation. Returns 0, RDL_EINVAL (grew past the limit), RDL_ENOMEM or
 * RDL_EIO (errno set).
 */
static int read_all(int fd, size_t max_bytes, size_t hint, char **out, size_t *len)
{
    size_t cap = hint < 4096 ? 4096 : hint + 1;   /* +1: EOF is seen without a realloc */
    size_t n = 0;
    char *data;

    if (cap > max_bytes)
        cap = max_bytes;
    data = malloc(cap + 1);
    if (data == NULL)
        return RDL_ENOMEM;
    for (;;) {
        ssize_t got;
        if (n == cap) {
            char probe;
            char *p;
            if (cap == max_bytes) {
                /* full at the limit: one more byte means the file is too large */
                do
                    got = read(fd, &probe, 1);
                while (got < 0 && errno == EINTR);
                if (got == 0)
                    break;
                free(data);
                return got < 0 ? RDL_EIO : RDL_EINVAL;
            }
            cap = cap > max_bytes / 2 ? max_bytes : cap * 2;
            p = realloc(data, cap + 1);
            if (p == NULL) {
                free(data);
                return RDL_ENOMEM;
            }
            data = p;
        }
        got = read(fd, data + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(data);
            return RDL_EIO;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    data[n] = '\0';
    *out = data;
    *len = n;
    return 0;
}

int rdl_read_file(const char *path, size_t max_bytes, char **out, size_t *len, rdl_error_t *err)
{
    char msg[sizeof(((rdl_error_t *)0)->msg)];
    struct stat st;
    int fd, rc;

    rdl_error_clear(err);
    if (out != NULL)
        *out = NULL;
    if (len != NULL)
        *len = 0;
    if (path == NULL || out == NULL || len == NULL)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no path or output for the file");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(msg, sizeof(msg), "cannot open: %s", strerror(e));
        return fail(err, e == ENOENT ? RDL_ENOENT : RDL_EIO, path, msg);
    }
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        snprintf(msg, sizeof(msg), "cannot stat: %s", strerror(e));
        return fail(err, RDL_EIO, path, msg);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(msg, sizeof(msg), "is %s; a regular file of at most %zu bytes is expected",
                 kind_of(st.st_mode), max_bytes);
        return fail(err, RDL_EINVAL, path, msg);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        snprintf(msg, sizeof(msg), "is %llu bytes, larger than the limit of %zu bytes",
                 (unsigned long long)st.st_size, max_bytes);
        return fail(err, RDL_EINVAL, path, msg);
    }
    rc = read_all(fd, max_bytes, (size_t)st.st_size, out, len);
    if (rc == RDL_EIO)
        snprintf(msg, sizeof(msg), "cannot read: %s", strerror(errno));
    else if (rc == RDL_EINVAL)
        snprintf(msg, sizeof(msg), "grew larger than the limit of %zu bytes while read", max_bytes);
    else if (rc == RDL_ENOMEM)
        snprintf(msg, sizeof(msg), "out of memory reading it (limit %zu bytes)", max_bytes);
    close(fd);
    return rc == 0 ? 0 : fail(err, rc, path, msg);
}
