/*
 * expo_parse.h: a strict reader of Prometheus text 0.0.4 and OpenMetrics 1.0
 * text, for tests only (unit test and fuzz target). It exists so the tests
 * can check our exposition against the grammar (reference/prometheus-exposition.md)
 * rather than against our own writer: every line well formed, escapes only
 * \\ \" \n, UTF-8 throughout, HELP/TYPE at most once and before the samples,
 * families contiguous, no duplicate series, histogram buckets cumulative with
 * +Inf equal to _count, OpenMetrics counters as <family>_total and "# EOF"
 * last. It keeps every sample with its unescaped labels so tests can compare
 * values round trip.
 */
#ifndef REDLINE_TEST_EXPO_PARSE_H
#define REDLINE_TEST_EXPO_PARSE_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XP_MAX_LABELS 18

typedef struct xp_sample {
    char *name;
    char *family;               /* the family it belongs to */
    int nlabels;
    char *lname[XP_MAX_LABELS];
    char *lvalue[XP_MAX_LABELS];
    double value;
} xp_sample_t;

typedef struct xp_family {
    char *name;
    char type[16];
    char *help;                 /* unescaped; NULL when none */
} xp_family_t;

typedef struct xp_doc {
    xp_sample_t *samples;
    int nsamples;
    xp_family_t *families;
    int nfamilies;
    char err[256];
    int err_line;
} xp_doc_t;

static inline void xp_free(xp_doc_t *d)
{
    for (int i = 0; i < d->nsamples; i++) {
        xp_sample_t *s = &d->samples[i];
        free(s->name);
        free(s->family);
        for (int k = 0; k < s->nlabels; k++) {
            free(s->lname[k]);
            free(s->lvalue[k]);
        }
    }
    for (int i = 0; i < d->nfamilies; i++) {
        free(d->families[i].name);
        free(d->families[i].help);
    }
    free(d->samples);
    free(d->families);
    memset(d, 0, sizeof(*d));
}

static inline bool xp_utf8_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

static inline bool xp_name_char(char c, bool first, bool metric)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

/* Reads a name at *p; returns a copy or NULL. */
static inline char *xp_name(const char **p, const char *e, bool metric)
{
    const char *s = *p;
    while (*p < e && xp_name_char(**p, *p == s, metric))
        (*p)++;
    if (*p == s)
        return NULL;
    return strndup(s, (size_t)(*p - s));
}

/* Unescapes \\ \" \n (and, for P HELP, only \\ \n) up to the closing quote or end. */
static inline char *xp_unescape(const char **p, const char *e, bool quoted, bool quote_esc)
{
    char *out = malloc((size_t)(e - *p) + 1);
    size_t n = 0;
    while (*p < e) {
        char c = *(*p)++;
        if (quoted && c == '"') {
            out[n] = '\0';
            return out;
        }
        if (c == '\\') {
            if (*p >= e) break;
            char x = *(*p)++;
            if (x == '\\') out[n++] = '\\';
            else if (x == 'n') out[n++] = '\n';
            else if (x == '"' && quote_esc) out[n++] = '"';
            else if (!quoted) { out[n++] = '\\'; out[n++] = x; }   /* P HELP: kept literally */
            else break;
            continue;
        }
        out[n++] = c;
    }
    if (quoted) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

static inline bool xp_number(const char *s, const char *e, double *v)
{
    char tmp[64];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof(tmp)) return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!strcmp(tmp, "NaN")) { *v = NAN; return true; }
    if (!strcmp(tmp, "+Inf")) { *v = INFINITY; return true; }
    if (!strcmp(tmp, "-Inf")) { *v = -INFINITY; return true; }
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", tmp[i])) return false;
    char *end;
    *v = strtod(tmp, &end);
    return *end == '\0';
}

static inline int xp_fail(xp_doc_t *d, int line, const char *msg)
{
    snprintf(d->err, sizeof(d->err), "line %d: %s", line, msg);
    d->err_line = line;
    return -1;
}

static inline xp_family_t *xp_family(xp_doc_t *d, const char *name)
{
    for (int i = 0; i < d->nfamilies; i++)
        if (!strcmp(d->families[i].name, name)) return &d->families[i];
    return NULL;
}

static inline bool xp_has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n > k && !strcmp(s + n - k, suf);
}

/* The family a sample name belongs to, given the current family. */
static inline bool xp_belongs(const xp_family_t *f, const char *sample, bool om)
{
    size_t n = strlen(f->name);
    if (strncmp(sample, f->name, n) != 0) return false;
    const char *suf = sample + n;
    if (!strcmp(f->type, "counter")) return om ? !strcmp(suf, "_total") : !*suf;
    if (!strcmp(f->type, "histogram"))
        return !strcmp(suf, "_bucket") || !strcmp(suf, "_sum") || !strcmp(suf, "_count");
    return !*suf;
}

static inline bool xp_same_series(const xp_sample_t *a, const xp_sample_t *b)
{
    if (strcmp(a->name, b->name) || a->nlabels != b->nlabels) return false;
    for (int i = 0; i < a->nlabels; i++) {
        bool found = false;
        for (int k = 0; k < b->nlabels && !found; k++)
            found = !strcmp(a->lname[i], b->lname[k]) && !strcmp(a->lvalue[i], b->lvalue[k]);
        if (!found) return false;
    }
    return true;
}

static inline const char *xp_label(const xp_sample_t *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (!strcmp(s->lname[i], name)) return s->lvalue[i];
    return NULL;
}

/* Histogram checks for every series of family f: cumulative buckets, +Inf == _count. */
static inline int xp_check_histograms(xp_doc_t *d)
{
    for (int i = 0; i < d->nsamples; i++) {
        xp_sample_t *c = &d->samples[i];
        if (!xp_has_suffix(c->name, "_count")) continue;
        xp_family_t *f = xp_family(d, c->family);
        if (!f || strcmp(f->type, "histogram")) continue;
        double prev_le = -INFINITY, prev = 0;
        bool inf = false;
        for (int k = 0; k < d->nsamples; k++) {
            xp_sample_t *b = &d->samples[k];
            if (strcmp(b->family, c->family) || !xp_has_suffix(b->name, "_bucket")) continue;
            if (b->nlabels != c->nlabels + 1) continue;
            bool same = true;
            for (int j = 0; j < c->nlabels && same; j++) {
                const char *v = xp_label(b, c->lname[j]);
                same = v && !strcmp(v, c->lvalue[j]);
            }
            if (!same) continue;
            double le;
            const char *les = xp_label(b, "le");
            if (!les || !xp_number(les, les + strlen(les), &le) || isnan(le))
                return xp_fail(d, 0, "bucket without a numeric le");
            if (le <= prev_le) return xp_fail(d, 0, "buckets not in increasing le order");
            if (b->value < prev) return xp_fail(d, 0, "buckets not cumulative");
            prev_le = le;
            prev = b->value;
            if (isinf(le)) {
                inf = true;
                if (b->value != c->value) return xp_fail(d, 0, "+Inf bucket differs from _count");
            }
        }
        if (!inf) return xp_fail(d, 0, "histogram without a +Inf bucket");
    }
    return 0;
}

/* Parses text of len bytes; om selects OpenMetrics rules. 0, or -1 with d->err. */
static inline int xp_parse(const char *text, size_t len, bool om, xp_doc_t *d)
{
    memset(d, 0, sizeof(*d));
    if (!xp_utf8_ok((const unsigned char *)text, len)) return xp_fail(d, 0, "not UTF-8");
    if (len && text[len - 1] != '\n') return xp_fail(d, 0, "last line does not end with a newline");
    const char *p = text, *end = text + len;
    int line = 0, cur = -1;     /* cur: index of the family samples go to */
    bool eof = false;
    int rc = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl;
        line++;
        if (eof) { rc = xp_fail(d, line, "text after # EOF"); break; }
        if (e == p) {
            if (om) { rc = xp_fail(d, line, "empty line"); break; }
            p = nl + 1;
            continue;
        }
        if (*p == '#') {
            if (om && e - p == 5 && !memcmp(p, "# EOF", 5)) { eof = true; p = nl + 1; continue; }
            bool help = e - p > 7 && !memcmp(p, "# HELP ", 7);
            bool type = e - p > 7 && !memcmp(p, "# TYPE ", 7);
            if (!help && !type) {
                if (om) { rc = xp_fail(d, line, "comment line in OpenMetrics"); break; }
                p = nl + 1;
                continue;
            }
            const char *q = p + 7;
            char *name = xp_name(&q, e, true);
            if (!name || (q < e && *q != ' ') || (type && q >= e)) {
                free(name);
                rc = xp_fail(d, line, "bad metadata line");
                break;
            }
            if (q < e) q++;
            xp_family_t *f = xp_family(d, name);
            if (f && (cur < 0 || strcmp(d->families[cur].name, name))) {
                free(name);
                rc = xp_fail(d, line, "metadata for a family seen before");
                break;
            }
            if (!f) {
                d->families = realloc(d->families, sizeof(*f) * (size_t)(d->nfamilies + 1));
                f = &d->families[d->nfamilies];
                memset(f, 0, sizeof(*f));
                f->name = name;
                strcpy(f->type, "untyped");
                cur = d->nfamilies++;
            } else {
                free(name);
            }
            if (help) {
                if (f->help) { rc = xp_fail(d, line, "second HELP"); break; }
                f->help = xp_unescape(&q, e, false, om);
            } else {
                size_t n = (size_t)(e - q);
                if (n >= sizeof(f->type)) { rc = xp_fail(d, line, "bad type"); break; }
                char t[16];
                memcpy(t, q, n);
                t[n] = '\0';
                if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") &&
                    strcmp(t, "summary") && strcmp(t, om ? "unknown" : "untyped")) {
                    rc = xp_fail(d, line, "unknown type");
                    break;
                }
                if (om && f->help && strcmp(f->type, "untyped")) { rc = xp_fail(d, line, "second TYPE"); break; }
                for (int i = 0; i < d->nsamples; i++)
                    if (!strcmp(d->samples[i].family, f->name)) { rc = xp_fail(d, line, "TYPE after samples"); break; }
                if (rc) break;
                strcpy(f->type, t);
            }
            p = nl + 1;
            continue;
        }
        /* a sample */
        xp_sample_t s;
        memset(&s, 0, sizeof(s));
        const char *q = p;
        s.name = xp_name(&q, e, true);
        if (!s.name) { rc = xp_fail(d, line, "sample without a name"); break; }
        if (q < e && *q == '{') {
            q++;
            while (q < e && *q != '}') {
                if (s.nlabels == XP_MAX_LABELS) { rc = -1; break; }
                char *ln = xp_name(&q, e, false);
                if (!ln || q >= e || *q != '=' || q + 1 >= e || q[1] != '"') { free(ln); rc = -1; break; }
                q += 2;
                char *lv = xp_unescape(&q, e, true, true);
                if (!lv) { free(ln); rc = -1; break; }
                for (int k = 0; k < s.nlabels; k++)
                    if (!strcmp(s.lname[k], ln)) rc = -1;
                s.lname[s.nlabels] = ln;
                s.lvalue[s.nlabels++] = lv;
                if (rc) break;
                if (q < e && *q == ',') q++;
                else if (q < e && *q != '}') { rc = -1; break; }
            }
            if (rc || q >= e) {
                d->samples = realloc(d->samples, sizeof(s) * (size_t)(d->nsamples + 1));
                s.family = strdup("");
                d->samples[d->nsamples++] = s;
                rc = xp_fail(d, line, "bad label set");
                break;
            }
            q++;
        }
        const char *vs = q + 1;
        const char *ve = memchr(vs, ' ', (size_t)(e - vs));
        if (q >= e || *q != ' ' || !xp_number(vs, ve ? ve : e, &s.value) ||
            (ve && !om) /* we never emit timestamps */) {
            s.family = strdup("");
            d->samples = realloc(d->samples, sizeof(s) * (size_t)(d->nsamples + 1));
            d->samples[d->nsamples++] = s;
            rc = xp_fail(d, line, "bad value");
            break;
        }
        /* which family: the current one if the name fits, else an untyped one of its own */
        if (cur >= 0 && xp_belongs(&d->families[cur], s.name, om)) {
            s.family = strdup(d->families[cur].name);
        } else {
            if (om) { s.family = strdup(""); rc = -1; }
            else if (xp_family(d, s.name)) { s.family = strdup(""); rc = -1; }
            else {
                d->families = realloc(d->families, sizeof(xp_family_t) * (size_t)(d->nfamilies + 1));
                xp_family_t *f = &d->families[d->nfamilies];
                memset(f, 0, sizeof(*f));
                f->name = strdup(s.name);
                strcpy(f->type, "untyped");
                cur = d->nfamilies++;
                s.family = strdup(s.name);
            }
        }
        d->samples = realloc(d->samples, sizeof(s) * (size_t)(d->nsamples + 1));
        d->samples[d->nsamples++] = s;
        if (rc) { rc = xp_fail(d, line, "sample outside its family's group"); break; }
        if (om && xp_has_suffix(s.name, "_sum") && !strcmp(xp_family(d, s.family)->type, "histogram") &&
            !(s.value >= 0)) { rc = xp_fail(d, line, "OpenMetrics histogram _sum negative or NaN"); break; }
        for (int i = 0; i + 1 < d->nsamples; i++)
            if (xp_same_series(&d->samples[i], &s)) { rc = xp_fail(d, line, "duplicate series"); break; }
        if (rc) break;
        p = nl + 1;
    }
    if (!rc && om && !eof) rc = xp_fail(d, line, "no # EOF");
    if (!rc) rc = xp_check_histograms(d);
    return rc;
}

/* The value of the sample with that name and labels ("k1","v1",... NULL), or NAN if absent. */
static inline double xp_value(const xp_doc_t *d, const char *name, const char *const *kv)
{
    for (int i = 0; i < d->nsamples; i++) {
        const xp_sample_t *s = &d->samples[i];
        if (strcmp(s->name, name)) continue;
        int n = 0;
        bool ok = true;
        for (; kv && kv[2 * n]; n++) {
            const char *v = xp_label(s, kv[2 * n]);
            ok = ok && v && !strcmp(v, kv[2 * n + 1]);
        }
        if (ok && n == s->nlabels) return s->value;
    }
    return NAN;
}

#endif
