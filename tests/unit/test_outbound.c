/*
 * test_outbound.c: the runtime's outbound wiring without the network: the
 * breaker meters a server registers for its upstreams (and removes with it),
 * the failure rule that decides 503 / degraded, and the errors of
 * rdl_server_upstreams and rdl_req_call's preconditions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "redline/runtime.h"
#include "redline/metrics.h"

static const char *exposition(rdl_buf_t *b)
{
    rdl_buf_reset(b);
    assert_int_equal(rdl_metrics_expose(NULL, RDL_FMT_TEXT, b), 0);
    return b->data;
}

static void test_meters(void **state)
{
    rdl_config_t *cfg;
    rdl_upstreams_t *ups;
    rdl_error_t err;
    assert_int_equal(rdl_config_new(&cfg), 0);
    assert_int_equal(rdl_upstreams_new(&ups), 0);
    assert_int_equal(rdl_upstreams_declare(ups, cfg, "recommend", RDL_UPSTREAM_WEAK), 0);
    assert_int_equal(rdl_upstreams_declare(ups, cfg, "payment", RDL_UPSTREAM_STRONG), 0);
    assert_int_equal(rdl_config_set(cfg, "upstreams.payment.url", "http://127.0.0.1:1", &err), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    o.threads = 1;
    o.admin_listen = "";
    rdl_server_t *srv;
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    assert_int_equal(rdl_server_upstreams(srv, ups), 0);
    assert_int_equal(rdl_server_upstreams(srv, ups), RDL_EINVAL);      /* once */

    rdl_upstream_t *p = rdl_upstreams_get(ups, "payment");
    rdl_breaker_permit_t permit;
    assert_int_equal(rdl_breaker_acquire(p->breaker, &permit), 0);
    rdl_breaker_record(p->breaker, &permit, RDL_OUTCOME_HTTP_5XX, 1000);
    rdl_breaker_force_open(p->breaker);
    assert_int_equal(rdl_breaker_acquire(p->breaker, &permit), RDL_EBUSY);

    rdl_buf_t b;
    rdl_buf_init(&b);
    const char *text = exposition(&b);
    static const char *const want[] = {
        "# TYPE redline_upstream_breaker_state gauge\n",
        "redline_upstream_breaker_state{upstream=\"payment\",state=\"forced_open\"} 1\n",
        "redline_upstream_breaker_state{upstream=\"payment\",state=\"closed\"} 0\n",
        "redline_upstream_calls_total{upstream=\"payment\",kind=\"failed\"} 1\n",
        "redline_upstream_calls_total{upstream=\"payment\",kind=\"not_permitted\"} 1\n",
        "redline_upstream_breaker_transitions_total{upstream=\"payment\",state=\"forced_open\"} 1\n",
        "redline_upstream_failure_rate{upstream=\"payment\"} -1\n",
        "redline_degraded_responses_total{upstream=\"recommend\"} 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("missing: %s\nin:\n%s", want[i], text);
    /* an upstream without a url has no breaker series */
    assert_null(strstr(text, "redline_upstream_breaker_state{upstream=\"recommend\""));

    rdl_server_free(srv);           /* removes the collector */
    text = exposition(&b);
    assert_null(strstr(text, "redline_upstream"));
    rdl_buf_close(&b);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

static void inject(const rdl_ctx_t *ctx, rdl_header_add_fn add, void *h, void *arg)
{
    add(h, "X-Mark", arg);
}

static void test_injectors(void **state)
{
    rdl_server_opts_t o;
    rdl_server_opts_default(&o);
    o.threads = 1;
    o.admin_listen = "";
    rdl_server_t *srv;
    assert_int_equal(rdl_server_new(&o, &srv), 0);
    assert_int_equal(rdl_server_add_injector(srv, NULL, NULL), RDL_EINVAL);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rdl_server_add_injector(srv, inject, "m"), 0);
    assert_int_equal(rdl_server_add_injector(srv, inject, "m"), RDL_EBUSY);
    rdl_config_t *cfg;
    rdl_upstreams_t *ups;
    rdl_error_t err;
    assert_int_equal(rdl_config_new(&cfg), 0);
    assert_int_equal(rdl_upstreams_new(&ups), 0);
    assert_int_equal(rdl_upstreams_finish(ups, &err), 0);
    /* request id, trace, color + 6 = 9 of the 12 an upstream set takes: 3 more fit */
    assert_int_equal(rdl_server_upstreams(srv, ups), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rdl_upstreams_add_injector(ups, inject, "x"), 0);
    assert_int_equal(rdl_upstreams_add_injector(ups, inject, "x"), RDL_EBUSY);
    rdl_server_free(srv);
    rdl_config_free(cfg);
    rdl_upstreams_free(ups);
}

static void test_failed_rule(void **state)
{
    rdl_call_result_t r = { 0 };
    r.kind = RDL_OUTCOME_OK;
    r.status = 200;
    assert_false(rdl_call_failed(&r));
    r.kind = RDL_OUTCOME_HTTP_4XX;          /* an answer: the handler decides */
    r.status = 402;
    assert_false(rdl_call_failed(&r));
    r.kind = RDL_OUTCOME_HTTP_429;
    assert_true(rdl_call_failed(&r));
    r.kind = RDL_OUTCOME_HTTP_5XX;
    assert_true(rdl_call_failed(&r));
    r.kind = RDL_OUTCOME_OK;
    r.err = RDL_EBUSY;                      /* breaker open or bulkhead full */
    assert_true(rdl_call_failed(&r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meters),
        cmocka_unit_test(test_injectors),
        cmocka_unit_test(test_failed_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
