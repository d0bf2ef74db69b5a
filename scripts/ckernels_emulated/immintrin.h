// A plain-C stand-in for <immintrin.h>, only the intrinsics sparse_avx512.c, quant_avx512.c and
// quant_avx512_k.c use, written from Intel's Intrinsics Guide descriptions.
// `make ckernels-check-emulated` compiles those three files against it, so that their logic (lane
// and mask order, nibble order, tails, padding) is checked against the scalar reference on a
// machine without AVX-512. It checks the code's use of
// the instructions as described here, not the CPU: the real run is `make ckernels-check` on an
// AVX-512 machine.
#ifndef CK_EMULATED_IMMINTRIN_H
#define CK_EMULATED_IMMINTRIN_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef union { uint8_t u8[64]; int8_t i8[64]; uint16_t u16[32]; int16_t i16[32]; int32_t i32[16]; int64_t i64[8]; float f32[16]; } __m512i;
typedef __m512i __m512;
typedef __m512i __m512d;
typedef union { uint8_t u8[32]; int8_t i8[32]; uint16_t u16[16]; int16_t i16[16]; int32_t i32[8]; float f32[8]; } __m256i;
typedef __m256i __m256;
typedef __m256i __m256d;
typedef union { uint8_t u8[16]; int8_t i8[16]; uint16_t u16[8]; int32_t i32[4]; float f32[4]; } __m128i;
typedef uint64_t __mmask64;
typedef uint32_t __mmask32;
typedef uint16_t __mmask16;

#define EMU static inline

EMU float _cvtsh_ss(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(1024 + m), e - 25);
    return (h & 0x8000) ? -v : v;
}

// Loads, stores, constants, casts
EMU __m512i _mm512_setzero_si512(void) { __m512i r; memset(&r, 0, 64); return r; }
EMU __m512 _mm512_setzero_ps(void) { return _mm512_setzero_si512(); }
EMU __m256i _mm256_setzero_si256(void) { __m256i r; memset(&r, 0, 32); return r; }
EMU __m128i _mm_setzero_si128(void) { __m128i r; memset(&r, 0, 16); return r; }
EMU __m512i _mm512_set1_epi8(char v) { __m512i r; memset(&r, (uint8_t)v, 64); return r; }
EMU __m512i _mm512_set1_epi16(short v) { __m512i r; for (int i = 0; i < 32; i++) r.i16[i] = v; return r; }
EMU __m512 _mm512_set1_ps(float v) { __m512 r; for (int i = 0; i < 16; i++) r.f32[i] = v; return r; }
EMU __m256 _mm256_set1_ps(float v) { __m256 r; for (int i = 0; i < 8; i++) r.f32[i] = v; return r; }
EMU __m512i _mm512_loadu_si512(const void *p) { __m512i r; memcpy(&r, p, 64); return r; }
EMU __m512i _mm512_load_si512(const void *p) { return _mm512_loadu_si512(p); }  // (alignment not checked)
EMU __m512 _mm512_loadu_ps(const float *p) { __m512 r; memcpy(&r, p, 64); return r; }
EMU __m256i _mm256_loadu_si256(const __m256i *p) { __m256i r; memcpy(&r, p, 32); return r; }
EMU __m128i _mm_loadu_si128(const __m128i *p) { __m128i r; memcpy(&r, p, 16); return r; }
EMU __m512i _mm512_maskz_loadu_epi8(__mmask64 k, const void *p) {
    __m512i r = _mm512_setzero_si512();
    for (int j = 0; j < 64; j++) if (k >> j & 1) r.u8[j] = ((const uint8_t *)p)[j];
    return r;
}
EMU void _mm512_mask_storeu_ps(void *p, __mmask16 k, __m512 a) {
    for (int j = 0; j < 16; j++) if (k >> j & 1) memcpy((float *)p + j, &a.f32[j], 4);
}
EMU __m256i _mm512_castsi512_si256(__m512i a) { __m256i r; memcpy(&r, &a, 32); return r; }
EMU __m512i _mm512_castsi256_si512(__m256i a) { __m512i r = _mm512_setzero_si512(); memcpy(&r, &a, 32); return r; }
EMU __m512 _mm512_castps256_ps512(__m256 a) { return _mm512_castsi256_si512(a); }
EMU __m512d _mm512_castps_pd(__m512 a) { return a; }
EMU __m512 _mm512_castpd_ps(__m512d a) { return a; }
EMU __m256d _mm256_castps_pd(__m256 a) { return a; }
EMU __m256i _mm512_extracti64x4_epi64(__m512i a, int imm) { __m256i r; memcpy(&r, a.u8 + 32 * (imm & 1), 32); return r; }
EMU __m128i _mm512_extracti32x4_epi32(__m512i a, int imm) { __m128i r; memcpy(&r, a.u8 + 16 * (imm & 3), 16); return r; }
EMU __m512i _mm512_inserti64x4(__m512i a, __m256i b, int imm) { memcpy(a.u8 + 32 * (imm & 1), &b, 32); return a; }
EMU __m512d _mm512_insertf64x4(__m512d a, __m256d b, int imm) { return _mm512_inserti64x4(a, b, imm); }
EMU __m256i _mm256_set_m128i(__m128i hi, __m128i lo) { __m256i r; memcpy(r.u8, &lo, 16); memcpy(r.u8 + 16, &hi, 16); return r; }
EMU __m512i _mm512_broadcast_i32x4(__m128i a) { __m512i r; for (int l = 0; l < 4; l++) memcpy(r.u8 + 16 * l, &a, 16); return r; }
EMU __m512i _mm512_broadcast_i64x4(__m256i a) { __m512i r; memcpy(r.u8, &a, 32); memcpy(r.u8 + 32, &a, 32); return r; }
EMU __m512i _mm512_zextsi256_si512(__m256i a) { return _mm512_castsi256_si512(a); }  // upper 256 bits zero

// Expansion
EMU __m512i _mm512_maskz_expandloadu_epi8(__mmask64 k, const void *p) {
    __m512i r = _mm512_setzero_si512();
    int m = 0;
    for (int j = 0; j < 64; j++) if (k >> j & 1) r.u8[j] = ((const uint8_t *)p)[m++];
    return r;
}
EMU __m512i _mm512_maskz_expand_epi8(__mmask64 k, __m512i a) {
    __m512i r = _mm512_setzero_si512();
    int m = 0;
    for (int j = 0; j < 64; j++) if (k >> j & 1) r.u8[j] = a.u8[m++];
    return r;
}
EMU __m512i _mm512_maskz_expand_epi16(__mmask32 k, __m512i a) {
    __m512i r = _mm512_setzero_si512();
    int m = 0;
    for (int j = 0; j < 32; j++) if (k >> j & 1) r.u16[j] = a.u16[m++];
    return r;
}
EMU __m512i _mm512_maskz_expandloadu_epi16(__mmask32 k, const void *p) {
    __m512i r = _mm512_setzero_si512();
    int m = 0;
    for (int j = 0; j < 32; j++) if (k >> j & 1) { memcpy(&r.u16[j], (const uint8_t *)p + 2 * m, 2); m++; }
    return r;
}

// Integer
EMU __m512i _mm512_cvtepu8_epi16(__m256i a) { __m512i r; for (int i = 0; i < 32; i++) r.u16[i] = a.u8[i]; return r; }
EMU __m256i _mm256_cvtepi8_epi16(__m128i a) { __m256i r; for (int i = 0; i < 16; i++) r.i16[i] = a.i8[i]; return r; }
EMU __m512i _mm512_cvtepi8_epi32(__m128i a) { __m512i r; for (int i = 0; i < 16; i++) r.i32[i] = a.i8[i]; return r; }
EMU __m512i _mm512_or_si512(__m512i a, __m512i b) { for (int i = 0; i < 8; i++) a.i64[i] |= b.i64[i]; return a; }
EMU __m512i _mm512_and_si512(__m512i a, __m512i b) { for (int i = 0; i < 8; i++) a.i64[i] &= b.i64[i]; return a; }
EMU __m512i _mm512_slli_epi16(__m512i a, unsigned n) { for (int i = 0; i < 32; i++) a.u16[i] = n > 15 ? 0 : (uint16_t)(a.u16[i] << n); return a; }
EMU __m512i _mm512_srli_epi16(__m512i a, unsigned n) { for (int i = 0; i < 32; i++) a.u16[i] = n > 15 ? 0 : (uint16_t)(a.u16[i] >> n); return a; }
EMU __m512i _mm512_mask_slli_epi16(__m512i src, __mmask32 k, __m512i a, unsigned n) {
    for (int i = 0; i < 32; i++) if (k >> i & 1) src.u16[i] = n > 15 ? 0 : (uint16_t)(a.u16[i] << n);
    return src;
}
EMU __m512i _mm512_mask_srli_epi16(__m512i src, __mmask32 k, __m512i a, unsigned n) {
    for (int i = 0; i < 32; i++) if (k >> i & 1) src.u16[i] = n > 15 ? 0 : (uint16_t)(a.u16[i] >> n);
    return src;
}
EMU __m512i _mm512_srai_epi16(__m512i a, unsigned n) {  // arithmetic: counts above 15 fill with the sign
    for (int i = 0; i < 32; i++) a.i16[i] = (int16_t)(a.i16[i] >> (n > 15 ? 15 : n));
    return a;
}
EMU __m512i _mm512_slli_epi32(__m512i a, unsigned n) { for (int i = 0; i < 16; i++) a.i32[i] = n > 31 ? 0 : (int32_t)((uint32_t)a.i32[i] << n); return a; }
EMU __m512i _mm512_shuffle_epi8(__m512i a, __m512i b) {
    __m512i r;
    for (int j = 0; j < 64; j++) {
        uint8_t idx = b.u8[j];
        r.u8[j] = (idx & 0x80) ? 0 : a.u8[(j & ~15) + (idx & 15)];
    }
    return r;
}
EMU __m512i _mm512_abs_epi8(__m512i a) { for (int j = 0; j < 64; j++) a.u8[j] = (uint8_t)(a.i8[j] < 0 ? -a.i8[j] : a.i8[j]); return a; }
EMU __mmask64 _mm512_movepi8_mask(__m512i a) {
    __mmask64 k = 0;
    for (int j = 0; j < 64; j++) if (a.u8[j] & 0x80) k |= 1ull << j;
    return k;
}
EMU __m512i _mm512_mask_sub_epi8(__m512i src, __mmask64 k, __m512i a, __m512i b) {
    for (int j = 0; j < 64; j++) if (k >> j & 1) src.u8[j] = (uint8_t)(a.u8[j] - b.u8[j]);
    return src;
}
EMU __m512i _mm512_sub_epi32(__m512i a, __m512i b) { for (int i = 0; i < 16; i++) a.i32[i] = (int32_t)((uint32_t)a.i32[i] - (uint32_t)b.i32[i]); return a; }
EMU __m512i _mm512_add_epi32(__m512i a, __m512i b) { for (int i = 0; i < 16; i++) a.i32[i] = (int32_t)((uint32_t)a.i32[i] + (uint32_t)b.i32[i]); return a; }
EMU int16_t emu_saturate16(int32_t v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }
/// vpackssdw: per 128-bit lane, a's four int32 then b's, each saturated to int16.
EMU __m512i _mm512_packs_epi32(__m512i a, __m512i b) {
    __m512i r;
    for (int l = 0; l < 4; l++) {
        for (int i = 0; i < 4; i++) {
            r.i16[8 * l + i] = emu_saturate16(a.i32[4 * l + i]);
            r.i16[8 * l + 4 + i] = emu_saturate16(b.i32[4 * l + i]);
        }
    }
    return r;
}
/// vpmaddwd: int16 products summed in adjacent pairs into int32 (wraps only for −32768 · −32768 twice).
EMU __m512i _mm512_madd_epi16(__m512i a, __m512i b) {
    __m512i r;
    for (int i = 0; i < 16; i++) {
        uint32_t s = (uint32_t)((int32_t)a.i16[2 * i] * b.i16[2 * i]) + (uint32_t)((int32_t)a.i16[2 * i + 1] * b.i16[2 * i + 1]);
        r.i32[i] = (int32_t)s;
    }
    return r;
}
EMU __m512i _mm512_dpbusd_epi32(__m512i src, __m512i a, __m512i b) {
    for (int i = 0; i < 16; i++) {
        int32_t s = 0;
        for (int k = 0; k < 4; k++) s += (int32_t)a.u8[4 * i + k] * (int32_t)b.i8[4 * i + k];
        src.i32[i] = (int32_t)((uint32_t)src.i32[i] + (uint32_t)s);
    }
    return src;
}
EMU __m512i _mm512_mask_blend_epi64(uint8_t k, __m512i a, __m512i b) {
    for (int i = 0; i < 8; i++) if (k >> i & 1) a.i64[i] = b.i64[i];
    return a;
}

// Float
EMU __m512 _mm512_cvtph_ps(__m256i a) { __m512 r; for (int i = 0; i < 16; i++) r.f32[i] = _cvtsh_ss(a.u16[i]); return r; }
EMU __m512 _mm512_cvtepi32_ps(__m512i a) { __m512 r; for (int i = 0; i < 16; i++) r.f32[i] = (float)a.i32[i]; return r; }
EMU __m512 _mm512_mul_ps(__m512 a, __m512 b) { for (int i = 0; i < 16; i++) a.f32[i] *= b.f32[i]; return a; }
EMU __m512 _mm512_add_ps(__m512 a, __m512 b) { for (int i = 0; i < 16; i++) a.f32[i] += b.f32[i]; return a; }
EMU __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c) { for (int i = 0; i < 16; i++) c.f32[i] = fmaf(a.f32[i], b.f32[i], c.f32[i]); return c; }
EMU __m512 _mm512_fnmadd_ps(__m512 a, __m512 b, __m512 c) { for (int i = 0; i < 16; i++) c.f32[i] = fmaf(-a.f32[i], b.f32[i], c.f32[i]); return c; }
EMU float _mm512_reduce_add_ps(__m512 a) { float s = 0; for (int i = 0; i < 16; i++) s += a.f32[i]; return s; }

#endif
