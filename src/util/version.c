/*
 * version.c: rdl_version(), the version compiled into the library, for a
 * program that wants to know which libredline it was linked or loaded with.
 */
#include "redline/version.h"

const char *rdl_version(void)
{
    return RDL_VERSION_STRING;
}
