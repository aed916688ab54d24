/*
 * common.h: what every public header of libredline needs before its first
 * declaration. The library is built with -fvisibility=hidden, so a function or
 * variable is part of the API (exported by libredline.so) only when its
 * declaration carries RDL_EXTERN; everything else stays inside the library.
 */
#ifndef REDLINE_COMMON_H
#define REDLINE_COMMON_H

#define RDL_EXTERN __attribute__((visibility("default")))

#endif
