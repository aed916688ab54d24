/*
 * server.c: the runtime's threads and lifecycle.
 *
 * N I/O threads each run their own libuv loop with their own listening socket
 * on the same port (SO_REUSEPORT), so the kernel spreads connections and a
 * connection never leaves the thread that accepted it: the request path takes
 * no lock. Each thread accepts from its socket itself (the socket is polled,
 * not a libuv listener) so that running out of descriptors pauses accepting
 * with a backoff and is counted, never a silent reset (docs/runtime.md,
 * "Connection limits"). One more thread serves the admin listener, so probes
 * and metrics answer even when the app threads are saturated. The thread that calls
 * rdl_server_run keeps a small control loop for signals and timers:
 *
 *   start -> listeners open (not ready) -> start-up work -> ready
 *   SIGTERM -> /readyz 503, keep serving for drain_delay -> stop accepting
 *   (the accept backlog is taken first, so no connected client is reset) ->
 *   in-flight requests finish, each answered with Connection: close, idle
 *   connections close -> exit 0.
 *   A second signal, or grace_ms passing, forces the exit (status 1).
 *
 * The red lines (logs, traces, metrics, coloring, outbound calls, ...) are
 * parts (redline/part.h): this file names none of them, it runs the hooks of
 * the server's list of parts at the points above.
 */
#define _GNU_SOURCE             /* accept4, sched_getaffinity */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "runtime/internal.h"

/* ---- options --------------------------------------------------------- */

void rdl_server_opts_default(rdl_server_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->service = "redline";
    o->listen = "0.0.0.0:8080";
    o->admin_listen = "0.0.0.0:9090";
    o->threads = 0;
    o->backlog = 1024;
    o->max_connections = 10000;
    o->max_request_line = 8192;
    o->max_header_bytes = 32768;
    o->max_headers = 100;
    o->max_body = 1 << 20;
    o->max_output_buffer = 1 << 20;
    o->max_output_total = 256 << 20;
    o->header_timeout_ms = 10000;
    o->body_timeout_ms = 30000;
    o->idle_timeout_ms = 75000;
    o->request_timeout_ms = 30000;
    o->send_timeout_ms = 60000;
    o->drain_delay_ms = 5000;
    o->grace_ms = 20000;
    o->pool_threads = 4;
    o->pool_queue = 1024;
    o->admin_token_file = "";
    (void)rdl_server_opts_parts(o, rdl_parts_default);     /* they fit: a build-time list */
}

/* A part's share of opts->part_opts: its struct rounded up so the next one is aligned. */
static size_t part_opts_span(const rdl_part_t *p)
{
    size_t a = _Alignof(max_align_t);
    return (p->opts_size + a - 1) / a * a;
}

int rdl_server_opts_parts(rdl_server_opts_t *o, const rdl_part_t *const *parts)
{
    size_t used = 0;
    int n = 0;
    if (!parts)
        return RDL_EINVAL;
    for (; parts[n]; n++) {
        used += part_opts_span(parts[n]);
        if (n == RDL_PARTS_MAX || used > sizeof(o->part_opts.bytes))
            return RDL_EINVAL;
    }
    o->parts = parts;
    memset(o->part_opts.bytes, 0, sizeof(o->part_opts.bytes));
    for (int i = 0; i < n; i++)
        if (parts[i]->defaults)
            parts[i]->defaults(rdl_server_opts_part(o, parts[i]));
    return 0;
}

void *rdl_server_opts_part(rdl_server_opts_t *o, const rdl_part_t *part)
{
    size_t off = 0;
    for (const rdl_part_t *const *p = o->parts; p && *p; p++) {
        if (*p == part)
            return part->opts_size ? o->part_opts.bytes + off : NULL;
        off += part_opts_span(*p);
    }
    return NULL;
}

int rdl_server_opts_config(rdl_server_opts_t *o, rdl_config_t *cfg)
{
    rdl_cfg_key_t keys[] = {
        { "server.service", RDL_CFG_STRING, &o->service, 0, 0, "REDLINE_SERVICE", "service name in log lines", NULL },
        { "server.listen", RDL_CFG_ADDR, &o->listen, 0, 0, "REDLINE_LISTEN", "app listener host:port", NULL },
        { "server.admin_listen", RDL_CFG_ADDR_OPT, &o->admin_listen, 0, 0, "REDLINE_ADMIN_LISTEN",
          "admin listener host:port (empty: none)", NULL },
        { "server.threads", RDL_CFG_INT, &o->threads, 0, 256, NULL, "I/O threads (0 = CPUs usable: affinity, cgroup quota)", NULL },
        { "server.backlog", RDL_CFG_INT, &o->backlog, 1, 65535, NULL, "listen backlog", NULL },
        { "server.max_connections", RDL_CFG_INT, &o->max_connections, 1, 1000000, NULL,
          "open connections per process, on each listener (503 beyond)", NULL },
        { "limits.max_request_line", RDL_CFG_SIZE, &o->max_request_line, 64, 1 << 20, NULL, "request line bytes (414)", NULL },
        { "limits.max_header_bytes", RDL_CFG_SIZE, &o->max_header_bytes, 256, 16 << 20, NULL, "request head bytes (431)", NULL },
        { "limits.max_headers", RDL_CFG_INT, &o->max_headers, 1, 10000, NULL, "request header fields (431)", NULL },
        { "limits.max_body", RDL_CFG_SIZE, &o->max_body, 0, 1LL << 34, NULL, "request body bytes (413)", NULL },
        { "limits.max_output_buffer", RDL_CFG_SIZE, &o->max_output_buffer, 4096, 1LL << 32, NULL,
          "unsent bytes before reading pauses", NULL },
        { "limits.max_output_total", RDL_CFG_SIZE, &o->max_output_total, 1 << 20, 1LL << 40, NULL,
          "unsent bytes of stalled connections per process (oldest closed beyond)", NULL },
        { "timeouts.header", RDL_CFG_DURATION, &o->header_timeout_ms, 1, 3600000, NULL, "request head deadline (408)", NULL },
        { "timeouts.body", RDL_CFG_DURATION, &o->body_timeout_ms, 1, 3600000, NULL, "request body inactivity (408)", NULL },
        { "timeouts.idle", RDL_CFG_DURATION, &o->idle_timeout_ms, 1, 3600000, NULL, "keep-alive idle close", NULL },
        { "timeouts.request", RDL_CFG_DURATION, &o->request_timeout_ms, 0, 3600000, NULL,
          "handler deadline (503; 0 = none)", NULL },
        { "timeouts.send", RDL_CFG_DURATION, &o->send_timeout_ms, 1, 3600000, NULL,
          "no progress sending to a client that stopped reading: close", NULL },
        { "lifecycle.drain_delay", RDL_CFG_DURATION, &o->drain_delay_ms, 0, 600000, NULL,
          "after SIGTERM: not ready, still serving", NULL },
        { "lifecycle.grace", RDL_CFG_DURATION, &o->grace_ms, 0, 3600000, NULL,
          "then: time for in-flight requests", NULL },
        { "pool.threads", RDL_CFG_INT, &o->pool_threads, 1, 1024, NULL, "blocking-work threads", NULL },
        { "pool.queue", RDL_CFG_INT, &o->pool_queue, 1, 1000000, NULL, "blocking-work queue bound (503 beyond)", NULL },
        { "admin.token_file", RDL_CFG_STRING, &o->admin_token_file, 0, 0, NULL,
          "file with the bearer token admin changes need (re-read when it changes)", NULL },
        { "admin.allow_unauthenticated", RDL_CFG_BOOL, &o->admin_allow_unauthenticated, 0, 0, NULL,
          "no token file: allow admin changes anyway (local demo only)", NULL },
    };
    int rc = rdl_config_add(cfg, keys, sizeof(keys) / sizeof(keys[0]));
    for (const rdl_part_t *const *p = o->parts; rc == 0 && p && *p; p++)
        if ((*p)->config)
            rc = (*p)->config(rdl_server_opts_part(o, *p), cfg);
    return rc;
}

/* ---- Date header ----------------------------------------------------- */

const char *rdl__rt_thread_date(rt_thread_t *t, size_t *len)
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    uint64_t tick = uv_now(&t->loop);
    if (tick != t->date_tick || t->date_len == 0) {
        t->date_tick = tick;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME_COARSE, &ts);
        if (ts.tv_sec != t->date_sec || t->date_len == 0) {
            struct tm tm;
            t->date_sec = ts.tv_sec;
            gmtime_r(&ts.tv_sec, &tm);
            int n = snprintf(t->date, sizeof(t->date), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                             tm.tm_hour, tm.tm_min, tm.tm_sec);
            t->date_len = n > 0 ? (size_t)n : 0;
        }
    }
    *len = t->date_len;
    return t->date;
}

/* ---- server object --------------------------------------------------- */

int rdl__rt_cpu_quota(const char *quota, const char *period)
{
    char *end;
    if (!quota || strncmp(quota, "max", 3) == 0)
        return 0;
    errno = 0;
    long long q = strtoll(quota, &end, 10);
    if (errno || end == quota || q <= 0)
        return 0;
    long long p = period ? strtoll(period, &end, 10) : 0;
    if (p <= 0)
        return 0;
    long long n = (q + p - 1) / p;
    return n > 4096 ? 4096 : (int)n;
}

static bool read_line(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    return ok;
}

/*
 * CPUs this process can really use: its affinity mask, capped by the cgroup's
 * CPU quota (v2 cpu.max, v1 cfs_quota_us / cfs_period_us). In a pod limited to
 * 2 CPUs on a 64-core node that is 2 I/O threads, not 64 threads fighting
 * over a 2-CPU quota and being throttled.
 */
static int usable_cpus(void)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    char line[128], period[64];
    int quota = 0;
    if (read_line("/sys/fs/cgroup/cpu.max", line, sizeof(line))) {
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            quota = rdl__rt_cpu_quota(line, sp + 1);
        }
    } else if (read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", line, sizeof(line)) &&
               read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us", period, sizeof(period))) {
        quota = rdl__rt_cpu_quota(line, period);
    }
    return quota > 0 && quota < n ? quota : n;
}

int rdl_server_new(const rdl_server_opts_t *opts, rdl_server_t **out)
{
    *out = NULL;
    if (!opts || !opts->listen || opts->max_headers < 1 || opts->max_request_line < 16)
        return RDL_EINVAL;
    rdl_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return RDL_ENOMEM;
    srv->opts = *opts;
    srv->reserve_fd = -1;
    if (uv_mutex_init(&srv->ctl_mu) != 0) {
        free(srv);
        return RDL_ENOMEM;
    }
    if (srv->opts.threads <= 0)
        srv->opts.threads = usable_cpus();
    if (!srv->opts.service)
        srv->opts.service = "redline";
    if (!srv->opts.admin_listen)
        srv->opts.admin_listen = "";
    if (!srv->opts.parts)
        (void)rdl_server_opts_parts(&srv->opts, rdl_parts_default);
    int rc = rdl__rt_admin_register(srv);
    /* In list order: their middleware is chained in that order (part.h). */
    for (const rdl_part_t *const *p = srv->opts.parts; rc == 0 && *p; p++) {
        if (srv->nparts == RDL_PARTS_MAX) {
            rc = RDL_EBUSY;
            break;
        }
        int i = srv->nparts++;
        srv->parts[i] = *p;
        if ((*p)->install)
            rc = (*p)->install(srv, rdl_server_opts_part(&srv->opts, *p), &srv->part_state[i]);
    }
    if (rc) {
        rdl_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

void rdl_server_free(rdl_server_t *srv)
{
    if (!srv)
        return;
    for (int i = srv->nparts - 1; i >= 0; i--)
        if (srv->parts[i]->free)
            srv->parts[i]->free(srv, srv->part_state[i]);
    uv_mutex_destroy(&srv->ctl_mu);
    rdl__rt_admin_auth_free(srv);
    rdl__rt_router_free(&srv->app_router);
    rdl__rt_router_free(&srv->admin_router);
    free(srv->threads);
    free(srv);
}

int rdl_server_route(rdl_server_t *srv, const char *method, const char *tmpl,
                     rdl_handler_fn fn, void *arg)
{
    return rdl__rt_router_add(&srv->app_router, method, tmpl, fn, arg);
}

int rdl_server_admin_route(rdl_server_t *srv, const char *method, const char *tmpl,
                           rdl_handler_fn fn, void *arg)
{
    return rdl__rt_router_add(&srv->admin_router, method, tmpl, fn, arg);
}

static int chain_add(rt_chain_t *chain, const rdl_middleware_t *mw)
{
    if (!mw)
        return RDL_EINVAL;
    if (chain->n == RT_MAX_MIDDLEWARE)
        return RDL_EBUSY;
    chain->mw[chain->n++] = *mw;
    return 0;
}

int rdl_server_use(rdl_server_t *srv, const rdl_middleware_t *mw)
{
    return chain_add(&srv->app_chain, mw);
}

int rdl_server_admin_use(rdl_server_t *srv, const rdl_middleware_t *mw)
{
    return chain_add(&srv->admin_chain, mw);
}

int rdl_server_req_slot(rdl_server_t *srv)
{
    return srv->nslots < RDL_REQ_SLOTS ? srv->nslots++ : RDL_EBUSY;
}

void *rdl_server_part_state(const rdl_server_t *srv, const rdl_part_t *part)
{
    for (int i = 0; i < srv->nparts; i++)
        if (srv->parts[i] == part)
            return srv->part_state[i];
    return NULL;
}

int rdl_server_on_startup(rdl_server_t *srv, const char *name, rdl_startup_fn fn, void *arg)
{
    if (!fn || !name)
        return RDL_EINVAL;
    if (srv->nstartup == RT_MAX_STARTUP)
        return RDL_EBUSY;
    rt_startup_t *s = &srv->startup[srv->nstartup++];
    s->name = name;
    s->fn = fn;
    s->arg = arg;
    atomic_init(&s->done, false);
    return 0;
}

int rdl_server_on_thread(rdl_server_t *srv, rdl_thread_fn start, rdl_thread_fn stop, void *arg)
{
    if (!start && !stop)
        return RDL_EINVAL;
    if (srv->nhooks == RT_MAX_THREAD_HOOKS)
        return RDL_EBUSY;
    srv->hooks[srv->nhooks++] = (rt_thread_hook_t){ start, stop, arg };
    return 0;
}

const char *rdl_server_addr(const rdl_server_t *srv)
{
    return atomic_load(&srv->addrs_set) ? srv->addr : "";
}

const char *rdl_server_admin_addr(const rdl_server_t *srv)
{
    return atomic_load(&srv->addrs_set) ? srv->admin_addr : "";
}

rdl_pool_t *rdl_server_pool(rdl_server_t *srv)
{
    return srv->pool;
}

void rdl_server_shutdown(rdl_server_t *srv)
{
    atomic_store(&srv->shutdown_requested, true);
    uv_mutex_lock(&srv->ctl_mu);
    if (atomic_load(&srv->ctl_up))
        uv_async_send(&srv->ctl_wake);
    uv_mutex_unlock(&srv->ctl_mu);
}

/* ---- listeners ------------------------------------------------------- */

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(out, n, "%s:%d", ip, ntohs(a->sin_port));
    }
}

/* The passive address hostport names, port 0 replaced by want_port when set. */
static int resolve(const char *what, const char *hostport, int want_port,
                   struct sockaddr_storage *ss, socklen_t *sl, rdl_error_t *err)
{
    char host[RDL_HOST_MAX];
    int want;
    if (rdl_parse_hostport(hostport, host, &want) != 0)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, what, "expected host:port, got '%s'", hostport);
    if (want == 0 && want_port)
        want = want_port;
    char service[8];
    snprintf(service, sizeof(service), "%d", want);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, service, &hints, &ai);
    if (gai != 0)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, what, "cannot resolve '%s': %s", host,
                             gai_strerror(gai));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                                     : ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

/*
 * Whether two listeners would take the same connections: same port (0 picks
 * a fresh one each) and the same address, or a wildcard that covers the
 * other ([::] is dual-stack on Linux by default, so it covers IPv4 too).
 */
static bool addresses_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (port_of(a) == 0 || port_of(a) != port_of(b))
        return false;
    if ((a->ss_family == AF_INET6 && is_wildcard(a)) || (b->ss_family == AF_INET6 && is_wildcard(b)))
        return true;
    if (a->ss_family != b->ss_family)
        return false;
    if (is_wildcard(a) || is_wildcard(b))
        return true;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
}

/*
 * Every listener sets SO_REUSEPORT, so the kernel would let the app and admin
 * listeners share one address and split the connections between the planes
 * at random: refused as a configuration error naming both keys.
 */
int rdl__rt_check_planes(const rdl_server_opts_t *o, rdl_error_t *err)
{
    if (!o->admin_listen[0])
        return 0;
    struct sockaddr_storage app, admin;
    socklen_t l1, l2;
    int rc = resolve("server.listen", o->listen, 0, &app, &l1, err);
    if (rc == 0)
        rc = resolve("server.admin_listen", o->admin_listen, 0, &admin, &l2, err);
    if (rc == 0 && addresses_overlap(&app, &admin))
        rc = rdl_error_set(err, RDL_EINVAL, 0, 0, "server.admin_listen",
                           "server.listen (%s) and server.admin_listen (%s) share an address: "
                           "the two planes would answer each other's requests; give the admin "
                           "listener its own port", o->listen, o->admin_listen);
    return rc;
}

/*
 * Whether another process already listens on the address. SO_REUSEPORT lets
 * any socket of the same user join a listening group, so a second service
 * started on the same port would silently take half the connections. A probe
 * socket without SO_REUSEPORT cannot bind next to a listening socket (with
 * SO_REUSEADDR it still binds past connections in TIME_WAIT, so a restart is
 * not refused); it is closed at once. The window between the probe and the
 * group's bind is a few system calls (docs/runtime.md).
 */
static int probe_free(const char *what, const char *hostport, const struct sockaddr_storage *ss,
                      socklen_t sl, rdl_error_t *err)
{
    if (port_of(ss) == 0)
        return 0;                       /* the kernel picks a fresh port */
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;                       /* the group's own socket reports it */
    int one = 1;
    int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0)
        rc = bind(fd, (const struct sockaddr *)ss, sl);
    int e = errno;
    close(fd);
    if (rc != 0 && e == EADDRINUSE)
        return rdl_error_set(err, RDL_EIO, 0, 0, what,
                             "cannot listen on %s: address in use (another process listens on "
                             "it, or on a wildcard address with that port)", hostport);
    return 0;
}

/*
 * Opens one listening socket. *port is the port to use when the configured
 * one is 0 and an earlier socket already got one (every SO_REUSEPORT socket
 * must share it); it receives the bound port. The first socket of a group
 * probes the address first (probe_free).
 */
static int open_listener(const char *what, const char *hostport, int backlog, int *port,
                         char *bound, size_t bound_len, rdl_error_t *err)
{
    struct sockaddr_storage want;
    socklen_t wl;
    bool first = *port == 0;
    int rc = resolve(what, hostport, *port, &want, &wl, err);
    if (rc == 0 && first)
        rc = probe_free(what, hostport, &want, wl, err);
    if (rc != 0)
        return rc;
    int fd = socket(want.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    rc = fd < 0 ? -1 : 0;
    if (rc == 0)
        rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0)
        rc = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (rc == 0)
        rc = bind(fd, (struct sockaddr *)&want, wl);
    if (rc == 0)
        rc = listen(fd, backlog);
    if (rc != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return rdl_error_set(err, RDL_EIO, 0, 0, what, "cannot listen on %s: %s", hostport,
                             strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = port_of(&ss);
    format_addr((struct sockaddr *)&ss, bound, bound_len);
    return fd;
}

/* ---- I/O threads ----------------------------------------------------- */

#define ACCEPT_BATCH 64             /* connections taken per wake-up, then the loop's other work */
#define BACKOFF_FIRST_MS 100        /* out of descriptors: the first pause, doubled up to ... */
#define BACKOFF_MAX_MS 1000

static void on_listener_readable(uv_poll_t *p, int status, int events);

/* Descriptors freed (a connection closed, or a backoff tick): hold the admin's spare one again. */
static void reserve_again(rt_thread_t *t)
{
    if (t->admin && t->srv->reserve_fd < 0)
        t->srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_backoff(uv_timer_t *timer)
{
    rt_thread_t *t = timer->data;
    reserve_again(t);
    if (t->listening)
        uv_poll_start(&t->listener, UV_READABLE, on_listener_readable);
}

/*
 * accept failed with EMFILE or ENFILE. The admin thread gives up its spare
 * descriptor to take the waiting connection and serve it (a probe answers;
 * the spare is opened again when a connection closes). Otherwise accepting
 * pauses, 100 ms doubling to 1 s, so a listener that stays readable does not
 * spin the loop; the connections wait in the backlog, not reset.
 */
static bool out_of_descriptors(rt_thread_t *t)
{
    rdl_server_t *srv = t->srv;
    if (t->admin && srv->reserve_fd >= 0) {
        close(srv->reserve_fd);
        srv->reserve_fd = -1;
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            rdl__rt_conn_accept(t, fd);
            return true;
        }
        reserve_again(t);
    }
    rdl__rt_conn_refused(srv, RT_REFUSED_FD);
    t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (t->backoff_ms > BACKOFF_MAX_MS)
        t->backoff_ms = BACKOFF_MAX_MS;
    uv_poll_stop(&t->listener);
    uv_timer_start(&t->backoff, on_backoff, t->backoff_ms, 0);
    return false;
}

/* The listener is readable: take what waits, up to a batch. */
static void on_listener_readable(uv_poll_t *p, int status, int events)
{
    rt_thread_t *t = p->data;
    (void)events;
    for (int i = 0; status == 0 && t->listening && i < ACCEPT_BATCH; i++) {
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            t->backoff_ms = 0;
            rdl__rt_conn_accept(t, fd);
        } else if (errno == EMFILE || errno == ENFILE) {
            if (!out_of_descriptors(t))
                return;
        } else if (errno != EINTR && errno != ECONNABORTED) {
            return;                     /* EAGAIN: nothing waits */
        }
    }
}

static void report_idle(rt_thread_t *t)
{
    if (t->draining && t->nconns == 0 && !t->reported_idle && !t->admin) {
        t->reported_idle = true;
        atomic_fetch_add(&t->srv->idle_threads, 1);
        uv_async_send(&t->srv->ctl_wake);
    }
}

void rdl__rt_thread_conn_closed(rt_thread_t *t)
{
    reserve_again(t);
    report_idle(t);
}

/* Takes every connection already queued on the listener, then closes it. */
static void stop_accepting(rt_thread_t *t)
{
    if (!t->backoff_closed) {
        t->backoff_closed = true;
        uv_close((uv_handle_t *)&t->backoff, NULL);
    }
    if (!t->listening)
        return;
    for (;;) {
        int cfd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            break;
        rdl__rt_conn_accept(t, cfd);
    }
    t->listening = false;
    uv_poll_stop(&t->listener);
    uv_close((uv_handle_t *)&t->listener, NULL);
    close(t->listen_fd);
    t->listen_fd = -1;
}

static void on_wake(uv_async_t *a)
{
    rt_thread_t *t = a->data;
    int cmd = atomic_exchange(&t->cmd, 0);
    if ((cmd & RT_CMD_DRAIN) && !t->draining) {
        stop_accepting(t);
        t->draining = true;
        for (rt_conn_t *c = t->conns; c; c = c->next)
            rdl__rt_conn_drain(c);
        report_idle(t);
    }
    if ((cmd & RT_CMD_STOP) && !t->stopping) {
        t->stopping = true;
        stop_accepting(t);
        /* Closing is asynchronous: a connection leaves the list when its handles have closed. */
        for (rt_conn_t *c = t->conns, *next; c; c = next) {
            next = c->next;
            rdl__rt_conn_abort(c);
        }
        rdl_pool_sink_free(t->sink);
        t->sink = NULL;
        rdl_server_t *srv = t->srv;
        rdl_part_thread_t pt = { (int)(t - srv->threads), t->admin, &t->loop };
        for (int i = srv->nhooks - 1; i >= 0 && !t->admin; i--)
            if (srv->hooks[i].stop)
                srv->hooks[i].stop(srv, pt.index, &t->loop, srv->hooks[i].arg);
        for (int i = srv->nparts - 1; i >= 0; i--)
            if (srv->parts[i]->thread_stop)
                srv->parts[i]->thread_stop(srv, srv->part_state[i], &pt);
        uv_close((uv_handle_t *)&t->wake, NULL);
    }
}

static void thread_main(void *arg)
{
    rt_thread_t *t = arg;
    rdl_server_t *srv = t->srv;
    /* The parts' per-thread state covers the admin thread too (its loop lag is exported);
       rdl_server_on_thread hooks see only the application's I/O threads. */
    rdl_part_thread_t pt = { (int)(t - srv->threads), t->admin, &t->loop };
    for (int i = 0; i < srv->nparts; i++)
        if (srv->parts[i]->thread_start)
            srv->parts[i]->thread_start(srv, srv->part_state[i], &pt);
    for (int i = 0; i < srv->nhooks && !t->admin; i++)
        if (srv->hooks[i].start)
            srv->hooks[i].start(srv, pt.index, &t->loop, srv->hooks[i].arg);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

static void send_cmd(rt_thread_t *t, int cmd)
{
    atomic_fetch_or(&t->cmd, cmd);
    uv_async_send(&t->wake);
}

static int thread_init(rdl_server_t *srv, rt_thread_t *t, bool admin, int fd)
{
    t->srv = srv;
    t->admin = admin;
    t->router = admin ? &srv->admin_router : &srv->app_router;
    t->chain = admin ? &srv->admin_chain : &srv->app_chain;
    int rc = uv_loop_init(&t->loop);
    if (rc == 0)
        rc = uv_async_init(&t->loop, &t->wake, on_wake);
    t->wake.data = t;
    if (rc == 0)
        rc = rdl_pool_sink_new(&t->loop, &t->sink);
    if (rc == 0)
        rc = uv_timer_init(&t->loop, &t->backoff);
    t->backoff.data = t;
    t->listen_fd = fd;                  /* listen() was called when it was opened */
    if (rc == 0)
        rc = uv_poll_init_socket(&t->loop, &t->listener, fd);
    t->listener.data = t;
    if (rc == 0)
        rc = uv_poll_start(&t->listener, UV_READABLE, on_listener_readable);
    t->listening = rc == 0;
    return rc;
}

/* ---- control loop ---------------------------------------------------- */

static void force_exit(rdl_server_t *srv, const char *why)
{
    int open = 0;
    for (int i = 0; i < srv->nthreads; i++)
        open += srv->threads[i].nconns;
    rdl_log_field_t f = rdl_lf_int("open_connections", open);
    rdl_log(srv->log, RDL_LOG_ERROR, why, &f, 1);
    rdl_log_flush(srv->log, 1000);
    _exit(1);
}

static void on_grace(uv_timer_t *timer)
{
    force_exit(timer->data, "grace period over: forcing exit");
}

static void on_drain_delay(uv_timer_t *timer)
{
    rdl_server_t *srv = timer->data;
    rdl_log(srv->log, RDL_LOG_INFO, "stop accepting; finishing in-flight requests", NULL, 0);
    for (int i = 0; i < srv->nthreads; i++)
        send_cmd(&srv->threads[i], RT_CMD_DRAIN);
    if (srv->opts.grace_ms)
        uv_timer_start(&srv->grace_timer, on_grace, srv->opts.grace_ms, 0);
}

static void begin_drain(rdl_server_t *srv, uint64_t delay_ms)
{
    if (atomic_exchange(&srv->draining, true))
        return;
    atomic_store(&srv->ready, false);
    rdl_log_field_t f = rdl_lf_int("drain_delay_ms", (int64_t)delay_ms);
    rdl_log(srv->log, RDL_LOG_INFO, "draining: not ready", &f, 1);
    uv_timer_start(&srv->drain_timer, on_drain_delay, delay_ms, 0);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    rdl_server_t *srv = sig->data;
    if (++srv->signals > 1)
        force_exit(srv, "second signal: forcing exit");
    rdl_log(srv->log, RDL_LOG_INFO, signum == SIGINT ? "SIGINT received" : "SIGTERM received",
            NULL, 0);
    begin_drain(srv, srv->opts.drain_delay_ms);
}

static void close_ctl(rdl_server_t *srv)
{
    uv_mutex_lock(&srv->ctl_mu);
    atomic_store(&srv->ctl_up, false);
    uv_mutex_unlock(&srv->ctl_mu);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    uv_close((uv_handle_t *)&srv->grace_timer, NULL);
    uv_close((uv_handle_t *)&srv->ctl_wake, NULL);
    for (int i = srv->nparts - 1; i >= 0; i--)
        if (srv->parts[i]->drained)
            srv->parts[i]->drained(srv, srv->part_state[i]);
}

static void on_ctl_wake(uv_async_t *a)
{
    rdl_server_t *srv = a->data;
    int st = atomic_load(&srv->startup_state);
    if (st != 0 && !atomic_load(&srv->draining) && !atomic_load(&srv->ready)) {
        if (st > 0) {
            atomic_store(&srv->ready, true);
            rdl_log(srv->log, RDL_LOG_INFO, "ready", NULL, 0);
        } else {
            srv->exit_code = 1;
            rdl_log(srv->log, RDL_LOG_ERROR, "start-up failed: stopping", NULL, 0);
            begin_drain(srv, 0);
        }
    }
    if (atomic_load(&srv->shutdown_requested) && srv->exit_code == 0)
        begin_drain(srv, srv->opts.drain_delay_ms);
    if (atomic_load(&srv->draining) && atomic_load(&srv->idle_threads) == srv->nthreads &&
        !uv_is_closing((uv_handle_t *)&srv->ctl_wake)) {
        uv_timer_stop(&srv->grace_timer);
        for (int i = 0; i < srv->nall; i++)
            send_cmd(&srv->threads[i], RT_CMD_STOP);
        close_ctl(srv);
    }
}

static void startup_main(void *arg)
{
    rdl_server_t *srv = arg;
    int state = 1;
    for (int i = 0; i < srv->nstartup; i++) {
        rt_startup_t *s = &srv->startup[i];
        if (s->fn(srv, s->arg) != 0) {
            rdl_log_field_t f = rdl_lf_str("step", s->name);
            rdl_log(srv->log, RDL_LOG_ERROR, "start-up step failed", &f, 1);
            state = -1;
            break;
        }
        atomic_store(&s->done, true);
    }
    atomic_store(&srv->startup_state, state);
    uv_async_send(&srv->ctl_wake);
}

static int open_all(rdl_server_t *srv, int *fds, rdl_error_t *err)
{
    int port = 0;
    int rc = rdl__rt_check_planes(&srv->opts, err);
    if (rc)
        return rc;
    for (int i = 0; i < srv->nthreads; i++) {
        fds[i] = open_listener("server.listen", srv->opts.listen, (int)srv->opts.backlog, &port,
                               srv->addr, sizeof(srv->addr), err);
        if (fds[i] < 0)
            return fds[i];
    }
    if (srv->opts.admin_listen[0]) {
        int aport = 0;
        fds[srv->nthreads] = open_listener("server.admin_listen", srv->opts.admin_listen,
                                           (int)srv->opts.backlog, &aport, srv->admin_addr,
                                           sizeof(srv->admin_addr), err);
        if (fds[srv->nthreads] < 0)
            return fds[srv->nthreads];
    }
    return 0;
}

/* The parts' start hooks in list order; a failure leaves the ones before started. */
static int parts_start(rdl_server_t *srv, rdl_error_t *err)
{
    for (; srv->nstarted < srv->nparts; srv->nstarted++) {
        const rdl_part_t *p = srv->parts[srv->nstarted];
        int rc = p->start ? p->start(srv, srv->part_state[srv->nstarted], err) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* The stop hooks of the parts started, in reverse order. */
static void parts_stop(rdl_server_t *srv)
{
    while (srv->nstarted > 0) {
        int i = --srv->nstarted;
        if (srv->parts[i]->stop)
            srv->parts[i]->stop(srv, srv->part_state[i]);
    }
}

int rdl_server_run(rdl_server_t *srv, rdl_error_t *err)
{
    signal(SIGPIPE, SIG_IGN);
    srv->nthreads = (int)srv->opts.threads;
    srv->nall = srv->nthreads + (srv->opts.admin_listen[0] ? 1 : 0);
    int rc = parts_start(srv, err);
    if (rc) {
        parts_stop(srv);
        return rc;
    }
    srv->threads = calloc((size_t)srv->nall, sizeof(rt_thread_t));
    int *fds = malloc((size_t)srv->nall * sizeof(int));
    if (!srv->threads || !fds) {
        free(fds);
        parts_stop(srv);
        return RDL_ENOMEM;
    }
    for (int i = 0; i < srv->nall; i++)
        fds[i] = -1;
    rc = open_all(srv, fds, err);
    if (rc == 0)
        atomic_store(&srv->addrs_set, true);
    if (rc < 0) {
        parts_stop(srv);
        for (int i = 0; i < srv->nall; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        free(fds);
        return rc;
    }
    rdl_pool_opts_t po = { .threads = (int)srv->opts.pool_threads,
                           .queue_max = (int)srv->opts.pool_queue, .name = "rdl-pool" };
    rc = rdl_pool_new(&po, &srv->pool);
    for (int i = 0; rc == 0 && i < srv->nall; i++)
        rc = thread_init(srv, &srv->threads[i], i >= srv->nthreads, fds[i]);
    free(fds);
    if (rc != 0) {
        parts_stop(srv);
        return rdl_error_set(err, RDL_EIO, 0, 0, "server", "cannot start I/O threads: %s",
                             uv_strerror(rc));
    }

    uv_loop_init(&srv->ctl);
    uv_signal_init(&srv->ctl, &srv->sigterm);
    uv_signal_init(&srv->ctl, &srv->sigint);
    uv_timer_init(&srv->ctl, &srv->drain_timer);
    uv_timer_init(&srv->ctl, &srv->grace_timer);
    uv_async_init(&srv->ctl, &srv->ctl_wake, on_ctl_wake);
    srv->sigterm.data = srv->sigint.data = srv->ctl_wake.data = srv;
    srv->drain_timer.data = srv->grace_timer.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    for (int i = 0; i < srv->nparts; i++)
        if (srv->parts[i]->run)
            srv->parts[i]->run(srv, srv->part_state[i], &srv->ctl);
    uv_mutex_lock(&srv->ctl_mu);
    atomic_store(&srv->ctl_up, true);
    if (atomic_load(&srv->shutdown_requested))
        uv_async_send(&srv->ctl_wake);    /* asked before the loop existed */
    uv_mutex_unlock(&srv->ctl_mu);

    if (srv->nall > srv->nthreads)      /* the admin plane's spare descriptor */
        srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < srv->nall; i++)
        uv_thread_create(&srv->threads[i].tid, thread_main, &srv->threads[i]);
    rdl_log_field_t listening[] = { rdl_lf_str("addr", srv->addr),
                                    rdl_lf_str("admin_addr", srv->admin_addr) };
    rdl_log(srv->log, RDL_LOG_INFO, "listening", listening, 2);
    uv_thread_create(&srv->startup_tid, startup_main, srv);

    uv_run(&srv->ctl, UV_RUN_DEFAULT);

    uv_thread_join(&srv->startup_tid);
    for (int i = 0; i < srv->nall; i++) {
        uv_thread_join(&srv->threads[i].tid);
        uv_loop_close(&srv->threads[i].loop);
    }
    uv_loop_close(&srv->ctl);
    if (srv->reserve_fd >= 0)
        close(srv->reserve_fd);
    srv->reserve_fd = -1;
    rdl_pool_free(srv->pool);
    srv->pool = NULL;
    parts_stop(srv);
    rdl_log(srv->log, RDL_LOG_INFO, "stopped", NULL, 0);
    rdl_log_flush(srv->log, 0);        /* every line accepted until now reaches the sink */
    return srv->exit_code;
}
