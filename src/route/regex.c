/*
 * regex.c: Istio's StringMatch regex, which Envoy evaluates with RE2 as a
 * full match, run here on PCRE2 (with JIT) because RE2 is C++ and not in the
 * project's C dependency set.
 *
 * The two engines agree on the common syntax but PCRE2 accepts much that RE2
 * refuses (backreferences, lookaround, atomic groups, possessive quantifiers,
 * recursion, conditionals, \C, verbs, ...). A rule that loads here and is
 * refused by istiod, or that matches differently in the mesh, is exactly the
 * disagreement this module exists to prevent, so the pattern is first walked
 * by a checker that accepts RE2's syntax only, then compiled with options that
 * give RE2's meaning: anchored at both ends, '$' only at the very end, UTF-8
 * with invalid subjects tolerated (headers are bytes), ASCII \d \w \s.
 * Backtracking is bounded so that a hostile header cannot stall an I/O thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "route/route_internal.h"

#define RE2_MAX_REPEAT 1000          /* RE2 refuses {n,m} beyond this */
#define MATCH_LIMIT 100000           /* PCRE2 backtracking budget per match */

static int bad(char *why, size_t whylen, size_t *at, size_t pos, const char *msg)
{
    snprintf(why, whylen, "%s", msg);
    *at = pos;
    return -1;
}

static bool is_punct(char c)
{
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

/* Why an escape letter is refused, or NULL when RE2 reads it as PCRE2 does. */
static const char *escape_refusal(char c, bool in_class)
{
    if (c >= '1' && c <= '9')
        return "backreferences (\\1 ...) are not RE2 syntax";
    switch (c) {
    case 'd': case 'D': case 's': case 'S': case 'w': case 'W':
    case 'p': case 'P': case 'x': case 'a': case 'f': case 't': case 'n': case 'r': case '0':
        return NULL;
    case 'b': case 'B': case 'A': case 'z': case 'Q': case 'E':
        return in_class ? "this escape is not allowed inside a character class in RE2" : NULL;
    case 'C': return "\\C (one code unit) is not RE2 syntax";
    case 'k': case 'g': return "backreferences (\\k, \\g) are not RE2 syntax";
    case 'K': return "\\K (reset match start) is not RE2 syntax";
    case 'G': return "\\G is not RE2 syntax";
    case 'Z': return "\\Z is not RE2 syntax; use \\z or $";
    case 'R': case 'X': case 'h': case 'H': case 'v': case 'V': case 'N':
        return "this escape is not RE2 syntax (or means something else in RE2)";
    default:
        return "unknown escape in RE2 syntax";
    }
}

/* Checks the escape at p[i] == '\\'; *next receives the index after it. */
static int check_escape(const char *p, size_t n, size_t i, bool in_class, size_t *next,
                        char *why, size_t whylen, size_t *at)
{
    if (i + 1 >= n)
        return bad(why, whylen, at, i, "trailing backslash");
    char c = p[i + 1];
    *next = i + 2;
    if (is_punct(c))
        return 0;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
        return bad(why, whylen, at, i, "only punctuation may be escaped in RE2");
    const char *no = escape_refusal(c, in_class);
    if (no)
        return bad(why, whylen, at, i, no);
    if (c == 'Q' && !in_class) {           /* literal text up to \E */
        const char *e = NULL;
        for (size_t j = i + 2; j + 1 < n; j++)
            if (p[j] == '\\' && p[j + 1] == 'E') {
                e = p + j;
                break;
            }
        *next = e ? (size_t)(e - p) + 2 : n;
    }
    return 0;
}

/* A character class from p[i] == '['; *next is the index after its ']'. */
static int check_class(const char *p, size_t n, size_t i, size_t *next, char *why, size_t whylen,
                       size_t *at)
{
    size_t j = i + 1;
    if (j < n && p[j] == '^')
        j++;
    if (j < n && p[j] == ']')              /* a leading ']' is literal */
        j++;
    while (j < n && p[j] != ']') {
        if (p[j] == '\\') {
            if (check_escape(p, n, j, true, &j, why, whylen, at))
                return -1;
        } else if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') {
            const char *e = strstr(p + j + 2, ":]");
            if (!e || (size_t)(e - p) >= n)
                return bad(why, whylen, at, j, "unterminated [:class:]");
            j = (size_t)(e - p) + 2;
        } else if (p[j] == '[' && j + 1 < n && (p[j + 1] == '=' || p[j + 1] == '.')) {
            return bad(why, whylen, at, j, "collating elements are not RE2 syntax");
        } else {
            j++;
        }
    }
    if (j >= n)
        return bad(why, whylen, at, i, "missing ] at the end of a character class");
    *next = j + 1;
    return 0;
}

static bool is_flag(char c)
{
    return c == 'i' || c == 'm' || c == 's' || c == 'U' || c == '-';
}

/*
 * A group opening "(?" at p[i]; *next is the index after the opening, and
 * *closed is set when it was a whole flag group such as "(?i)".
 */
static int check_group(const char *p, size_t n, size_t i, size_t *next, bool *closed, char *why,
                       size_t whylen, size_t *at)
{
    size_t j = i + 2;
    char c = j < n ? p[j] : '\0';
    if (c == ':') {
        *next = j + 1;
        return 0;
    }
    if (c == 'P' && j + 1 < n && p[j + 1] == '<') {
        *next = j + 2;
        return 0;
    }
    if (c == '<' && j + 1 < n && p[j + 1] != '=' && p[j + 1] != '!') {
        *next = j + 1;                     /* (?<name>, accepted by RE2 since 2023 */
        return 0;
    }
    if (c == '=' || c == '!' || c == '<')
        return bad(why, whylen, at, i, "lookahead and lookbehind are not RE2 syntax");
    if (c == '>')
        return bad(why, whylen, at, i, "atomic groups (?>...) are not RE2 syntax");
    if (c == '(')
        return bad(why, whylen, at, i, "conditionals (?(...)...) are not RE2 syntax");
    if (c == 'R' || c == '&' || (c >= '0' && c <= '9') ||
        ((c == '+' || c == '-') && j + 1 < n && p[j + 1] >= '0' && p[j + 1] <= '9') ||
        (c == 'P' && j + 1 < n && (p[j + 1] == '>' || p[j + 1] == '=')))
        return bad(why, whylen, at, i, "recursion and backreferences are not RE2 syntax");
    if (c == '#')
        return bad(why, whylen, at, i, "comments (?#...) are not RE2 syntax");
    if (c == 'C')
        return bad(why, whylen, at, i, "callouts are not RE2 syntax");
    if (c == '|')
        return bad(why, whylen, at, i, "branch reset groups are not RE2 syntax");
    size_t k = j;
    while (k < n && is_flag(p[k]))
        k++;
    if (k > j && k < n && (p[k] == ')' || p[k] == ':')) {
        *closed = p[k] == ')';             /* (?i) sets flags and opens nothing */
        *next = k + 1;
        return 0;
    }
    return bad(why, whylen, at, i, "unknown group or flag: RE2 accepts (?:, (?P<name>, (?<name> "
               "and the flags i, m, s, U");
}

/* A {n}, {n,} or {n,m} repetition at p[i]: its end, or 0 when it is a literal '{'. */
static size_t repetition_end(const char *p, size_t n, size_t i, long *lo, long *hi)
{
    size_t j = i + 1;
    long a = 0, b = -1;
    if (j >= n || p[j] < '0' || p[j] > '9')
        return 0;
    while (j < n && p[j] >= '0' && p[j] <= '9' && a <= 100000)
        a = a * 10 + (p[j++] - '0');
    if (j < n && p[j] == ',') {
        j++;
        if (j < n && p[j] >= '0' && p[j] <= '9') {
            b = 0;
            while (j < n && p[j] >= '0' && p[j] <= '9' && b <= 100000)
                b = b * 10 + (p[j++] - '0');
        }
    } else {
        b = a;
    }
    if (j >= n || p[j] != '}')
        return 0;
    *lo = a;
    *hi = b;
    return j + 1;
}

int rdl__route_re2_check(const char *p, size_t n, char *why, size_t whylen, size_t *at)
{
    size_t i = 0;
    int depth = 0;
    while (i < n) {
        char c = p[i];
        size_t next = i + 1;
        if (c == '\\') {
            if (check_escape(p, n, i, false, &next, why, whylen, at))
                return -1;
        } else if (c == '[') {
            if (check_class(p, n, i, &next, why, whylen, at))
                return -1;
        } else if (c == '(') {
            if (i + 1 < n && p[i + 1] == '*')
                return bad(why, whylen, at, i, "verbs and start options (*...) are not RE2 syntax");
            bool closed = false;
            if (i + 1 < n && p[i + 1] == '?' &&
                check_group(p, n, i, &next, &closed, why, whylen, at))
                return -1;
            depth += closed ? 0 : 1;
        } else if (c == ')') {
            if (--depth < 0)
                return bad(why, whylen, at, i, "unmatched )");
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (c == '{') {
                long lo, hi;
                size_t end = repetition_end(p, n, i, &lo, &hi);
                if (end == 0) {
                    i = next;              /* a literal brace */
                    continue;
                }
                if (lo > RE2_MAX_REPEAT || hi > RE2_MAX_REPEAT)
                    return bad(why, whylen, at, i, "RE2 allows at most 1000 repetitions");
                if (hi >= 0 && hi < lo)
                    return bad(why, whylen, at, i, "bad repetition {n,m} with m < n");
                next = end;
            }
            if (next < n && p[next] == '?')
                next++;                    /* lazy */
            else if (next < n && p[next] == '+')
                return bad(why, whylen, at, next, "possessive quantifiers are not RE2 syntax");
            if (next < n && (p[next] == '*' || p[next] == '+' || p[next] == '?'))
                return bad(why, whylen, at, next, "bad repetition operator: RE2 refuses ** and the like");
        }
        i = next;
    }
    if (depth != 0)
        return bad(why, whylen, at, n, "missing ) at the end of the pattern");
    return 0;
}

static void set_first(route_re_filter_t *f, unsigned c)
{
    f->first[c >> 3] |= (uint8_t)(1u << (c & 7));
}

/* Case-insensitive flags make PCRE2's first-unit data incomplete for us: no first filter. */
static bool caseless(const char *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] != '(' || p[i + 1] != '?')
            continue;
        for (size_t j = i + 2; j < n && (is_flag(p[j])); j++)
            if (p[j] == 'i')
                return true;
    }
    return false;
}

/*
 * The filter, from PCRE2's own analysis of the pattern compiled unanchored
 * (the anchored compile skips the start-of-match study): a match of the full
 * pattern at offset 0 starts with one of the bytes any match can start with.
 */
static void make_filter(const char *pattern, size_t len, pcre2_code *full, route_re_filter_t *f)
{
    memset(f, 0, sizeof(*f));
    uint32_t minlen = 0, type = 0;
    pcre2_pattern_info(full, PCRE2_INFO_MINLENGTH, &minlen);
    f->minlen = minlen;
    if (minlen == 0 || caseless(pattern, len))
        return;
    int e;
    PCRE2_SIZE off;
    pcre2_code *free_start = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF |
                                           PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &e, &off, NULL);
    if (!free_start)
        return;
    const uint8_t *bitmap = NULL;
    uint32_t unit = 0;
    pcre2_pattern_info(free_start, PCRE2_INFO_FIRSTCODETYPE, &type);
    if (type == 1 && pcre2_pattern_info(free_start, PCRE2_INFO_FIRSTCODEUNIT, &unit) == 0 && unit < 256) {
        /* PCRE2 merges first units that differ only in ASCII case ("a|Ad" reports 'A')
         * without saying so: admit both cases. */
        set_first(f, unit);
        if ((unit | 0x20) >= 'a' && (unit | 0x20) <= 'z')
            set_first(f, unit ^ 0x20);
        f->has_first = true;
    } else if (type == 0 && pcre2_pattern_info(free_start, PCRE2_INFO_FIRSTBITMAP, &bitmap) == 0 &&
               bitmap) {
        memcpy(f->first, bitmap, sizeof(f->first));
        f->has_first = true;
    }
    pcre2_code_free(free_start);
}

pcre2_code *rdl__route_re_compile(const char *pattern, size_t len, route_re_filter_t *filter,
                             char *why, size_t whylen, size_t *at)
{
    if (rdl__route_re2_check(pattern, len, why, whylen, at))
        return NULL;
    int errcode;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY |
                    PCRE2_NEVER_BACKSLASH_C | PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &errcode, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        snprintf(why, whylen, "invalid regex: %s", (const char *)msg);
        *at = off;
        return NULL;
    }
    make_filter(pattern, len, re, filter);
    filter->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;   /* else the interpreter */
    return re;
}

/*
 * Match data is per thread (every match writes it): found through a
 * thread-local pointer on the fast path, freed at thread exit by a key.
 */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pcre2_match_context *md_ctx;
static _Thread_local pcre2_match_data *md_local;

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void md_init(void)
{
    pthread_key_create(&md_key, md_free);
    md_ctx = pcre2_match_context_create(NULL);
    if (md_ctx) {
        pcre2_set_match_limit(md_ctx, MATCH_LIMIT);
        pcre2_set_depth_limit(md_ctx, MATCH_LIMIT);
    }
}

static pcre2_match_data *match_data(void)
{
    pthread_once(&md_once, md_init);
    md_local = pcre2_match_data_create(1, NULL);
    if (md_local)
        pthread_setspecific(md_key, md_local);
    return md_local;
}

bool rdl__route_re_match(const pcre2_code *re, const route_re_filter_t *f, const char *s, size_t len)
{
    if (len < f->minlen)
        return false;
    if (f->has_first && len > 0 &&
        !(f->first[(unsigned char)s[0] >> 3] & (1u << ((unsigned char)s[0] & 7))))
        return false;
    pcre2_match_data *md = md_local ? md_local : match_data();
    if (!md)
        return false;
    int rc = f->jit ? pcre2_jit_match(re, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, md, md_ctx)
                    : pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, md, md_ctx);
    return rc >= 0;
}
