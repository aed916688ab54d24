/*
 * arena.c: a bump allocator for memory that dies together (one request's
 * strings and small structs). Allocation is a pointer bump; nothing is freed
 * one by one. No memory is taken until the first allocation, so a request
 * that never uses its arena costs no malloc, and reset keeps one chunk so a
 * reused arena stops touching the heap.
 */
#include <stdlib.h>
#include <string.h>

#include "redline/util.h"

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 4096

struct rdl_arena_chunk {
    rdl_arena_chunk_t *next;
    size_t cap;                 /* bytes usable after the header */
    size_t used;
};

/* Header size rounded up so that the first byte after it is 16-byte aligned. */
#define CHUNK_HDR ((sizeof(rdl_arena_chunk_t) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static unsigned char *chunk_mem(rdl_arena_chunk_t *c)
{
    return (unsigned char *)c + CHUNK_HDR;
}

void rdl_arena_init(rdl_arena_t *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size > 0 ? chunk_size : ARENA_DEFAULT_CHUNK;
}

void rdl_arena_close(rdl_arena_t *a)
{
    rdl_arena_chunk_t *c, *next;

    if (a == NULL)
        return;
    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

/*
 * Keeps the oldest chunk of the standard size (the one a steady workload
 * reuses) and frees the rest: later chunks and one-offs for large allocations.
 */
void rdl_arena_reset(rdl_arena_t *a)
{
    rdl_arena_chunk_t *c, *next, *keep = NULL;

    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        if (c->cap == a->chunk_size) {
            free(keep);
            keep = c;
        } else {
            free(c);
        }
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
}

static rdl_arena_chunk_t *chunk_new(size_t cap)
{
    rdl_arena_chunk_t *c;

    if (cap > SIZE_MAX - CHUNK_HDR)
        return NULL;
    /* aligned_alloc because plain malloc only promises alignof(max_align_t). */
    c = aligned_alloc(ARENA_ALIGN, (CHUNK_HDR + cap + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1));
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

void *rdl_arena_alloc(rdl_arena_t *a, size_t n)
{
    rdl_arena_chunk_t *c = a->head;
    void *p;

    if (n > SIZE_MAX - 2 * ARENA_ALIGN - CHUNK_HDR)
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n == 0)
        n = ARENA_ALIGN;        /* distinct pointers even for empty allocations */
    if (c != NULL && c->cap - c->used >= n) {
        p = chunk_mem(c) + c->used;
        c->used += n;
        return p;
    }
    if (n > a->chunk_size / 4) {
        /*
         * Large: give it a chunk of its own, linked behind the current one so
         * the space left in the current chunk stays usable.
         */
        rdl_arena_chunk_t *big = chunk_new(n);
        if (big == NULL)
            return NULL;
        big->used = n;
        if (c != NULL) {
            big->next = c->next;
            c->next = big;
        } else {
            a->head = big;
        }
        return chunk_mem(big);
    }
    c = chunk_new(a->chunk_size);
    if (c == NULL)
        return NULL;
    c->next = a->head;
    a->head = c;
    c->used = n;
    return chunk_mem(c);
}

char *rdl_arena_strndup(rdl_arena_t *a, const char *s, size_t n)
{
    const char *nul;
    char *p;

    if (s == NULL)
        return NULL;
    nul = memchr(s, '\0', n);
    if (nul != NULL)
        n = (size_t)(nul - s);
    p = rdl_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
