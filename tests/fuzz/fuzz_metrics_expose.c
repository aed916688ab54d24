/*
 * fuzz_metrics_expose.c: help strings and label values of arbitrary bytes
 * (tests/common/expo_fuzz.h) must always give an exposition that a strict
 * reader of each format accepts (tests/common/expo_parse.h), with every
 * counter series that fit under the cardinality limit read back under its
 * label values (sanitised to UTF-8) with the count it was given, and the help
 * text read back as written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../common/expo_fuzz.h"
#include "../common/expo_parse.h"

static char *sanitised(const char *s)
{
    rdl_registry_t *r;
    rdl_metric_t *m;
    static const char *const l[] = { "x" };
    rdl_metric_opts_t o = { .name = "s", .help = s, .labels = l, .nlabels = 1 };
    /* the registry's own copy is the sanitised form: read it back through an exposition */
    if (rdl_registry_new(&r) || rdl_metric_new(r, RDL_METRIC_GAUGE, &o, &m, NULL))
        abort();
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_metrics_expose(r, RDL_FMT_OPENMETRICS, &b);
    xp_doc_t d;
    if (xp_parse(b.data, b.len, true, &d) != 0)
        abort();
    char *out = strdup(d.nfamilies && d.families[0].help ? d.families[0].help : "");
    xp_free(&d);
    rdl_buf_close(&b);
    rdl_registry_free(r);
    return out;
}

/* Distinct counter label sets after sanitising, in first-counted order, with their counts. */
typedef struct pairs {
    size_t n;
    char *a[XF_MAX_FIELDS], *b[XF_MAX_FIELDS];
    uint64_t count[XF_MAX_FIELDS];
} pairs_t;

static void pairs_make(const xf_input_t *in, pairs_t *p)
{
    memset(p, 0, sizeof(*p));
    for (size_t k = 0; k < in->npairs; k++) {
        char *a = sanitised(in->pa[k]), *b = sanitised(in->pb[k]);
        size_t j = 0;
        while (j < p->n && (strcmp(p->a[j], a) || strcmp(p->b[j], b)))
            j++;
        if (j == p->n) {
            p->a[j] = a;
            p->b[j] = b;
            p->n++;
        } else {
            free(a);
            free(b);
        }
        p->count[j] += in->count[k];
    }
}

static void pairs_free(pairs_t *p)
{
    for (size_t j = 0; j < p->n; j++) {
        free(p->a[j]);
        free(p->b[j]);
    }
}

static void check(const xf_input_t *in, const pairs_t *p, rdl_registry_t *r, rdl_format_t fmt)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    if (rdl_metrics_expose(r, fmt, &b) != 0)
        abort();
    xp_doc_t d;
    if (xp_parse(b.data, b.len, fmt == RDL_FMT_OPENMETRICS, &d) != 0) {
        fprintf(stderr, "rejected (%s): %s\n%s", fmt == RDL_FMT_OPENMETRICS ? "om" : "text", d.err, b.data);
        abort();
    }
    for (size_t k = 0, real = 0; k < p->n && real < XF_MAX_SERIES; k++) {
        /* the overflow label set is the overflow series: it also holds what was refused */
        if (!strcmp(p->a[k], RDL_METRICS_OVERFLOW) && !strcmp(p->b[k], RDL_METRICS_OVERFLOW))
            continue;
        real++;
        const char *kv[] = { "a", p->a[k], "b", p->b[k], NULL };
        double v = xp_value(&d, "fz_total", kv);
        if (v != (double)p->count[k]) {
            fprintf(stderr, "pair %zu: read %g, counted %llu\n%s", k, v,
                    (unsigned long long)p->count[k], b.data);
            abort();
        }
    }
    char *help = sanitised(xf_field(in, 0));
    for (int i = 0; *help && i < d.nfamilies; i++)
        if (!strcmp(d.families[i].name, fmt == RDL_FMT_OPENMETRICS ? "fz" : "fz_total") &&
            (!d.families[i].help || strcmp(d.families[i].help, help) != 0))
            abort();
    free(help);
    xp_free(&d);
    rdl_buf_close(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    xf_input_t in;
    rdl_registry_t *r;
    xf_split(&in, data, size);
    if (xf_build(&in, &r) == 0) {
        pairs_t p;
        pairs_make(&in, &p);
        check(&in, &p, r, RDL_FMT_TEXT);
        check(&in, &p, r, RDL_FMT_OPENMETRICS);
        pairs_free(&p);
        rdl_registry_free(r);
    }
    xf_free(&in);
    return 0;
}
