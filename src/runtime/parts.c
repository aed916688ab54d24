/*
 * parts.c: the list of the runtime's red lines, the one place that names them
 * all (part.h says what a part is). A new red line is one more line here.
 * And the check of a chosen list's options at load, through their hooks.
 */
#include "redline/part.h"
#include "redline/runtime.h"
#include "runtime/internal.h"

/* What coursed runs: every red line of the runtime, in the order of part.h. */
const rdl_part_t *const rdl_parts_default[] = {
    &rdl_part_log,
    &rdl_part_trace,
    &rdl_part_route,
    &rdl_part_metrics,
    &rdl_part_access_log,
    &rdl_part_upstreams,
    NULL,
};

int rdl_server_opts_check(rdl_server_opts_t *opts, rdl_error_t *err)
{
    rdl_error_t local;
    if (!err)
        err = &local;
    rdl_error_clear(err);
    if (!opts)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no options");
    int planes = rdl__rt_check_planes(opts, err);
    if (planes)
        return planes;
    for (const rdl_part_t *const *p = opts->parts; p && *p; p++) {
        int rc = (*p)->check ? (*p)->check(rdl_server_opts_part(opts, *p), err) : 0;
        if (rc)
            return rc;
    }
    return 0;
}
