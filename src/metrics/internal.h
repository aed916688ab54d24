/*
 * internal.h: the metrics module's private structures, shared by registry.c
 * (cells, slots, families, series), expose.c (the text formats) and
 * process.c (process collector and /debug/vars). Nothing here is public API.
 */
#ifndef REDLINE_METRICS_INTERNAL_H
#define REDLINE_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include "redline/metrics.h"

/*
 * Cells: a series' counts live in cells of 8 bytes. A registry allocates cells
 * in chunks; a chunk holds MX_SLOTS + 1 copies of CHUNK_CELLS cells, one copy
 * per thread slot, so slot s of a cell is CHUNK_CELLS cells after slot s - 1
 * (32 KiB apart: two threads never write the same cache line). Slots
 * 0..MX_SLOTS-1 each belong to one live thread, which writes with a plain
 * relaxed load and store; threads beyond that share slot MX_SLOTS and use
 * atomic read-modify-write. Chunks are anonymous mappings: a slot's pages
 * cost memory only once a thread writes there.
 */
#define MX_SLOTS 64
#define MX_SHARED MX_SLOTS
#define MX_CHUNK_CELLS 4096

typedef _Atomic uint64_t mx_cell_t;

typedef struct mx_chunk {
    struct mx_chunk *next;
    mx_cell_t *cells;           /* (MX_SLOTS + 1) * MX_CHUNK_CELLS */
} mx_chunk_t;

/* One series. rdl_counter_t, rdl_gauge_t and rdl_histogram_t point to one of these. */
typedef struct mx_series {
    mx_cell_t *cells;           /* counter: [int, float bits]; histogram: [buckets..., +Inf, sum bits] */
    _Atomic uint64_t gauge;     /* gauge: value bits */
    const double *bounds;       /* histogram bounds (the family's) */
    uint32_t nb;                /* finite bounds */
    struct rdl_metric *fam;
    char **values;              /* label values (sanitised copies); NULL when unlabelled */
    uint64_t hash;
} mx_series_t;

struct rdl_metric {
    rdl_metric_type_t type;
    char *name;                 /* as registered (a counter's ends in _total) */
    char *om_name;              /* OpenMetrics family name (without _total) */
    char *help;                 /* sanitised UTF-8 */
    char **labels;
    size_t nlabels;
    double *bounds;
    size_t nb;
    size_t max_series;
    rdl_registry_t *reg;
    rdl_metric_fn fn;           /* callback metrics: value read at scrape */
    void *fn_arg;
    /* labelled series: an open-addressing table sized for max_series, never resized */
    _Atomic(mx_series_t *) *table;
    size_t mask;
    mx_series_t **order;        /* creation order; order[0..n) published by n */
    _Atomic size_t n;
    mx_series_t *overflow;      /* labelled: made at registration, exposed once used */
    atomic_bool overflow_used;
    _Atomic uint64_t rejected;
    pthread_mutex_t mu;         /* creating a series */
    _Atomic(struct rdl_metric *) next;
};

typedef struct mx_collector {
    struct mx_collector *next;
    int id;
    rdl_collector_fn fn;
    void *arg;
} mx_collector_t;

struct rdl_registry {
    pthread_mutex_t mu;         /* registration, cell allocation */
    _Atomic(rdl_metric_t *) head;
    rdl_metric_t *tail;
    mx_chunk_t *chunks;
    size_t chunk_used;          /* cells used in chunks (the newest) */
    pthread_mutex_t cmu;        /* collectors and callbacks: held while they run */
    mx_collector_t *collectors;
    int next_id;
};

/* Sums of a cell over every slot that has been used. */
uint64_t rdl__metrics_cell_sum(const mx_cell_t *cell);
double rdl__metrics_cell_sum_f(const mx_cell_t *cell);
/* Series of a family in creation order: 0..*n; the overflow series comes separately. */
mx_series_t *const *rdl__metrics_series_list(const rdl_metric_t *m, size_t *n);

/* Name checks shared with collectors (exposition time). */
bool rdl__metrics_valid_metric_name(const char *s);
bool rdl__metrics_valid_label_name(const char *s);

/* Shortest text that reads back as v (Go's strconv 'g', -1); le adds ".0" when integral. */
void rdl__metrics_put_double(rdl_buf_t *b, double v, bool le_style);

#endif
