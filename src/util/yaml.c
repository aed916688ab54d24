/*
 * yaml.c: checks and decoding that every YAML reader here (configuration,
 * routing rules) needs before and around libfyaml 0.7.12, whose own handling
 * of these cases is faulty (see each function).
 */
#include <stdbool.h>
#include <stdint.h>
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
