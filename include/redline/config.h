/*
 * config.h: configuration from one YAML file, then REDLINE_* environment
 * variables, then command-line flags, each overriding the one before.
 *
 * Modules declare their keys (a dotted path, a type, bounds, where the value
 * goes); the loader checks every value against its key and rejects what does
 * not fit with an error that names the file, key, line and column and says
 * what was expected. Unknown keys are errors too: a typo never passes silently.
 *
 *   int64_t threads = 0;  char *listen = "0.0.0.0:8080";  int level = 1;
 *   static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
 *   rdl_cfg_key_t keys[] = {
 *       { "server.listen",  RDL_CFG_ADDR, &listen,  0, 0,  "REDLINE_LISTEN", "app listener" },
 *       { "server.threads", RDL_CFG_INT,  &threads, 0, 256, NULL, "I/O threads (0 = CPUs)" },
 *       { "log.level", RDL_CFG_ENUM, &level, 0, 0, NULL, "minimum level", levels },
 *   };
 *   rdl_config_t *cfg; rdl_config_new(&cfg); rdl_config_add(cfg, keys, 3);
 *   if (rdl_config_load_file(cfg, "redline.yaml", &err) || rdl_config_apply_env(cfg, &err)) ...
 *
 * Thread-safety: a config object is used from one thread, at start-up.
 * Ownership: strings the loader stores in STRING/ADDR destinations belong to
 * the config object and live until rdl_config_free().
 */
#ifndef REDLINE_CONFIG_H
#define REDLINE_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include "redline/common.h"
#include "redline/util.h"

typedef enum rdl_cfg_type {
    RDL_CFG_STRING,     /* dst: char **                                         */
    RDL_CFG_ADDR,       /* dst: char ** ; "host:port", "[v6]:port" or ":port"   */
    RDL_CFG_INT,        /* dst: int64_t * ; decimal, within [min, max]           */
    RDL_CFG_BOOL,       /* dst: bool * ; true/false (YAML 1.2 core schema)       */
    RDL_CFG_DURATION,   /* dst: uint64_t * milliseconds ; "250ms", "30s", "5m"   */
    RDL_CFG_SIZE,       /* dst: uint64_t * bytes ; "512", "16KiB", "1MiB"        */
    RDL_CFG_DOUBLE,     /* dst: double * ; within [min, max] unless both are 0   */
    RDL_CFG_ENUM,       /* dst: int * ; the index of one of choices' words       */
    RDL_CFG_ADDR_OPT    /* dst: char ** ; an ADDR, or "" for none (a listener that may be off) */
} rdl_cfg_type_t;

typedef struct rdl_cfg_key {
    const char *path;   /* dotted YAML path: "server.limits.max_body" */
    rdl_cfg_type_t type;
    void *dst;          /* where the value goes; its initial value is the default */
    int64_t min, max;   /* bounds for INT/DURATION/SIZE/DOUBLE; min == max == 0: none */
    const char *env;    /* environment variable; NULL = "REDLINE_" + path in upper case, '.' -> '_' */
    const char *help;   /* one line for --help */
    const char *const *choices; /* ENUM: the accepted words, NULL-terminated (matched ignoring
                                   ASCII case, stored as their index); NULL for other types */
} rdl_cfg_key_t;

typedef struct rdl_config rdl_config_t;

RDL_EXTERN int rdl_config_new(rdl_config_t **out);
RDL_EXTERN void rdl_config_free(rdl_config_t *cfg);

/* Adds keys (copied; the strings they point to and dst must outlive cfg). RDL_EEXIST when a path is already declared. */
RDL_EXTERN int rdl_config_add(rdl_config_t *cfg, const rdl_cfg_key_t *keys, size_t n);

/* Loads a YAML mapping from a file, or from memory (name is used in errors). */
RDL_EXTERN int rdl_config_load_file(rdl_config_t *cfg, const char *path, rdl_error_t *err);
RDL_EXTERN int rdl_config_load_string(rdl_config_t *cfg, const char *name, const char *yaml,
                                      size_t len, rdl_error_t *err);

/* Applies every declared key's environment variable that is set. */
RDL_EXTERN int rdl_config_apply_env(rdl_config_t *cfg, rdl_error_t *err);

/*
 * Refuses a set REDLINE_* variable that is neither a declared key's variable
 * nor one of allowed (NULL-terminated, may be NULL: the variables a program
 * reads itself, such as REDLINE_CONFIG), so that a misspelt one is never
 * ignored: RDL_EINVAL, err->key names it and err->msg suggests the closest
 * declared variable (within two edits). Call it after every key is declared.
 */
RDL_EXTERN int rdl_config_check_env(const rdl_config_t *cfg, const char *const *allowed,
                                    rdl_error_t *err);

/* Sets one key from text (a command-line flag); err->key names it. */
RDL_EXTERN int rdl_config_set(rdl_config_t *cfg, const char *path, const char *value,
                              rdl_error_t *err);

/*
 * Prints every key: path, env variable, type, current value, help. A secret's
 * value (see rdl_config_key_is_secret) prints as <redacted> when set.
 */
RDL_EXTERN void rdl_config_usage(const rdl_config_t *cfg, FILE *out);

/*
 * Whether a key's value is a secret that nothing may print: its last path
 * segment contains token, password, secret or authorization (ASCII case
 * ignored), or ends in "headers" (a header list such as the OTLP exporter's,
 * which carries credentials). Pure; any thread.
 */
RDL_EXTERN bool rdl_config_key_is_secret(const char *path);

#endif
