/*
 * admin.c: the admin plane's probes.
 *
 * Kubernetes asks three questions (reference/spiffe-mtls.md, probe semantics):
 * /livez and /healthz: is the process alive and its loops turning (restart it
 * if not); /readyz: should it get traffic now. Readiness is false until every
 * start-up step has finished and again from the first SIGTERM on, so the
 * endpoint is taken out of rotation before the listener closes. The
 * application may also hold readiness off (rdl_server_set_ready: a dependency
 * it watches is down, with a reason /readyz shows); that flag is ANDed with the lifecycle's, so it can
 * neither end a drain nor skip start-up. The body says which start-up steps
 * are pending, so a stuck rollout explains itself.
 */
#include <string.h>
#include "runtime/internal.h"

static void live(rdl_req_t *req, void *arg)
{
    (void)arg;
    static const char body[] = "{\"status\":\"ok\"}\n";
    rdl_resp_send(req, 200, "application/json", body, sizeof(body) - 1);
}

bool rdl_server_ready(const rdl_server_t *srv)
{
    return atomic_load(&srv->ready) && !atomic_load(&srv->held_unready);
}

/* Sets the application's flag and its reason; one log line per change of either. */
static void hold(rdl_server_t *srv, bool ready, const char *reason)
{
    const char *was = atomic_exchange(&srv->unready_reason, reason);
    bool changed = atomic_exchange(&srv->held_unready, !ready) != !ready;
    if (!changed && (was == reason || (was && reason && strcmp(was, reason) == 0)))
        return;                 /* no change: no line */
    if (!atomic_load(&srv->addrs_set))
        return;                 /* before run: no server logger yet (srv->log is set before this) */
    rdl_log_field_t f[] = { rdl_lf_str("reason", reason ? reason : "") };
    rdl_log(srv->log, RDL_LOG_INFO, ready ? "application ready" : "application not ready",
            f, reason ? 1 : 0);
}

void rdl_server_set_ready(rdl_server_t *srv, bool ready)
{
    hold(srv, ready, NULL);
}

void rdl_server_set_not_ready(rdl_server_t *srv, const char *reason)
{
    hold(srv, false, reason);
}

static void ready(rdl_req_t *req, void *arg)
{
    rdl_server_t *srv = arg;
    if (rdl_server_ready(srv)) {
        static const char body[] = "{\"status\":\"ready\"}\n";
        rdl_resp_send(req, 200, "application/json", body, sizeof(body) - 1);
        return;
    }
    rdl_buf_t b;
    rdl_buf_init(&b);
    const char *status = atomic_load(&srv->draining) ? "draining"
                         : atomic_load(&srv->startup_state) < 0 ? "failed"
                         : atomic_load(&srv->ready) ? "not_ready" : "starting";
    rdl_buf_printf(&b, "{\"status\":\"%s\",", status);
    const char *reason = atomic_load(&srv->unready_reason);
    if (reason && atomic_load(&srv->held_unready)) {
        rdl_buf_puts(&b, "\"reason\":");
        rdl_json_str(&b, reason, strlen(reason));
        rdl_buf_putc(&b, ',');
    }
    rdl_buf_puts(&b, "\"pending\":[");
    int n = 0;
    for (int i = 0; i < srv->nstartup; i++) {
        if (atomic_load(&srv->startup[i].done))
            continue;
        if (n++)
            rdl_buf_putc(&b, ',');
        rdl_json_str(&b, srv->startup[i].name, strlen(srv->startup[i].name));
    }
    rdl_buf_puts(&b, "]}\n");
    rdl_resp_header(req, "Retry-After", "1");
    rdl_resp_send(req, 503, "application/json", b.data, b.len);
    rdl_buf_close(&b);
}

int rdl__rt_admin_register(rdl_server_t *srv)
{
    int rc = rdl_server_admin_route(srv, "GET", "/healthz", live, srv);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "GET", "/livez", live, srv);
    if (rc == 0)
        rc = rdl_server_admin_route(srv, "GET", "/readyz", ready, srv);
    return rc;
}
