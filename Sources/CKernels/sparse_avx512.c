// The AVX-512 (F/BW/VL + VNNI + VBMI2) path of the compact sparse products; sparse_dot.c holds the
// entry points, the activation layouts and the scalar reference this path must match. The
// activation quantiser of this path is the AVX2 one (sparse_dot.c dispatches): it is not where the
// time goes, and sharing it keeps the bytes identical by construction.
//
// Expansion: one 64-column group in one instruction. Mask bit j (column 64·g + j) is vector byte j,
// so vpexpandb with the group's mask word puts the k-th stored value at the k-th set bit's column
// and zeroes the rest (docs/sparse-format.md: values in column order, bit j ⇔ column 64·g + j).
//   s8:  a 64-byte load at the group's first value, then the register form of vpexpandb (the
//        memory form, vpexpandb zmm{k}, m512, is microcoded and slow on Zen 4; the register form
//        is not, and the padding makes the plain load safe).
//   s4:  the nibbles are unpacked to one byte each first (value k is the low nibble of byte k/2 for
//        even k, the high one for odd k: byte i → 16-bit lane i, low nibble to its low byte, high
//        nibble to its high byte, so value k lands in byte k), looked up as codebook levels with
//        vpshufb, and then expanded (expanding packed nibble bytes first would spread byte pairs, not
//        values). The 32-byte load may cover the next group's bytes or the padding nibble of an odd
//        group; vpexpandb uses only the first popcount(m) bytes of its source, so they are ignored.
//   f16: vpexpandw (register form) on each 32-column half, loaded at its own offset (popcount of
//        the low half), then vcvtph2ps.
// Integer dot: vpdpbusd multiplies unsigned bytes by signed bytes, so the sign trick: |w| (u8; an
// s8 weight is −127…127 and an s4 level −64…56) times x with its sign flipped where w < 0 (x is
// −127…127, never −128, so the negation is exact). Sixteen int32 lanes, each the sum of four
// products, are converted and multiplied by w_scale · x_scale (the product the scalar reference
// forms) into float accumulators; the order of the float sums differs from the reference's, within
// the tests' tolerance.
//
// Over-reads: every load is 64 bytes (s8, f16 halves) or 32 bytes (s4) at a first value byte,
// which is at most the end of the value stream: at most 64 bytes past the last value byte, within
// CK_SPARSE_VALUE_PADDING. vpexpand uses only the first popcount bytes/words of its source.
#include "ckernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#ifdef CK_EMULATED_AVX512
#define CK_AVX512  // make ckernels-check-emulated: plain-C stand-ins for the intrinsics, no target
#else
#define CK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi2,avx2,fma,f16c,popcnt")))
#endif
#define CK_INLINE static inline __attribute__((always_inline))

size_t ck_sparse_activation_scale_bytes(int cols);

/// Tokens whose products share one pass over a row (each stored byte is read once for them).
#define TOKENS_PER_PASS 8

static int groups_of(int cols) { return (cols + CK_SPARSE_GROUP - 1) / CK_SPARSE_GROUP; }

// MARK: - Expansion

/// The 64 int8 weights of an s8 group (unstored columns 0); `*v` moves past its values.
CK_INLINE CK_AVX512 __m512i expand_s8(uint64_t m, const uint8_t **v) {
    __m512i w = _mm512_maskz_expand_epi8((__mmask64)m, _mm512_loadu_si512((const void *)*v));
    *v += __builtin_popcountll(m);
    return w;
}

/// The 64 int8 levels of an s4 group (unstored columns 0); `*v` moves past its ceil(n/2) bytes.
CK_INLINE CK_AVX512 __m512i expand_s4(uint64_t m, const uint8_t **v, __m512i levels) {
    __m512i bytes = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)*v));
    __m512i nibbles = _mm512_or_si512(_mm512_and_si512(bytes, _mm512_set1_epi16(0x000f)),
                                      _mm512_and_si512(_mm512_slli_epi16(bytes, 4), _mm512_set1_epi16(0x0f00)));
    *v += (__builtin_popcountll(m) + 1) / 2;
    return _mm512_maskz_expand_epi8((__mmask64)m, _mm512_shuffle_epi8(levels, nibbles));
}

/// The 64 float weights of an f16 group (unstored columns +0) as four vectors of 16 columns.
CK_INLINE CK_AVX512 void expand_f16(uint64_t m, const uint8_t **v, __m512 f[4]) {
    uint32_t lo = (uint32_t)m, hi = (uint32_t)(m >> 32);
    __m512i h0 = _mm512_maskz_expand_epi16((__mmask32)lo, _mm512_loadu_si512((const void *)*v));
    *v += 2 * __builtin_popcount(lo);
    __m512i h1 = _mm512_maskz_expand_epi16((__mmask32)hi, _mm512_loadu_si512((const void *)*v));
    *v += 2 * __builtin_popcount(hi);
    f[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(h0));
    f[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h0, 1));
    f[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(h1));
    f[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h1, 1));
}

CK_INLINE CK_AVX512 __m512i s4_levels(void) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)ck_sparse_s4_levels));
}

// MARK: - Products

/// out[t] = W[o] · x_t for nt tokens (a compile-time constant after inlining, 1…8), one pass over
/// row o: per group one expansion, then per token one load, one masked negation, one vpdpbusd, one
/// convert and one FMA.
CK_INLINE CK_AVX512 void row_int8(const ck_sparse_matrix *w, int o, int groups, const uint8_t *act,
                                  size_t row_bytes, size_t scale_bytes, const int nt, const int s4, float *out) {
    const uint64_t *masks = w->masks + (size_t)o * groups;
    const uint16_t *w_scales = w->scales + (size_t)o * groups;
    const uint8_t *v = w->values + w->row_offsets[o];
    const __m512i levels = s4_levels(), zero = _mm512_setzero_si512();
    __m512 acc[TOKENS_PER_PASS];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int g = 0; g < groups; g++) {
        uint64_t m = masks[g];
        __m512i wq = s4 ? expand_s4(m, &v, levels) : expand_s8(m, &v);
        __m512i magnitude = _mm512_abs_epi8(wq);
        __mmask64 negative = _mm512_movepi8_mask(wq);
        float w_scale = _cvtsh_ss(w_scales[g]);
        for (int t = 0; t < nt; t++) {
            const uint8_t *row = act + (size_t)t * row_bytes;
            __m512i x = _mm512_loadu_si512((const void *)(row + scale_bytes + (size_t)g * CK_SPARSE_GROUP));
            __m512i signed_x = _mm512_mask_sub_epi8(x, negative, zero, x);
            __m512i dot = _mm512_dpbusd_epi32(zero, magnitude, signed_x);
            float scale = w_scale * ((const float *)row)[g];
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(scale), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

/// The f16 counterpart of row_int8: x stays float, values are widened.
CK_INLINE CK_AVX512 void row_f16(const ck_sparse_matrix *w, int o, int groups, const uint8_t *act,
                                 size_t row_bytes, const int nt, float *out) {
    const uint64_t *masks = w->masks + (size_t)o * groups;
    const uint8_t *v = w->values + w->row_offsets[o];
    __m512 acc[TOKENS_PER_PASS];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int g = 0; g < groups; g++) {
        __m512 f[4];
        expand_f16(masks[g], &v, f);
        for (int t = 0; t < nt; t++) {
            const float *x = (const float *)(act + (size_t)t * row_bytes) + (size_t)g * CK_SPARSE_GROUP;
            __m512 a = _mm512_mul_ps(f[0], _mm512_loadu_ps(x));
            a = _mm512_fmadd_ps(f[1], _mm512_loadu_ps(x + 16), a);
            a = _mm512_fmadd_ps(f[2], _mm512_loadu_ps(x + 32), a);
            a = _mm512_fmadd_ps(f[3], _mm512_loadu_ps(x + 48), a);
            acc[t] = _mm512_add_ps(acc[t], a);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

// One function per kind and token count (1…8), so that each keeps its accumulators in registers.
typedef void (*row_kernel)(const ck_sparse_matrix *, int, int, const uint8_t *, size_t, size_t, float *);

#define CK_ROW_KERNELS(NT)                                                                                     \
    static CK_AVX512 __attribute__((noinline)) void row_s8_##NT(const ck_sparse_matrix *w, int o, int groups,   \
        const uint8_t *act, size_t row_bytes, size_t scale_bytes, float *out) {                                \
        row_int8(w, o, groups, act, row_bytes, scale_bytes, NT, 0, out);                                      \
    }                                                                                                          \
    static CK_AVX512 __attribute__((noinline)) void row_s4_##NT(const ck_sparse_matrix *w, int o, int groups,   \
        const uint8_t *act, size_t row_bytes, size_t scale_bytes, float *out) {                                \
        row_int8(w, o, groups, act, row_bytes, scale_bytes, NT, 1, out);                                      \
    }                                                                                                          \
    static CK_AVX512 __attribute__((noinline)) void row_f16_##NT(const ck_sparse_matrix *w, int o, int groups,  \
        const uint8_t *act, size_t row_bytes, size_t scale_bytes, float *out) {                                \
        (void)scale_bytes;                                                                                     \
        row_f16(w, o, groups, act, row_bytes, NT, out);                                                        \
    }
CK_ROW_KERNELS(1)
CK_ROW_KERNELS(2)
CK_ROW_KERNELS(3)
CK_ROW_KERNELS(4)
CK_ROW_KERNELS(5)
CK_ROW_KERNELS(6)
CK_ROW_KERNELS(7)
CK_ROW_KERNELS(8)
#undef CK_ROW_KERNELS

static const row_kernel row_kernels[3][TOKENS_PER_PASS] = {
    {row_s8_1, row_s8_2, row_s8_3, row_s8_4, row_s8_5, row_s8_6, row_s8_7, row_s8_8},
    {row_s4_1, row_s4_2, row_s4_3, row_s4_4, row_s4_5, row_s4_6, row_s4_7, row_s4_8},
    {row_f16_1, row_f16_2, row_f16_3, row_f16_4, row_f16_5, row_f16_6, row_f16_7, row_f16_8},
};

CK_AVX512 void ck_sparse_matmul_avx512(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                                       int row_begin, int row_end, int accumulate) {
    int groups = groups_of(w->cols);
    size_t row_bytes = ck_sparse_activation_row_bytes(w->kind, w->cols);
    size_t scale_bytes = ck_sparse_activation_scale_bytes(w->cols);
    for (int o = row_begin; o < row_end; o++) {
        // Past 8 tokens a row is expanded again per block of 8, from L1 (a row is a few KiB).
        for (int t0 = 0; t0 < tokens; t0 += TOKENS_PER_PASS) {
            int nt = tokens - t0 < TOKENS_PER_PASS ? tokens - t0 : TOKENS_PER_PASS;
            float sums[TOKENS_PER_PASS];
            row_kernels[w->kind][nt - 1](w, o, groups, (const uint8_t *)act + (size_t)t0 * row_bytes, row_bytes,
                                         scale_bytes, sums);
            for (int t = 0; t < nt; t++) {
                float *target = y + (size_t)(t0 + t) * ldy + o;
                *target = accumulate ? *target + sums[t] : sums[t];
            }
        }
    }
}

// MARK: - Decoding

/// The lanes of 16-column vector k of a group with `count` columns (count may exceed 64).
CK_INLINE CK_AVX512 __mmask16 lanes(int count, int k) {
    int n = count - 16 * k;
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/// Decodes exactly as the reference: scale · (float)q for s8/s4 (one rounding), f16 widened exactly.
CK_AVX512 void ck_sparse_dequantize_rows_avx512(const ck_sparse_matrix *w, int row_begin, int row_end, float *out) {
    int groups = groups_of(w->cols);
    const __m512i levels = s4_levels();
    for (int o = row_begin; o < row_end; o++) {
        const uint64_t *masks = w->masks + (size_t)o * groups;
        const uint8_t *v = w->values + w->row_offsets[o];
        float *row = out + (size_t)(o - row_begin) * w->cols;
        for (int g = 0; g < groups; g++) {
            uint64_t m = masks[g];
            int count = w->cols - g * CK_SPARSE_GROUP;
            float *target = row + (size_t)g * CK_SPARSE_GROUP;
            __m512 f[4];
            if (w->kind == CK_SPARSE_F16) {
                expand_f16(m, &v, f);
            } else {
                __m512i wq = w->kind == CK_SPARSE_S4 ? expand_s4(m, &v, levels) : expand_s8(m, &v);
                __m512 scale = _mm512_set1_ps(_cvtsh_ss(w->scales[(size_t)o * groups + g]));
                // (Unrolled: the lane index of vextracti32x4 must be a constant, also at -O0.)
                f[0] = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(wq, 0))));
                f[1] = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(wq, 1))));
                f[2] = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(wq, 2))));
                f[3] = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(wq, 3))));
            }
            for (int k = 0; k < 4; k++) _mm512_mask_storeu_ps(target + 16 * k, lanes(count, k), f[k]);
        }
    }
}

#else

// Not x86: ck_best_path never returns an AVX-512 path, so these are never called.
void ck_sparse_matmul_avx512(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                             int row_begin, int row_end, int accumulate) {}
void ck_sparse_dequantize_rows_avx512(const ck_sparse_matrix *w, int row_begin, int row_end, float *out) {}

#endif
