/*
 * process.c: the standard process_* metrics, the allocator's figures and
 * /debug/vars.
 *
 * It exists so every redline program answers the questions operators ask
 * first (CPU used, memory resident, file descriptors near their limit, when
 * it started) under the names client libraries use, read from /proc at scrape
 * time; and so /debug/vars gives the same picture as one JSON document, the
 * way Go's expvar does, plus whatever the application publishes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "metrics/internal.h"

/* ---- /proc ------------------------------------------------------------- */

typedef struct proc_stat {
    bool ok;
    double cpu_seconds;
    double start_time;          /* Unix seconds */
    double vsize;
    double rss;
    double threads;
} proc_stat_t;

static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    double bt = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return bt;
}

static void read_proc_stat(proc_stat_t *ps)
{
    memset(ps, 0, sizeof(*ps));
    char *buf = NULL;
    size_t n = 0;
    if (rdl_read_file("/proc/self/stat", 4096, &buf, &n, NULL) != 0)
        return;
    char *p = strrchr(buf, ')');       /* the command name may hold spaces and parens */
    if (!p) {
        free(buf);
        return;
    }
    /* Fields after ")": field 3 (state) is the first. */
    double field[25] = { 0 };
    char *save = NULL;
    int i = 3;
    for (char *tok = strtok_r(p + 1, " ", &save); tok && i < 25; tok = strtok_r(NULL, " ", &save))
        field[i++] = strtod(tok, NULL);
    free(buf);
    if (i < 25)
        return;
    double tck = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    ps->cpu_seconds = (field[14] + field[15]) / tck;
    ps->threads = field[20];
    ps->start_time = boot_time() + field[22] / tck;
    ps->vsize = field[23];
    ps->rss = field[24] * page;
    ps->ok = true;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;                       /* the directory stream's own descriptor */
}

/* ---- the collector ----------------------------------------------------- */

static void gauge(rdl_collect_t *c, const char *name, const char *help, double v)
{
    rdl_collect_family(c, RDL_METRIC_GAUGE, name, help);
    rdl_collect_value(c, NULL, NULL, 0, v);
}

static void collect_process(rdl_collect_t *c, void *arg)
{
    (void)arg;
    proc_stat_t ps;
    read_proc_stat(&ps);
    if (ps.ok) {
        rdl_collect_family(c, RDL_METRIC_COUNTER, "process_cpu_seconds_total",
                           "Total user and system CPU time spent in seconds.");
        rdl_collect_value(c, NULL, NULL, 0, ps.cpu_seconds);
        gauge(c, "process_virtual_memory_bytes", "Virtual memory size in bytes.", ps.vsize);
        gauge(c, "process_resident_memory_bytes", "Resident memory size in bytes.", ps.rss);
        gauge(c, "process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.", ps.start_time);
        gauge(c, "process_threads", "Number of OS threads in the process.", ps.threads);
    }
    int fds = open_fds();
    if (fds >= 0)
        gauge(c, "process_open_fds", "Number of open file descriptors.", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        gauge(c, "process_max_fds", "Maximum number of open file descriptors.", (double)rl.rlim_cur);
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        gauge(c, "process_virtual_memory_max_bytes",
              "Maximum amount of virtual memory available in bytes.", (double)rl.rlim_cur);
    struct mallinfo2 mi = mallinfo2();
    gauge(c, "process_heap_bytes", "Process heap size in bytes.", (double)(mi.arena + mi.hblkhd));
    gauge(c, "redline_malloc_in_use_bytes",
          "Bytes the glibc allocator has handed out and not had back (mallinfo2 uordblks + hblkhd).",
          (double)(mi.uordblks + mi.hblkhd));
    gauge(c, "redline_malloc_free_bytes",
          "Bytes free inside the glibc allocator's arenas (mallinfo2 fordblks).", (double)mi.fordblks);
    gauge(c, "redline_malloc_mmap_bytes",
          "Bytes in blocks the glibc allocator mapped on their own (mallinfo2 hblkhd).",
          (double)mi.hblkhd);
    gauge(c, "redline_malloc_arena_bytes",
          "Bytes the glibc allocator obtained with sbrk/arenas (mallinfo2 arena).", (double)mi.arena);
}

int rdl_metrics_register_process(rdl_registry_t *r)
{
    return rdl_collector_add(r, collect_process, NULL);
}

/* ---- /debug/vars ------------------------------------------------------- */

typedef struct var {
    struct var *next;
    char *name;
    rdl_var_fn fn;
    void *arg;
} var_t;

static pthread_mutex_t vars_mu = PTHREAD_MUTEX_INITIALIZER;
static var_t *vars;

int rdl_vars_publish(const char *name, rdl_var_fn fn, void *arg)
{
    if (!name || !*name || !fn)
        return RDL_EINVAL;
    static const char *const reserved[] = { "cmdline", "memstats", "threads", "uptime_seconds",
                                            "metrics" };
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(name, reserved[i]) == 0)
            return RDL_EEXIST;
    var_t *v = calloc(1, sizeof(*v));
    if (!v || !(v->name = strdup(name))) {
        free(v);
        return RDL_ENOMEM;
    }
    v->fn = fn;
    v->arg = arg;
    pthread_mutex_lock(&vars_mu);
    for (var_t *o = vars; o; o = o->next)
        if (strcmp(o->name, name) == 0) {
            pthread_mutex_unlock(&vars_mu);
            free(v->name);
            free(v);
            return RDL_EEXIST;
        }
    var_t **tail = &vars;
    while (*tail)
        tail = &(*tail)->next;
    *tail = v;
    pthread_mutex_unlock(&vars_mu);
    return 0;
}

void rdl_vars_unpublish(const char *name)
{
    if (!name)
        return;
    pthread_mutex_lock(&vars_mu);
    for (var_t **p = &vars; *p; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0) {
            var_t *v = *p;
            *p = v->next;
            free(v->name);
            free(v);
            break;
        }
    pthread_mutex_unlock(&vars_mu);
}

static void json_num(rdl_buf_t *b, double v)
{
    if (isfinite(v))
        rdl__metrics_put_double(b, v, false);
    else
        rdl_buf_puts(b, "null");
}

static void json_key(rdl_buf_t *b, bool *first, const char *k)
{
    if (!*first)
        rdl_buf_putc(b, ',');
    *first = false;
    rdl_json_str(b, k, strlen(k));
    rdl_buf_putc(b, ':');
}

/*
 * The command line, with its secrets redacted (rdl_redact_put: "--set
 * x.password=...", a URL's user:password), and the argument after a flag that
 * names a secret ("--admin-token abc") replaced whole: anyone who reaches the
 * admin port reads this.
 */
static void put_cmdline(rdl_buf_t *b)
{
    char *buf = NULL;
    size_t n = 0;
    rdl_buf_putc(b, '[');
    if (rdl_read_file("/proc/self/cmdline", 1u << 20, &buf, &n, NULL) != 0)
        n = 0;                          /* none, or past 1 MiB: an empty list */
    rdl_buf_t arg;
    rdl_buf_init(&arg);
    bool secret_next = false;
    for (size_t i = 0, k = 0; i < n; k++) {
        size_t len = strnlen(buf + i, n - i);
        const char *a = buf + i;
        if (k)
            rdl_buf_putc(b, ',');
        rdl_buf_reset(&arg);
        if (secret_next)
            rdl_buf_puts(&arg, RDL_REDACTED);
        else
            rdl_redact_put(&arg, a, len);
        rdl_json_str(b, arg.data, arg.len);
        secret_next = len > 1 && a[0] == '-' && !memchr(a, '=', len) && rdl_secret_name(a, len);
        i += len + 1;
    }
    free(buf);
    rdl_buf_close(&arg);
    rdl_buf_putc(b, ']');
}

/* "name{a=\"x\"}" as a JSON key for one series. */
static void series_key(rdl_buf_t *b, const rdl_metric_t *m, const mx_series_t *s)
{
    rdl_buf_t k;
    rdl_buf_init(&k);
    rdl_buf_puts(&k, m->name);
    for (size_t i = 0; i < m->nlabels; i++) {
        rdl_buf_puts(&k, i ? "," : "{");
        rdl_buf_printf(&k, "%s=\"%s\"", m->labels[i], s->values[i]);
    }
    if (m->nlabels)
        rdl_buf_putc(&k, '}');
    rdl_json_str(b, k.data ? k.data : "", k.len);
    rdl_buf_putc(b, ':');
    rdl_buf_close(&k);
}

static void put_series_value(rdl_buf_t *b, const rdl_metric_t *m, const mx_series_t *s)
{
    series_key(b, m, s);
    if (m->type == RDL_METRIC_COUNTER) {
        json_num(b, rdl_counter_value((const rdl_counter_t *)s));
    } else if (m->type == RDL_METRIC_GAUGE) {
        json_num(b, rdl_gauge_value((const rdl_gauge_t *)s));
    } else {
        uint64_t count;
        double sum;
        rdl_histogram_read((const rdl_histogram_t *)s, &count, &sum, NULL, 0);
        rdl_buf_puts(b, "{\"count\":");
        rdl_buf_put_u64(b, count);
        rdl_buf_puts(b, ",\"sum\":");
        json_num(b, sum);
        rdl_buf_putc(b, '}');
    }
}

static void put_metrics(rdl_buf_t *b, rdl_registry_t *r)
{
    bool first = true;
    rdl_buf_putc(b, '{');
    pthread_mutex_lock(&r->cmu);        /* callbacks run under the collector lock */
    for (rdl_metric_t *m = atomic_load(&r->head); m; m = atomic_load(&m->next)) {
        if (m->fn) {
            json_key(b, &first, m->name);
            json_num(b, m->fn(m->fn_arg));
            continue;
        }
        size_t n;
        mx_series_t *const *list = rdl__metrics_series_list(m, &n);
        const mx_series_t *over = atomic_load(&m->overflow_used) ? m->overflow : NULL;
        for (size_t i = 0; i <= n; i++) {
            const mx_series_t *s = i < n ? list[i] : over;
            if (!s)
                continue;
            if (!first)
                rdl_buf_putc(b, ',');
            first = false;
            put_series_value(b, m, s);
        }
    }
    pthread_mutex_unlock(&r->cmu);
    rdl_buf_putc(b, '}');
}

int rdl_vars_write(rdl_registry_t *r, rdl_buf_t *out)
{
    r = r ? r : rdl_registry_default();
    if (!r || !out)
        return RDL_EINVAL;
    proc_stat_t ps;
    read_proc_stat(&ps);
    struct mallinfo2 mi = mallinfo2();
    bool first = true;
    rdl_buf_putc(out, '{');
    json_key(out, &first, "cmdline");
    put_cmdline(out);
    json_key(out, &first, "memstats");
    rdl_buf_printf(out, "{\"resident_bytes\":%.0f,\"virtual_bytes\":%.0f,\"heap_arena_bytes\":%zu,"
                   "\"heap_mmap_bytes\":%zu,\"heap_in_use_bytes\":%zu,\"heap_free_bytes\":%zu,"
                   "\"heap_releasable_bytes\":%zu,\"mmap_blocks\":%zu}",
                   ps.rss, ps.vsize, mi.arena, mi.hblkhd, mi.uordblks + mi.hblkhd, mi.fordblks,
                   mi.keepcost, mi.hblks);
    json_key(out, &first, "threads");
    json_num(out, ps.threads);
    json_key(out, &first, "uptime_seconds");
    json_num(out, ps.ok ? (double)rdl_wall_ns() / 1e9 - ps.start_time : NAN);
    json_key(out, &first, "metrics");
    put_metrics(out, r);
    pthread_mutex_lock(&vars_mu);
    for (var_t *v = vars; v; v = v->next) {
        json_key(out, &first, v->name);
        size_t before = out->len;
        v->fn(out, v->arg);
        if (out->len == before)
            rdl_buf_puts(out, "null");
    }
    pthread_mutex_unlock(&vars_mu);
    rdl_buf_puts(out, "}\n");
    return out->oom ? RDL_ENOMEM : 0;
}
