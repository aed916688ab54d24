/*
 * expose.c: the Prometheus text 0.0.4 and OpenMetrics 1.0 text formats.
 *
 * It exists so that whatever a program puts in a label value or a help
 * string, the scrape parses: values are escaped exactly as each format says
 * (reference/prometheus-exposition.md §4), bytes that are not UTF-8 become
 * U+FFFD, numbers are written in the shortest form that reads back to the
 * same double, and bucket bounds in one canonical style in both formats, so a
 * series keeps its identity whichever format a scraper asks for.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics/internal.h"

/* ---- text helpers ------------------------------------------------------ */

/* Escapes \ and newline, and " when quote is set (label values; OpenMetrics help). */
static void put_escaped(rdl_buf_t *b, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : quote && *p == '"' ? "\\\"" : NULL;
        if (!esc)
            continue;
        rdl_buf_put(b, run, (size_t)(p - run));
        rdl_buf_puts(b, esc);
        run = p + 1;
    }
    rdl_buf_puts(b, run);
}

void rdl__metrics_put_double(rdl_buf_t *b, double v, bool le_style)
{
    if (isnan(v)) {
        rdl_buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        rdl_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (!le_style && v == trunc(v) && fabs(v) < 1e15) {
        rdl_buf_put_i64(b, (int64_t)v);
        return;
    }
    /* Shortest digits that read back to v, placed as Go's strconv.FormatFloat(v, 'g', -1). */
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    const char *e = strchr(tmp, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp < -4 || exp >= 6) {        /* Go decides with precision 6 when shortest */
        rdl_buf_puts(b, tmp);
        return;
    }
    int decimals = prec - 1 - exp;
    snprintf(tmp, sizeof(tmp), "%.*f", decimals > 0 ? decimals : 0, v);
    rdl_buf_puts(b, tmp);
    if (le_style && !strchr(tmp, '.'))
        rdl_buf_puts(b, ".0");
}

/* ---- families ---------------------------------------------------------- */

static const char *type_name(rdl_metric_type_t t)
{
    return t == RDL_METRIC_COUNTER ? "counter" : t == RDL_METRIC_GAUGE ? "gauge" : "histogram";
}

/* "# HELP" / "# TYPE" lines: P names the sample (x_total), OM the family (x). */
static void put_meta(rdl_buf_t *b, rdl_format_t fmt, rdl_metric_type_t type, const char *name,
                     size_t om_len, const char *help)
{
    if (fmt == RDL_FMT_OPENMETRICS) {
        rdl_buf_puts(b, "# TYPE ");
        rdl_buf_put(b, name, om_len);
        rdl_buf_putc(b, ' ');
        rdl_buf_puts(b, type_name(type));
        rdl_buf_putc(b, '\n');
        if (help && *help) {
            rdl_buf_puts(b, "# HELP ");
            rdl_buf_put(b, name, om_len);
            rdl_buf_putc(b, ' ');
            put_escaped(b, help, true);
            rdl_buf_putc(b, '\n');
        }
        return;
    }
    if (help && *help) {
        rdl_buf_puts(b, "# HELP ");
        rdl_buf_puts(b, name);
        rdl_buf_putc(b, ' ');
        put_escaped(b, help, false);
        rdl_buf_putc(b, '\n');
    }
    rdl_buf_puts(b, "# TYPE ");
    rdl_buf_puts(b, name);
    rdl_buf_putc(b, ' ');
    rdl_buf_puts(b, type_name(type));
    rdl_buf_putc(b, '\n');
}

/* name{a="x",b="y"[,le="..."]} ; no braces when there is nothing to put in them. */
static void put_sample_name(rdl_buf_t *b, const char *name, const char *suffix,
                            char *const *labels, const char *const *values, size_t n,
                            const char *le)
{
    rdl_buf_puts(b, name);
    rdl_buf_puts(b, suffix);
    if (!n && !le)
        return;
    rdl_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            rdl_buf_putc(b, ',');
        rdl_buf_puts(b, labels[i]);
        rdl_buf_puts(b, "=\"");
        put_escaped(b, values[i], true);
        rdl_buf_putc(b, '"');
    }
    if (le) {
        rdl_buf_puts(b, n ? ",le=\"" : "le=\"");
        rdl_buf_puts(b, le);
        rdl_buf_putc(b, '"');
    }
    rdl_buf_putc(b, '}');
}

static void put_series(rdl_buf_t *b, rdl_format_t fmt, const rdl_metric_t *m, const mx_series_t *s)
{
    const char *const *values = (const char *const *)s->values;
    if (m->type == RDL_METRIC_GAUGE) {
        put_sample_name(b, m->name, "", m->labels, values, m->nlabels, NULL);
        rdl_buf_putc(b, ' ');
        rdl__metrics_put_double(b, rdl_gauge_value((const rdl_gauge_t *)s), false);
        rdl_buf_putc(b, '\n');
        return;
    }
    if (m->type == RDL_METRIC_COUNTER) {
        put_sample_name(b, fmt == RDL_FMT_OPENMETRICS ? m->om_name : m->name,
                        fmt == RDL_FMT_OPENMETRICS ? "_total" : "", m->labels, values, m->nlabels, NULL);
        rdl_buf_putc(b, ' ');
        uint64_t n = rdl__metrics_cell_sum(s->cells);
        double f = rdl__metrics_cell_sum_f(s->cells + 1);
        if (f == 0)
            rdl_buf_put_u64(b, n);
        else
            rdl__metrics_put_double(b, (double)n + f, false);
        rdl_buf_putc(b, '\n');
        return;
    }
    uint64_t acc = 0;
    for (uint32_t i = 0; i <= s->nb; i++) {
        rdl_buf_t le;
        char lebuf[48];
        acc += rdl__metrics_cell_sum(s->cells + i);
        rdl_buf_init(&le);
        rdl__metrics_put_double(&le, i < s->nb ? s->bounds[i] : INFINITY, true);
        snprintf(lebuf, sizeof(lebuf), "%s", le.data ? le.data : "");
        rdl_buf_close(&le);
        put_sample_name(b, m->name, "_bucket", m->labels, values, m->nlabels, lebuf);
        rdl_buf_putc(b, ' ');
        rdl_buf_put_u64(b, acc);
        rdl_buf_putc(b, '\n');
    }
    /* OpenMetrics: a histogram's sum is a counter; when negative observations made it
     * negative (or NaN) it must not appear, and _count goes with it (the +Inf bucket has it). */
    double sum = rdl__metrics_cell_sum_f(s->cells + s->nb + 1);
    if (fmt == RDL_FMT_OPENMETRICS && !(sum >= 0))
        return;
    put_sample_name(b, m->name, "_sum", m->labels, values, m->nlabels, NULL);
    rdl_buf_putc(b, ' ');
    rdl__metrics_put_double(b, sum, false);
    rdl_buf_putc(b, '\n');
    put_sample_name(b, m->name, "_count", m->labels, values, m->nlabels, NULL);
    rdl_buf_putc(b, ' ');
    rdl_buf_put_u64(b, acc);
    rdl_buf_putc(b, '\n');
}

static void put_callback(rdl_buf_t *b, rdl_format_t fmt, const rdl_metric_t *m)
{
    double v = m->fn(m->fn_arg);
    if (m->type == RDL_METRIC_COUNTER && (isnan(v) || v < 0))
        v = 0;                          /* a counter is never NaN or negative */
    put_meta(b, fmt, m->type, m->name, strlen(m->om_name), m->help);
    rdl_buf_puts(b, fmt == RDL_FMT_OPENMETRICS ? m->om_name : m->name);
    if (m->type == RDL_METRIC_COUNTER && fmt == RDL_FMT_OPENMETRICS)
        rdl_buf_puts(b, "_total");
    rdl_buf_putc(b, ' ');
    rdl__metrics_put_double(b, v, false);
    rdl_buf_putc(b, '\n');
}

static void put_family(rdl_buf_t *b, rdl_format_t fmt, const rdl_metric_t *m)
{
    size_t n;
    mx_series_t *const *list = rdl__metrics_series_list(m, &n);
    put_meta(b, fmt, m->type, m->name, strlen(m->om_name), m->help);
    for (size_t i = 0; i < n; i++)
        put_series(b, fmt, m, list[i]);
    if (atomic_load_explicit(&m->overflow_used, memory_order_acquire))
        put_series(b, fmt, m, m->overflow);
}

/* The cardinality guard's own counter: one series per labelled family. */
static void put_rejected(rdl_buf_t *b, rdl_format_t fmt, rdl_registry_t *r)
{
    static const char name[] = "redline_metrics_rejected_label_sets_total";
    static char *const label[] = { "metric" };
    bool any = false;
    for (rdl_metric_t *m = atomic_load(&r->head); m; m = atomic_load(&m->next)) {
        if (!m->nlabels)
            continue;
        if (!any)
            put_meta(b, fmt, RDL_METRIC_COUNTER, name, sizeof(name) - 1 - 6,
                     "Label sets refused by a metric's cardinality limit (counted in its overflow series).");
        any = true;
        const char *v[1] = { m->name };
        if (fmt == RDL_FMT_OPENMETRICS) {
            char om[sizeof(name)];
            memcpy(om, name, sizeof(name) - 7);
            om[sizeof(name) - 7] = '\0';
            put_sample_name(b, om, "_total", label, v, 1, NULL);
        } else {
            put_sample_name(b, name, "", label, v, 1, NULL);
        }
        rdl_buf_putc(b, ' ');
        rdl_buf_put_u64(b, atomic_load(&m->rejected));
        rdl_buf_putc(b, '\n');
    }
}

/* ---- collectors -------------------------------------------------------- */

struct rdl_collect {
    rdl_buf_t *out;
    rdl_format_t fmt;
    rdl_registry_t *reg;
    bool open;                  /* the current family is valid: values go out */
    rdl_metric_type_t type;
    char name[160];
    size_t om_len;
    char **seen;                /* collector family names already written */
    size_t nseen, capseen;
    char **series;              /* the current family's series written (name and labels) */
    size_t nseries, capseries;
};

/* Lists copy (owned) in *list; false when out of memory. */
static bool remember(char ***list, size_t *n, size_t *cap, char *copy)
{
    if (!copy)
        return false;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **p = realloc(*list, ncap * sizeof(char *));
        if (!p) {
            free(copy);
            return false;
        }
        *list = p;
        *cap = ncap;
    }
    (*list)[(*n)++] = copy;
    return true;
}

static void forget_series(rdl_collect_t *c)
{
    for (size_t i = 0; i < c->nseries; i++)
        free(c->series[i]);
    c->nseries = 0;
}

static bool seen_before(rdl_collect_t *c, const char *name)
{
    for (size_t i = 0; i < c->nseen; i++)
        if (strcmp(c->seen[i], name) == 0)
            return true;
    if (rdl_metric_find(c->reg, name))
        return true;
    return !remember(&c->seen, &c->nseen, &c->capseen, strdup(name));
}

void rdl_collect_family(rdl_collect_t *c, rdl_metric_type_t type, const char *name,
                        const char *help)
{
    c->open = false;
    forget_series(c);
    if (!name || strlen(name) >= sizeof(c->name) - 8 || !rdl__metrics_valid_metric_name(name))
        return;
    size_t len = strlen(name);
    bool total = len > 6 && strcmp(name + len - 6, "_total") == 0;
    if ((type == RDL_METRIC_COUNTER) != total || type == RDL_METRIC_HISTOGRAM)
        return;
    if (seen_before(c, name))
        return;
    c->open = true;
    c->type = type;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->om_len = total ? len - 6 : len;
    rdl_buf_t h;
    rdl_buf_init(&h);
    rdl_utf8_put(&h, help ? help : "", help ? strlen(help) : 0);
    put_meta(c->out, c->fmt, type, name, c->om_len, h.data ? h.data : "");
    rdl_buf_close(&h);
}

void rdl_collect_value(rdl_collect_t *c, const char *const *label_names,
                       const char *const *label_values, size_t nlabels, double v)
{
    if (!c->open || nlabels > RDL_METRICS_MAX_LABELS)
        return;
    char *names[RDL_METRICS_MAX_LABELS];
    rdl_buf_t vals[RDL_METRICS_MAX_LABELS];
    const char *vp[RDL_METRICS_MAX_LABELS];
    for (size_t i = 0; i < nlabels; i++) {
        if (!rdl__metrics_valid_label_name(label_names[i]))
            return;
        for (size_t j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return;
        names[i] = (char *)label_names[i];
    }
    if (c->type == RDL_METRIC_COUNTER && (isnan(v) || v < 0))
        v = 0;
    for (size_t i = 0; i < nlabels; i++) {
        const char *s = label_values && label_values[i] ? label_values[i] : "";
        rdl_buf_init(&vals[i]);
        rdl_utf8_put(&vals[i], s, strlen(s));
        vp[i] = vals[i].data ? vals[i].data : "";
    }
    /*
     * Two label sets a collector gave can be one series once invalid UTF-8 is
     * replaced by U+FFFD; a scraper refuses a duplicate series (the whole
     * scrape fails), so only the first is written.
     */
    rdl_buf_t line;
    rdl_buf_init(&line);
    if (c->fmt == RDL_FMT_OPENMETRICS && c->type == RDL_METRIC_COUNTER) {
        char om[160];
        snprintf(om, sizeof(om), "%.*s", (int)c->om_len, c->name);
        put_sample_name(&line, om, "_total", names, vp, nlabels, NULL);
    } else {
        put_sample_name(&line, c->name, "", names, vp, nlabels, NULL);
    }
    bool dup = false;
    for (size_t i = 0; i < c->nseries && line.data && !dup; i++)
        dup = strcmp(c->series[i], line.data) == 0;
    if (!dup && line.data && remember(&c->series, &c->nseries, &c->capseries, strdup(line.data))) {
        rdl_buf_put(c->out, line.data, line.len);
        rdl_buf_putc(c->out, ' ');
        rdl__metrics_put_double(c->out, v, false);
        rdl_buf_putc(c->out, '\n');
    }
    rdl_buf_close(&line);
    for (size_t i = 0; i < nlabels; i++)
        rdl_buf_close(&vals[i]);
}

/* ---- exposition -------------------------------------------------------- */

int rdl_metrics_expose(rdl_registry_t *r, rdl_format_t fmt, rdl_buf_t *out)
{
    r = r ? r : rdl_registry_default();
    if (!r || !out)
        return RDL_EINVAL;
    pthread_mutex_lock(&r->cmu);
    for (rdl_metric_t *m = atomic_load(&r->head); m; m = atomic_load(&m->next)) {
        if (m->fn)
            put_callback(out, fmt, m);
        else
            put_family(out, fmt, m);
    }
    rdl_collect_t c = { .out = out, .fmt = fmt, .reg = r };
    for (mx_collector_t *col = r->collectors; col; col = col->next) {
        col->fn(&c, col->arg);
        c.open = false;
    }
    pthread_mutex_unlock(&r->cmu);
    for (size_t i = 0; i < c.nseen; i++)
        free(c.seen[i]);
    free(c.seen);
    forget_series(&c);
    free(c.series);
    put_rejected(out, fmt, r);
    if (fmt == RDL_FMT_OPENMETRICS)
        rdl_buf_puts(out, "# EOF\n");
    return out->oom ? RDL_ENOMEM : 0;
}

const char *rdl_metrics_content_type(rdl_format_t fmt)
{
    return fmt == RDL_FMT_OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                      : "text/plain; version=0.0.4; charset=utf-8";
}

/* Trims spaces and tabs from both ends of [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/* q of one media range's parameters ("1" when absent; malformed reads as 0). */
static double range_q(const char *p, const char *e)
{
    double q = 1;
    while (p < e) {
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *pe = semi ? semi : e;
        const char *ps = p;
        trim(&ps, &pe);
        if (pe - ps >= 2 && (ps[0] == 'q' || ps[0] == 'Q') && ps[1] == '=') {
            char num[16];
            size_t n = (size_t)(pe - ps - 2);
            if (n == 0 || n >= sizeof(num))
                return 0;
            memcpy(num, ps + 2, n);
            num[n] = '\0';
            char *end;
            q = strtod(num, &end);
            if (*end || !(q >= 0 && q <= 1))
                return 0;
        }
        p = semi ? semi + 1 : e;
    }
    return q;
}

/* The OpenMetrics version a range asks for: 1 (1.0.0 or none), 0 (0.0.1), -1 (another). */
static int om_version(const char *p, const char *e)
{
    while (p < e) {
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *pe = semi ? semi : e;
        const char *ps = p;
        trim(&ps, &pe);
        if (pe - ps > 8 && rdl_ascii_ieq(ps, 8, "version=", 8)) {
            size_t n = (size_t)(pe - ps - 8);
            if (n == 5 && memcmp(ps + 8, "1.0.0", 5) == 0)
                return 1;
            if (n == 5 && memcmp(ps + 8, "0.0.1", 5) == 0)
                return 0;
            return -1;
        }
        p = semi ? semi + 1 : e;
    }
    return 1;
}

/* One member of a comma-separated header list: its name (trimmed) and its parameters. */
typedef struct list_member {
    const char *name, *name_end;    /* "text/plain", "gzip" */
    const char *params, *end;       /* after the first ';' (empty when none) */
    double q;
} list_member_t;

/* Reads the member at *p (list ends at end) into m and moves *p past it; false at the end. */
static bool next_member(const char **p, const char *end, list_member_t *m)
{
    if (*p == NULL || *p >= end)
        return false;
    const char *comma = memchr(*p, ',', (size_t)(end - *p));
    m->end = comma ? comma : end;
    const char *semi = memchr(*p, ';', (size_t)(m->end - *p));
    m->name = *p;
    m->name_end = semi ? semi : m->end;
    trim(&m->name, &m->name_end);
    m->params = semi ? semi + 1 : m->end;
    m->q = range_q(m->params, m->end);
    *p = comma ? comma + 1 : end;
    return true;
}

static bool member_is(const list_member_t *m, const char *name)
{
    return rdl_ascii_ieq(m->name, (size_t)(m->name_end - m->name), name, strlen(name));
}

rdl_format_t rdl_metrics_negotiate(const char *accept, size_t len)
{
    double best_om = -1, best_text = -1;
    const char *p = accept, *end = accept ? accept + len : NULL;
    list_member_t m;
    while (next_member(&p, end, &m)) {
        if (member_is(&m, "application/openmetrics-text")) {
            /* 0.0.1 is the legacy version: our 1.0.0 output is what it became */
            if (om_version(m.params, m.end) >= 0 && m.q > best_om)
                best_om = m.q;
        } else if (member_is(&m, "text/plain") || member_is(&m, "*/*") || member_is(&m, "text/*")) {
            if (m.q > best_text)
                best_text = m.q;
        }
    }
    return best_om > 0 && best_om >= best_text ? RDL_FMT_OPENMETRICS : RDL_FMT_TEXT;
}

bool rdl_metrics_accepts_gzip(const char *v, size_t len)
{
    double gzip_q = -1, any_q = -1;
    const char *p = v, *end = v ? v + len : NULL;
    list_member_t m;
    while (next_member(&p, end, &m)) {
        if (member_is(&m, "gzip") || member_is(&m, "x-gzip"))
            gzip_q = m.q > gzip_q ? m.q : gzip_q;
        else if (member_is(&m, "*"))
            any_q = m.q > any_q ? m.q : any_q;
    }
    return gzip_q >= 0 ? gzip_q > 0 : any_q > 0;
}
