/*
 * log_burst.c: a small program that drives the log library the way a busy
 * service does, for tests/integration/test_logs.py.
 *
 *   log_burst lines PATH THREADS LINES   THREADS threads write LINES lines each
 *                                        to PATH, then the logger is freed.
 *   log_burst term PATH THREADS          threads write until SIGTERM; then the
 *                                        lines each thread had accepted are
 *                                        counted, the logger flushed, and one
 *                                        JSON object printed on stdout:
 *                                        {"accepted":[...],"flushed_bytes":N}
 *                                        (N: the file's size when the flush
 *                                        returned); then the threads stop, the
 *                                        logger is freed and the exit is 0.
 *
 * Each line carries "t" (thread) and "seq" (0, 1, 2, ... per thread) and a
 * string with quotes, a backslash, a newline, a control byte and UTF-8, so
 * the test can check that nothing is lost, torn, reordered or mis-escaped.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "redline/log.h"

#define MAX_THREADS 64

static rdl_logger_t *lg;
static atomic_bool stop;
static atomic_uint_fast64_t accepted[MAX_THREADS];
static long lines_each;

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    static const char text[] = "q\"b\\n\nc\x01 caf\xC3\xA9";
    for (long seq = 0; lines_each ? seq < lines_each : !atomic_load(&stop); seq++) {
        rdl_log_field_t f[] = { rdl_lf_int("t", t), rdl_lf_int("seq", seq),
                                rdl_lf_strn("text", text, sizeof(text) - 1),
                                rdl_lf_dur("took", (uint64_t)seq * 1000u) };
        rdl_log(lg, RDL_LOG_INFO, "burst", f, 4);
        atomic_store(&accepted[t], (uint64_t)seq + 1);
    }
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: log_burst lines PATH THREADS LINES | log_burst term PATH THREADS\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    bool term = strcmp(argv[1], "term") == 0;
    if (!term && (strcmp(argv[1], "lines") != 0 || argc < 5))
        return usage();
    int nthreads = atoi(argv[3]);
    if (nthreads < 1 || nthreads > MAX_THREADS)
        return usage();
    lines_each = term ? 0 : atol(argv[4]);

    /* SIGTERM is taken by sigwait below, never by a writer thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rdl_log_opts_t o;
    rdl_log_opts_default(&o);
    o.service = "log_burst";
    o.sink = RDL_LOG_FILE;
    o.path = argv[2];
    int rc = rdl_logger_new(&o, &lg);
    if (rc) {
        fprintf(stderr, "log_burst: %s: %s\n", argv[2], rdl_strerror(rc));
        return 1;
    }
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    if (term) {
        printf("{\"started\":true}\n");
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
        uint64_t snap[MAX_THREADS];
        for (int i = 0; i < nthreads; i++)
            snap[i] = atomic_load(&accepted[i]);
        rc = rdl_log_flush(lg, 0);
        struct stat sb;
        stat(argv[2], &sb);
        printf("{\"flush\":%d,\"accepted\":[", rc);
        for (int i = 0; i < nthreads; i++)
            printf("%s%llu", i ? "," : "", (unsigned long long)snap[i]);
        printf("],\"flushed_bytes\":%lld}\n", (long long)sb.st_size);
        fflush(stdout);
        atomic_store(&stop, true);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    rdl_log_stats_t st;
    rdl_log_stats(lg, &st);
    rdl_logger_free(lg);
    fprintf(stderr, "log_burst: lines %llu dropped %llu write_errors %llu\n",
            (unsigned long long)st.lines, (unsigned long long)st.dropped,
            (unsigned long long)st.write_errors);
    return st.dropped || st.write_errors ? 1 : 0;
}
