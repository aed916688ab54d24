/*
 * parts.c: the list of the runtime's red lines, the one place that names them
 * all (part.h says what a part is). A new red line is one more line here.
 */
#include "redline/part.h"

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
