/*
 * config.c: the configuration loader. Modules declare typed keys; values come
 * from one YAML file, then environment variables, then flags. Every value is
 * checked against its key, and anything that does not fit (unknown key,
 * duplicate, wrong type, out of bounds, YAML syntax) fails with the file, key,
 * line and column and what was expected, because a service that starts with a
 * silently ignored typo is worse than one that refuses to start.
 *
 * YAML is read through the shared reader (util/yaml.c) as a stream of events
 * rather than as its document tree: walking events lets us stop at the first
 * offending node and detect duplicate keys ourselves with both positions,
 * which the tree would refuse on its own terms. The reader owns the text
 * checks, the parser, positions, nulls, anchors and tags, scalar text and the
 * typed scalars; this file is the keys, sections, staging and messages.
 *
 * Loads are all-or-nothing: values are parsed into a staging list and only
 * written to their destinations once the whole source has been validated.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>
#include "util/yaml.h"

#include "redline/config.h"
#include "config/internal.h"

/* Larger files are almost certainly not configuration. */
#define CFG_MAX_FILE (4u << 20)
/* Paths must fit rdl_error_t.key. */
#define CFG_MAX_PATH 127
/* Values longer than this are quoted in messages with "..." */
#define CFG_ECHO_MAX 60

typedef struct cfg_entry {
    const rdl_cfg_key_t *key;
    char *owned;                /* the string we stored in *dst, if any */
} cfg_entry_t;

struct rdl_config {
    cfg_entry_t *entries;
    size_t n, cap;
    rdl_cfg_key_t **copies;     /* one copy of each array given to rdl_config_add */
    size_t ncopies;
};

typedef union cfg_val {
    char *s;
    int64_t i;
    bool b;
    uint64_t u;
    double d;
} cfg_val_t;

/* A validated value waiting for the whole source to pass. */
typedef struct staged {
    size_t idx;
    cfg_val_t v;
} staged_t;

typedef struct stage {
    staged_t *items;
    size_t n, cap;
} stage_t;

/* ---- keys ---------------------------------------------------------------- */

int rdl_config_new(rdl_config_t **out)
{
    rdl_config_t *cfg;

    if (out == NULL)
        return RDL_EINVAL;
    cfg = calloc(1, sizeof(*cfg));
    *out = cfg;
    return cfg != NULL ? 0 : RDL_ENOMEM;
}

void rdl_config_free(rdl_config_t *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->n; i++)
        free(cfg->entries[i].owned);
    for (i = 0; i < cfg->ncopies; i++)
        free(cfg->copies[i]);
    free(cfg->copies);
    free(cfg->entries);
    free(cfg);
}

static bool is_string_type(rdl_cfg_type_t t)
{
    return t == RDL_CFG_STRING || t == RDL_CFG_ADDR || t == RDL_CFG_ADDR_OPT;
}

static bool bounded(const rdl_cfg_key_t *k)
{
    return !(k->min == 0 && k->max == 0);
}

/* Segments of [A-Za-z0-9_-], separated by single dots. */
static bool valid_path(const char *p)
{
    size_t len = strlen(p), i;

    if (len == 0 || len > CFG_MAX_PATH || p[0] == '.' || p[len - 1] == '.')
        return false;
    for (i = 0; i < len; i++) {
        char c = p[i];
        if (c == '.' && p[i + 1] == '.')
            return false;
        if (c != '.' && c != '_' && c != '-' && !isalnum((unsigned char)c))
            return false;
    }
    return true;
}

/* True when prefix is a whole-segment prefix of path: "server" of "server.listen". */
static bool is_prefix_of(const char *prefix, size_t plen, const char *path)
{
    return strncmp(prefix, path, plen) == 0 && path[plen] == '.';
}

static bool conflicts(const char *a, const char *b)
{
    return strcmp(a, b) == 0 || is_prefix_of(a, strlen(a), b) || is_prefix_of(b, strlen(b), a);
}

static int check_key(const rdl_config_t *cfg, const rdl_cfg_key_t *keys, size_t i)
{
    const rdl_cfg_key_t *k = &keys[i];
    size_t j;

    if (k->path == NULL || !valid_path(k->path) || k->dst == NULL ||
        (int)k->type < RDL_CFG_STRING || k->type > RDL_CFG_ADDR_OPT || k->min > k->max ||
        (k->type == RDL_CFG_ENUM) != (k->choices != NULL) ||
        (k->type == RDL_CFG_ENUM && k->choices[0] == NULL))
        return RDL_EINVAL;
    for (j = 0; j < cfg->n; j++)
        if (conflicts(k->path, cfg->entries[j].key->path))
            return strcmp(k->path, cfg->entries[j].key->path) == 0 ? RDL_EEXIST : RDL_EINVAL;
    for (j = 0; j < i; j++)
        if (conflicts(k->path, keys[j].path))
            return strcmp(k->path, keys[j].path) == 0 ? RDL_EEXIST : RDL_EINVAL;
    return 0;
}

/* All keys are checked before any is added, so a failed add changes nothing. */
int rdl_config_add(rdl_config_t *cfg, const rdl_cfg_key_t *keys, size_t n)
{
    size_t i;
    int rc;

    if (cfg == NULL || (keys == NULL && n > 0))
        return RDL_EINVAL;
    for (i = 0; i < n; i++)
        if ((rc = check_key(cfg, keys, i)) != 0)
            return rc;
    if (cfg->n + n > cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap : 16;
        cfg_entry_t *e;
        while (cap < cfg->n + n)
            cap *= 2;
        e = realloc(cfg->entries, cap * sizeof(*e));
        if (e == NULL)
            return RDL_ENOMEM;
        cfg->entries = e;
        cfg->cap = cap;
    }
    if (n == 0)
        return 0;
    /* Keep a copy so callers may declare keys in a local array. */
    rdl_cfg_key_t **copies = realloc(cfg->copies, (cfg->ncopies + 1) * sizeof(*copies));
    if (copies == NULL)
        return RDL_ENOMEM;
    cfg->copies = copies;
    rdl_cfg_key_t *copy = malloc(n * sizeof(*copy));
    if (copy == NULL)
        return RDL_ENOMEM;
    memcpy(copy, keys, n * sizeof(*copy));
    cfg->copies[cfg->ncopies++] = copy;
    for (i = 0; i < n; i++) {
        cfg->entries[cfg->n].key = &copy[i];
        cfg->entries[cfg->n].owned = NULL;
        cfg->n++;
    }
    return 0;
}

static const cfg_entry_t *find_leaf(const rdl_config_t *cfg, const char *path, size_t *idx)
{
    size_t i;

    for (i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->entries[i].key->path, path) == 0) {
            *idx = i;
            return &cfg->entries[i];
        }
    }
    return NULL;
}

/* A section is a path that prefixes some key: "server" for "server.listen". */
static bool is_section(const rdl_config_t *cfg, const char *path)
{
    size_t i, len = strlen(path);

    for (i = 0; i < cfg->n; i++)
        if (is_prefix_of(path, len, cfg->entries[i].key->path))
            return true;
    return false;
}

/* ---- messages ------------------------------------------------------------ */

/* Quotes a value in a message: shortened, control bytes shown as '?'. */
static const char *echo(char *out, size_t outlen, const char *s, size_t len)
{
    size_t i, n = len > CFG_ECHO_MAX ? CFG_ECHO_MAX : len;

    if (n > outlen - 4)
        n = outlen - 4;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Two-row Levenshtein distance; callers bound the lengths. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t row[CFG_MAX_PATH + 2], i, j;

    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* Whether cand is closer to path than *best_d edits (then it becomes the best). */
static bool consider(const char *path, size_t plen, const char *cand, size_t clen,
                     const char **best, size_t *best_len, size_t *best_d)
{
    size_t d;

    if (clen > plen + 2 || plen > clen + 2)
        return false;
    d = edit_distance(path, plen, cand, clen);
    if (d >= *best_d)
        return false;
    *best_d = d;
    *best = cand;
    *best_len = clen;
    return true;
}

/*
 * The declared path (a key or a section) closest to path, within two edits.
 * Sections are the dotted prefixes of key paths.
 */
static bool suggest(const rdl_config_t *cfg, const char *path, char *out, size_t outlen)
{
    size_t plen = strlen(path), best_len = 0, best_d = 3, i;
    const char *best = NULL;

    if (plen > CFG_MAX_PATH)
        return false;
    for (i = 0; i < cfg->n; i++) {
        const char *kp = cfg->entries[i].key->path, *dot;
        for (dot = strchr(kp, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
            consider(path, plen, kp, (size_t)(dot - kp), &best, &best_len, &best_d);
        consider(path, plen, kp, strlen(kp), &best, &best_len, &best_d);
    }
    if (best == NULL)
        return false;
    snprintf(out, outlen, "%.*s", (int)best_len, best);
    return true;
}

/* The names valid directly under section ("" = top level), comma-separated. */
static void list_children(const rdl_config_t *cfg, const char *section, char *out, size_t outlen)
{
    size_t slen = strlen(section), used = 0, i, j;

    out[0] = '\0';
    for (i = 0; i < cfg->n; i++) {
        const char *kp = cfg->entries[i].key->path, *name, *end;
        bool dup = false;

        if (slen > 0 && !is_prefix_of(section, slen, kp))
            continue;
        name = slen > 0 ? kp + slen + 1 : kp;
        end = strchr(name, '.');
        if (end == NULL)
            end = name + strlen(name);
        /* Skip names an earlier key already listed. */
        for (j = 0; j < i && !dup; j++) {
            const char *op = cfg->entries[j].key->path;
            const char *oname = slen > 0 ? op + slen + 1 : op;
            if ((slen == 0 || is_prefix_of(section, slen, op)) &&
                strncmp(oname, name, (size_t)(end - name)) == 0 &&
                (oname[end - name] == '\0' || oname[end - name] == '.'))
                dup = true;
        }
        if (dup)
            continue;
        if (used + (size_t)(end - name) + 6 >= outlen) {
            snprintf(out + used, outlen - used, ", ...");
            return;
        }
        used += (size_t)snprintf(out + used, outlen - used, "%s%.*s", used ? ", " : "",
                                 (int)(end - name), name);
    }
}

static void unknown_key_msg(const rdl_config_t *cfg, const char *path, size_t section_len,
                            char *out, size_t outlen)
{
    char sug[CFG_MAX_PATH + 1], names[128], section[CFG_MAX_PATH + 1], shown[CFG_ECHO_MAX + 4];

    echo(shown, sizeof(shown), path, strlen(path));
    if (suggest(cfg, path, sug, sizeof(sug))) {
        snprintf(out, outlen, "unknown key '%s'; did you mean '%s'?", shown, sug);
        return;
    }
    if (section_len > CFG_MAX_PATH)
        section_len = 0;
    memcpy(section, path, section_len);
    section[section_len] = '\0';
    list_children(cfg, section, names, sizeof(names));
    if (section_len > 0)
        snprintf(out, outlen, "unknown key '%s'; valid keys in '%s': %s", shown, section, names);
    else
        snprintf(out, outlen, "unknown key '%s'; valid top-level keys: %s", shown, names);
}

/* "5m", "1500ms": the largest unit that divides evenly. */
static void fmt_duration(char *out, size_t outlen, uint64_t ms)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, outlen, "%" PRIu64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, outlen, "%" PRIu64 "m", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(out, outlen, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(out, outlen, "%" PRIu64 "ms", ms);
}

static void fmt_size(char *out, size_t outlen, uint64_t b)
{
    if (b != 0 && b % (1ull << 30) == 0)
        snprintf(out, outlen, "%" PRIu64 "GiB", b >> 30);
    else if (b != 0 && b % (1ull << 20) == 0)
        snprintf(out, outlen, "%" PRIu64 "MiB", b >> 20);
    else if (b != 0 && b % (1ull << 10) == 0)
        snprintf(out, outlen, "%" PRIu64 "KiB", b >> 10);
    else
        snprintf(out, outlen, "%" PRIu64, b);
}

static const char *type_name(rdl_cfg_type_t t)
{
    switch (t) {
    case RDL_CFG_STRING:   return "string";
    case RDL_CFG_ADDR:     return "address";
    case RDL_CFG_ADDR_OPT: return "address?";
    case RDL_CFG_INT:      return "integer";
    case RDL_CFG_BOOL:     return "bool";
    case RDL_CFG_DURATION: return "duration";
    case RDL_CFG_SIZE:     return "size";
    case RDL_CFG_DOUBLE:   return "number";
    case RDL_CFG_ENUM:     return "enum";
    }
    return "?";
}

/* "one of debug, info, warn" (cut with "..." when it does not fit). */
static void choices_list(const rdl_cfg_key_t *k, char *out, size_t outlen)
{
    size_t used = (size_t)snprintf(out, outlen, "one of");
    const char *sep = " ";

    for (size_t i = 0; k->choices[i] != NULL && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", sep, k->choices[i]);
        if (n < 0 || (size_t)n >= outlen - used) {
            if (outlen > 4)
                memcpy(out + outlen - 4, "...", 4);
            return;
        }
        used += (size_t)n;
        sep = ", ";
    }
}

/* What a key accepts, for "expected ..." messages. */
static void expected(const rdl_cfg_key_t *k, char *out, size_t outlen)
{
    char lo[32], hi[32];
    uint64_t umin = k->min < 0 ? 0 : (uint64_t)k->min, umax = k->max < 0 ? 0 : (uint64_t)k->max;

    switch (k->type) {
    case RDL_CFG_STRING:
        snprintf(out, outlen, "a string");
        return;
    case RDL_CFG_ADDR:
        snprintf(out, outlen, "an address like host:port, [v6]:port or :port (port 0-65535)");
        return;
    case RDL_CFG_ADDR_OPT:
        snprintf(out, outlen, "an address like host:port, [v6]:port or :port (port 0-65535), "
                 "or '' for none");
        return;
    case RDL_CFG_BOOL:
        snprintf(out, outlen, "true or false");
        return;
    case RDL_CFG_INT:
        if (bounded(k))
            snprintf(out, outlen, "an integer between %" PRId64 " and %" PRId64, k->min, k->max);
        else
            snprintf(out, outlen, "an integer");
        return;
    case RDL_CFG_DOUBLE:
        if (bounded(k))
            snprintf(out, outlen, "a number between %" PRId64 " and %" PRId64, k->min, k->max);
        else
            snprintf(out, outlen, "a number");
        return;
    case RDL_CFG_DURATION:
        if (!bounded(k)) {
            snprintf(out, outlen, "a duration like 250ms, 30s or 5m");
            return;
        }
        fmt_duration(lo, sizeof(lo), umin);
        fmt_duration(hi, sizeof(hi), umax);
        snprintf(out, outlen, "a duration between %s and %s (like 250ms, 30s or 5m)", lo, hi);
        return;
    case RDL_CFG_SIZE:
        if (!bounded(k)) {
            snprintf(out, outlen, "a size like 512, 16KiB or 1MiB");
            return;
        }
        fmt_size(lo, sizeof(lo), umin);
        fmt_size(hi, sizeof(hi), umax);
        snprintf(out, outlen, "a size between %s and %s (like 512, 16KiB or 1MiB)", lo, hi);
        return;
    case RDL_CFG_ENUM:
        choices_list(k, out, outlen);
        return;
    }
    out[0] = '\0';
}

/* ---- values -------------------------------------------------------------- */

static bool in_bounds_i(const rdl_cfg_key_t *k, int64_t v)
{
    return !bounded(k) || (v >= k->min && v <= k->max);
}

static bool in_bounds_u(const rdl_cfg_key_t *k, uint64_t v)
{
    if (!bounded(k))
        return true;
    if (k->max < 0 || v > (uint64_t)k->max)
        return false;
    return k->min <= 0 || v >= (uint64_t)k->min;
}

static bool in_bounds_d(const rdl_cfg_key_t *k, double v)
{
    return !bounded(k) || (v >= (double)k->min && v <= (double)k->max);
}

static int parse_typed(const rdl_cfg_key_t *k, const char *s, cfg_val_t *v)
{
    char host[RDL_HOST_MAX];
    int port;

    switch (k->type) {
    case RDL_CFG_STRING:
        return 0;
    case RDL_CFG_ADDR:
        return rdl_parse_hostport(s, host, &port);
    case RDL_CFG_ADDR_OPT:
        return s[0] == '\0' ? 0 : rdl_parse_hostport(s, host, &port);
    case RDL_CFG_INT:
        return rdl__yaml_parse_int(s, &v->i) == 0 && in_bounds_i(k, v->i) ? 0 : RDL_EINVAL;
    case RDL_CFG_BOOL:
        return rdl__yaml_parse_bool(s, &v->b);
    case RDL_CFG_DURATION:
        return rdl_parse_duration_ms(s, &v->u) == 0 && in_bounds_u(k, v->u) ? 0 : RDL_EINVAL;
    case RDL_CFG_SIZE:
        return rdl_parse_size(s, &v->u) == 0 && in_bounds_u(k, v->u) ? 0 : RDL_EINVAL;
    case RDL_CFG_DOUBLE:
        return rdl__yaml_parse_double(s, &v->d) == 0 && in_bounds_d(k, v->d) ? 0 : RDL_EINVAL;
    case RDL_CFG_ENUM:
        v->i = rdl__yaml_parse_enum(s, k->choices);
        return v->i >= 0 ? 0 : RDL_EINVAL;
    }
    return RDL_EINVAL;
}

/*
 * Parses text (len bytes, may hold NULs) for key k. On success strings are
 * heap copies the caller owns; on failure why says what was expected.
 */
static int parse_value(const rdl_cfg_key_t *k, const char *text, size_t len, bool is_null,
                       cfg_val_t *v, char *why, size_t whylen)
{
    char exp[160], shown[CFG_ECHO_MAX + 4];
    char *s;
    int rc;

    expected(k, exp, sizeof(exp));
    if (is_null) {
        snprintf(why, whylen, "expected %s, got no value (null)%s", exp,
                 k->type == RDL_CFG_STRING ? "; write '' for an empty string" : "");
        return RDL_EINVAL;
    }
    echo(shown, sizeof(shown), text, len);
    if (memchr(text, '\0', len) != NULL) {
        snprintf(why, whylen, "expected %s, got a value containing a NUL byte: '%s'", exp, shown);
        return RDL_EINVAL;
    }
    s = malloc(len + 1);
    if (s == NULL) {
        snprintf(why, whylen, "out of memory");
        return RDL_ENOMEM;
    }
    memcpy(s, text, len);
    s[len] = '\0';
    memset(v, 0, sizeof(*v));
    rc = parse_typed(k, s, v);
    if (rc != 0) {
        snprintf(why, whylen, "expected %s, got '%s'%s", exp, shown,
                 k->type == RDL_CFG_BOOL && rdl__yaml_is_yaml11_bool(s)
                     ? " (YAML 1.2 reads yes/no/on/off as strings)" : "");
        free(s);
        return rc;
    }
    if (is_string_type(k->type))
        v->s = s;
    else
        free(s);
    return 0;
}

static void stage_free(rdl_config_t *cfg, stage_t *st)
{
    size_t i;

    for (i = 0; i < st->n; i++)
        if (is_string_type(cfg->entries[st->items[i].idx].key->type))
            free(st->items[i].v.s);
    free(st->items);
    st->items = NULL;
    st->n = st->cap = 0;
}

/* Takes ownership of v's string, even on failure. */
static int stage_push(rdl_config_t *cfg, stage_t *st, size_t idx, cfg_val_t v)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        staged_t *p = realloc(st->items, cap * sizeof(*p));
        if (p == NULL) {
            if (is_string_type(cfg->entries[idx].key->type))
                free(v.s);
            return RDL_ENOMEM;
        }
        st->items = p;
        st->cap = cap;
    }
    st->items[st->n].idx = idx;
    st->items[st->n].v = v;
    st->n++;
    return 0;
}

/* Writes every staged value to its destination; the stage is emptied. */
static void stage_commit(rdl_config_t *cfg, stage_t *st)
{
    size_t i;

    for (i = 0; i < st->n; i++) {
        cfg_entry_t *e = &cfg->entries[st->items[i].idx];
        cfg_val_t v = st->items[i].v;

        switch (e->key->type) {
        case RDL_CFG_STRING:
        case RDL_CFG_ADDR:
        case RDL_CFG_ADDR_OPT:
            free(e->owned);
            e->owned = v.s;
            *(char **)e->key->dst = v.s;
            break;
        case RDL_CFG_INT:
            *(int64_t *)e->key->dst = v.i;
            break;
        case RDL_CFG_BOOL:
            *(bool *)e->key->dst = v.b;
            break;
        case RDL_CFG_DURATION:
        case RDL_CFG_SIZE:
            *(uint64_t *)e->key->dst = v.u;
            break;
        case RDL_CFG_DOUBLE:
            *(double *)e->key->dst = v.d;
            break;
        case RDL_CFG_ENUM:
            *(int *)e->key->dst = (int)v.i;
            break;
        }
    }
    st->n = 0;
    stage_free(cfg, st);
}

/* ---- YAML ---------------------------------------------------------------- */

/* A key already seen in this document, for duplicate detection. */
typedef struct seen {
    char *path;
    int line, column;
} seen_t;

typedef struct load {
    rdl__yaml_t y;              /* the shared reader, as events */
    rdl_config_t *cfg;
    rdl_error_t *err;
    stage_t stage;
    seen_t *seen;
    size_t nseen, capseen;
    const char *only;           /* NULL, or the one top-level section read (others skipped) */
} load_t;

static int remember(load_t *ld, const char *path, int line, int column)
{
    char *copy;

    if (ld->nseen == ld->capseen) {
        size_t cap = ld->capseen ? ld->capseen * 2 : 16;
        seen_t *p = realloc(ld->seen, cap * sizeof(*p));
        if (p == NULL)
            return RDL_ENOMEM;
        ld->seen = p;
        ld->capseen = cap;
    }
    copy = strdup(path);
    if (copy == NULL)
        return RDL_ENOMEM;
    ld->seen[ld->nseen].path = copy;
    ld->seen[ld->nseen].line = line;
    ld->seen[ld->nseen].column = column;
    ld->nseen++;
    return 0;
}

static const seen_t *find_seen(const load_t *ld, const char *path)
{
    size_t i;

    for (i = 0; i < ld->nseen; i++)
        if (strcmp(ld->seen[i].path, path) == 0)
            return &ld->seen[i];
    return NULL;
}

/* ev is the value event for leaf key idx (at key_line/key_col); always consumed. */
static int take_value(load_t *ld, size_t idx, struct fy_event *ev, int key_line, int key_col)
{
    const rdl_cfg_key_t *k = ld->cfg->entries[idx].key;
    char exp[160], why[sizeof(ld->err->msg)];
    char *text;
    size_t len = 0;
    cfg_val_t v;
    int rc, line, column;
    bool is_null;

    if ((rc = rdl__yaml_event_check_plain(&ld->y, ev, k->path)) != 0)
        return rc;
    if (ev->type != FYET_SCALAR) {
        expected(k, exp, sizeof(exp));
        return rdl__yaml_event_fail(&ld->y, ev, k->path, "expected %s, got %s", exp, rdl__yaml_event_kind(ev));
    }
    rdl__yaml_event_mark(ev, &line, &column);
    if (line == 0) {            /* an empty value has no position: point at its key */
        line = key_line;
        column = key_col;
    }
    is_null = rdl__yaml_event_is_null(ev);
    text = rdl__yaml_event_text(&ld->y, ev, k->path, &len);
    rdl__yaml_event_free(&ld->y, ev);
    if (text == NULL)
        return ld->err->code;
    rc = parse_value(k, text, len, is_null, &v, why, sizeof(why));
    free(text);
    if (rc != 0)
        return rdl_error_set(ld->err, rc, line, column, k->path, "%s", why);
    if (stage_push(ld->cfg, &ld->stage, idx, v) != 0)
        return rdl_error_set(ld->err, RDL_ENOMEM, line, column, k->path, "out of memory");
    return 0;
}

static int walk_mapping(load_t *ld, const char *section);

/* ev is the value event of section path; always consumed. */
static int take_section(load_t *ld, const char *path, struct fy_event *ev)
{
    char names[200];
    int rc;

    if ((rc = rdl__yaml_event_check_plain(&ld->y, ev, path)) != 0)
        return rc;
    if (ev->type == FYET_MAPPING_START) {
        rdl__yaml_event_free(&ld->y, ev);
        return walk_mapping(ld, path);
    }
    if (rdl__yaml_event_is_null(ev)) {
        /* "server:" with everything under it commented out */
        rdl__yaml_event_free(&ld->y, ev);
        return 0;
    }
    list_children(ld->cfg, path, names, sizeof(names));
    return rdl__yaml_event_fail(&ld->y, ev, path, "'%s' is a section: expected a mapping of its keys (%s), got %s",
                   path, names, rdl__yaml_event_kind(ev));
}

/* Path of key text under section; NULL when allocation fails. */
static char *join_path(const char *section, const char *key, size_t klen)
{
    size_t slen = strlen(section);
    char *p = malloc(slen + 1 + klen + 1);

    if (p == NULL)
        return NULL;
    if (slen > 0) {
        memcpy(p, section, slen);
        p[slen++] = '.';
    }
    memcpy(p + slen, key, klen);
    p[slen + klen] = '\0';
    return p;
}

/* One mapping entry: key event ev (consumed), then its value. */
static int walk_entry(load_t *ld, const char *section, struct fy_event *ev)
{
    char why[sizeof(ld->err->msg)];
    const seen_t *dup;
    size_t len = 0, idx;
    char *text, *path;
    int rc, line, column;

    if ((rc = rdl__yaml_event_check_plain(&ld->y, ev, section)) != 0)
        return rc;
    if (ev->type != FYET_SCALAR)
        return rdl__yaml_event_fail(&ld->y, ev, section, "expected a key name, got %s", rdl__yaml_event_kind(ev));
    rdl__yaml_event_mark(ev, &line, &column);
    text = rdl__yaml_event_text(&ld->y, ev, section, &len);
    rdl__yaml_event_free(&ld->y, ev);
    if (text == NULL)
        return ld->err->code;
    path = join_path(section, text, len);
    free(text);
    if (path == NULL)
        return rdl_error_set(ld->err, RDL_ENOMEM, line, column, section, "out of memory");
    if (strlen(path) != strlen(section) + (section[0] ? 1 : 0) + len) {
        rc = rdl_error_set(ld->err, RDL_EINVAL, line, column, section,
                           "key names must not contain a NUL byte");
        goto out;
    }
    if (ld->only != NULL && section[0] == '\0' && strcmp(path, ld->only) != 0) {
        rc = rdl__yaml_event_skip(&ld->y);     /* another part of the file: not this reader's */
        goto out;
    }
    if (find_leaf(ld->cfg, path, &idx) == NULL && !is_section(ld->cfg, path)) {
        unknown_key_msg(ld->cfg, path, strlen(section), why, sizeof(why));
        rc = rdl_error_set(ld->err, RDL_EINVAL, line, column, path, "%s", why);
        goto out;
    }
    if ((dup = find_seen(ld, path)) != NULL) {
        rc = rdl_error_set(ld->err, RDL_EINVAL, line, column, path,
                           "duplicate key '%s' (first set at line %d, column %d)", path, dup->line,
                           dup->column);
        goto out;
    }
    if (remember(ld, path, line, column) != 0) {
        rc = rdl_error_set(ld->err, RDL_ENOMEM, line, column, path, "out of memory");
        goto out;
    }
    if ((ev = rdl__yaml_event_next(&ld->y)) == NULL) {
        rc = RDL_EINVAL;
        goto out;
    }
    if (find_leaf(ld->cfg, path, &idx) != NULL)
        rc = take_value(ld, idx, ev, line, column);
    else
        rc = take_section(ld, path, ev);
out:
    free(path);
    return rc;
}

/* Called after MAPPING_START; returns after the matching MAPPING_END. */
static int walk_mapping(load_t *ld, const char *section)
{
    struct fy_event *ev;
    int rc;

    for (;;) {
        if ((ev = rdl__yaml_event_next(&ld->y)) == NULL)
            return RDL_EINVAL;
        if (ev->type == FYET_MAPPING_END) {
            rdl__yaml_event_free(&ld->y, ev);
            return 0;
        }
        if ((rc = walk_entry(ld, section, ev)) != 0)
            return rc;
    }
}

/* The document's root: a mapping, or nothing at all. ev is consumed. */
static int walk_root(load_t *ld, struct fy_event *ev)
{
    int rc;

    if ((rc = rdl__yaml_event_check_plain(&ld->y, ev, "")) != 0)
        return rc;
    if (ev->type == FYET_MAPPING_START) {
        rdl__yaml_event_free(&ld->y, ev);
        return walk_mapping(ld, "");
    }
    if (rdl__yaml_event_is_null(ev)) {
        rdl__yaml_event_free(&ld->y, ev);
        return 0;
    }
    return rdl__yaml_event_fail(&ld->y, ev, "", "expected a mapping of configuration keys at the top level, got %s",
                   rdl__yaml_event_kind(ev));
}

/* Stream: at most one document, whose root walk_root checks. */
static int walk_stream(load_t *ld)
{
    struct fy_event *ev;
    int docs = 0, rc;

    for (;;) {
        if ((ev = rdl__yaml_event_next(&ld->y)) == NULL)
            return RDL_EINVAL;
        switch (ev->type) {
        case FYET_STREAM_END:
            rdl__yaml_event_free(&ld->y, ev);
            return 0;
        case FYET_DOCUMENT_START:
            if (docs++ > 0)
                return rdl__yaml_event_fail(&ld->y, ev, "", "only one YAML document is allowed in a configuration file");
            rdl__yaml_event_free(&ld->y, ev);
            if ((ev = rdl__yaml_event_next(&ld->y)) == NULL)
                return RDL_EINVAL;
            if ((rc = walk_root(ld, ev)) != 0)
                return rc;
            break;
        default:
            /* STREAM_START, DOCUMENT_END */
            rdl__yaml_event_free(&ld->y, ev);
            break;
        }
    }
}

static int load_yaml(rdl_config_t *cfg, const char *yaml, size_t len, const char *only,
                     rdl_error_t *err)
{
    load_t ld;
    size_t i;
    int rc;

    memset(&ld, 0, sizeof(ld));
    ld.y = (rdl__yaml_t){ .err = err, .input = yaml, .input_len = len, .what = "configuration" };
    ld.cfg = cfg;
    ld.err = err;
    ld.only = only;
    if ((rc = rdl__yaml_events_open(&ld.y)) != 0)
        return rc;
    rc = walk_stream(&ld);
    if (rc == 0)
        stage_commit(cfg, &ld.stage);
    stage_free(cfg, &ld.stage);
    for (i = 0; i < ld.nseen; i++)
        free(ld.seen[i].path);
    free(ld.seen);
    rdl__yaml_events_close(&ld.y);
    return rc;
}

static void set_file(rdl_error_t *err, const char *name)
{
    snprintf(err->file, sizeof(err->file), "%s", name != NULL ? name : "");
}

int rdl_config_load_string(rdl_config_t *cfg, const char *name, const char *yaml, size_t len,
                           rdl_error_t *err)
{
    rdl_error_t local;

    if (err == NULL)
        err = &local;
    rdl_error_clear(err);
    set_file(err, name);
    if (cfg == NULL || (yaml == NULL && len > 0))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no configuration object or text");
    return load_yaml(cfg, yaml != NULL ? yaml : "", len, NULL, err);
}

/* The file at path, all of it (section NULL) or one top-level section of it. */
static int load_file(rdl_config_t *cfg, const char *path, const char *section, rdl_error_t *err)
{
    rdl_error_t local;
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (err == NULL)
        err = &local;
    rdl_error_clear(err);
    set_file(err, path);
    if (cfg == NULL || path == NULL)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no configuration object or path");
    if ((rc = rdl_read_file(path, CFG_MAX_FILE, &data, &len, err)) != 0)
        return rc;
    set_file(err, path);
    rc = load_yaml(cfg, data, len, section, err);
    free(data);
    return rc;
}

int rdl_config_load_file(rdl_config_t *cfg, const char *path, rdl_error_t *err)
{
    return load_file(cfg, path, NULL, err);
}

int rdl__config_load_section(rdl_config_t *cfg, const char *path, const char *section,
                             rdl_error_t *err)
{
    return load_file(cfg, path, section, err);
}

/* ---- environment and flags ----------------------------------------------- */

extern char **environ;          /* POSIX; unistd.h declares it only under _GNU_SOURCE */

/* "REDLINE_" + path in upper case, anything but letters and digits as '_'. */
static const char *env_name(const rdl_cfg_key_t *k, char *buf, size_t buflen)
{
    size_t i, n;

    if (k->env != NULL)
        return k->env;
    n = (size_t)snprintf(buf, buflen, "REDLINE_%s", k->path);
    for (i = 8; i < n && i < buflen; i++)
        buf[i] = isalnum((unsigned char)buf[i]) ? (char)toupper((unsigned char)buf[i]) : '_';
    return buf;
}

int rdl_config_apply_env(rdl_config_t *cfg, rdl_error_t *err)
{
    char buf[CFG_MAX_PATH + 16], why[sizeof(err->msg)];
    rdl_error_t local;
    stage_t st = { 0 };
    size_t i;
    int rc;

    if (err == NULL)
        err = &local;
    rdl_error_clear(err);
    if (cfg == NULL)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no configuration object");
    for (i = 0; i < cfg->n; i++) {
        const char *name = env_name(cfg->entries[i].key, buf, sizeof(buf));
        const char *value = getenv(name);
        cfg_val_t v;

        if (value == NULL)
            continue;
        rc = parse_value(cfg->entries[i].key, value, strlen(value), false, &v, why, sizeof(why));
        if (rc == 0 && (rc = stage_push(cfg, &st, i, v)) != 0)
            snprintf(why, sizeof(why), "out of memory");
        if (rc != 0) {
            stage_free(cfg, &st);
            return rdl_error_set(err, rc, 0, 0, name, "environment variable %s: %s", name, why);
        }
    }
    stage_commit(cfg, &st);
    return 0;
}

/*
 * suggest()'s rule for variable names: cand, when closer than *best_d, is
 * copied to out (a key's name is built in a buffer the next one reuses).
 */
static void consider_env(const char *name, size_t nlen, const char *cand, size_t *best_d,
                         char *out, size_t outlen)
{
    const char *best;
    size_t best_len, clen = strlen(cand);

    if (clen <= CFG_MAX_PATH && consider(name, nlen, cand, clen, &best, &best_len, best_d))
        snprintf(out, outlen, "%s", cand);
}

/* "unknown environment variable" with the closest declared or allowed name. */
static int unknown_env(const rdl_config_t *cfg, const char *const *allowed, const char *var,
                       size_t nlen, rdl_error_t *err)
{
    char name[CFG_MAX_PATH + 16], buf[CFG_MAX_PATH + 16], sug[CFG_MAX_PATH + 16];
    size_t best_d = 3, i;

    snprintf(name, sizeof(name), "%.*s", (int)(nlen < sizeof(name) - 1 ? nlen : sizeof(name) - 1), var);
    nlen = strlen(name);
    sug[0] = '\0';
    for (i = 0; i < cfg->n; i++)
        consider_env(name, nlen, env_name(cfg->entries[i].key, buf, sizeof(buf)), &best_d, sug,
                     sizeof(sug));
    for (i = 0; allowed != NULL && allowed[i] != NULL; i++)
        consider_env(name, nlen, allowed[i], &best_d, sug, sizeof(sug));
    if (sug[0] != '\0')
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name,
                             "unknown environment variable %s; did you mean %s?", name, sug);
    return rdl_error_set(err, RDL_EINVAL, 0, 0, name,
                         "unknown environment variable %s: no configuration key reads it "
                         "(--help lists each key's variable)", name);
}

/* Whether the variable named by var (nlen bytes, up to its '=') is a key's or allowed. */
static bool env_known(const rdl_config_t *cfg, const char *const *allowed, const char *var,
                      size_t nlen)
{
    char buf[CFG_MAX_PATH + 16];
    size_t i;

    for (i = 0; i < cfg->n; i++) {
        const char *ev = env_name(cfg->entries[i].key, buf, sizeof(buf));
        if (strlen(ev) == nlen && memcmp(ev, var, nlen) == 0)
            return true;
    }
    for (i = 0; allowed != NULL && allowed[i] != NULL; i++)
        if (strlen(allowed[i]) == nlen && memcmp(allowed[i], var, nlen) == 0)
            return true;
    return false;
}

int rdl_config_check_env(const rdl_config_t *cfg, const char *const *allowed, rdl_error_t *err)
{
    rdl_error_t local;
    char **e;

    if (err == NULL)
        err = &local;
    rdl_error_clear(err);
    if (cfg == NULL)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "no configuration object");
    for (e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - *e) : strlen(*e);

        if (strncmp(*e, "REDLINE_", 8) != 0 || env_known(cfg, allowed, *e, nlen))
            continue;
        return unknown_env(cfg, allowed, *e, nlen, err);
    }
    return 0;
}

int rdl_config_set(rdl_config_t *cfg, const char *path, const char *value, rdl_error_t *err)
{
    char why[sizeof(err->msg)];
    rdl_error_t local;
    stage_t st = { 0 };
    size_t idx;
    cfg_val_t v;
    int rc;

    if (err == NULL)
        err = &local;
    rdl_error_clear(err);
    if (cfg == NULL || path == NULL || value == NULL)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, path != NULL ? path : "",
                             "no configuration object, key or value");
    if (find_leaf(cfg, path, &idx) == NULL) {
        const char *dot = strrchr(path, '.');
        unknown_key_msg(cfg, path, dot != NULL ? (size_t)(dot - path) : 0, why, sizeof(why));
        return rdl_error_set(err, RDL_EINVAL, 0, 0, path, "%s", why);
    }
    rc = parse_value(cfg->entries[idx].key, value, strlen(value), false, &v, why, sizeof(why));
    if (rc == 0 && (rc = stage_push(cfg, &st, idx, v)) != 0)
        snprintf(why, sizeof(why), "out of memory");
    if (rc != 0)
        return rdl_error_set(err, rc, 0, 0, path, "%s", why);
    stage_commit(cfg, &st);
    return 0;
}

/* ---- usage --------------------------------------------------------------- */

static void fmt_choice(const rdl_cfg_key_t *k, char *out, size_t outlen)
{
    int v = *(int *)k->dst, n = 0;

    while (k->choices[n] != NULL)
        n++;
    if (v >= 0 && v < n)
        snprintf(out, outlen, "%s", k->choices[v]);
    else
        snprintf(out, outlen, "(%d)", v);
}

/*
 * A key holds a secret when its last segment names one (rdl_secret_name: token,
 * password, secret, authorization, API key) or is a header list ("tracing.headers"),
 * which carries credentials.
 */
bool rdl_config_key_is_secret(const char *path)
{
    const char *last;
    size_t n;

    if (path == NULL)
        return false;
    last = strrchr(path, '.');
    last = last != NULL ? last + 1 : path;
    n = strlen(last);
    return rdl_secret_name(last, n) || (n >= 7 && rdl_ascii_ieq(last + n - 7, 7, "headers", 7));
}

/* A string value in quotes, a URL's user:password and other secrets inside it redacted. */
static void fmt_redacted(const char *s, char *out, size_t outlen)
{
    rdl_buf_t b;

    rdl_buf_init(&b);
    rdl_redact_put(&b, s, strlen(s));
    snprintf(out, outlen, "\"%.*s\"", (int)b.len, b.data != NULL ? b.data : "");
    rdl_buf_close(&b);
}

static void fmt_value(const rdl_cfg_key_t *k, char *out, size_t outlen)
{
    const char *s;

    switch (k->type) {
    case RDL_CFG_STRING:
    case RDL_CFG_ADDR:
    case RDL_CFG_ADDR_OPT:
        s = *(char **)k->dst;
        if (s == NULL)
            snprintf(out, outlen, "(unset)");
        else if (s[0] != '\0' && rdl_config_key_is_secret(k->path))
            snprintf(out, outlen, "%s", RDL_REDACTED);
        else
            fmt_redacted(s, out, outlen);
        return;
    case RDL_CFG_INT:
        snprintf(out, outlen, "%" PRId64, *(int64_t *)k->dst);
        return;
    case RDL_CFG_BOOL:
        snprintf(out, outlen, "%s", *(bool *)k->dst ? "true" : "false");
        return;
    case RDL_CFG_DURATION:
        fmt_duration(out, outlen, *(uint64_t *)k->dst);
        return;
    case RDL_CFG_SIZE:
        fmt_size(out, outlen, *(uint64_t *)k->dst);
        return;
    case RDL_CFG_DOUBLE:
        snprintf(out, outlen, "%g", *(double *)k->dst);
        return;
    case RDL_CFG_ENUM:
        fmt_choice(k, out, outlen);
        return;
    }
    out[0] = '\0';
}

void rdl_config_usage(const rdl_config_t *cfg, FILE *out)
{
    char buf[CFG_MAX_PATH + 16], val[64];
    int wpath = 3, wenv = 3, wtype = 4, wval = 5;
    size_t i;

    if (cfg == NULL || out == NULL)
        return;
    for (i = 0; i < cfg->n; i++) {
        const rdl_cfg_key_t *k = cfg->entries[i].key;
        int l;
        fmt_value(k, val, sizeof(val));
        if ((l = (int)strlen(k->path)) > wpath)
            wpath = l;
        if ((l = (int)strlen(env_name(k, buf, sizeof(buf)))) > wenv)
            wenv = l;
        if ((l = (int)strlen(type_name(k->type))) > wtype)
            wtype = l;
        if ((l = (int)strlen(val)) > wval)
            wval = l;
    }
    fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", wpath, "KEY", wenv, "ENV", wtype, "TYPE", wval,
            "VALUE", "HELP");
    for (i = 0; i < cfg->n; i++) {
        const rdl_cfg_key_t *k = cfg->entries[i].key;
        fmt_value(k, val, sizeof(val));
        fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", wpath, k->path, wenv,
                env_name(k, buf, sizeof(buf)), wtype, type_name(k->type), wval, val,
                k->help != NULL ? k->help : "");
    }
}
