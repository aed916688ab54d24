/*
 * yaml.h (private): what the YAML readers in src/ (config, route, client)
 * share around libfyaml beyond the text checks in util.h.
 */
#ifndef RDL_UTIL_YAML_H
#define RDL_UTIL_YAML_H

#include <libfyaml.h>

/*
 * A diagnostics sink that collects libfyaml's errors (for our own messages
 * with line and column) and prints nothing. NULL when out of memory; the
 * caller drops it with fy_diag_destroy() (fy_diag_unref leaves the collected
 * errors behind).
 */
struct fy_diag *rdl_yaml_diag_new(void);

#endif
