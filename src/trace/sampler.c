/*
 * sampler.c: the head sampling decision. It exists apart from the tracer so
 * the decision is a pure function of (configuration, parent, trace id) that a
 * test can run a million times: traceidratio follows the OpenTelemetry Go
 * SDK's rule (bytes 8..15 of the trace id, big-endian, >> 1, compared with
 * ratio * 2^63), so our decision agrees with Go services on the same trace.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "redline/trace.h"

static const struct {
    const char *name;
    rdl_sampler_kind_t kind;
} sampler_names[] = {
    { "always_on", RDL_SAMPLER_ALWAYS_ON },
    { "always_off", RDL_SAMPLER_ALWAYS_OFF },
    { "traceidratio", RDL_SAMPLER_TRACEIDRATIO },
    { "parentbased_always_on", RDL_SAMPLER_PARENTBASED_ALWAYS_ON },
    { "parentbased_always_off", RDL_SAMPLER_PARENTBASED_ALWAYS_OFF },
    { "parentbased_traceidratio", RDL_SAMPLER_PARENTBASED_TRACEIDRATIO },
};

/* ratio * 2^63, saturating: ratio >= 1 samples every id, <= 0 none. */
static uint64_t ratio_bound(double ratio)
{
    if (ratio <= 0)
        return 0;
    if (ratio >= 1)
        return UINT64_MAX;
    return (uint64_t)(ratio * 9223372036854775808.0);
}

int rdl_sampler_init(rdl_sampler_t *s, const char *name, const char *arg, rdl_error_t *err)
{
    int found = -1;
    if (!name || !*name)
        name = "parentbased_always_on";
    for (size_t i = 0; i < sizeof(sampler_names) / sizeof(sampler_names[0]); i++)
        if (strcmp(name, sampler_names[i].name) == 0)
            found = (int)i;
    if (found < 0)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "OTEL_TRACES_SAMPLER",
                             "expected always_on, always_off, traceidratio or parentbased_<one of "
                             "those>, got '%s'", name);
    double ratio = 1.0;
    if (arg && *arg) {
        char *end;
        errno = 0;
        ratio = strtod(arg, &end);
        if (errno || *end || end == arg || !(ratio >= 0 && ratio <= 1))
            return rdl_error_set(err, RDL_EINVAL, 0, 0, "OTEL_TRACES_SAMPLER_ARG",
                                 "expected a ratio from 0 to 1, got '%s'", arg);
    }
    s->kind = sampler_names[found].kind;
    s->ratio = ratio;
    s->bound = ratio_bound(ratio);
    return 0;
}

static bool ratio_sample(const rdl_sampler_t *s, const uint8_t id[16])
{
    if (s->bound == UINT64_MAX)
        return true;
    uint64_t x = 0;
    for (int i = 8; i < 16; i++)
        x = x << 8 | id[i];
    return (x >> 1) < s->bound;
}

bool rdl_sampler_should_sample(const rdl_sampler_t *s, const rdl_span_context_t *parent,
                               const uint8_t trace_id[16])
{
    bool has_parent = parent && rdl_span_context_valid(parent);
    switch (s->kind) {
    case RDL_SAMPLER_ALWAYS_ON:
        return true;
    case RDL_SAMPLER_ALWAYS_OFF:
        return false;
    case RDL_SAMPLER_TRACEIDRATIO:
        return ratio_sample(s, trace_id);
    case RDL_SAMPLER_PARENTBASED_ALWAYS_ON:
        return has_parent ? (parent->flags & RDL_TRACE_FLAG_SAMPLED) != 0 : true;
    case RDL_SAMPLER_PARENTBASED_ALWAYS_OFF:
        return has_parent ? (parent->flags & RDL_TRACE_FLAG_SAMPLED) != 0 : false;
    case RDL_SAMPLER_PARENTBASED_TRACEIDRATIO:
        return has_parent ? (parent->flags & RDL_TRACE_FLAG_SAMPLED) != 0
                          : ratio_sample(s, trace_id);
    }
    return false;
}

const char *rdl_sampler_describe(const rdl_sampler_t *s, char *out, size_t n)
{
    char ratio[48];
    snprintf(ratio, sizeof(ratio), "TraceIdRatioBased{%f}", s->ratio);
    switch (s->kind) {
    case RDL_SAMPLER_ALWAYS_ON:
        snprintf(out, n, "AlwaysOnSampler");
        break;
    case RDL_SAMPLER_ALWAYS_OFF:
        snprintf(out, n, "AlwaysOffSampler");
        break;
    case RDL_SAMPLER_TRACEIDRATIO:
        snprintf(out, n, "%s", ratio);
        break;
    case RDL_SAMPLER_PARENTBASED_ALWAYS_ON:
        snprintf(out, n, "ParentBased{root:AlwaysOnSampler}");
        break;
    case RDL_SAMPLER_PARENTBASED_ALWAYS_OFF:
        snprintf(out, n, "ParentBased{root:AlwaysOffSampler}");
        break;
    case RDL_SAMPLER_PARENTBASED_TRACEIDRATIO:
        snprintf(out, n, "ParentBased{root:%s}", ratio);
        break;
    }
    return out;
}
