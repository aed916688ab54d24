/*
 * test_metrics.c: the registry's promises: every metric type counts exactly
 * (from many threads at once too, past the per-thread slots), histograms put
 * each value in the right bucket and expose cumulative counts, label values
 * and help are escaped exactly as each format requires whatever bytes they
 * hold, bad names are refused with a message that says why, the cardinality
 * guard stops growth at the limit, and the exposition passes a strict reader
 * of both formats (tests/common/expo_parse.h) with the values round-tripping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include <jansson.h>

#include "redline/metrics.h"
#include "../common/expo_parse.h"

static rdl_registry_t *reg;

static int setup(void **state)
{
    (void)state;
    return rdl_registry_new(&reg);
}

static int teardown(void **state)
{
    (void)state;
    rdl_registry_free(reg);
    reg = NULL;
    return 0;
}

/* The exposition as a NUL-terminated string the caller frees. */
static char *expose(rdl_format_t fmt)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    assert_int_equal(rdl_metrics_expose(reg, fmt, &b), 0);
    return b.cap ? b.data : strdup("");
}

/* Parses the exposition in both formats; fails the test with the reader's message. */
static void parse_both(xp_doc_t *text, xp_doc_t *om)
{
    char *t = expose(RDL_FMT_TEXT), *o = expose(RDL_FMT_OPENMETRICS);
    if (xp_parse(t, strlen(t), false, text) != 0)
        fail_msg("text 0.0.4 rejected: %s\n%s", text->err, t);
    if (xp_parse(o, strlen(o), true, om) != 0)
        fail_msg("OpenMetrics rejected: %s\n%s", om->err, o);
    free(t);
    free(o);
}

/* ---- types ------------------------------------------------------------- */

static void test_counter(void **state)
{
    (void)state;
    rdl_counter_t *c;
    rdl_error_t err;
    assert_int_equal(rdl_counter_new(reg, "jobs_total", "Jobs done.", &c, &err), 0);
    rdl_counter_inc(c);
    rdl_counter_add(c, 41);
    assert_true(rdl_counter_value(c) == 42);
    char *t = expose(RDL_FMT_TEXT);
    assert_string_equal(t, "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 42\n");
    free(t);
    char *o = expose(RDL_FMT_OPENMETRICS);
    assert_string_equal(o, "# TYPE jobs counter\n# HELP jobs Jobs done.\njobs_total 42\n# EOF\n");
    free(o);
    rdl_counter_add_f(c, 0.5);
    rdl_counter_add_f(c, -3);           /* ignored: counters never go down */
    rdl_counter_add_f(c, NAN);
    assert_true(rdl_counter_value(c) == 42.5);
    t = expose(RDL_FMT_TEXT);
    assert_non_null(strstr(t, "\njobs_total 42.5\n"));
    free(t);
}

static void test_gauge(void **state)
{
    (void)state;
    rdl_gauge_t *g;
    assert_int_equal(rdl_gauge_new(reg, "queue_depth", "Depth.", &g, NULL), 0);
    rdl_gauge_set(g, 10);
    rdl_gauge_inc(g);
    rdl_gauge_dec(g);
    rdl_gauge_dec(g);
    rdl_gauge_add(g, 0.25);
    assert_true(rdl_gauge_value(g) == 9.25);
    rdl_gauge_set(g, -1e300);
    char *t = expose(RDL_FMT_TEXT);
    assert_string_equal(t, "# HELP queue_depth Depth.\n# TYPE queue_depth gauge\nqueue_depth -1e+300\n");
    free(t);
    rdl_gauge_set(g, NAN);
    t = expose(RDL_FMT_OPENMETRICS);
    assert_string_equal(t, "# TYPE queue_depth gauge\n# HELP queue_depth Depth.\nqueue_depth NaN\n# EOF\n");
    free(t);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    static const double bounds[] = { 0.005, 1, 2.5, 1e6 };
    rdl_histogram_t *h;
    assert_int_equal(rdl_histogram_new(reg, "lat_seconds", "Latency.", bounds, 4, &h, NULL), 0);
    /* a value equal to a bound belongs to that bucket (le = less or equal) */
    double obs[] = { 0.005, 0.004, 1, 1.0000001, 2.5, 3, 2e6, -7 };
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        rdl_histogram_observe(h, obs[i]);
    rdl_histogram_observe(h, NAN);      /* ignored */
    uint64_t cum[5], count;
    double sum;
    rdl_histogram_read(h, &count, &sum, cum, 5);
    assert_int_equal(count, 8);
    assert_int_equal(cum[0], 3);        /* 0.005, 0.004, -7 */
    assert_int_equal(cum[1], 4);        /* + 1 */
    assert_int_equal(cum[2], 6);        /* + 1.0000001, 2.5 */
    assert_int_equal(cum[3], 7);        /* + 3 */
    assert_int_equal(cum[4], 8);        /* + 2e6 */
    assert_true(sum == 0.005 + 0.004 + 1 + 1.0000001 + 2.5 + 3 + 2e6 - 7);
    char *t = expose(RDL_FMT_TEXT);
    const char *want =
        "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{le=\"0.005\"} 3\n"
        "lat_seconds_bucket{le=\"1.0\"} 4\n"
        "lat_seconds_bucket{le=\"2.5\"} 6\n"
        "lat_seconds_bucket{le=\"1e+06\"} 7\n"
        "lat_seconds_bucket{le=\"+Inf\"} 8\n";
    assert_memory_equal(t, want, strlen(want));
    free(t);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    const char *kv[] = { "le", "+Inf", NULL };
    assert_true(xp_value(&dom, "lat_seconds_bucket", kv) == 8);
    assert_true(xp_value(&dom, "lat_seconds_count", NULL) == 8);
    assert_true(xp_value(&dt, "lat_seconds_sum", NULL) == sum);
    xp_free(&dt);
    xp_free(&dom);
}

/* OpenMetrics: a histogram sum is a counter; negative observations that make it negative drop
 * _sum and _count (the +Inf bucket still counts); text 0.0.4 keeps them. */
static void test_histogram_negative_sum(void **state)
{
    (void)state;
    static const double bounds[] = { -1, 0, 1 };
    rdl_histogram_t *h;
    assert_int_equal(rdl_histogram_new(reg, "temp_celsius", "T.", bounds, 3, &h, NULL), 0);
    rdl_histogram_observe(h, -5);
    rdl_histogram_observe(h, 0.5);
    char *o = expose(RDL_FMT_OPENMETRICS);
    assert_non_null(strstr(o, "temp_celsius_bucket{le=\"-1.0\"} 1\n"));
    assert_non_null(strstr(o, "temp_celsius_bucket{le=\"+Inf\"} 2\n"));
    assert_null(strstr(o, "temp_celsius_sum"));
    assert_null(strstr(o, "temp_celsius_count"));
    free(o);
    char *t = expose(RDL_FMT_TEXT);
    assert_non_null(strstr(t, "temp_celsius_sum -4.5\ntemp_celsius_count 2\n"));
    free(t);
    rdl_histogram_observe(h, 10);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    assert_true(xp_value(&dom, "temp_celsius_sum", NULL) == 5.5);
    assert_true(xp_value(&dom, "temp_celsius_count", NULL) == 3);
    xp_free(&dt);
    xp_free(&dom);
}

static void test_default_and_helper_buckets(void **state)
{
    (void)state;
    rdl_histogram_t *h;
    assert_int_equal(rdl_histogram_new(reg, "d_seconds", "", NULL, 0, &h, NULL), 0);
    rdl_histogram_observe(h, 0.3);
    uint64_t cum[12];
    rdl_histogram_read(h, NULL, NULL, cum, 12);
    assert_int_equal(cum[4], 0);        /* le 0.1 */
    assert_int_equal(cum[5], 0);        /* le 0.25 */
    assert_int_equal(cum[6], 1);        /* le 0.5 */
    assert_int_equal(cum[11], 1);
    double b[4];
    assert_int_equal(rdl_buckets_linear(1, 0.5, 4, b), 0);
    assert_true(b[0] == 1 && b[1] == 1.5 && b[2] == 2 && b[3] == 2.5);
    assert_int_equal(rdl_buckets_exponential(0.001, 10, 4, b), 0);
    assert_true(b[0] == 0.001 && b[1] == 0.01 && b[3] > 0.99 && b[3] < 1.01);
    assert_int_equal(rdl_buckets_linear(1, 0, 4, b), RDL_EINVAL);
    assert_int_equal(rdl_buckets_linear(1, 1, 0, b), RDL_EINVAL);
    assert_int_equal(rdl_buckets_exponential(0, 2, 4, b), RDL_EINVAL);
    assert_int_equal(rdl_buckets_exponential(1, 1, 4, b), RDL_EINVAL);
}

/* ---- labels and escaping ------------------------------------------------ */

static void test_label_escaping(void **state)
{
    (void)state;
    const char *labels[] = { "path", "who" };
    rdl_metric_opts_t o = { .name = "files_total", .help = "Files \\ seen \"here\"\nand there.",
                            .labels = labels, .nlabels = 2 };
    rdl_metric_t *m;
    assert_int_equal(rdl_metric_new(reg, RDL_METRIC_COUNTER, &o, &m, NULL), 0);
    const char *v1[] = { "C:\\DIR\\F.TXT", "say \"hi\"\nbye" };
    const char *v2[] = { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "bad \xff\xc3 end" };
    rdl_counter_add(rdl_metric_counter(m, v1), 3);
    rdl_counter_add(rdl_metric_counter(m, v2), 4);
    /* the same sanitised label set is one series, however it is spelt */
    rdl_counter_inc(rdl_metric_counter(m, v2));
    char *t = expose(RDL_FMT_TEXT);
    assert_non_null(strstr(t, "# HELP files_total Files \\\\ seen \"here\"\\nand there.\n"));
    assert_non_null(strstr(t, "files_total{path=\"C:\\\\DIR\\\\F.TXT\",who=\"say \\\"hi\\\"\\nbye\"} 3\n"));
    assert_non_null(strstr(t, "files_total{path=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
                              "who=\"bad \xef\xbf\xbd\xef\xbf\xbd end\"} 5\n"));
    free(t);
    char *o2 = expose(RDL_FMT_OPENMETRICS);
    assert_non_null(strstr(o2, "# HELP files Files \\\\ seen \\\"here\\\"\\nand there.\n"));
    assert_non_null(strstr(o2, "files_total{path=\"C:\\\\DIR\\\\F.TXT\""));
    free(o2);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    const char *kv[] = { "path", "C:\\DIR\\F.TXT", "who", "say \"hi\"\nbye", NULL };
    assert_true(xp_value(&dt, "files_total", kv) == 3);
    assert_true(xp_value(&dom, "files_total", kv) == 3);
    assert_string_equal(dt.families[0].help, "Files \\ seen \"here\"\nand there.");
    assert_string_equal(dom.families[0].help, "Files \\ seen \"here\"\nand there.");
    xp_free(&dt);
    xp_free(&dom);
}

static void test_registration_errors(void **state)
{
    (void)state;
    static const char *const le[] = { "le" };
    static const char *const dunder[] = { "__x" };
    static const char *const digit[] = { "1a" };
    static const char *const dup[] = { "a", "a" };
    static const double unsorted[] = { 1, 0.5 };
    static const double inf[] = { 1, INFINITY };
    static const struct {
        rdl_metric_type_t type;
        rdl_metric_opts_t o;
        int rc;
        const char *msg;
    } cases[] = {
        { RDL_METRIC_GAUGE, { .name = "" }, RDL_EINVAL, "must match" },
        { RDL_METRIC_GAUGE, { .name = "1abc" }, RDL_EINVAL, "must match" },
        { RDL_METRIC_GAUGE, { .name = "a-b" }, RDL_EINVAL, "must match" },
        { RDL_METRIC_GAUGE, { .name = "caf\xc3\xa9" }, RDL_EINVAL, "must match" },
        { RDL_METRIC_COUNTER, { .name = "requests" }, RDL_EINVAL, "end in _total" },
        { RDL_METRIC_COUNTER, { .name = "_total" }, RDL_EINVAL, "end in _total" },
        { RDL_METRIC_GAUGE, { .name = "up_total" }, RDL_EINVAL, "only counters" },
        { RDL_METRIC_HISTOGRAM, { .name = "h", .labels = le, .nlabels = 1 }, RDL_EINVAL, "'le'" },
        { RDL_METRIC_GAUGE, { .name = "g", .labels = dunder, .nlabels = 1 }, RDL_EINVAL, "not start with __" },
        { RDL_METRIC_GAUGE, { .name = "g", .labels = digit, .nlabels = 1 }, RDL_EINVAL, "label name '1a'" },
        { RDL_METRIC_GAUGE, { .name = "g", .labels = dup, .nlabels = 2 }, RDL_EINVAL, "repeated" },
        { RDL_METRIC_GAUGE, { .name = "g", .labels = NULL, .nlabels = 2 }, RDL_EINVAL, "label names" },
        { RDL_METRIC_HISTOGRAM, { .name = "h", .buckets = unsorted, .nbuckets = 2 }, RDL_EINVAL, "increase" },
        { RDL_METRIC_HISTOGRAM, { .name = "h", .buckets = inf, .nbuckets = 2 }, RDL_EINVAL, "not finite" },
        { RDL_METRIC_GAUGE, { .name = "g", .max_series = 2000000 }, RDL_EINVAL, "max_series" },
        /* taken: by "taken_total" below (its OpenMetrics family name), by a histogram's samples */
        { RDL_METRIC_GAUGE, { .name = "taken" }, RDL_EEXIST, "already uses" },
        { RDL_METRIC_GAUGE, { .name = "hist_count" }, RDL_EEXIST, "already uses" },
        { RDL_METRIC_COUNTER, { .name = "taken_total" }, RDL_EEXIST, "already uses" },
        { RDL_METRIC_COUNTER, { .name = "redline_metrics_rejected_label_sets_total" }, RDL_EEXIST, "already uses" },
    };
    rdl_counter_t *c;
    rdl_histogram_t *h;
    assert_int_equal(rdl_counter_new(reg, "taken_total", "", &c, NULL), 0);
    assert_int_equal(rdl_histogram_new(reg, "hist", "", NULL, 0, &h, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rdl_error_t err;
        rdl_metric_t *m = (rdl_metric_t *)&err;
        rdl_error_clear(&err);
        int rc = rdl_metric_new(reg, cases[i].type, &cases[i].o, &m, &err);
        if (rc != cases[i].rc || !strstr(err.msg, cases[i].msg) || m != NULL)
            fail_msg("case %zu (%s): rc %d msg '%s', want %d '%s'", i, cases[i].o.name, rc,
                     err.msg, cases[i].rc, cases[i].msg);
    }
    assert_int_equal(rdl_metric_new(reg, RDL_METRIC_GAUGE, NULL, NULL, NULL), RDL_EINVAL);
    assert_int_equal(rdl_metric_new_callback(reg, RDL_METRIC_HISTOGRAM, "x", "", NULL, NULL, NULL),
                     RDL_EINVAL);
    /* a family of another type hands out no handle */
    rdl_metric_t *m = rdl_metric_find(reg, "taken_total");
    assert_non_null(m);
    assert_null(rdl_metric_gauge(m, NULL));
    assert_null(rdl_metric_histogram(m, NULL));
    assert_ptr_equal(rdl_metric_counter(m, NULL), c);
}

/* ---- cardinality guard ------------------------------------------------- */

static void test_cardinality_overflow(void **state)
{
    (void)state;
    const char *labels[] = { "user" };
    rdl_metric_opts_t o = { .name = "logins_total", .help = "Logins.", .labels = labels,
                            .nlabels = 1, .max_series = 3 };
    rdl_metric_t *m;
    assert_int_equal(rdl_metric_new(reg, RDL_METRIC_COUNTER, &o, &m, NULL), 0);
    char *t = expose(RDL_FMT_TEXT);
    assert_null(strstr(t, RDL_METRICS_OVERFLOW));     /* exposed only once used */
    free(t);
    const char *names[] = { "a", "b", "c", "d", "e", "a", "f" };
    rdl_counter_t *first[7];
    for (int i = 0; i < 7; i++) {
        const char *v[] = { names[i] };
        first[i] = rdl_metric_counter(m, v);
        rdl_counter_inc(first[i]);
    }
    assert_ptr_equal(first[0], first[5]);      /* a known set is found again */
    assert_ptr_equal(first[3], first[4]);      /* d, e, f: the one overflow series */
    assert_ptr_equal(first[3], first[6]);
    assert_ptr_not_equal(first[2], first[3]);
    assert_int_equal(rdl_metric_rejected(m), 3);
    /* a label set of the overflow value itself is the overflow series, not a second one */
    const char *ov[] = { RDL_METRICS_OVERFLOW };
    assert_ptr_equal(rdl_metric_counter(m, ov), first[3]);
    rdl_counter_inc(rdl_metric_counter(m, ov));
    assert_int_equal(rdl_metric_rejected(m), 3);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    const char *ka[] = { "user", "a", NULL }, *kover[] = { "user", RDL_METRICS_OVERFLOW, NULL };
    const char *kd[] = { "user", "d", NULL }, *kr[] = { "metric", "logins_total", NULL };
    assert_true(xp_value(&dt, "logins_total", ka) == 2);
    assert_true(xp_value(&dt, "logins_total", kover) == 4);
    assert_true(isnan(xp_value(&dt, "logins_total", kd)));
    assert_true(xp_value(&dt, "redline_metrics_rejected_label_sets_total", kr) == 3);
    assert_true(xp_value(&dom, "redline_metrics_rejected_label_sets_total", kr) == 3);
    int series = 0;
    for (int i = 0; i < dt.nsamples; i++)
        series += !strcmp(dt.samples[i].name, "logins_total");
    assert_int_equal(series, 4);               /* 3 + overflow: memory stops growing */
    xp_free(&dt);
    xp_free(&dom);
}

/* ---- threads ------------------------------------------------------------ */

typedef struct worker {
    rdl_counter_t *c;
    rdl_histogram_t *h;
    rdl_metric_t *vec;
    int iters;
    int id;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char id[16];
    snprintf(id, sizeof(id), "%d", w->id % 5);
    const char *v[] = { id };
    rdl_counter_t *mine = rdl_metric_counter(w->vec, v);
    for (int i = 0; i < w->iters; i++) {
        rdl_counter_inc(w->c);
        rdl_counter_inc(mine);
        rdl_histogram_observe(w->h, (double)(i % 4));
    }
    return NULL;
}

/* Runs n threads at once; more than the 64 single-writer slots exercises the shared slot. */
static void run_threads(int n, int iters)
{
    rdl_counter_t *c;
    rdl_histogram_t *h;
    static const double b[] = { 0, 1, 2 };
    const char *labels[] = { "worker" };
    rdl_metric_opts_t o = { .name = "per_worker_total", .labels = labels, .nlabels = 1 };
    rdl_metric_t *vec;
    assert_int_equal(rdl_counter_new(reg, "hits_total", "", &c, NULL), 0);
    assert_int_equal(rdl_histogram_new(reg, "obs", "", b, 3, &h, NULL), 0);
    assert_int_equal(rdl_metric_new(reg, RDL_METRIC_COUNTER, &o, &vec, NULL), 0);
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    worker_t *w = calloc((size_t)n, sizeof(*w));
    for (int i = 0; i < n; i++) {
        w[i] = (worker_t){ .c = c, .h = h, .vec = vec, .iters = iters, .id = i };
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    uint64_t total = (uint64_t)n * (uint64_t)iters;
    assert_true(rdl_counter_value(c) == (double)total);
    uint64_t cum[4], count;
    double sum;
    rdl_histogram_read(h, &count, &sum, cum, 4);
    assert_int_equal(count, total);
    assert_int_equal(cum[0], total / 4);
    assert_true(sum == (double)(total / 4) * 6);
    double per = 0;
    for (int i = 0; i < 5; i++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", i);
        const char *v[] = { id };
        per += rdl_counter_value(rdl_metric_counter(vec, v));
    }
    assert_true(per == (double)total);
    free(t);
    free(w);
}

static void test_concurrent_exact(void **state)
{
    (void)state;
    run_threads(8, 200000);
}

static void test_concurrent_beyond_slots(void **state)
{
    (void)state;
    run_threads(90, 4000);
}

/* ---- callbacks and collectors ------------------------------------------ */

static double seven(void *arg)
{
    return *(double *)arg;
}

static void collect(rdl_collect_t *c, void *arg)
{
    (void)arg;
    const char *names[] = { "course" };
    const char *a[] = { "CS101" }, *b[] = { "MA\"201\n" };
    rdl_collect_family(c, RDL_METRIC_GAUGE, "seats_remaining", "Seats left.");
    rdl_collect_value(c, names, a, 1, 12);
    rdl_collect_value(c, names, b, 1, 0);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "bad name", "skipped");
    rdl_collect_value(c, NULL, NULL, 0, 1);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "no_suffix", "skipped: counters end in _total");
    rdl_collect_value(c, NULL, NULL, 0, 1);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "cb_gauge", "skipped: the registry has it");
    rdl_collect_value(c, NULL, NULL, 0, 1);
    rdl_collect_family(c, RDL_METRIC_COUNTER, "ticks_total", "Ticks.");
    const char *bad[] = { "__reserved" };
    rdl_collect_value(c, bad, a, 1, 5);         /* skipped: bad label name */
    rdl_collect_value(c, NULL, NULL, 0, 9);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "seats_remaining", "skipped: repeated");
    rdl_collect_value(c, NULL, NULL, 0, 1);
}

static void test_callbacks_and_collectors(void **state)
{
    (void)state;
    double v = 7;
    assert_int_equal(rdl_metric_new_callback(reg, RDL_METRIC_GAUGE, "cb_gauge", "G.", seven, &v, NULL), 0);
    assert_int_equal(rdl_metric_new_callback(reg, RDL_METRIC_COUNTER, "cb_total", "C.", seven, &v, NULL), 0);
    int id = rdl_collector_add(reg, collect, NULL);
    assert_true(id > 0);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    const char *a[] = { "course", "CS101", NULL }, *b[] = { "course", "MA\"201\n", NULL };
    assert_true(xp_value(&dt, "cb_gauge", NULL) == 7);
    assert_true(xp_value(&dt, "cb_total", NULL) == 7);
    assert_true(xp_value(&dom, "cb_total", NULL) == 7);
    assert_true(xp_value(&dt, "seats_remaining", a) == 12);
    assert_true(xp_value(&dom, "seats_remaining", b) == 0);
    assert_true(xp_value(&dt, "ticks_total", NULL) == 9);
    assert_true(xp_value(&dom, "ticks_total", NULL) == 9);
    assert_true(isnan(xp_value(&dt, "no_suffix", NULL)));
    assert_int_equal(dt.nfamilies, 4);
    xp_free(&dt);
    xp_free(&dom);
    rdl_collector_remove(reg, id);
    char *t = expose(RDL_FMT_TEXT);
    assert_null(strstr(t, "seats_remaining"));
    free(t);
}

/* Label values that differ only in invalid UTF-8 become one series: written once. */
static void collect_colliding(rdl_collect_t *c, void *arg)
{
    (void)arg;
    const char *names[] = { "v" };
    const char *bad[] = { "x\xff" }, *replaced[] = { "x\xef\xbf\xbd" }, *other[] = { "y" };
    rdl_collect_family(c, RDL_METRIC_GAUGE, "collide", "Colliding label values.");
    rdl_collect_value(c, names, bad, 1, 1);
    rdl_collect_value(c, names, replaced, 1, 2);    /* same series once sanitised: dropped */
    rdl_collect_value(c, names, other, 1, 3);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "collide_again", "Same labels, another family.");
    rdl_collect_value(c, names, bad, 1, 4);
}

static void test_collector_duplicate_series(void **state)
{
    (void)state;
    int id = rdl_collector_add(reg, collect_colliding, NULL);
    assert_true(id > 0);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);                       /* the strict reader refuses duplicate series */
    const char *x[] = { "v", "x\xef\xbf\xbd", NULL }, *y[] = { "v", "y", NULL };
    assert_true(xp_value(&dt, "collide", x) == 1);
    assert_true(xp_value(&dom, "collide", y) == 3);
    assert_true(xp_value(&dt, "collide_again", x) == 4);
    xp_free(&dt);
    xp_free(&dom);
    rdl_collector_remove(reg, id);
}

static void test_process_collector(void **state)
{
    (void)state;
    assert_true(rdl_metrics_register_process(reg) > 0);
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    assert_true(xp_value(&dt, "process_cpu_seconds_total", NULL) >= 0);
    assert_true(xp_value(&dt, "process_open_fds", NULL) >= 3);
    assert_true(xp_value(&dt, "process_max_fds", NULL) >= 64);
    assert_true(xp_value(&dt, "process_resident_memory_bytes", NULL) > 1 << 20);
    assert_true(xp_value(&dt, "process_threads", NULL) >= 1);
    double start = xp_value(&dom, "process_start_time_seconds", NULL);
    double now = (double)rdl_wall_ns() / 1e9;
    assert_true(start > now - 3600 && start <= now + 1);
    /* present (under ASan its allocator replaces glibc's and mallinfo2 reads 0) */
    assert_true(xp_value(&dt, "redline_malloc_in_use_bytes", NULL) >= 0);
    xp_free(&dt);
    xp_free(&dom);
}

/* ---- /debug/vars -------------------------------------------------------- */

static void answer_var(rdl_buf_t *out, void *arg)
{
    rdl_buf_printf(out, "{\"answer\":%d}", *(int *)arg);
}

static void test_vars(void **state)
{
    (void)state;
    int answer = 42;
    rdl_counter_t *c;
    const char *labels[] = { "k" };
    rdl_metric_opts_t o = { .name = "lab", .labels = labels, .nlabels = 1 };
    rdl_metric_t *m;
    assert_int_equal(rdl_counter_new(reg, "v_total", "", &c, NULL), 0);
    assert_int_equal(rdl_metric_new(reg, RDL_METRIC_GAUGE, &o, &m, NULL), 0);
    const char *v[] = { "x\"y" };
    rdl_gauge_set(rdl_metric_gauge(m, v), 2.5);
    rdl_counter_add(c, 3);
    assert_int_equal(rdl_vars_publish("app", answer_var, &answer), 0);
    assert_int_equal(rdl_vars_publish("app", answer_var, &answer), RDL_EEXIST);
    assert_int_equal(rdl_vars_publish("memstats", answer_var, &answer), RDL_EEXIST);
    rdl_buf_t b;
    rdl_buf_init(&b);
    assert_int_equal(rdl_vars_write(reg, &b), 0);
    json_error_t jerr;
    json_t *doc = json_loadb(b.data, b.len, 0, &jerr);
    if (!doc)
        fail_msg("vars is not JSON: %s\n%s", jerr.text, b.data);
    assert_true(json_is_array(json_object_get(doc, "cmdline")));
    /* read whole through rdl_read_file: this program's own name comes first */
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(doc, "cmdline"), 0)),
                           "test_metrics"));
    assert_true(json_integer_value(json_object_get(json_object_get(doc, "app"), "answer")) == 42);
    assert_true(json_number_value(json_object_get(doc, "threads")) >= 1);
    assert_true(json_number_value(json_object_get(doc, "uptime_seconds")) >= 0);
    assert_true(json_number_value(json_object_get(json_object_get(doc, "memstats"), "resident_bytes")) > 0);
    json_t *metrics = json_object_get(doc, "metrics");
    assert_true(json_number_value(json_object_get(metrics, "v_total")) == 3);
    assert_true(json_number_value(json_object_get(metrics, "lab{k=\"x\"y\"}")) == 2.5);
    json_decref(doc);
    rdl_buf_close(&b);
    rdl_vars_unpublish("app");
    rdl_buf_init(&b);
    rdl_vars_write(reg, &b);
    assert_null(strstr(b.data, "\"app\""));
    rdl_buf_close(&b);
}

/* ---- negotiation (a parser of Accept headers: malformed input table) ---- */

static void test_negotiate(void **state)
{
    (void)state;
    static const struct {
        const char *accept;
        rdl_format_t want;
    } cases[] = {
        { "", RDL_FMT_TEXT },
        { "*/*", RDL_FMT_TEXT },
        { "text/plain;version=0.0.4", RDL_FMT_TEXT },
        { "application/openmetrics-text", RDL_FMT_OPENMETRICS },
        { "Application/OpenMetrics-Text; Version=1.0.0", RDL_FMT_OPENMETRICS },
        /* Prometheus 3 default */
        { "application/openmetrics-text;version=1.0.0;escaping=allow-utf8;q=0.5,"
          "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
          "escaping=allow-utf8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1", RDL_FMT_OPENMETRICS },
        /* Prometheus 2.42 default */
        { "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", RDL_FMT_OPENMETRICS },
        { "text/plain;q=0.9,application/openmetrics-text;q=0.5", RDL_FMT_TEXT },
        { "application/openmetrics-text;version=0.0.1", RDL_FMT_OPENMETRICS },
        { "application/openmetrics-text;version=2.0.0", RDL_FMT_TEXT },
        { "application/openmetrics-text;q=0", RDL_FMT_TEXT },
        /* malformed: never crash, never pick OpenMetrics from garbage */
        { "application/openmetrics-text;q=", RDL_FMT_TEXT },
        { "application/openmetrics-text;q=abc", RDL_FMT_TEXT },
        { "application/openmetrics-text;q=1.5", RDL_FMT_TEXT },
        { "application/openmetrics-text;q=0.12345678901234567890", RDL_FMT_TEXT },
        { "application/openmetrics-textx", RDL_FMT_TEXT },
        { ";;;,,,", RDL_FMT_TEXT },
        { ",application/openmetrics-text ,", RDL_FMT_OPENMETRICS },
        { "application/openmetrics-text;version=", RDL_FMT_OPENMETRICS },
        { "\x01\xff;q=1", RDL_FMT_TEXT },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rdl_format_t f = rdl_metrics_negotiate(cases[i].accept, strlen(cases[i].accept));
        if (f != cases[i].want)
            fail_msg("case %zu '%s': got %d want %d", i, cases[i].accept, f, cases[i].want);
    }
    assert_int_equal(rdl_metrics_negotiate(NULL, 0), RDL_FMT_TEXT);
    assert_string_equal(rdl_metrics_content_type(RDL_FMT_TEXT), "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(rdl_metrics_content_type(RDL_FMT_OPENMETRICS),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8");

    static const struct { const char *enc; bool gzip; } encodings[] = {
        { "gzip", true },
        { "GZIP", true },
        { "x-gzip", true },
        { "deflate, gzip;q=0.5", true },
        { "gzip;q=0", false },
        { "gzip; q=0.000", false },
        { "gzip;q=0.001", true },
        { "*", true },
        { "*;q=0", false },
        { "*, gzip;q=0", false },                   /* listed: its own q wins over "*" */
        { "gzip;q=0, *", false },
        { "identity", false },
        { "deflate, br", false },
        { "gzipx", false },
        { "gzip;q=", false },                       /* malformed q reads as 0 */
        { "gzip;q=2", false },
        { " , gzip ,", true },
        { "", false },
    };
    for (size_t i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++)
        if (rdl_metrics_accepts_gzip(encodings[i].enc, strlen(encodings[i].enc)) != encodings[i].gzip)
            fail_msg("Accept-Encoding case %zu '%s'", i, encodings[i].enc);
    assert_false(rdl_metrics_accepts_gzip(NULL, 0));
}

/* ---- a larger registry parses and keeps its order ------------------------ */

static void test_many_series_roundtrip(void **state)
{
    (void)state;
    const char *labels[] = { "route", "code" };
    rdl_metric_opts_t o = { .name = "req_seconds", .help = "h", .labels = labels, .nlabels = 2,
                            .max_series = 500 };
    rdl_metric_t *m;
    assert_int_equal(rdl_metric_new(reg, RDL_METRIC_HISTOGRAM, &o, &m, NULL), 0);
    for (int i = 0; i < 300; i++) {
        char r[32], c[8];
        snprintf(r, sizeof(r), "/r/%d", i);
        snprintf(c, sizeof(c), "%d", 200 + i % 3);
        const char *v[] = { r, c };
        for (int k = 0; k <= i % 7; k++)
            rdl_histogram_observe(rdl_metric_histogram(m, v), 0.01 * k);
    }
    xp_doc_t dt, dom;
    parse_both(&dt, &dom);
    const char *kv[] = { "route", "/r/13", "code", "201", NULL };
    assert_true(xp_value(&dt, "req_seconds_count", kv) == 13 % 7 + 1);
    assert_true(xp_value(&dom, "req_seconds_count", kv) == 13 % 7 + 1);
    assert_int_equal(dt.nsamples, 300 * (12 + 2) + 1);   /* + the rejected-label-sets counter */
    xp_free(&dt);
    xp_free(&dom);
}

static void test_default_registry(void **state)
{
    (void)state;
    rdl_registry_t *d = rdl_registry_default();
    assert_non_null(d);
    assert_ptr_equal(d, rdl_registry_default());
    rdl_counter_t *c;
    assert_int_equal(rdl_counter_new(NULL, "default_only_total", "", &c, NULL), 0);
    rdl_counter_inc(c);
    assert_ptr_equal(rdl_metric_find(NULL, "default_only_total"), rdl_metric_find(d, "default_only_total"));
    assert_null(rdl_metric_find(reg, "default_only_total"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_negative_sum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_and_helper_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cardinality_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_beyond_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_and_collectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collector_duplicate_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_collector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vars, setup, teardown),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test_setup_teardown(test_many_series_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_registry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
