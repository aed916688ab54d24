/*
 * hex.c: bytes as lowercase hex digits, the form every id takes in text:
 * trace and span ids in traceparent, in OTLP/JSON and in log lines, and the
 * request ids the access log makes. One function for all of them, because the
 * log line and the request id are on every request's path: with SSE2 it makes
 * sixteen digits per step; elsewhere two digits per byte from one lookup.
 *
 * And back: one digit's value for the parsers that take either case (chunk
 * sizes, percent-encoding), and the strict lowercase decoder of ids, eight
 * digits per step because every traced request reads a traceparent.
 */
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "redline/util.h"

#ifdef __SSE2__
/* Nibbles (0..15, one per byte) as lowercase hex digits: '0' + d, and 39 more for a letter. */
static inline __m128i hex_ascii(__m128i d)
{
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(d, _mm_set1_epi8(9)), _mm_set1_epi8(39));
    return _mm_add_epi8(_mm_add_epi8(d, _mm_set1_epi8('0')), letter);
}
#endif

/* "000102...ff": two hex digits per byte in one lookup. */
static const char hex_pairs[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void rdl_hex_lower(char *out, const void *in, size_t n)
{
    const uint8_t *p = in;
#ifdef __SSE2__
    const __m128i m = _mm_set1_epi8(0x0f);
    for (; n >= 16; n -= 16, p += 16, out += 32) {     /* a trace id: one load, two stores */
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m), lo = _mm_and_si128(v, m);
        _mm_storeu_si128((__m128i *)(void *)out, hex_ascii(_mm_unpacklo_epi8(hi, lo)));
        _mm_storeu_si128((__m128i *)(void *)(out + 16), hex_ascii(_mm_unpackhi_epi8(hi, lo)));
    }
    if (n >= 8) {                                      /* a span id */
        __m128i v = _mm_loadl_epi64((const __m128i *)(const void *)p);
        __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m), lo = _mm_and_si128(v, m);
        _mm_storeu_si128((__m128i *)(void *)out, hex_ascii(_mm_unpacklo_epi8(hi, lo)));
        n -= 8;
        p += 8;
        out += 16;
    }
#endif
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hex_pairs + 2 * p[i], 2);
}

int rdl_hex_value(int c)
{
    unsigned char u = (unsigned char)c;
    if (u >= '0' && u <= '9')
        return u - '0';
    u |= 0x20;                  /* 'A'-'F' become 'a'-'f'; no other byte lands there */
    return u >= 'a' && u <= 'f' ? u - 'a' + 10 : -1;
}

/* A lowercase hex digit's value plus one; 0 for anything else, 'A' to 'F' included. */
static const uint8_t lower_digit[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/*
 * Eight lowercase hex digits into four bytes at once (SWAR). Returns nonzero
 * when any of the eight is not one (the bytes written are then meaningless).
 * Bytes are in range [lo, hi] when adding 0x80-lo sets their top bit and adding
 * 0x7f-hi does not; an input with a top bit set is refused by the first term,
 * and a carry it causes into the next byte can only refuse more. Little-endian
 * loads (x86-64, arm64): the first character is the lowest byte.
 */
static uint64_t decode8(const char *s, uint8_t out[4])
{
    const uint64_t ones = 0x0101010101010101ull, top = 0x8080808080808080ull;
    uint64_t v;
    memcpy(&v, s, 8);
    uint64_t digit = (v + ones * (0x80 - '0')) & ~(v + ones * (0x7f - '9'));
    uint64_t lower = (v + ones * (0x80 - 'a')) & ~(v + ones * (0x7f - 'f'));
    uint64_t letter = (v & (ones * 0x40)) >> 6;                 /* 1 in letter bytes */
    uint64_t nib = (v & (ones * 0x0f)) + letter * 9;             /* 'a' & 0x0f = 1, + 9 = 10 */
    uint64_t pairs = ((nib & 0x00ff00ff00ff00ffull) << 4) | ((nib >> 8) & 0x00ff00ff00ff00ffull);
    pairs = (pairs | (pairs >> 8)) & 0x0000ffff0000ffffull;
    pairs = (pairs | (pairs >> 16)) & 0x00000000ffffffffull;
    uint32_t w = (uint32_t)pairs;
    memcpy(out, &w, 4);
    return (v & top) | (((digit | lower) & top) ^ top);
}

/*
 * No branch per digit: faults are or-ed up and the slow scan runs only to
 * name the bad place.
 */
size_t rdl_hex_decode_lower(void *out, const char *in, size_t n)
{
    uint8_t *o = out;
    const unsigned char *u = (const unsigned char *)in;
    uint64_t bad = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        bad |= decode8(in + 2 * i, o + i);
    for (; i < n; i++) {
        unsigned hi = lower_digit[u[2 * i]], lo = lower_digit[u[2 * i + 1]];
        bad |= !hi | !lo;
        o[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    if (!bad)
        return 2 * n;
    size_t k = 0;
    while (k < 2 * n && lower_digit[u[k]])
        k++;
    return k;
}
