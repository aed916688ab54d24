/*
 * time.c: clocks, and the parsers for the human spellings of durations, sizes
 * and listen addresses that config files, environment variables and flags use.
 * The parsers are strict: anything that is not exactly one of the documented
 * forms (leading spaces, signs, unknown units, overflow) is RDL_EINVAL, so a
 * typo fails at start-up instead of becoming a surprising value.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "redline/util.h"

uint64_t rdl_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rdl_wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec rdl_timespec_in(clockid_t clock, uint64_t ns)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    ns += (uint64_t)ts.tv_nsec;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a run of decimal digits at *s; fails on no digits or overflow. */
static int parse_digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;

    if (!is_digit(*p))
        return RDL_EINVAL;
    while (is_digit(*p)) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RDL_EINVAL;
        v = v * 10 + d;
        p++;
    }
    *s = p;
    *out = v;
    return 0;
}

static int mul_add(uint64_t *acc, uint64_t v, uint64_t mult)
{
    if (v != 0 && mult > UINT64_MAX / v)
        return RDL_EINVAL;
    if (*acc > UINT64_MAX - v * mult)
        return RDL_EINVAL;
    *acc += v * mult;
    return 0;
}

/*
 * Duration units. Components must go from the largest unit to the smallest,
 * each at most once ("1m30s", not "30s1m"), so rank orders them. "ms" is
 * listed before "m" so that the longer unit wins the prefix match.
 */
static const struct {
    const char *name;
    uint64_t ms;
    int rank;
} duration_units[] = {
    { "h", 3600000, 0 }, { "ms", 1, 3 }, { "m", 60000, 1 }, { "s", 1000, 2 },
};

int rdl_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    uint64_t total = 0, v;
    int last_rank = -1;

    if (s == NULL || out_ms == NULL || *s == '\0')
        return RDL_EINVAL;
    if (parse_digits(&s, &v) != 0)
        return RDL_EINVAL;
    if (*s == '\0') {                       /* a bare number is milliseconds */
        *out_ms = v;
        return 0;
    }
    for (;;) {
        size_t i, n = sizeof(duration_units) / sizeof(duration_units[0]);
        int rank;

        for (i = 0; i < n; i++) {
            size_t len = strlen(duration_units[i].name);
            if (strncmp(s, duration_units[i].name, len) == 0)
                break;
        }
        if (i == n)
            return RDL_EINVAL;
        rank = duration_units[i].rank;
        if (rank <= last_rank)
            return RDL_EINVAL;
        last_rank = rank;
        if (mul_add(&total, v, duration_units[i].ms) != 0)
            return RDL_EINVAL;
        s += strlen(duration_units[i].name);
        if (*s == '\0')
            break;
        if (parse_digits(&s, &v) != 0)
            return RDL_EINVAL;
    }
    *out_ms = total;
    return 0;
}

/* Binary multiples only: "16k" and "16KiB" are both 16384 bytes. */
static const struct {
    const char *name;
    uint64_t mult;
} size_units[] = {
    { "", 1 }, { "B", 1 },
    { "k", 1ull << 10 }, { "K", 1ull << 10 }, { "Ki", 1ull << 10 }, { "KiB", 1ull << 10 },
    { "M", 1ull << 20 }, { "Mi", 1ull << 20 }, { "MiB", 1ull << 20 },
    { "G", 1ull << 30 }, { "Gi", 1ull << 30 }, { "GiB", 1ull << 30 },
    { "T", 1ull << 40 }, { "Ti", 1ull << 40 }, { "TiB", 1ull << 40 },
};

int rdl_parse_size(const char *s, uint64_t *out_bytes)
{
    uint64_t v, total = 0;
    size_t i;

    if (s == NULL || out_bytes == NULL)
        return RDL_EINVAL;
    if (parse_digits(&s, &v) != 0)
        return RDL_EINVAL;
    for (i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcmp(s, size_units[i].name) == 0) {
            if (mul_add(&total, v, size_units[i].mult) != 0)
                return RDL_EINVAL;
            *out_bytes = total;
            return 0;
        }
    }
    return RDL_EINVAL;
}

/* 0-65535, digits only: no sign, no spaces, at most five digits. */
static int parse_port(const char *s, int *port)
{
    uint64_t v;
    const char *p = s;

    if (parse_digits(&p, &v) != 0 || *p != '\0' || p - s > 5 || v > 65535)
        return RDL_EINVAL;
    *port = (int)v;
    return 0;
}

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           c == '.' || c == '-' || c == '_';
}

static bool is_v6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || is_digit(c) || c == ':' || c == '.';
}

/* "fe80::1%eth0": hex, colons and dots, then an optional zone (interface name). */
static bool valid_v6(const char *h, const char *end)
{
    const char *p;

    if (memchr(h, ':', (size_t)(end - h)) == NULL)
        return false;
    for (p = h; p < end && *p != '%'; p++)
        if (!is_v6_char(*p))
            return false;
    if (p < end && p + 1 == end)
        return false;               /* '%' with no zone */
    for (p = p < end ? p + 1 : p; p < end; p++)
        if (!is_host_char(*p))
            return false;
    return true;
}

int rdl_parse_hostport(const char *s, char host[RDL_HOST_MAX], int *port)
{
    const char *colon, *h, *hend;
    const char *p;
    int prt;

    if (s == NULL || host == NULL || port == NULL)
        return RDL_EINVAL;
    if (s[0] == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (hend == NULL || hend[1] != ':' || !valid_v6(h, hend))
            return RDL_EINVAL;
        colon = hend + 1;
    } else {
        colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return RDL_EINVAL;      /* IPv6 needs brackets: "[::1]:80" */
        h = s;
        hend = colon;
        for (p = h; p < hend; p++)
            if (!is_host_char(*p))
                return RDL_EINVAL;
    }
    if ((size_t)(hend - h) >= 64 || parse_port(colon + 1, &prt) != 0)
        return RDL_EINVAL;
    if (hend == h) {
        strcpy(host, "0.0.0.0");
    } else {
        memcpy(host, h, (size_t)(hend - h));
        host[hend - h] = '\0';
    }
    *port = prt;
    return 0;
}
