/*
 * internal.h: what upstreams.c and client.c share inside the client module.
 */
#ifndef REDLINE_CLIENT_INTERNAL_H
#define REDLINE_CLIENT_INTERNAL_H

#include "redline/client.h"

typedef struct cl_injector {
    rdl_inject_fn fn;
    void *arg;
} cl_injector_t;

/* The registered injectors, in order. */
const cl_injector_t *rdl__client_injectors(const rdl_upstreams_t *ups, int *n);

#endif
