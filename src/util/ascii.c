/*
 * ascii.c: ASCII case-insensitive equality, the compare HTTP header names,
 * methods and config words need. It exists because strcasecmp follows the
 * locale (a service that calls setlocale could fold bytes above 0x7f) and
 * wants NUL-terminated strings, while header names arrive as pointer and
 * length into a request's buffer.
 */
#include "redline/util.h"

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

bool rdl_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return false;
    return true;
}
