/*
 * registry.c: families, series and the cells behind them.
 *
 * It exists to keep the write path of a metric as cheap as a plain add: a
 * thread finds its slot once (thread-local), and every inc/observe after that
 * is a relaxed load and store into a cell only that thread writes. Scrapes sum
 * the slots. Everything that may lock or allocate (registration, the first
 * lookup of a label set) happens once, outside that path.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "metrics/internal.h"

const double rdl_metrics_default_buckets[11] = { .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 };

#define OVERFLOW_METRIC "redline_metrics_rejected_label_sets_total"

/* ---- thread slots ------------------------------------------------------ */

static _Atomic int slot_taken[MX_SLOTS];
static _Atomic int slot_hi;             /* 1 + highest slot ever taken */
static atomic_bool shared_used;
static __thread int tls_slot = -1;
static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

/* A thread ends: its slot goes back (the counts stay in the cells). */
static void slot_release(void *p)
{
    int s = (int)(intptr_t)p - 1;
    if (s >= 0 && s < MX_SLOTS)
        atomic_store_explicit(&slot_taken[s], 0, memory_order_release);
}

static void slot_key_make(void)
{
    pthread_key_create(&slot_key, slot_release);
}

static int slot_acquire(void)
{
    pthread_once(&slot_once, slot_key_make);
    for (int s = 0; s < MX_SLOTS; s++) {
        int expect = 0;
        if (atomic_load_explicit(&slot_taken[s], memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&slot_taken[s], &expect, 1,
                                                    memory_order_acquire, memory_order_relaxed)) {
            pthread_setspecific(slot_key, (void *)(intptr_t)(s + 1));
            int hi = atomic_load(&slot_hi);
            while (hi < s + 1 && !atomic_compare_exchange_weak(&slot_hi, &hi, s + 1))
                ;
            tls_slot = s;
            return s;
        }
    }
    atomic_store(&shared_used, true);
    tls_slot = MX_SHARED;
    return MX_SHARED;
}

static inline int my_slot(void)
{
    int s = tls_slot;
    return s >= 0 ? s : slot_acquire();
}

static inline mx_cell_t *cell_at(mx_cell_t *base, int slot)
{
    return base + (size_t)slot * MX_CHUNK_CELLS;
}

static inline double bits_to_d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static inline uint64_t d_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

/* Adds to this thread's copy of a cell: single writer, unless in the shared slot. */
static inline void cell_add(mx_cell_t *base, uint64_t n)
{
    int s = my_slot();
    mx_cell_t *c = cell_at(base, s);
    if (s == MX_SHARED)
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
    else
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
}

static inline void cell_add_f(mx_cell_t *base, double v)
{
    int s = my_slot();
    mx_cell_t *c = cell_at(base, s);
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed);
    if (s != MX_SHARED) {
        atomic_store_explicit(c, d_to_bits(bits_to_d(old) + v), memory_order_relaxed);
        return;
    }
    while (!atomic_compare_exchange_weak_explicit(c, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

uint64_t rdl__metrics_cell_sum(const mx_cell_t *cell)
{
    int hi = atomic_load_explicit(&slot_hi, memory_order_acquire);
    uint64_t sum = 0;
    for (int s = 0; s < hi; s++)
        sum += atomic_load_explicit(cell_at((mx_cell_t *)cell, s), memory_order_relaxed);
    if (atomic_load(&shared_used))
        sum += atomic_load_explicit(cell_at((mx_cell_t *)cell, MX_SHARED), memory_order_relaxed);
    return sum;
}

double rdl__metrics_cell_sum_f(const mx_cell_t *cell)
{
    int hi = atomic_load_explicit(&slot_hi, memory_order_acquire);
    double sum = 0;
    for (int s = 0; s < hi; s++)
        sum += bits_to_d(atomic_load_explicit(cell_at((mx_cell_t *)cell, s), memory_order_relaxed));
    if (atomic_load(&shared_used))
        sum += bits_to_d(atomic_load_explicit(cell_at((mx_cell_t *)cell, MX_SHARED),
                                              memory_order_relaxed));
    return sum;
}

/* n contiguous cells (never across chunks), zeroed. Under r->mu. */
static mx_cell_t *cells_alloc(rdl_registry_t *r, size_t n)
{
    if (!r->chunks || r->chunk_used + n > MX_CHUNK_CELLS) {
        mx_chunk_t *ch = calloc(1, sizeof(*ch));
        if (!ch)
            return NULL;
        size_t bytes = (size_t)(MX_SLOTS + 1) * MX_CHUNK_CELLS * sizeof(mx_cell_t);
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            free(ch);
            return NULL;
        }
        ch->cells = p;
        ch->next = r->chunks;
        r->chunks = ch;
        r->chunk_used = 0;
    }
    mx_cell_t *c = r->chunks->cells + r->chunk_used;
    r->chunk_used += n;
    return c;
}

/* ---- registries -------------------------------------------------------- */

static rdl_registry_t *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_make(void)
{
    rdl_registry_new(&default_registry);
}

rdl_registry_t *rdl_registry_default(void)
{
    pthread_once(&default_once, default_make);
    return default_registry;
}

static rdl_registry_t *reg_or_default(rdl_registry_t *r)
{
    return r ? r : rdl_registry_default();
}

int rdl_registry_new(rdl_registry_t **out)
{
    *out = NULL;
    rdl_registry_t *r = calloc(1, sizeof(*r));
    if (!r)
        return RDL_ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->cmu, NULL);
    r->next_id = 1;
    *out = r;
    return 0;
}

static void series_free(mx_series_t *s, size_t nlabels)
{
    if (!s)
        return;
    if (s->values)
        for (size_t i = 0; i < nlabels; i++)
            free(s->values[i]);
    free(s->values);
    free(s);
}

static void metric_free(rdl_metric_t *m)
{
    size_t n = atomic_load(&m->n);
    for (size_t i = 0; i < n; i++)
        series_free(m->order[i], m->nlabels);
    series_free(m->overflow, m->nlabels);
    for (size_t i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->order);
    free((void *)m->table);
    free(m->bounds);
    free(m->name);
    free(m->om_name);
    free(m->help);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void rdl_registry_free(rdl_registry_t *r)
{
    if (!r)
        return;
    for (rdl_metric_t *m = atomic_load(&r->head), *next; m; m = next) {
        next = atomic_load(&m->next);
        metric_free(m);
    }
    for (mx_collector_t *c = r->collectors, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    for (mx_chunk_t *ch = r->chunks, *next; ch; ch = next) {
        next = ch->next;
        munmap(ch->cells, (size_t)(MX_SLOTS + 1) * MX_CHUNK_CELLS * sizeof(mx_cell_t));
        free(ch);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->cmu);
    free(r);
}

/* ---- names ------------------------------------------------------------- */

bool rdl__metrics_valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

bool rdl__metrics_valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The sample names a family would emit; a new family may share none with another. */
static size_t sample_names(rdl_metric_type_t type, const char *name, char out[4][160])
{
    size_t k = 0;
    snprintf(out[k++], 160, "%s", name);
    if (type == RDL_METRIC_COUNTER && ends_with(name, "_total")) {
        snprintf(out[k++], 160, "%.*s", (int)(strlen(name) - 6), name);
    } else if (type == RDL_METRIC_HISTOGRAM) {
        snprintf(out[k++], 160, "%s_bucket", name);
        snprintf(out[k++], 160, "%s_sum", name);
        snprintf(out[k++], 160, "%s_count", name);
    }
    return k;
}

static bool name_taken(rdl_registry_t *r, rdl_metric_type_t type, const char *name)
{
    char mine[4][160], theirs[4][160];
    size_t nm = sample_names(type, name, mine);
    for (size_t i = 0; i < nm; i++)
        if (strcmp(mine[i], OVERFLOW_METRIC) == 0)
            return true;
    for (rdl_metric_t *m = atomic_load(&r->head); m; m = atomic_load(&m->next)) {
        size_t nt = sample_names(m->type, m->name, theirs);
        for (size_t i = 0; i < nm; i++)
            for (size_t j = 0; j < nt; j++)
                if (strcmp(mine[i], theirs[j]) == 0)
                    return true;
    }
    return false;
}

static char *dup_utf8(const char *s)
{
    rdl_buf_t b;
    rdl_buf_init(&b);
    rdl_utf8_put(&b, s ? s : "", s ? strlen(s) : 0);
    if (b.oom) {
        rdl_buf_close(&b);
        return NULL;
    }
    if (b.cap == 0)                     /* nothing appended: data is the shared empty string */
        return strdup("");
    return b.data;
}

static int check_opts(rdl_metric_type_t type, const rdl_metric_opts_t *o, rdl_error_t *err)
{
    if (!o || !o->name)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "name", "a metric needs a name");
    if (strlen(o->name) > 150 || !rdl__metrics_valid_metric_name(o->name))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name,
                             "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 150 bytes)");
    if (type == RDL_METRIC_COUNTER && (!ends_with(o->name, "_total") || strlen(o->name) == 6))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name, "counter names end in _total");
    if (type != RDL_METRIC_COUNTER && ends_with(o->name, "_total"))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name,
                             "only counters end in _total (OpenMetrics reserves the suffix)");
    if (o->nlabels > RDL_METRICS_MAX_LABELS || (o->nlabels && !o->labels))
        return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name, "expected at most %d label names",
                             RDL_METRICS_MAX_LABELS);
    for (size_t i = 0; i < o->nlabels; i++) {
        const char *l = o->labels[i];
        if (!rdl__metrics_valid_label_name(l))
            return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name,
                                 "label name '%s' must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __",
                                 l ? l : "(null)");
        if (type == RDL_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
            return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name, "a histogram cannot have a label 'le'");
        for (size_t j = 0; j < i; j++)
            if (strcmp(l, o->labels[j]) == 0)
                return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name, "label name '%s' repeated", l);
    }
    if (o->max_series > RDL_METRICS_MAX_SERIES)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name, "max_series above %d",
                             RDL_METRICS_MAX_SERIES);
    if (type != RDL_METRIC_HISTOGRAM || !o->buckets || !o->nbuckets)
        return 0;
    if (o->nbuckets > RDL_METRICS_MAX_BUCKETS)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name, "at most %d buckets",
                             RDL_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < o->nbuckets; i++) {
        if (!isfinite(o->buckets[i]))
            return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name,
                                 "bucket %zu is not finite (+Inf is always added)", i);
        if (i && !(o->buckets[i] > o->buckets[i - 1]))
            return rdl_error_set(err, RDL_EINVAL, 0, 0, o->name,
                                 "buckets must increase strictly (bucket %zu)", i);
    }
    return 0;
}

/* ---- families ---------------------------------------------------------- */

static size_t series_cells(const rdl_metric_t *m)
{
    return m->type == RDL_METRIC_HISTOGRAM ? m->nb + 2 : m->type == RDL_METRIC_COUNTER ? 2 : 0;
}

/* A new series with copies of values. Cells come from the registry. */
static mx_series_t *series_new(rdl_metric_t *m, const char *const *values, uint64_t hash)
{
    mx_series_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fam = m;
    s->hash = hash;
    s->bounds = m->bounds;
    s->nb = (uint32_t)m->nb;
    if (m->nlabels) {
        s->values = calloc(m->nlabels, sizeof(char *));
        if (!s->values) {
            free(s);
            return NULL;
        }
        for (size_t i = 0; i < m->nlabels; i++) {
            s->values[i] = dup_utf8(values ? values[i] : NULL);
            if (!s->values[i]) {
                series_free(s, m->nlabels);
                return NULL;
            }
        }
    }
    size_t nc = series_cells(m);
    if (nc) {
        pthread_mutex_lock(&m->reg->mu);
        s->cells = cells_alloc(m->reg, nc);
        pthread_mutex_unlock(&m->reg->mu);
        if (!s->cells) {
            series_free(s, m->nlabels);
            return NULL;
        }
    }
    return s;
}

static int metric_alloc(rdl_registry_t *r, rdl_metric_type_t type, const rdl_metric_opts_t *o,
                        rdl_metric_t **out)
{
    rdl_metric_t *m = calloc(1, sizeof(*m));
    if (!m)
        return RDL_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    m->type = type;
    m->reg = r;
    m->name = strdup(o->name);
    m->om_name = strndup(o->name, strlen(o->name) - (type == RDL_METRIC_COUNTER ? 6 : 0));
    m->help = dup_utf8(o->help);
    m->nlabels = o->nlabels;
    m->max_series = o->max_series ? o->max_series : RDL_METRICS_DEFAULT_MAX_SERIES;
    bool ok = m->name && m->om_name && m->help;
    if (ok && type == RDL_METRIC_HISTOGRAM) {
        const double *b = o->buckets && o->nbuckets ? o->buckets : rdl_metrics_default_buckets;
        m->nb = o->buckets && o->nbuckets ? o->nbuckets : 11;
        m->bounds = malloc(m->nb * sizeof(double));
        ok = m->bounds != NULL;
        if (ok)
            memcpy(m->bounds, b, m->nb * sizeof(double));
    }
    if (ok && m->nlabels) {
        m->labels = calloc(m->nlabels, sizeof(char *));
        ok = m->labels != NULL;
        for (size_t i = 0; ok && i < m->nlabels; i++)
            ok = (m->labels[i] = strdup(o->labels[i])) != NULL;
        size_t cap = 8;
        while (cap < m->max_series * 2)
            cap <<= 1;
        m->mask = cap - 1;
        if (ok)
            ok = (m->table = calloc(cap, sizeof(*m->table))) != NULL;
        if (ok)
            ok = (m->order = calloc(m->max_series, sizeof(*m->order))) != NULL;
    }
    if (!ok) {
        metric_free(m);
        return RDL_ENOMEM;
    }
    *out = m;
    return 0;
}

/* Appends m to the registry's list; scrapes walk it without the lock. Under r->mu. */
static void metric_link(rdl_registry_t *r, rdl_metric_t *m)
{
    if (r->tail)
        atomic_store_explicit(&r->tail->next, m, memory_order_release);
    else
        atomic_store_explicit(&r->head, m, memory_order_release);
    r->tail = m;
}

static int metric_register(rdl_registry_t *r, rdl_metric_type_t type, const rdl_metric_opts_t *o,
                           rdl_metric_fn fn, void *arg, rdl_metric_t **out, rdl_error_t *err)
{
    r = reg_or_default(r);
    if (out)
        *out = NULL;
    if (!r)
        return rdl_error_set(err, RDL_ENOMEM, 0, 0, "", "no default registry");
    if (type != RDL_METRIC_COUNTER && type != RDL_METRIC_GAUGE && type != RDL_METRIC_HISTOGRAM)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, "", "unknown metric type %d", (int)type);
    int rc = check_opts(type, o, err);
    if (rc)
        return rc;
    rdl_metric_t *m;
    if ((rc = metric_alloc(r, type, o, &m)) != 0)
        return rdl_error_set(err, rc, 0, 0, o->name, "out of memory");
    m->fn = fn;
    m->fn_arg = arg;
    pthread_mutex_lock(&r->mu);
    if (name_taken(r, type, o->name)) {
        pthread_mutex_unlock(&r->mu);
        metric_free(m);
        return rdl_error_set(err, RDL_EEXIST, 0, 0, o->name,
                             "a metric already uses this name or one of its sample names");
    }
    pthread_mutex_unlock(&r->mu);
    if (!fn && m->nlabels) {
        const char *vals[RDL_METRICS_MAX_LABELS];
        for (size_t i = 0; i < m->nlabels; i++)
            vals[i] = RDL_METRICS_OVERFLOW;
        if (!(m->overflow = series_new(m, vals, 0))) {
            metric_free(m);
            return rdl_error_set(err, RDL_ENOMEM, 0, 0, o->name, "out of memory");
        }
    }
    /* The unlabelled series exists from the start, so it is exposed (as 0) before any use. */
    if (!fn && !m->nlabels) {
        mx_series_t *s = series_new(m, NULL, 0);
        if (!s) {
            metric_free(m);
            return rdl_error_set(err, RDL_ENOMEM, 0, 0, o->name, "out of memory");
        }
        m->order = malloc(sizeof(*m->order));
        if (!m->order) {
            series_free(s, 0);
            metric_free(m);
            return rdl_error_set(err, RDL_ENOMEM, 0, 0, o->name, "out of memory");
        }
        m->order[0] = s;
        atomic_store(&m->n, 1);
    }
    pthread_mutex_lock(&r->mu);
    if (name_taken(r, type, o->name)) {     /* registered meanwhile */
        pthread_mutex_unlock(&r->mu);
        metric_free(m);
        return rdl_error_set(err, RDL_EEXIST, 0, 0, o->name,
                             "a metric already uses this name or one of its sample names");
    }
    metric_link(r, m);
    pthread_mutex_unlock(&r->mu);
    if (out)
        *out = m;
    return 0;
}

int rdl_metric_new(rdl_registry_t *r, rdl_metric_type_t type, const rdl_metric_opts_t *o,
                   rdl_metric_t **out, rdl_error_t *err)
{
    return metric_register(r, type, o, NULL, NULL, out, err);
}

int rdl_metric_new_callback(rdl_registry_t *r, rdl_metric_type_t type, const char *name,
                            const char *help, rdl_metric_fn fn, void *arg, rdl_error_t *err)
{
    if (!fn || type == RDL_METRIC_HISTOGRAM)
        return rdl_error_set(err, RDL_EINVAL, 0, 0, name ? name : "",
                             "a callback metric is a counter or a gauge with a function");
    rdl_metric_opts_t o = { .name = name, .help = help };
    return metric_register(r, type, &o, fn, arg, NULL, err);
}

rdl_metric_t *rdl_metric_find(rdl_registry_t *r, const char *name)
{
    r = reg_or_default(r);
    if (!r || !name)
        return NULL;
    for (rdl_metric_t *m = atomic_load(&r->head); m; m = atomic_load(&m->next))
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

rdl_metric_type_t rdl_metric_type(const rdl_metric_t *m)
{
    return m->type;
}

static int new_single(rdl_registry_t *r, rdl_metric_type_t type, const rdl_metric_opts_t *o,
                      void **out, rdl_error_t *err)
{
    rdl_metric_t *m;
    *out = NULL;
    int rc = rdl_metric_new(r, type, o, &m, err);
    if (rc == 0)
        *out = m->order[0];
    return rc;
}

int rdl_counter_new(rdl_registry_t *r, const char *name, const char *help,
                    rdl_counter_t **out, rdl_error_t *err)
{
    rdl_metric_opts_t o = { .name = name, .help = help };
    return new_single(r, RDL_METRIC_COUNTER, &o, (void **)out, err);
}

int rdl_gauge_new(rdl_registry_t *r, const char *name, const char *help,
                  rdl_gauge_t **out, rdl_error_t *err)
{
    rdl_metric_opts_t o = { .name = name, .help = help };
    return new_single(r, RDL_METRIC_GAUGE, &o, (void **)out, err);
}

int rdl_histogram_new(rdl_registry_t *r, const char *name, const char *help,
                      const double *buckets, size_t nbuckets, rdl_histogram_t **out,
                      rdl_error_t *err)
{
    rdl_metric_opts_t o = { .name = name, .help = help, .buckets = buckets, .nbuckets = nbuckets };
    return new_single(r, RDL_METRIC_HISTOGRAM, &o, (void **)out, err);
}

/* ---- label sets -------------------------------------------------------- */

static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : ""); *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

static bool values_equal(const mx_series_t *s, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

static bool is_utf8(const char *s)
{
    size_t n = strlen(s), k;
    for (size_t i = 0; i < n; i += k)
        if ((k = rdl_utf8_seq(s + i, n - i, NULL)) == 0)
            return false;
    return true;
}

static mx_series_t *find(rdl_metric_t *m, const char *const *values, uint64_t h)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        mx_series_t *s = atomic_load_explicit(&m->table[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (s->hash == h && values_equal(s, values, m->nlabels))
            return s;
    }
}

/* The overflow series (made at registration, so handing it out never fails), now exposed. */
static mx_series_t *overflow_series(rdl_metric_t *m)
{
    atomic_store_explicit(&m->overflow_used, true, memory_order_release);
    return m->overflow;
}

/* Finds or creates the series; the overflow one past the limit. */
static mx_series_t *lookup(rdl_metric_t *m, const char *const *values)
{
    if (!m->nlabels)
        return m->order[0];
    const char *clean[RDL_METRICS_MAX_LABELS];
    char *owned[RDL_METRICS_MAX_LABELS] = { 0 };
    for (size_t i = 0; i < m->nlabels; i++) {
        clean[i] = values && values[i] ? values[i] : "";
        if (!is_utf8(clean[i]))     /* stored sanitised: look it up the same way */
            clean[i] = owned[i] = dup_utf8(clean[i]);
        if (!clean[i])
            clean[i] = "";
    }
    /* every value RDL_METRICS_OVERFLOW names the overflow series itself: a second series
     * with those labels would be a duplicate in the exposition */
    size_t same = 0;
    while (same < m->nlabels && strcmp(clean[same], RDL_METRICS_OVERFLOW) == 0)
        same++;
    uint64_t h = hash_values(clean, m->nlabels);
    mx_series_t *s = same == m->nlabels ? overflow_series(m) : find(m, clean, h);
    if (!s) {
        pthread_mutex_lock(&m->mu);
        s = find(m, clean, h);
        size_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
        if (!s && n < m->max_series && (s = series_new(m, clean, h)) != NULL) {
            size_t i = h & m->mask;
            while (atomic_load_explicit(&m->table[i], memory_order_relaxed))
                i = (i + 1) & m->mask;
            m->order[n] = s;
            atomic_store_explicit(&m->table[i], s, memory_order_release);
            atomic_store_explicit(&m->n, n + 1, memory_order_release);
        }
        if (!s) {
            atomic_fetch_add(&m->rejected, 1);
            s = overflow_series(m);
        }
        pthread_mutex_unlock(&m->mu);
    }
    for (size_t i = 0; i < m->nlabels; i++)
        free(owned[i]);
    return s;
}

rdl_counter_t *rdl_metric_counter(rdl_metric_t *m, const char *const *values)
{
    return m && m->type == RDL_METRIC_COUNTER && !m->fn ? (rdl_counter_t *)lookup(m, values) : NULL;
}

rdl_gauge_t *rdl_metric_gauge(rdl_metric_t *m, const char *const *values)
{
    return m && m->type == RDL_METRIC_GAUGE && !m->fn ? (rdl_gauge_t *)lookup(m, values) : NULL;
}

rdl_histogram_t *rdl_metric_histogram(rdl_metric_t *m, const char *const *values)
{
    return m && m->type == RDL_METRIC_HISTOGRAM ? (rdl_histogram_t *)lookup(m, values) : NULL;
}

uint64_t rdl_metric_rejected(const rdl_metric_t *m)
{
    return m ? atomic_load(&m->rejected) : 0;
}

mx_series_t *const *rdl__metrics_series_list(const rdl_metric_t *m, size_t *n)
{
    *n = atomic_load_explicit(&m->n, memory_order_acquire);
    return m->order;
}

/* ---- hot path ---------------------------------------------------------- */

void rdl_counter_inc(rdl_counter_t *c)
{
    cell_add(((mx_series_t *)c)->cells, 1);
}

void rdl_counter_add(rdl_counter_t *c, uint64_t n)
{
    cell_add(((mx_series_t *)c)->cells, n);
}

void rdl_counter_add_f(rdl_counter_t *c, double v)
{
    if (v > 0 && isfinite(v))
        cell_add_f(((mx_series_t *)c)->cells + 1, v);
}

double rdl_counter_value(const rdl_counter_t *c)
{
    const mx_series_t *s = (const mx_series_t *)c;
    return (double)rdl__metrics_cell_sum(s->cells) + rdl__metrics_cell_sum_f(s->cells + 1);
}

void rdl_gauge_set(rdl_gauge_t *g, double v)
{
    atomic_store_explicit(&((mx_series_t *)g)->gauge, d_to_bits(v), memory_order_relaxed);
}

void rdl_gauge_add(rdl_gauge_t *g, double v)
{
    _Atomic uint64_t *p = &((mx_series_t *)g)->gauge;
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void rdl_gauge_inc(rdl_gauge_t *g)
{
    rdl_gauge_add(g, 1);
}

void rdl_gauge_dec(rdl_gauge_t *g)
{
    rdl_gauge_add(g, -1);
}

double rdl_gauge_value(const rdl_gauge_t *g)
{
    return bits_to_d(atomic_load_explicit(&((const mx_series_t *)g)->gauge, memory_order_relaxed));
}

void rdl_histogram_observe(rdl_histogram_t *h, double v)
{
    mx_series_t *s = (mx_series_t *)h;
    if (isnan(v))
        return;
    /* First bound >= v; nb (the +Inf bucket) when none. Branch-free halving (the
     * compiler makes the step a conditional move): latencies are unpredictable, and a
     * mispredicted branch per level would cost more than the rest of observe. */
    const double *p = s->bounds;
    uint32_t len = s->nb;
    while (len > 1) {
        uint32_t half = len / 2;
        p += p[half - 1] < v ? half : 0;
        len -= half;
    }
    uint32_t lo = (uint32_t)(p - s->bounds) + (len == 1 && p[0] < v);
    int slot = my_slot();
    mx_cell_t *b = cell_at(s->cells + lo, slot);
    mx_cell_t *sum = cell_at(s->cells + s->nb + 1, slot);
    if (slot == MX_SHARED) {
        atomic_fetch_add_explicit(b, 1, memory_order_relaxed);
        cell_add_f(s->cells + s->nb + 1, v);
        return;
    }
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1, memory_order_relaxed);
    atomic_store_explicit(sum, d_to_bits(bits_to_d(atomic_load_explicit(sum, memory_order_relaxed)) + v),
                          memory_order_relaxed);
}

void rdl_histogram_read(const rdl_histogram_t *h, uint64_t *count, double *sum,
                        uint64_t *cumulative, size_t nslots)
{
    const mx_series_t *s = (const mx_series_t *)h;
    uint64_t acc = 0;
    for (uint32_t i = 0; i <= s->nb; i++) {
        acc += rdl__metrics_cell_sum(s->cells + i);
        if (cumulative && i < nslots)
            cumulative[i] = acc;
    }
    if (count)
        *count = acc;
    if (sum)
        *sum = rdl__metrics_cell_sum_f(s->cells + s->nb + 1);
}

/* ---- buckets ----------------------------------------------------------- */

int rdl_buckets_linear(double start, double width, size_t count, double *out)
{
    if (!(width > 0) || !isfinite(start) || !isfinite(width) || count < 1 || !out)
        return RDL_EINVAL;
    for (size_t i = 0; i < count; i++)
        out[i] = start + width * (double)i;
    return 0;
}

int rdl_buckets_exponential(double start, double factor, size_t count, double *out)
{
    if (!(start > 0) || !(factor > 1) || !isfinite(start) || !isfinite(factor) || count < 1 || !out)
        return RDL_EINVAL;
    double v = start;
    for (size_t i = 0; i < count; i++, v *= factor)
        out[i] = v;
    return 0;
}

/* ---- collectors -------------------------------------------------------- */

int rdl_collector_add(rdl_registry_t *r, rdl_collector_fn fn, void *arg)
{
    r = reg_or_default(r);
    if (!r || !fn)
        return RDL_EINVAL;
    mx_collector_t *c = calloc(1, sizeof(*c));
    if (!c)
        return RDL_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&r->cmu);
    c->id = r->next_id++;
    mx_collector_t **tail = &r->collectors;
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;
    pthread_mutex_unlock(&r->cmu);
    return c->id;
}

void rdl_collector_remove(rdl_registry_t *r, int id)
{
    r = reg_or_default(r);
    if (!r)
        return;
    pthread_mutex_lock(&r->cmu);
    for (mx_collector_t **p = &r->collectors; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            mx_collector_t *c = *p;
            *p = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&r->cmu);
}
