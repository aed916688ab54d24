/*
 * rand.c: the one pseudo-random generator of the library, xoshiro256**
 * (Blackman and Vigna): fast, 256 bits of state, good enough for trace and
 * request ids, weighted choices, fault percentages and backoff jitter, and not
 * for secrets. It exists so that every module draws from the same generator
 * and a test can make any of them repeatable with rdl_rand_seed.
 *
 * Each thread has its own state, seeded from the kernel on the first draw
 * (so two processes or two threads never share a sequence); callers that
 * want a sequence of their own keep an rdl_rand_t.
 */
#include <string.h>
#include <sys/random.h>

#include "redline/util.h"

static _Thread_local rdl_rand_t thread_state __attribute__((tls_model("initial-exec")));
static _Thread_local bool thread_seeded __attribute__((tls_model("initial-exec")));

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64: spreads a 64-bit seed over the state, as the authors advise. */
static uint64_t spread(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rdl_rand_init(rdl_rand_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = spread(&seed);
}

uint64_t rdl_rand_next(rdl_rand_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* The kernel's bytes; the clocks and an address when it has none (never all zero). */
static void seed_thread(void)
{
    rdl_rand_t *r = &thread_state;
    if (getrandom(r->s, sizeof(r->s), 0) != (ssize_t)sizeof(r->s))
        rdl_rand_init(r, rdl_wall_ns() ^ rdl_now_ns() ^ (uint64_t)(uintptr_t)r);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
    thread_seeded = true;
}

uint64_t rdl_rand64(void)
{
    if (__builtin_expect(!thread_seeded, 0))
        seed_thread();
    return rdl_rand_next(&thread_state);
}

void rdl_rand_seed(uint64_t seed)
{
    rdl_rand_init(&thread_state, seed);
    thread_seeded = true;
}

double rdl_rand_unit(uint64_t x)
{
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}
