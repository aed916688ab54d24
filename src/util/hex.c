/*
 * hex.c: bytes as lowercase hex digits, the form every id takes in text:
 * trace and span ids in traceparent, in OTLP/JSON and in log lines, and the
 * request ids the access log makes. One function for all of them, because the
 * log line and the request id are on every request's path: with SSE2 it makes
 * sixteen digits per step; elsewhere two digits per byte from one lookup.
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
