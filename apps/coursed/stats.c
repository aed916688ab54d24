/*
 * stats.c: coursed's business metrics. It exists so the question a product
 * owner asks ("are people getting seats, and how many are left?") has an
 * answer on the same /metrics as the runtime's RED metrics: enrollments
 * counted by outcome from the handlers, seats read from SQLite when scraped,
 * so the gauge is never out of step with the database.
 */
#include <stdio.h>
#include "redline/metrics.h"
#include "stats.h"

static const char *const result_names[STATS_NRESULTS] = {
    "created", "replayed", "invalid", "not_found", "full", "key_reused", "unavailable", "error",
};

static rdl_counter_t *results[STATS_NRESULTS];
static int collector;

static void emit_course(const store_course_t *c, void *arg)
{
    rdl_collect_t *col = arg;
    char code[64];
    snprintf(code, sizeof(code), "%.*s", (int)c->code_len, c->code);
    const char *ln[] = { "course" }, *lv[] = { code };
    rdl_collect_value(col, ln, lv, 1, (double)(c->capacity - c->seats_taken));
}

static void emit_capacity(const store_course_t *c, void *arg)
{
    rdl_collect_t *col = arg;
    char code[64];
    snprintf(code, sizeof(code), "%.*s", (int)c->code_len, c->code);
    const char *ln[] = { "course" }, *lv[] = { code };
    rdl_collect_value(col, ln, lv, 1, (double)c->capacity);
}

/* Runs on the scraping (admin) thread: two quick reads of a six-row table. */
static void collect_courses(rdl_collect_t *c, void *arg)
{
    store_t *st = arg;
    rdl_collect_family(c, RDL_METRIC_GAUGE, "coursed_course_seats_remaining",
                       "Seats still free per course (capacity - seats taken).");
    store_list_courses(st, emit_course, c);
    rdl_collect_family(c, RDL_METRIC_GAUGE, "coursed_course_capacity", "Seats per course.");
    store_list_courses(st, emit_capacity, c);
}

static void enrollments_var(rdl_buf_t *out, void *arg)
{
    (void)arg;
    rdl_buf_puts(out, "{\"enrollments\":{");
    for (int i = 0; i < STATS_NRESULTS; i++)
        rdl_buf_printf(out, "%s\"%s\":%.0f", i ? "," : "", result_names[i],
                       rdl_counter_value(results[i]));
    rdl_buf_puts(out, "}}");
}

int stats_init(store_t *st, rdl_error_t *err)
{
    static const char *const labels[] = { "result" };
    rdl_metric_opts_t o = { .name = "coursed_enrollments_total",
                            .help = "Enrollment requests by outcome.",
                            .labels = labels, .nlabels = 1, .max_series = STATS_NRESULTS };
    rdl_metric_t *m = rdl_metric_find(NULL, o.name);
    int rc = m ? 0 : rdl_metric_new(NULL, RDL_METRIC_COUNTER, &o, &m, err);
    if (rc)
        return rc;
    for (int i = 0; i < STATS_NRESULTS; i++) {
        const char *v[] = { result_names[i] };
        results[i] = rdl_metric_counter(m, v);    /* resolved once: the handlers only add */
        if (!results[i])
            return rdl_error_set(err, RDL_EEXIST, 0, 0, o.name, "taken by a metric of another type");
    }
    collector = rdl_collector_add(NULL, collect_courses, st);
    if (collector < 0)
        return rdl_error_set(err, collector, 0, 0, "", "cannot add the course collector");
    rc = rdl_vars_publish("coursed", enrollments_var, NULL);
    return rc == RDL_EEXIST ? 0 : rc;
}

void stats_enrollment(stats_result_t r)
{
    if (r >= 0 && r < STATS_NRESULTS && results[r])
        rdl_counter_inc(results[r]);
}

void stats_close(void)
{
    rdl_vars_unpublish("coursed");
    if (collector > 0)
        rdl_collector_remove(NULL, collector);
    collector = 0;
}
