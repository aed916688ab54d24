/*
 * yaml.c: the one YAML reader (see yaml.h): the checks and decoding needed
 * before and around libfyaml 0.7.12, whose own handling of some cases is
 * faulty (see each function), then positions, typed scalars, lists and
 * mappings for the loaders of configuration, routing rules and upstreams.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "redline/util.h"
#include "util/yaml.h"

/* The code point of the valid UTF-8 sequence at s (len bytes, from rdl_utf8_seq). */
static uint32_t utf8_code_point(const unsigned char *s, size_t len)
{
    static const unsigned char lead_mask[5] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
    uint32_t c = s[0] & lead_mask[len];
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (s[i] & 0x3F);
    return c;
}

/* YAML 1.2's c-printable set: what a YAML stream may contain at all. */
static bool yaml_printable(uint32_t c)
{
    return c == 0x09 || c == 0x0A || c == 0x0D || (c >= 0x20 && c <= 0x7E) || c == 0x85 ||
           (c >= 0xA0 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0x10FFFF);
}

/*
 * Checks the raw text before libfyaml sees it. YAML streams must be printable
 * Unicode; libfyaml 0.7.12 does not check, silently drops some content after
 * invalid UTF-8 and loops forever on an invalid byte in a directive ("%\xb3"),
 * so such text is refused here, with its position. Tabs are refused too: they
 * are a classic YAML indentation mistake, and 0.7.12 crashes on some (the
 * complex key "? a:<TAB>: b" makes fy_parser_destroy dereference NULL).
 * A carriage return not followed by a line feed (old Mac line ends) is refused:
 * libfyaml leaks its scalar buffer when such breaks mix with CRLF inside a
 * quoted scalar, and no tool writes them today. CRLF files are read as usual.
 */
int rdl_yaml_check_text(const char *yaml, size_t len, rdl_error_t *err)
{
    const unsigned char *s = (const unsigned char *)yaml;
    size_t i = 0, n;
    int line = 1, column = 1;
    uint32_t c;

    while (i < len) {
        n = rdl_utf8_seq(yaml + i, len - i, NULL);
        if (n)
            c = utf8_code_point(s + i, n);
        if (n == 0)
            return rdl_error_set(err, RDL_EINVAL, line, column, "",
                                 "invalid YAML: byte 0x%02x is not valid UTF-8", s[i]);
        if (c == '\t')
            return rdl_error_set(err, RDL_EINVAL, line, column, "",
                                 "invalid YAML: tab characters are not allowed in configuration; "
                                 "use spaces, and \\t inside a double-quoted string");
        if (!yaml_printable(c))
            return rdl_error_set(err, RDL_EINVAL, line, column, "",
                                 "invalid YAML: control character U+%04X is not allowed; "
                                 "write it as an escape in a double-quoted string", (unsigned)c);
        if (c == '\r' && (i + 1 == len || s[i + 1] != '\n'))
            return rdl_error_set(err, RDL_EINVAL, line, column, "",
                                 "invalid YAML: a carriage return must be followed by a line feed "
                                 "(lines end in LF or CRLF)");
        i += n;
        if (c == '\n') {
            line++;
            column = 1;
        } else {
            column++;
        }
    }
    return 0;
}

/*
 * Decodes the body of a single-quoted scalar (YAML 1.2 section 7.3.2): '' is
 * one quote; a line break with the white space around it folds to a space,
 * and n breaks in a row to n-1 newlines. Output is never longer than raw.
 */
char *rdl_yaml_single_quoted(const char *raw, size_t n, size_t *outlen)
{
    char *out = malloc(n + 1);
    size_t i = 0, o = 0, j, breaks;

    if (out == NULL)
        return NULL;
    while (i < n) {
        if (raw[i] == '\'') {
            out[o++] = '\'';
            i += i + 1 < n && raw[i + 1] == '\'' ? 2 : 1;
        } else if (raw[i] == ' ' || raw[i] == '\t') {
            for (j = i; j < n && (raw[j] == ' ' || raw[j] == '\t'); j++)
                ;
            if (j == n || (raw[j] != '\n' && raw[j] != '\r')) {
                memcpy(out + o, raw + i, j - i);    /* white space inside a line stays */
                o += j - i;
            }
            i = j;
        } else if (raw[i] == '\n' || raw[i] == '\r') {
            for (breaks = 0; i < n && strchr(" \t\r\n", raw[i]) != NULL; i++) {
                if (raw[i] == '\n' || (raw[i] == '\r' && (i + 1 == n || raw[i + 1] != '\n')))
                    breaks++;
            }
            if (breaks == 1)
                out[o++] = ' ';
            for (; breaks > 1; breaks--)
                out[o++] = '\n';
        } else {
            out[o++] = raw[i++];
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* ---- libfyaml diagnostics ------------------------------------------------ */

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
}

struct fy_diag *rdl_yaml_diag_new(void)
{
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_discard;
    dcfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag)
        fy_diag_set_collect_errors(diag, true);
    return diag;
}

/* ---- the parser ------------------------------------------------------------ */

struct fy_parser *rdl__yaml_parser_new(const char *text, size_t len, struct fy_diag **diag)
{
    struct fy_parse_cfg pcfg;
    struct fy_parser *fyp;

    *diag = rdl_yaml_diag_new();
    if (*diag == NULL)
        return NULL;
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_DEFAULT_VERSION_1_2;
    pcfg.diag = *diag;
    fyp = fy_parser_create(&pcfg);
    if (fyp != NULL && fy_parser_set_string(fyp, text, len) == 0)
        return fyp;
    if (fyp != NULL)
        fy_parser_destroy(fyp);
    fy_diag_destroy(*diag);
    *diag = NULL;
    return NULL;
}

int rdl__yaml_syntax_error(struct fy_diag *diag, const char *invalid, rdl_error_t *err)
{
    struct fy_diag_error *de;
    void *it = NULL;

    if (invalid == NULL)
        invalid = "invalid YAML";
    while ((de = fy_diag_errors_iterate(diag, &it)) != NULL)
        if (de->type >= FYET_ERROR)
            return rdl_error_set(err, RDL_EINVAL, de->line, de->column, "", "%s: %s", invalid,
                                 de->msg != NULL ? de->msg : "syntax error");
    return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "%s", invalid);
}

/* ---- tokens ---------------------------------------------------------------- */

bool rdl__yaml_token_mark(struct fy_token *t, int *line, int *column)
{
    const struct fy_mark *m = t != NULL ? fy_token_start_mark(t) : NULL;
    enum fy_scalar_style style;

    if (m == NULL)
        return false;
    *line = m->line + 1;
    *column = m->column + 1;
    style = fy_token_scalar_style(t);
    if ((style == FYSS_SINGLE_QUOTED || style == FYSS_DOUBLE_QUOTED) && *column > 1)
        (*column)--;                    /* libfyaml marks just after the quote */
    return true;
}

bool rdl__yaml_token_is_null(struct fy_token *t)
{
    const char *text;
    size_t len = 0;

    if (t == NULL)
        return true;                    /* an empty value has no token at all */
    if (fy_token_scalar_style(t) != FYSS_PLAIN)
        return false;
    text = fy_token_get_text(t, &len);
    if (text == NULL)
        return false;
    return len == 0 || (len == 1 && text[0] == '~') ||
           (len == 4 && (!memcmp(text, "null", 4) || !memcmp(text, "Null", 4) ||
                         !memcmp(text, "NULL", 4)));
}

int rdl__yaml_token_text(struct fy_token *t, const char *input, size_t input_len, char **out,
                         size_t *len)
{
    const struct fy_mark *start = fy_token_start_mark(t), *end = fy_token_end_mark(t);
    const char *text;

    *out = NULL;
    if (fy_token_scalar_style(t) == FYSS_SINGLE_QUOTED && start != NULL && end != NULL &&
        start->input_pos <= end->input_pos && end->input_pos <= input_len) {
        *out = rdl_yaml_single_quoted(input + start->input_pos, end->input_pos - start->input_pos,
                                      len);
        return *out != NULL ? 0 : RDL_ENOMEM;
    }
    text = fy_token_get_text(t, len);
    if (text == NULL)
        return RDL_EINVAL;
    *out = malloc(*len + 1);
    if (*out == NULL)
        return RDL_ENOMEM;
    memcpy(*out, text, *len);
    (*out)[*len] = '\0';
    return 0;
}

/* ---- typed scalars from text ----------------------------------------------- */

int rdl__yaml_parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0, limit;

    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (*s == '\0')
        return RDL_EINVAL;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s != '\0'; s++) {
        uint64_t d;
        if (*s < '0' || *s > '9')
            return RDL_EINVAL;
        d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10)
            return RDL_EINVAL;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int rdl__yaml_parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return RDL_EINVAL;
    return 0;
}

bool rdl__yaml_is_yaml11_bool(const char *s)
{
    static const char *const words[] = { "yes", "no", "on", "off", "y", "n" };

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (rdl_ascii_ieq(s, strlen(s), words[i], strlen(words[i])))
            return true;
    return false;
}

int rdl__yaml_parse_double(const char *s, double *out)
{
    char *end;
    double d;

    /* strtod would skip leading spaces and take "nan" or "inf". */
    if (!(isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+' || s[0] == '.'))
        return RDL_EINVAL;
    errno = 0;
    d = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(d))
        return RDL_EINVAL;
    *out = d;
    return 0;
}

int rdl__yaml_parse_enum(const char *s, const char *const *choices)
{
    for (int i = 0; choices[i] != NULL; i++)
        if (rdl_ascii_ieq(s, strlen(s), choices[i], strlen(choices[i])))
            return i;
    return -1;
}

/* ---- events ------------------------------------------------------------------ */

int rdl__yaml_events_open(rdl__yaml_t *y)
{
    int rc = rdl_yaml_check_text(y->input, y->input_len, y->err);

    if (rc != 0)
        return rc;
    y->fyp = rdl__yaml_parser_new(y->input, y->input_len, &y->diag);
    if (y->fyp == NULL)
        return rdl_error_set(y->err, RDL_ENOMEM, 0, 0, "", "cannot start the YAML parser");
    return 0;
}

void rdl__yaml_events_close(rdl__yaml_t *y)
{
    if (y->fyp != NULL)
        fy_parser_destroy(y->fyp);
    fy_diag_destroy(y->diag);
    y->fyp = NULL;
    y->diag = NULL;
}

struct fy_event *rdl__yaml_event_next(rdl__yaml_t *y)
{
    struct fy_event *ev = fy_parser_parse(y->fyp);

    if (ev == NULL)
        rdl__yaml_syntax_error(y->diag, y->invalid, y->err);
    return ev;
}

void rdl__yaml_event_free(rdl__yaml_t *y, struct fy_event *ev)
{
    fy_parser_event_free(y->fyp, ev);
}

void rdl__yaml_event_mark(struct fy_event *ev, int *line, int *column)
{
    const struct fy_mark *m = ev != NULL ? fy_event_start_mark(ev) : NULL;

    *line = m != NULL ? m->line + 1 : 0;
    *column = m != NULL ? m->column + 1 : 0;
    if (m == NULL || *column <= 1)
        return;
    /* libfyaml marks aliases and quoted scalars just after their '*' or quote: point at it. */
    if (ev->type == FYET_ALIAS)
        (*column)--;
    else if (ev->type == FYET_SCALAR)
        rdl__yaml_token_mark(ev->scalar.value, line, column);
}

const char *rdl__yaml_event_kind(struct fy_event *ev)
{
    switch (ev->type) {
    case FYET_MAPPING_START:  return "a mapping";
    case FYET_SEQUENCE_START: return "a sequence";
    case FYET_SCALAR:         return "a scalar";
    case FYET_ALIAS:          return "an alias";
    default:                  return "something else";
    }
}

int rdl__yaml_event_fail(rdl__yaml_t *y, struct fy_event *ev, const char *key, const char *fmt, ...)
{
    char msg[sizeof(y->err->msg)];
    int line, column;
    va_list ap;

    rdl__yaml_event_mark(ev, &line, &column);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rdl__yaml_event_free(y, ev);
    return rdl_error_set(y->err, RDL_EINVAL, line, column, key, "%s", msg);
}

int rdl__yaml_event_check_plain(rdl__yaml_t *y, struct fy_event *ev, const char *key)
{
    struct fy_token *anchor = NULL, *tag = NULL;
    const struct fy_mark *m;
    int line, column;

    if (ev->type == FYET_SCALAR) {
        anchor = ev->scalar.anchor;
        tag = ev->scalar.tag;
    } else if (ev->type == FYET_MAPPING_START) {
        anchor = ev->mapping_start.anchor;
        tag = ev->mapping_start.tag;
    } else if (ev->type == FYET_SEQUENCE_START) {
        anchor = ev->sequence_start.anchor;
        tag = ev->sequence_start.tag;
    } else if (ev->type == FYET_ALIAS) {
        return rdl__yaml_event_fail(y, ev, key, "anchors and aliases are not supported in %s",
                                    y->what);
    }
    if (anchor == NULL && tag == NULL)
        return 0;
    rdl__yaml_event_mark(ev, &line, &column);
    m = fy_token_start_mark(anchor != NULL ? anchor : tag);
    if (m != NULL) {
        line = m->line + 1;
        /* an anchor's mark is just after its '&' */
        column = m->column + (anchor != NULL && m->column > 0 ? 0 : 1);
    }
    rdl__yaml_event_free(y, ev);
    if (anchor != NULL)
        return rdl_error_set(y->err, RDL_EINVAL, line, column, key,
                             "anchors and aliases are not supported in %s", y->what);
    return rdl_error_set(y->err, RDL_EINVAL, line, column, key,
                         "tags are not supported in %s; write the plain value", y->what);
}

int rdl__yaml_event_skip(rdl__yaml_t *y)
{
    int depth = 0;

    do {
        struct fy_event *ev = rdl__yaml_event_next(y);
        if (ev == NULL)
            return RDL_EINVAL;
        if (ev->type == FYET_MAPPING_START || ev->type == FYET_SEQUENCE_START)
            depth++;
        else if (ev->type == FYET_MAPPING_END || ev->type == FYET_SEQUENCE_END)
            depth--;
        rdl__yaml_event_free(y, ev);
    } while (depth > 0);
    return 0;
}

bool rdl__yaml_event_is_null(struct fy_event *ev)
{
    return ev->type == FYET_SCALAR && rdl__yaml_token_is_null(ev->scalar.value);
}

char *rdl__yaml_event_text(rdl__yaml_t *y, struct fy_event *ev, const char *key, size_t *len)
{
    char *copy;
    int line, column;
    int rc = rdl__yaml_token_text(ev->scalar.value, y->input, y->input_len, &copy, len);

    if (rc == 0)
        return copy;
    rdl__yaml_event_mark(ev, &line, &column);
    if (rc == RDL_ENOMEM)
        rdl_error_set(y->err, RDL_ENOMEM, line, column, key, "out of memory");
    else
        rdl_error_set(y->err, RDL_EINVAL, line, column, key, "cannot read this value");
    return NULL;
}

/* ---- a document tree ------------------------------------------------------- */

int rdl__yaml_each_document(rdl__yaml_t *y, rdl__yaml_doc_fn fn, void *arg)
{
    struct fy_diag *diag;
    struct fy_parser *fyp;
    struct fy_document *fyd;
    int rc;

    if ((rc = rdl_yaml_check_text(y->input, y->input_len, y->err)) != 0)
        return rc;
    fyp = rdl__yaml_parser_new(y->input, y->input_len, &diag);
    if (fyp == NULL)
        return rdl__yaml_oom(y);
    while (rc == 0 && (fyd = fy_parse_load_document(fyp)) != NULL) {
        rc = fn(y, fy_document_root(fyd), arg);
        fy_parse_document_destroy(fyp, fyd);
    }
    if (rc == 0 && fy_parser_get_stream_error(fyp))
        rc = rdl__yaml_syntax_error(diag, y->invalid, y->err);
    fy_parser_destroy(fyp);
    fy_diag_destroy(diag);
    return rc;
}

bool rdl__yaml_node_mark(struct fy_node *n, int *line, int *col)
{
    void *it = NULL;

    if (!n)
        return false;
    if (fy_node_is_scalar(n))
        return rdl__yaml_token_mark(fy_node_get_scalar_token(n), line, col);
    if (fy_node_is_mapping(n)) {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p && rdl__yaml_node_mark(fy_node_pair_key(p), line, col);
    }
    return rdl__yaml_node_mark(fy_node_sequence_iterate(n, &it), line, col);
}

bool rdl__yaml_mark(struct fy_node *n, int *line, int *col)
{
    for (int depth = 0; n && depth < 8; depth++) {
        if (rdl__yaml_node_mark(n, line, col))
            return true;
        struct fy_node *parent = fy_node_get_parent(n);
        if (parent && fy_node_is_mapping(parent)) {
            void *it = NULL;
            struct fy_node_pair *p;
            while ((p = fy_node_mapping_iterate(parent, &it)) != NULL)
                if (fy_node_pair_value(p) == n)
                    return rdl__yaml_node_mark(fy_node_pair_key(p), line, col);
        }
        n = parent;
    }
    return false;
}

int rdl__yaml_vfail(rdl__yaml_t *y, struct fy_node *at, const char *path, const char *fmt,
                    va_list ap)
{
    char msg[sizeof(y->err->msg)];
    int line = 0, col = 0;

    rdl__yaml_mark(at, &line, &col);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    return rdl_error_set(y->err, RDL_EINVAL, line, col, path, "%s", msg);
}

int rdl__yaml_fail(rdl__yaml_t *y, struct fy_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = rdl__yaml_vfail(y, at, path, fmt, ap);
    va_end(ap);
    return rc;
}

int rdl__yaml_oom(rdl__yaml_t *y)
{
    return rdl_error_set(y->err, RDL_ENOMEM, 0, 0, "", "out of memory");
}

bool rdl__yaml_is_null(struct fy_node *n)
{
    if (!n)
        return true;
    return fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN &&
           rdl__yaml_token_is_null(fy_node_get_scalar_token(n));
}

int rdl__yaml_check_plain(rdl__yaml_t *y, struct fy_node *n, const char *path)
{
    size_t tl;

    if (fy_node_is_alias(n) || fy_node_get_anchor(n))
        return rdl__yaml_fail(y, n, path, "anchors and aliases are not supported in %s", y->what);
    if (fy_node_get_tag(n, &tl))
        return rdl__yaml_fail(y, n, path, "tags are not supported in %s; write the plain value",
                              y->what);
    return 0;
}

bool rdl__yaml_scalar_is(struct fy_node *n, const char *s)
{
    size_t len;
    const char *v = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
    return v && len == strlen(s) && memcmp(v, s, len) == 0;
}

const char *rdl__yaml_string(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t *lenp)
{
    char *text, *copy;
    size_t len = 0;
    int rc;

    if (!n || !fy_node_is_scalar(n) || rdl__yaml_is_null(n)) {
        rdl__yaml_fail(y, n, path, "expected a string");
        return NULL;
    }
    if (rdl__yaml_check_plain(y, n, path))
        return NULL;
    rc = rdl__yaml_token_text(fy_node_get_scalar_token(n), y->input, y->input_len, &text, &len);
    if (rc == RDL_EINVAL) {
        rdl__yaml_fail(y, n, path, "cannot read this value");
        return NULL;
    }
    copy = rc == 0 ? rdl_arena_strndup(y->arena, text, len) : NULL;
    free(text);
    if (!copy) {
        rdl__yaml_oom(y);
        return NULL;
    }
    if (lenp)
        *lenp = len;
    return copy;
}

/* The text of a plain scalar, NUL-terminated into buf; NULL when n is not one or does not fit. */
static const char *plain_text(struct fy_node *n, char *buf, size_t buflen)
{
    size_t len = 0;
    const char *s = n && fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN
                    ? fy_node_get_scalar(n, &len) : NULL;
    if (!s || len == 0 || len >= buflen)
        return NULL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return strlen(buf) == len ? buf : NULL;
}

int rdl__yaml_int(rdl__yaml_t *y, struct fy_node *n, const char *path, long long lo,
                  long long hi, long long *out)
{
    size_t len = 0;
    const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
    bool digits = s && len > 0 && len < 19 && fy_node_get_style(n) == FYNS_PLAIN;
    for (size_t i = 0; digits && i < len; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    if (!digits)
        return rdl__yaml_fail(y, n, path, "expected an integer from %lld to %lld", lo, hi);
    long long v = 0;                       /* the scalar is not NUL-terminated */
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (s[i] - '0');
    if (v < lo || v > hi)
        return rdl__yaml_fail(y, n, path, "expected an integer from %lld to %lld, got %lld", lo,
                              hi, v);
    *out = v;
    return rdl__yaml_check_plain(y, n, path);
}

int rdl__yaml_number(rdl__yaml_t *y, struct fy_node *n, const char *path, double lo, double hi,
                     double *out)
{
    char buf[64];
    const char *s = plain_text(n, buf, sizeof(buf));
    if (s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (*end == '\0' && errno == 0 && v >= lo && v <= hi) {
            *out = v;
            return rdl__yaml_check_plain(y, n, path);
        }
    }
    return rdl__yaml_fail(y, n, path, "expected a number from %g to %g", lo, hi);
}

int rdl__yaml_bool(rdl__yaml_t *y, struct fy_node *n, const char *path, bool *out)
{
    size_t len = 0;
    const char *s = n && fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN
                    ? fy_node_get_scalar(n, &len) : NULL;
    if (s && len == 4 && !memcmp(s, "true", 4)) {
        *out = true;
        return 0;
    }
    if (s && len == 5 && !memcmp(s, "false", 5)) {
        *out = false;
        return 0;
    }
    return rdl__yaml_fail(y, n, path, "expected true or false");
}

int rdl__yaml_duration(rdl__yaml_t *y, struct fy_node *n, const char *path, uint64_t lo_ms,
                       uint64_t hi_ms, uint64_t *out_ms)
{
    const char *s = rdl__yaml_string(y, n, path, NULL);
    uint64_t ms;

    if (!s)
        return y->err->code;
    if (rdl_parse_duration_ms(s, &ms) != 0 || ms < lo_ms || ms > hi_ms)
        return rdl__yaml_fail(y, n, path, "expected a duration from %llums to %llums "
                              "(\"250ms\", \"30s\", \"1m30s\"), got '%.60s'",
                              (unsigned long long)lo_ms, (unsigned long long)hi_ms, s);
    *out_ms = ms;
    return 0;
}

int rdl__yaml_size(rdl__yaml_t *y, struct fy_node *n, const char *path, uint64_t lo, uint64_t hi,
                   uint64_t *out)
{
    const char *s = rdl__yaml_string(y, n, path, NULL);
    uint64_t b;

    if (!s)
        return y->err->code;
    if (rdl_parse_size(s, &b) != 0 || b < lo || b > hi)
        return rdl__yaml_fail(y, n, path, "expected a size from %llu to %llu bytes "
                              "(\"512\", \"16KiB\", \"1MiB\"), got '%.60s'",
                              (unsigned long long)lo, (unsigned long long)hi, s);
    *out = b;
    return 0;
}

int rdl__yaml_enum(rdl__yaml_t *y, struct fy_node *n, const char *path,
                   const char *const *choices, int *out)
{
    const char *s = rdl__yaml_string(y, n, path, NULL);
    char list[200];
    size_t used = 0;

    if (!s)
        return y->err->code;
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    list[0] = '\0';
    for (int i = 0; choices[i] != NULL && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", choices[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    return rdl__yaml_fail(y, n, path, "expected one of %s, got '%.60s'", list, s);
}

bool rdl__yaml_key_is(struct fy_node_pair *p, const char *k)
{
    return rdl__yaml_scalar_is(fy_node_pair_key(p), k);
}

struct fy_node *rdl__yaml_get(struct fy_node *map, const char *k)
{
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL)
        if (rdl__yaml_key_is(p, k))
            return fy_node_pair_value(p);
    return NULL;
}

static bool in_list(struct fy_node_pair *p, const char *const *list)
{
    for (; list && *list; list++)
        if (rdl__yaml_key_is(p, *list))
            return true;
    return false;
}

int rdl__yaml_check_map(rdl__yaml_t *y, struct fy_node *n, const char *path, const char *what,
                        const char *const *allowed, const char *const *ignored)
{
    if (!n || !fy_node_is_mapping(n))
        return rdl__yaml_fail(y, n, path, "expected %s (a mapping)", what);
    if (rdl__yaml_check_plain(y, n, path))
        return y->err->code;
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        if (!k || !fy_node_is_scalar(k))
            return rdl__yaml_fail(y, k ? k : n, path, "keys must be plain strings");
        if (in_list(p, allowed) || in_list(p, ignored))
            continue;
        size_t len;
        const char *s = fy_node_get_scalar(k, &len);
        return rdl__yaml_fail(y, k, path, "unknown field '%.*s' in %s",
                              (int)(len > 60 ? 60 : len), s ? s : "", what);
    }
    return 0;
}

int rdl__yaml_sequence(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t *count)
{
    if (!n || !fy_node_is_sequence(n))
        return rdl__yaml_fail(y, n, path, "expected a list");
    *count = (size_t)fy_node_sequence_item_count(n);
    return rdl__yaml_check_plain(y, n, path);
}

int rdl__yaml_list(rdl__yaml_t *y, struct fy_node *n, const char *path, size_t size,
                   const char *empty, void *out, size_t *count, rdl__yaml_item_fn fn, void *arg)
{
    if (rdl__yaml_sequence(y, n, path, count))
        return y->err->code;
    if (*count == 0 && empty)
        return rdl__yaml_fail(y, n, path, "%s", empty);
    size_t bytes = *count * size;
    char *v = rdl_arena_alloc(y->arena, bytes ? bytes : 1);
    if (!v)
        return rdl__yaml_oom(y);
    memset(v, 0, bytes ? bytes : 1);
    memcpy(out, &v, sizeof(v));
    void *it = NULL;
    struct fy_node *e;
    char p[RDL_YAML_PATH_MAX];
    for (size_t i = 0; (e = fy_node_sequence_iterate(n, &it)) != NULL; i++) {
        rdl__yaml_path_item(p, path, i);
        if (fn(y, e, p, i, v + i * size, arg))
            return y->err->code;
    }
    return 0;
}

static int string_item(rdl__yaml_t *y, struct fy_node *e, const char *path, size_t i, void *elem,
                       void *arg)
{
    const char **v = elem;
    (void)i;
    (void)arg;
    *v = rdl__yaml_string(y, e, path, NULL);
    return *v ? 0 : y->err->code;
}

int rdl__yaml_string_list(rdl__yaml_t *y, struct fy_node *n, const char *path, const char ***out,
                          size_t *count)
{
    return rdl__yaml_list(y, n, path, sizeof(char *), NULL, out, count, string_item, NULL);
}

void rdl__yaml_path_join(char *out, const char *path, const char *sep, const char *text,
                         size_t tlen)
{
    size_t n = strlen(path), sl = strlen(sep);
    if (out != path)
        memmove(out, path, n < RDL_YAML_PATH_MAX ? n : RDL_YAML_PATH_MAX - 1);
    n = n < RDL_YAML_PATH_MAX ? n : RDL_YAML_PATH_MAX - 1;
    if (n + sl < RDL_YAML_PATH_MAX) {
        memcpy(out + n, sep, sl);
        n += sl;
    }
    size_t room = RDL_YAML_PATH_MAX - 1 - n;
    tlen = tlen < room ? tlen : room;
    memcpy(out + n, text, tlen);
    out[n + tlen] = '\0';
}

void rdl__yaml_path_sub(char *out, const char *path, const char *field)
{
    rdl__yaml_path_join(out, path, path[0] ? "." : "", field, strlen(field));
}

void rdl__yaml_path_item(char *out, const char *path, size_t i)
{
    char idx[32];
    int n = snprintf(idx, sizeof(idx), "[%zu]", i);
    rdl__yaml_path_join(out, path, "", idx, n > 0 ? (size_t)n : 0);
}
