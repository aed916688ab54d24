/*
 * method.c: the one table of HTTP request methods (RFC 9110 §9 and PATCH).
 *
 * The request parser classifies the method once; everything after it (the
 * router, the access log, metrics labels, span attributes, the outbound
 * client's idempotency rule) works with the id and asks this file for the
 * name, so there is a single list of names in the tree.
 */
#include <string.h>
#include "redline/util.h"

static const char *const names[RDL_METHOD_COUNT] = {
    [RDL_METHOD_UNKNOWN] = "",
    [RDL_METHOD_GET] = "GET", [RDL_METHOD_HEAD] = "HEAD", [RDL_METHOD_POST] = "POST",
    [RDL_METHOD_PUT] = "PUT", [RDL_METHOD_DELETE] = "DELETE", [RDL_METHOD_PATCH] = "PATCH",
    [RDL_METHOD_OPTIONS] = "OPTIONS", [RDL_METHOD_TRACE] = "TRACE",
    [RDL_METHOD_CONNECT] = "CONNECT",
};

/* By length first: the parser calls this on every request line. */
rdl_method_t rdl_method_parse(const char *s, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(s, "GET", 3) == 0) return RDL_METHOD_GET;
        if (memcmp(s, "PUT", 3) == 0) return RDL_METHOD_PUT;
        break;
    case 4:
        if (memcmp(s, "POST", 4) == 0) return RDL_METHOD_POST;
        if (memcmp(s, "HEAD", 4) == 0) return RDL_METHOD_HEAD;
        break;
    case 5:
        if (memcmp(s, "PATCH", 5) == 0) return RDL_METHOD_PATCH;
        if (memcmp(s, "TRACE", 5) == 0) return RDL_METHOD_TRACE;
        break;
    case 6:
        if (memcmp(s, "DELETE", 6) == 0) return RDL_METHOD_DELETE;
        break;
    case 7:
        if (memcmp(s, "OPTIONS", 7) == 0) return RDL_METHOD_OPTIONS;
        if (memcmp(s, "CONNECT", 7) == 0) return RDL_METHOD_CONNECT;
        break;
    }
    return RDL_METHOD_UNKNOWN;
}

const char *rdl_method_name(rdl_method_t m)
{
    return m > RDL_METHOD_UNKNOWN && m < RDL_METHOD_COUNT ? names[m] : "";
}

/* RFC 9110 §9.2.2: a repeated request has the effect of one. */
bool rdl_method_idempotent(rdl_method_t m)
{
    return m == RDL_METHOD_GET || m == RDL_METHOD_HEAD || m == RDL_METHOD_PUT ||
           m == RDL_METHOD_DELETE || m == RDL_METHOD_OPTIONS;
}
