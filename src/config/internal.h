/*
 * internal.h (private): what the configuration loader offers other modules of
 * the library beyond config.h.
 */
#ifndef RDL_CONFIG_INTERNAL_H
#define RDL_CONFIG_INTERNAL_H

#include "redline/config.h"

/*
 * rdl_config_load_file for one top-level section of the file ("upstreams"):
 * the other sections are skipped unread (a tool that reads a service's file
 * without knowing its other keys), the section itself is checked as
 * rdl_config_load_file checks everything (types, unknown keys with a
 * suggestion, duplicates, all or nothing).
 */
int rdl__config_load_section(rdl_config_t *cfg, const char *path, const char *section,
                             rdl_error_t *err);

#endif
