// AVX2 quantised products and row decoders for the K types (Q4_K, Q6_K, 256-value super-blocks),
// held to quant_dot.c's scalar reference.
//
// As in ggml's AVX2 vec_dot_q4_K_q8_K / vec_dot_q6_K_q8_K: per super-block one integer sum with the
// group scales applied by vpmaddwd, and the terms that do not depend on the weight codes (Q4_K's
// mins, Q6_K's −32 offset) taken from the activation's 16-value sums (bsums) instead of
// per-value work.
#include <immintrin.h>

#include "quant_internal.h"

#pragma clang fp contract(off)

#define CK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define CK_INLINE static inline __attribute__((always_inline))
/// Rows per group. Measured on Zen 3 (2048×5632, one thread): one row at a time beats two or four,
/// whose extra accumulators and code vectors spill registers; the loops keep R for other CPUs.
#ifndef CK_K_ROWS
#define CK_K_ROWS 1
#endif

CK_AVX2 CK_INLINE float hsum_ps_k(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Shuffle masks that broadcast int16 lane g of a 128-bit lane (eight group scales) to all eight lanes.
static const uint8_t broadcast_word[8][32] __attribute__((aligned(32))) = {
#define W(g) { 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, \
               2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1, 2*g, 2*g+1 }
    W(0), W(1), W(2), W(3), W(4), W(5), W(6), W(7),
#undef W
};

/// Shuffle masks for Q6_K: bytes g ×8 then g+1 ×8 (sign-extended to int16: scale of the 16 values of
/// group g in the low lane, group g+1 in the high lane), for g = 0, 2, …, 14.
static const uint8_t pair_bytes[8][16] __attribute__((aligned(16))) = {
#define P(g) { 2*g, 2*g, 2*g, 2*g, 2*g, 2*g, 2*g, 2*g, 2*g+1, 2*g+1, 2*g+1, 2*g+1, 2*g+1, 2*g+1, 2*g+1, 2*g+1 }
    P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7),
#undef P
};

/// Σ over one Q4_K super-block of w·x for R rows (blocks at w, rows row_bytes apart), into acc.
CK_AVX2 CK_INLINE void q4k_block(const int R, const uint8_t *w, size_t row_bytes, const int8_t *q,
                                 const int16_t *bsums, float dx, __m256 acc[CK_K_ROWS]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)bsums);
    __m256i sumi[CK_K_ROWS], scales[CK_K_ROWS];
    for (int r = 0; r < R; r++) {
        const uint8_t *blk = w + (size_t)r * row_bytes;
        uint8_t sc[8], mn[8];
        ck_unpack_q4k_scales(blk + 4, sc, mn);
        uint64_t sc64, mn64;
        memcpy(&sc64, sc, 8);
        memcpy(&mn64, mn, 8);
        const __m128i mins8 = _mm_cvtsi64_si128((long long)mn64);
        // Each min twice (int16): vpmaddwd with the 16-value sums gives m_g · Σ_{32-group g} q.
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));
        const __m256i minterm = _mm256_madd_epi16(bs, mins);
        const float dmin = _cvtsh_ss(ck_load_u16(blk + 2));
        acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dx), _mm256_cvtepi32_ps(minterm), acc[r]);
        scales[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc64)));
        sumi[r] = _mm256_setzero_si256();
    }
    for (int c = 0; c < 4; c++) {
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(const void *)(q + 64 * c));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(const void *)(q + 64 * c + 32));
        const __m256i mask0 = _mm256_load_si256((const __m256i *)(const void *)broadcast_word[2 * c]);
        const __m256i mask1 = _mm256_load_si256((const __m256i *)(const void *)broadcast_word[2 * c + 1]);
        for (int r = 0; r < R; r++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(const void *)(w + (size_t)r * row_bytes + 16 + 32 * c));
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(raw, m4), y0);
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), y1);
            sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p0, _mm256_shuffle_epi8(scales[r], mask0)));
            sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scales[r], mask1)));
        }
    }
    for (int r = 0; r < R; r++) {
        const float d = _cvtsh_ss(ck_load_u16(w + (size_t)r * row_bytes));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
}

/// Σ over one Q6_K super-block of w·x for R rows, into acc.
CK_AVX2 CK_INLINE void q6k_block(const int R, const uint8_t *w, size_t row_bytes, const int8_t *q,
                                 const int16_t *bsums, float dx, __m256 acc[CK_K_ROWS]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)bsums);
    __m256i sumi[CK_K_ROWS];
    __m128i scales[CK_K_ROWS];
    for (int r = 0; r < R; r++) {
        scales[r] = _mm_loadu_si128((const __m128i *)(const void *)(w + (size_t)r * row_bytes + 192));
        // −32 · Σ_g sc_g · Σ_{16-group g} q: the codes' offset, from the activation sums.
        const __m256i offset = _mm256_madd_epi16(bs, _mm256_cvtepi8_epi16(scales[r]));
        sumi[r] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
    }
    for (int half = 0; half < 2; half++) {
        __m256i y[4];
        for (int k = 0; k < 4; k++) y[k] = _mm256_loadu_si256((const __m256i *)(const void *)(q + 128 * half + 32 * k));
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes;
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 64 * half));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 64 * half + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * half));
            // Quarter k's high bits are bits 2k, 2k+1 of qh, moved to bits 4–5 with one 16-bit shift
            // (the bits a shift carries across the byte boundary land outside the 0x30 mask).
            __m256i codes[4];
            codes[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            codes[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            codes[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
            codes[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            for (int k = 0; k < 4; k++) {
                const __m256i p = _mm256_maddubs_epi16(codes[k], y[k]);  // codes ≤ 63: ≤ 2·63·127
                const __m128i mask = _mm_load_si128((const __m128i *)(const void *)pair_bytes[4 * half + k]);
                const __m256i s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales[r], mask));
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, s));
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const float d = _cvtsh_ss(ck_load_u16(w + (size_t)r * row_bytes + 208));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
}

CK_AVX2 CK_INLINE void rows_k(const int T, const int R, const uint8_t *w, size_t row_bytes, int cols,
                              const void *act, int tokens, float *y, size_t ldy, int o, int accumulate) {
    const int nb = cols / 256, block_bytes = T == CK_GGML_Q4_K ? 144 : 210;
    for (int t = 0; t < tokens; t++) {
        const ck_act_row a = ck_act_row_at(CK_ACT_Q8_K, act, cols, t);
        __m256 acc[CK_K_ROWS];
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            if (T == CK_GGML_Q4_K) {
                q4k_block(R, w + (size_t)b * block_bytes, row_bytes, a.q + 256 * b, a.bsums + 16 * b, a.d[b], acc);
            } else {
                q6k_block(R, w + (size_t)b * block_bytes, row_bytes, a.q + 256 * b, a.bsums + 16 * b, a.d[b], acc);
            }
        }
        float *out = y + (size_t)t * ldy + o;
        for (int r = 0; r < R; r++) {
            const float v = hsum_ps_k(acc[r]);
            out[r] = accumulate ? out[r] + v : v;
        }
    }
}

CK_AVX2 CK_INLINE void matmul_k(const int T, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                                int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    int o = row_begin;
    for (; o + CK_K_ROWS <= row_end; o += CK_K_ROWS) {
        rows_k(T, CK_K_ROWS, w + (size_t)o * row_bytes, row_bytes, cols, act, tokens, y, ldy, o, accumulate);
    }
    for (; o < row_end; o++) rows_k(T, 1, w + (size_t)o * row_bytes, row_bytes, cols, act, tokens, y, ldy, o, accumulate);
}

CK_AVX2 static void matmul_q4_k(const uint8_t *w, size_t rb, int cols, const void *act, int tokens, float *y,
                                size_t ldy, int b, int e, int acc) {
    matmul_k(CK_GGML_Q4_K, w, rb, cols, act, tokens, y, ldy, b, e, acc);
}
CK_AVX2 static void matmul_q6_k(const uint8_t *w, size_t rb, int cols, const void *act, int tokens, float *y,
                                size_t ldy, int b, int e, int acc) {
    matmul_k(CK_GGML_Q6_K, w, rb, cols, act, tokens, y, ldy, b, e, acc);
}

void ck_quant_matmul_k_avx2(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                            int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    if (ggml_type == CK_GGML_Q4_K) {
        matmul_q4_k(w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
    } else if (ggml_type == CK_GGML_Q6_K) {
        matmul_q6_k(w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
    }
}

// MARK: - Decoders (bit for bit the scalar ones)

/// Eight unsigned bytes at p as floats.
CK_AVX2 CK_INLINE __m256 u8x8_ps(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }

CK_AVX2 static void dequantize_q4_k_row(const uint8_t *w, int cols, float *out) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int b = 0; b < cols / 256; b++, w += 144, out += 256) {
        const float d = _cvtsh_ss(ck_load_u16(w)), dmin = _cvtsh_ss(ck_load_u16(w + 2));
        uint8_t sc[8], mn[8];
        ck_unpack_q4k_scales(w + 4, sc, mn);
        for (int c = 0; c < 4; c++) {
            // (d·sc)·q − dmin·m with each product rounded, as the scalar decoder.
            const __m256 d1 = _mm256_set1_ps(d * (float)sc[2 * c]), m1 = _mm256_set1_ps(dmin * (float)mn[2 * c]);
            const __m256 d2 = _mm256_set1_ps(d * (float)sc[2 * c + 1]), m2 = _mm256_set1_ps(dmin * (float)mn[2 * c + 1]);
            for (int h = 0; h < 2; h++) {
                const __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)(w + 16 + 32 * c + 16 * h));
                const __m128i lo = _mm_and_si128(raw, m4), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
                float *o1 = out + 64 * c + 16 * h, *o2 = out + 64 * c + 32 + 16 * h;
                _mm256_storeu_ps(o1, _mm256_sub_ps(_mm256_mul_ps(d1, u8x8_ps(lo)), m1));
                _mm256_storeu_ps(o1 + 8, _mm256_sub_ps(_mm256_mul_ps(d1, u8x8_ps(_mm_srli_si128(lo, 8))), m1));
                _mm256_storeu_ps(o2, _mm256_sub_ps(_mm256_mul_ps(d2, u8x8_ps(hi)), m2));
                _mm256_storeu_ps(o2 + 8, _mm256_sub_ps(_mm256_mul_ps(d2, u8x8_ps(_mm_srli_si128(hi, 8))), m2));
            }
        }
    }
}

CK_AVX2 static void dequantize_q6_k_row(const uint8_t *w, int cols, float *out) {
    const __m128i m4 = _mm_set1_epi8(0x0F), m2 = _mm_set1_epi8(0x03);
    const __m256i offset = _mm256_set1_epi32(32);
    for (int b = 0; b < cols / 256; b++, w += 210, out += 256) {
        const float d = _cvtsh_ss(ck_load_u16(w + 208));
        const int8_t *scales = (const int8_t *)(w + 192);
        for (int half = 0; half < 2; half++) {
            for (int h = 0; h < 2; h++) {  // elements 16h … 16h+15 of each quarter
                const uint8_t *ql = w + 64 * half + 16 * h, *qh = w + 128 + 32 * half + 16 * h;
                const __m128i low0 = _mm_loadu_si128((const __m128i *)(const void *)ql);
                const __m128i low1 = _mm_loadu_si128((const __m128i *)(const void *)(ql + 32));
                const __m128i high = _mm_loadu_si128((const __m128i *)(const void *)qh);
                __m128i codes[4];
                codes[0] = _mm_or_si128(_mm_and_si128(low0, m4), _mm_slli_epi16(_mm_and_si128(high, m2), 4));
                codes[1] = _mm_or_si128(_mm_and_si128(low1, m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(high, 2), m2), 4));
                codes[2] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(low0, 4), m4),
                                        _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(high, 4), m2), 4));
                codes[3] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(low1, 4), m4),
                                        _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(high, 6), m2), 4));
                for (int k = 0; k < 4; k++) {
                    const __m256 step = _mm256_set1_ps(d * (float)scales[8 * half + 2 * k + h]);
                    float *o = out + 128 * half + 32 * k + 16 * h;
                    const __m256i c0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(codes[k]), offset);
                    const __m256i c1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(codes[k], 8)), offset);
                    _mm256_storeu_ps(o, _mm256_mul_ps(step, _mm256_cvtepi32_ps(c0)));
                    _mm256_storeu_ps(o + 8, _mm256_mul_ps(step, _mm256_cvtepi32_ps(c1)));
                }
            }
        }
    }
}

CK_AVX2 void ck_quant_dequantize_k_avx2(int ggml_type, const uint8_t *w, int cols, float *out) {
    if (ggml_type == CK_GGML_Q4_K) {
        dequantize_q4_k_row(w, cols, out);
    } else if (ggml_type == CK_GGML_Q6_K) {
        dequantize_q6_k_row(w, cols, out);
    }
}
