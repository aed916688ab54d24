/*
 * expo_fuzz.h: turns arbitrary bytes into a registry whose help strings and
 * label values are those bytes, for the exposition fuzz target and the
 * integration test's generator (tests/tools/expo_gen.c). It records what it
 * counted so the caller can check that the exposition gives the same values
 * back under the same (sanitised) labels.
 *
 * Input: fields separated by NUL bytes. Field 0 is the counters' help,
 * field 1 the gauges' and the collector's; then pairs of fields are the label
 * values (a, b) of one counter increment each, and each field is also a
 * gauge label and a histogram label, with a value taken from its bytes.
 */
#ifndef REDLINE_TEST_EXPO_FUZZ_H
#define REDLINE_TEST_EXPO_FUZZ_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "redline/metrics.h"
#include "expo_parse.h"

#define XF_MAX_FIELDS 64
#define XF_MAX_SERIES 8

typedef struct xf_input {
    char *fields[XF_MAX_FIELDS];
    size_t nfields;
    /* distinct (a, b) pairs in the order first counted, and their counts */
    size_t npairs;
    const char *pa[XF_MAX_FIELDS], *pb[XF_MAX_FIELDS];
    uint64_t count[XF_MAX_FIELDS];
} xf_input_t;

static inline void xf_split(xf_input_t *in, const uint8_t *data, size_t size)
{
    memset(in, 0, sizeof(*in));
    size_t start = 0;
    for (size_t i = 0; i <= size && in->nfields < XF_MAX_FIELDS; i++) {
        if (i < size && data[i] != 0)
            continue;
        /* not strndup: the last field is not NUL-terminated in the fuzzer's buffer */
        char *f = malloc(i - start + 1);
        if (!f)
            abort();
        memcpy(f, data + start, i - start);
        f[i - start] = '\0';
        in->fields[in->nfields++] = f;
        start = i + 1;
    }
}

static inline void xf_free(xf_input_t *in)
{
    for (size_t i = 0; i < in->nfields; i++)
        free(in->fields[i]);
}

static inline const char *xf_field(const xf_input_t *in, size_t i)
{
    return i < in->nfields ? in->fields[i] : "";
}

/* A double from a field's bytes: NaN, infinities and negatives included. */
static inline double xf_value(const char *s)
{
    uint64_t u = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        u = (u ^ *p) * 1099511628211ull;
    switch (u % 5) {
    case 0: return (double)(u % 1000) / 100.0;
    case 1: return -(double)(u % 97);
    case 2: { double d; memcpy(&d, &u, sizeof(d)); return d; }
    case 3: return (u & 1) ? INFINITY : NAN;
    default: return (double)(u >> 20);
    }
}

static inline void xf_collect(rdl_collect_t *c, void *arg)
{
    xf_input_t *in = arg;
    const char *ln[] = { "c" };
    rdl_collect_family(c, RDL_METRIC_GAUGE, "fz_collected", xf_field(in, 1));
    /* distinct values only: a collector promises one sample per label set; values that
     * are not UTF-8 all read as U+FFFD once sanitised, so only the first of them goes out */
    bool invalid_sent = false;
    for (size_t i = 2; i < in->nfields; i++) {
        size_t j = 2;
        while (j < i && strcmp(in->fields[j], in->fields[i]) != 0)
            j++;
        const char *f = in->fields[i];
        bool valid = xp_utf8_ok((const unsigned char *)f, strlen(f));
        if (!valid && invalid_sent)
            continue;
        invalid_sent |= !valid;
        if (j == i) {
            const char *lv[] = { in->fields[i] };
            rdl_collect_value(c, ln, lv, 1, xf_value(in->fields[i]));
        }
    }
}

static inline double xf_help_value(void *arg)
{
    return (double)((xf_input_t *)arg)->nfields;
}

/* Builds the registry; 0 or a negative RDL_E*. */
static inline int xf_build(xf_input_t *in, rdl_registry_t **out)
{
    static const char *const ab[] = { "a", "b" }, *const v[] = { "v" }, *const h[] = { "h" };
    rdl_registry_t *r;
    rdl_metric_t *cnt, *g, *hist;
    int rc = rdl_registry_new(&r);
    if (rc)
        return rc;
    rdl_metric_opts_t oc = { .name = "fz_total", .help = xf_field(in, 0), .labels = ab, .nlabels = 2,
                             .max_series = XF_MAX_SERIES };
    rdl_metric_opts_t og = { .name = "fz_level", .help = xf_field(in, 1), .labels = v, .nlabels = 1,
                             .max_series = XF_MAX_SERIES };
    rdl_metric_opts_t oh = { .name = "fz_seconds", .help = xf_field(in, 0), .labels = h, .nlabels = 1,
                             .max_series = XF_MAX_SERIES };
    if ((rc = rdl_metric_new(r, RDL_METRIC_COUNTER, &oc, &cnt, NULL)) != 0 ||
        (rc = rdl_metric_new(r, RDL_METRIC_GAUGE, &og, &g, NULL)) != 0 ||
        (rc = rdl_metric_new(r, RDL_METRIC_HISTOGRAM, &oh, &hist, NULL)) != 0 ||
        (rc = rdl_metric_new_callback(r, RDL_METRIC_GAUGE, "fz_fields", xf_field(in, 1),
                                      xf_help_value, in, NULL)) != 0 ||
        (rc = rdl_collector_add(r, xf_collect, in)) < 0) {
        rdl_registry_free(r);
        return rc;
    }
    for (size_t i = 2; i < in->nfields; i += 2) {
        const char *vals[] = { xf_field(in, i), xf_field(in, i + 1) };
        rdl_counter_inc(rdl_metric_counter(cnt, vals));
        size_t k = 0;
        while (k < in->npairs && (strcmp(in->pa[k], vals[0]) || strcmp(in->pb[k], vals[1])))
            k++;
        if (k == in->npairs) {
            in->pa[k] = vals[0];
            in->pb[k] = vals[1];
            in->npairs++;
        }
        in->count[k]++;
    }
    for (size_t i = 2; i < in->nfields; i++) {
        const char *gv[] = { in->fields[i] };
        rdl_gauge_set(rdl_metric_gauge(g, gv), xf_value(in->fields[i]));
        rdl_histogram_observe(rdl_metric_histogram(hist, gv), xf_value(in->fields[i]));
    }
    *out = r;
    return 0;
}

#endif
