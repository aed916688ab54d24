/*
 * yaml.h (private): the one YAML reader of redline, shared by the
 * configuration loader (config.c walks its events for positions of every key),
 * the routing rules (route/load.c) and the upstreams names (client). It owns
 * everything libfyaml-specific: the checks of the text before libfyaml sees it
 * and the work-arounds of 0.7.12's faults (util.h), the parser's setup and
 * its syntax errors, positions (line, column) of scalars, keys and empty
 * nodes, YAML 1.2 nulls, refusing anchors, aliases and tags, and typed
 * scalars (string, integer, number, boolean, duration, size, enum), lists
 * and mappings with known fields. Every error names file (err->file, set by
 * the caller), line, column, the key path and what was expected.
 *
 * Thread-safety: a reader (rdl__yaml_t) is used by one thread at a time.
 */
#ifndef RDL_UTIL_YAML_H
#define RDL_UTIL_YAML_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libfyaml.h>
#include "redline/util.h"

/* Key paths ("spec.http[0].route[1].weight") are cut to this length. */
#define RDL_YAML_PATH_MAX 160

/*
 * A diagnostics sink that collects libfyaml's errors (for our own messages
 * with line and column) and prints nothing. NULL when out of memory; the
 * caller drops it with fy_diag_destroy() (fy_diag_unref leaves the collected
 * errors behind).
 */
struct fy_diag *rdl_yaml_diag_new(void);

/*
 * A parser over text (YAML 1.2, quiet, errors collected in *diag), or NULL
 * when out of memory (*diag NULL too). The caller destroys both.
 */
struct fy_parser *rdl__yaml_parser_new(const char *text, size_t len, struct fy_diag **diag);
/*
 * err from the first error diag collected: "<invalid>: <libfyaml's words>",
 * line, column (invalid NULL: "invalid YAML").
 */
int rdl__yaml_syntax_error(struct fy_diag *diag, const char *invalid, rdl_error_t *err);

/* ---- tokens (what the event walker and the tree reader share) ------------ */

/* 1-based position of a scalar token, at its opening quote when quoted; false when none. */
bool rdl__yaml_token_mark(struct fy_token *t, int *line, int *column);
/* YAML's null: a plain empty value (or no token), "~" or null/Null/NULL. */
bool rdl__yaml_token_is_null(struct fy_token *t);
/*
 * A malloc'ed, NUL-terminated copy of a scalar token's value (may hold NULs:
 * *len is its length). libfyaml 0.7.12 mis-iterates single-quoted scalars with
 * runs of '' escapes, so those are decoded from input (the parsed text)
 * directly. 0, RDL_ENOMEM, or RDL_EINVAL when libfyaml cannot give the text.
 */
int rdl__yaml_token_text(struct fy_token *t, const char *input, size_t input_len, char **out,
                         size_t *len);

/* ---- typed scalars from text (config's values, flags, environment) ------- */

/* A decimal integer with an optional sign, no spaces, within int64_t. */
int rdl__yaml_parse_int(const char *s, int64_t *out);
/* YAML 1.2 core schema booleans: true/True/TRUE, false/False/FALSE. */
int rdl__yaml_parse_bool(const char *s, bool *out);
/* YAML 1.1 spellings (yes/no/on/off/y/n) that 1.2 reads as strings: for a hint. */
bool rdl__yaml_is_yaml11_bool(const char *s);
/* A finite decimal number (no "nan", "inf" or leading spaces). */
int rdl__yaml_parse_double(const char *s, double *out);
/* The index of s among choices (NULL-terminated), ASCII case ignored; -1 when none. */
int rdl__yaml_parse_enum(const char *s, const char *const *choices);

/* ---- the reader --------------------------------------------------------- */

typedef struct rdl__yaml {
    rdl_error_t *err;           /* where errors go; err->file is the caller's */
    const char *input;          /* the whole text, for single-quoted scalars */
    size_t input_len;
    rdl_arena_t *arena;         /* scalars, lists are copied here */
    const char *what;           /* "routing rules": "anchors ... are not supported in <what>" */
    const char *invalid;        /* a syntax error's first words; NULL: "invalid YAML" */
    struct fy_parser *fyp;      /* the event view's parser (rdl__yaml_events_open) */
    struct fy_diag *diag;
} rdl__yaml_t;

/*
 * ---- events ----------------------------------------------------------------
 * The same reader as a stream of events, for a loader that must stop at the
 * first offending node and see every key's position even where the tree would
 * refuse the document on its own terms (duplicate keys, aliases to nothing):
 * the configuration loader. Every event taken is given back with
 * rdl__yaml_event_free; the functions that fail on an event free it.
 */

/* Checks y->input (rdl_yaml_check_text) and starts the parser; err says why not. */
int rdl__yaml_events_open(rdl__yaml_t *y);
void rdl__yaml_events_close(rdl__yaml_t *y);
/* The next event, or NULL with err filled from the parser's diagnostics. */
struct fy_event *rdl__yaml_event_next(rdl__yaml_t *y);
void rdl__yaml_event_free(rdl__yaml_t *y, struct fy_event *ev);
/* 1-based position of ev (at an alias's '*' and a quoted scalar's quote); 0:0 when none. */
void rdl__yaml_event_mark(struct fy_event *ev, int *line, int *column);
/* "a mapping", "a sequence", "a scalar", "an alias". */
const char *rdl__yaml_event_kind(struct fy_event *ev);
/* Fills err at ev's position for key, frees ev; returns RDL_EINVAL. */
int rdl__yaml_event_fail(rdl__yaml_t *y, struct fy_event *ev, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Anchors, aliases and tags refused where the '&', '*' or '!' stands; ev freed on failure. */
int rdl__yaml_event_check_plain(rdl__yaml_t *y, struct fy_event *ev, const char *key);
/* Consumes the next node whole: a scalar, or a mapping or sequence and all it holds. */
int rdl__yaml_event_skip(rdl__yaml_t *y);
bool rdl__yaml_event_is_null(struct fy_event *ev);
/* A malloc'ed copy of a scalar event's value (see rdl__yaml_token_text), or NULL with err set. */
char *rdl__yaml_event_text(rdl__yaml_t *y, struct fy_event *ev, const char *key, size_t *len);

/* ---- a document tree --------------------------------------------------- */


/* Called with each document's root (NULL or a null scalar when empty); nonzero stops. */
typedef int (*rdl__yaml_doc_fn)(rdl__yaml_t *y, struct fy_node *root, void *arg);
/*
 * Checks y->input (rdl_yaml_check_text), then parses it one document at a
 * time, calling fn with each root; a syntax error stops with its position.
 */
int rdl__yaml_each_document(rdl__yaml_t *y, rdl__yaml_doc_fn fn, void *arg);

/* Position of n: a scalar's, else its first key's or item's; false when it has none. */
bool rdl__yaml_node_mark(struct fy_node *n, int *line, int *column);
/*
 * Position of n; an empty mapping or sequence has none of its own, so the key
 * it is the value of, going up through sequences ("- {}" points at its
 * list's key). false when nothing has one.
 */
bool rdl__yaml_mark(struct fy_node *n, int *line, int *column);
/* Fills y->err (RDL_EINVAL) at n's position for key path; returns the code. */
int rdl__yaml_fail(rdl__yaml_t *y, struct fy_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int rdl__yaml_vfail(rdl__yaml_t *y, struct fy_node *at, const char *path, const char *fmt,
                    va_list ap) __attribute__((format(printf, 4, 0)));
int rdl__yaml_oom(rdl__yaml_t *y);

bool rdl__yaml_is_null(struct fy_node *n);
/* Anchors, aliases and tags are refused ("... not supported in <what>"). */
int rdl__yaml_check_plain(rdl__yaml_t *y, struct fy_node *n, const char *path);
/* Whether n is the scalar s exactly. */
bool rdl__yaml_scalar_is(struct fy_node *n, const char *s);

/* An arena copy of a string scalar (NUL-terminated; *len may be NULL), or NULL with err set. */
const char *rdl__yaml_string(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t *len);
/* A plain (unquoted) decimal integer within [lo, hi]. */
int rdl__yaml_int(rdl__yaml_t *y, struct fy_node *n, const char *path, long long lo,
                  long long hi, long long *out);
/* A plain number within [lo, hi]. */
int rdl__yaml_number(rdl__yaml_t *y, struct fy_node *n, const char *path, double lo, double hi,
                     double *out);
/* A plain true or false. */
int rdl__yaml_bool(rdl__yaml_t *y, struct fy_node *n, const char *path, bool *out);
/* A duration with a unit ("250ms", "30s", "1m30s") within [lo_ms, hi_ms]. */
int rdl__yaml_duration(rdl__yaml_t *y, struct fy_node *n, const char *path, uint64_t lo_ms,
                       uint64_t hi_ms, uint64_t *out_ms);
/* A size ("512", "16KiB", "1MiB") within [lo, hi] bytes. */
int rdl__yaml_size(rdl__yaml_t *y, struct fy_node *n, const char *path, uint64_t lo, uint64_t hi,
                   uint64_t *out);
/* One of choices' words (NULL-terminated, exact), as its index. */
int rdl__yaml_enum(rdl__yaml_t *y, struct fy_node *n, const char *path,
                   const char *const *choices, int *out);

/* The value of key k in mapping map, or NULL. */
struct fy_node *rdl__yaml_get(struct fy_node *map, const char *k);
/* Whether the pair's key is k. */
bool rdl__yaml_key_is(struct fy_node_pair *p, const char *k);
/*
 * n must be a mapping (of what, for the message) whose keys are all in
 * allowed or ignored (both NULL-terminated, may be NULL): "unknown field 'x'
 * in <what>".
 */
int rdl__yaml_check_map(rdl__yaml_t *y, struct fy_node *n, const char *path, const char *what,
                        const char *const *allowed, const char *const *ignored);
/* n must be a sequence: its length. */
int rdl__yaml_sequence(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t *count);

/*
 * A list: a zeroed arena array of count elements of size bytes (stored at
 * *(void **)out before the first item is read) and fn for each item with its
 * path ("path[i]"). empty: the message when the list must not be empty, or NULL.
 */
typedef int (*rdl__yaml_item_fn)(rdl__yaml_t *y, struct fy_node *e, const char *path, size_t i,
                                 void *elem, void *arg);
int rdl__yaml_list(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t size,
                   const char *empty, void *out, size_t *count, rdl__yaml_item_fn fn, void *arg);
/* A list of strings (arena copies). */
int rdl__yaml_string_list(rdl__yaml_t *y, struct fy_node *n, const char *path, const char ***out,
                          size_t *count);

/* Key paths: out = path + sep + text (cut to RDL_YAML_PATH_MAX - 1); out may be path. */
void rdl__yaml_path_join(char *out, const char *path, const char *sep, const char *text,
                         size_t tlen);
/* out = path.field ("field" at the top). */
void rdl__yaml_path_sub(char *out, const char *path, const char *field);
/* out = path[i]. */
void rdl__yaml_path_item(char *out, const char *path, size_t i);

#endif
