/*
 * hello: the smallest service a user would write on an installed libredline,
 * built outside the tree by tests/install/test_install.py (through pkg-config
 * and through find_package(redline)) to prove the public headers and the
 * exported symbols are enough: a route, a counter of its own, a log line per
 * request, and a circuit breaker around the (pretend) work.
 *
 *   GET /hello/{name}   200 "hello, <name>\n"
 *   admin: /metrics with hello_greetings_total, hello_breaker_state and the
 *   runtime's RED metrics
 *
 * Configured like any redline service: REDLINE_LISTEN, REDLINE_ADMIN_LISTEN,
 * REDLINE_LIFECYCLE_DRAIN_DELAY, ... (the server's configuration keys).
 * Exits 0 after SIGTERM and a clean drain.
 */
#include <stdio.h>
#include <string.h>

#include <redline/breaker.h>
#include <redline/config.h>
#include <redline/log.h>
#include <redline/metrics.h>
#include <redline/runtime.h>
#include <redline/version.h>

typedef struct hello {
    rdl_counter_t *greetings;
    rdl_breaker_t *breaker;
} hello_t;

static void greet(rdl_req_t *req, void *arg)
{
    hello_t *h = arg;
    rdl_breaker_permit_t permit;
    if (rdl_breaker_acquire(h->breaker, &permit) != 0) {
        rdl_resp_error(req, 503, "breaker_open", "the greeter is resting");
        return;
    }
    const char *name = rdl_req_param(req, "name");
    char body[256];
    int n = snprintf(body, sizeof(body), "hello, %s\n", name);
    rdl_breaker_record(h->breaker, &permit, RDL_OUTCOME_OK, 0);
    rdl_counter_inc(h->greetings);
    rdl_log_field_t fields[] = { rdl_lf_str("name", name), rdl_lf_str("redline", rdl_version()) };
    rdl_log(NULL, RDL_LOG_INFO, "greeted", fields, 2);
    rdl_resp_send(req, 200, "text/plain", body, n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

static double breaker_state(void *arg)
{
    hello_t *h = arg;
    return rdl_breaker_state(h->breaker);
}

/* Registers the service's metrics and breaker; err says what went wrong. */
static int hello_init(hello_t *h, rdl_error_t *err)
{
    int rc = rdl_counter_new(NULL, "hello_greetings_total", "Greetings sent.", &h->greetings, err);
    if (rc)
        return rc;
    rdl_breaker_opts_t bo;
    rdl_breaker_opts_default(&bo);
    rc = rdl_breaker_new("greeter", &bo, &h->breaker);
    if (rc)
        return rdl_error_set(err, rc, 0, 0, "greeter", "cannot make the breaker");
    return rdl_metric_new_callback(NULL, RDL_METRIC_GAUGE, "hello_breaker_state",
                                   "The greeter breaker's state (0 closed, 1 open, 2 half open).",
                                   breaker_state, h, err);
}

int main(void)
{
    if (strcmp(rdl_version(), RDL_VERSION_STRING) != 0) {
        fprintf(stderr, "hello: headers of redline %s, library %s\n", RDL_VERSION_STRING,
                rdl_version());
        return 1;
    }
    rdl_server_opts_t opts;
    rdl_server_opts_default(&opts);
    opts.service = "hello";
    rdl_error_t err;
    rdl_error_clear(&err);
    hello_t h = { 0 };
    rdl_config_t *cfg = NULL;
    rdl_server_t *srv = NULL;
    int rc = rdl_config_new(&cfg);
    if (!rc)
        rc = rdl_server_opts_config(&opts, cfg);
    if (!rc)
        rc = rdl_config_apply_env(cfg, &err);
    if (!rc)
        rc = hello_init(&h, &err);
    if (!rc)
        rc = rdl_server_new(&opts, &srv);
    if (!rc)
        rc = rdl_server_route(srv, "GET", "/hello/{name}", greet, &h);
    if (!rc)
        rc = rdl_server_run(srv, &err);
    if (rc < 0) {
        char text[1024];
        fprintf(stderr, "hello: %s\n",
                err.msg[0] ? rdl_error_format(&err, text, sizeof(text)) : rdl_strerror(rc));
    }
    rdl_server_free(srv);
    rdl_breaker_free(h.breaker);
    rdl_config_free(cfg);
    return rc < 0 ? 1 : rc;
}
