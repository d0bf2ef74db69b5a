// AVX2 quantised products for the 32-value block types (Q8_0, Q4_0, Q4_1), the AVX2 activation
// quantiser, and the AVX2 decoders of all five types' rows. Held to quant_dot.c's scalar reference.
//
// Integer dot products as in ggml's AVX2 path (ggml-cpu/arch/x86/quants.c): vpmaddubsw multiplies
// unsigned weight codes by signed activation bytes into pairwise int16 sums, vpmaddwd against ones
// widens them to eight int32 lanes, one convert and one FMA per block apply d_w · d_x. Beyond
// ggml's one-row vec_dot: four weight rows share each activation load, the 4-bit codes stay
// unsigned (Q4_0's −8 is taken off once per block from 8·Σq, shared by the rows; Q4_1's m·s rides
// in the same vector multiply as d_w · d_x), and d_w is converted in a vector register.
// (Converting eight blocks' scales in a separate pass first was measured slower: the extra pass
// over the rows costs more memory stalls than the conversions it saves.) With several tokens each
// decoded block serves a tile of tokens instead (rows_32_tile).
#include <immintrin.h>

#include "quant_internal.h"

#pragma clang fp contract(off)

#define CK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define CK_INLINE static inline __attribute__((always_inline))

/// One token: weight rows per group (sharing each activation load).
#ifndef CK_ROWS
#define CK_ROWS 4
#endif
/// Several tokens: rows × tokens per tile (2 × 4: eight accumulators; 1 × 4 and 2 × 2 measured the
/// same on Zen 3 — the multiplies, not the decoding, bound a tile).
#ifndef CK_TILE_ROWS
#define CK_TILE_ROWS 2
#endif
#ifndef CK_TILE_TOKENS
#define CK_TILE_TOKENS 4
#endif

CK_AVX2 CK_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CK_AVX2 CK_INLINE int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

// MARK: - Activation quantiser

/// Quantises 32 values at v into q; returns Σ q (exactly the scalar path's bytes: the same
/// multiplications, clamps and round-half-even conversion).
CK_AVX2 CK_INLINE __m256i quantize32(const float *v, __m256 id, int8_t *q, __m256i *sum16_lo, __m256i *sum16_hi) {
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i i[4];
    for (int k = 0; k < 4; k++) {
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(v + 8 * k), id);
        s = _mm256_min_ps(_mm256_max_ps(s, lo), hi);  // NaN takes −127, as the scalar clamp
        i[k] = _mm256_cvtps_epi32(s);
    }
    *sum16_lo = _mm256_add_epi32(i[0], i[1]);
    *sum16_hi = _mm256_add_epi32(i[2], i[3]);
    // packs interleave the 128-bit lanes: dwords 0,4,1,5,2,6,3,7 restore the order.
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)q, p);
    return _mm256_add_epi32(*sum16_lo, *sum16_hi);
}

CK_AVX2 CK_INLINE float amax_ps(const float *v, int n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(v + j), abs_mask));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CK_AVX2 void ck_quant_activations_avx2(int kind, const float *x, int tokens, int cols, size_t ldx, void *act) {
    const int block = ck_act_block(kind), nb = cols / block;
    for (int t = 0; t < tokens; t++) {
        const float *xt = x + (size_t)t * ldx;
        ck_act_row_mut a = ck_act_row_at_mut(kind, act, cols, t);
        for (int b = 0; b < nb; b++) {
            const float *v = xt + (size_t)b * block;
            const float amax = amax_ps(v, block);
            const float d = amax / 127.0f;
            const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
            a.d[b] = d;
            int sum = 0;
            for (int j = 0; j < block; j += 32) {
                __m256i s_lo, s_hi;
                sum += hsum_epi32(quantize32(v + j, id, a.q + (size_t)b * block + j, &s_lo, &s_hi));
                if (kind == CK_ACT_Q8_K) {
                    a.bsums[(b * block + j) / 16] = (int16_t)hsum_epi32(s_lo);
                    a.bsums[(b * block + j) / 16 + 1] = (int16_t)hsum_epi32(s_hi);
                }
            }
            if (kind == CK_ACT_Q8_S) a.s[b] = d * (float)sum;
        }
    }
}

// MARK: - Products of the 32-blocks

/// One token (decode): y[o + r] (+)= W[o + r] · x for R rows starting at w (row o); T (the type) and
/// R are compile-time constants once inlined.
CK_AVX2 CK_INLINE void rows_32(const int T, const int R, const uint8_t *w, size_t row_bytes, int cols,
                               const void *act, float *y, int o, int accumulate) {
    const int kind = ck_act_kind(T), nb = cols / 32;
    const int block_bytes = T == CK_GGML_Q8_0 ? 34 : T == CK_GGML_Q4_0 ? 18 : 20;
    const int qs_offset = T == CK_GGML_Q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi8(0x0F), eights = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);

    const ck_act_row a = ck_act_row_at(kind, act, cols, 0);
    __m256 acc[CK_ROWS];
    __m128 mins[CK_ROWS];  // lane 1: Σ_b m_w · s_x (Q4_1)
    for (int r = 0; r < R; r++) {
        acc[r] = _mm256_setzero_ps();
        mins[r] = _mm_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const __m256i yq = _mm256_loadu_si256((const __m256i *)(const void *)(a.q + 32 * b));
        // [d_x, s_x, 0, 0] (s only for Q4_1): times a block's [d_w, m_w] gives [d_w·d_x, m_w·s_x].
        __m128 dxs = _mm_load_ss(a.d + b);
        if (T == CK_GGML_Q4_1) dxs = _mm_unpacklo_ps(dxs, _mm_load_ss(a.s + b));
        __m256i y8 = _mm256_setzero_si256();
        if (T == CK_GGML_Q4_0) y8 = _mm256_maddubs_epi16(eights, yq);  // 8·(q_2i + q_2i+1), shared by the rows
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)b * block_bytes, *qs = blk + qs_offset;
            __m256i pairs;
            if (T == CK_GGML_Q8_0) {
                // Sign trick: |w| (unsigned; −128 → 128) times q with w's sign (q is never −128).
                const __m256i wq = _mm256_loadu_si256((const __m256i *)(const void *)qs);
                pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wq), _mm256_sign_epi8(yq, wq));
            } else {
                // Low nibbles are elements 0–15 (lane 0), high nibbles 16–31 (lane 1).
                const __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)qs);
                const __m256i codes = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
                pairs = _mm256_maddubs_epi16(codes, yq);  // ≤ 2·15·127: no saturation
                if (T == CK_GGML_Q4_0) pairs = _mm256_sub_epi16(pairs, y8);  // (c − 8)·q, exact
            }
            const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
            // The binary16 d (and Q4_1's m) converted in a vector register, no scalar round trip.
            const uint32_t fields = T == CK_GGML_Q4_1 ? ck_load_u32(blk) : ck_load_u16(blk);
            const __m128 scales = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)fields)), dxs);
            acc[r] = _mm256_fmadd_ps(sums, _mm256_broadcastss_ps(scales), acc[r]);
            if (T == CK_GGML_Q4_1) mins[r] = _mm_add_ps(mins[r], scales);
        }
    }
    float *out = y + o;
    for (int r = 0; r < R; r++) {
        const float v = hsum_ps(acc[r]) + _mm_cvtss_f32(_mm_shuffle_ps(mins[r], mins[r], 1));
        out[r] = accumulate ? out[r] + v : v;
    }
}

/// Several tokens: y[t0 + t][o + r] (+)= W[o + r] · x[t0 + t] for R ≤ 2 rows and a tile of TT ≤ 4
/// tokens. Each weight block is decoded once (codes, |w|, d_w) and used for the whole tile, so the
/// decoding is not repeated per token; R·TT accumulators stay in registers.
CK_AVX2 CK_INLINE void rows_32_tile(const int T, const int R, const int TT, const uint8_t *w, size_t row_bytes,
                                    int cols, const void *act, int t0, float *y, size_t ldy, int o, int accumulate) {
    const int kind = ck_act_kind(T), nb = cols / 32;
    const int block_bytes = T == CK_GGML_Q8_0 ? 34 : T == CK_GGML_Q4_0 ? 18 : 20;
    const int qs_offset = T == CK_GGML_Q4_1 ? 4 : 2;
    const __m256i m4 = _mm256_set1_epi8(0x0F), eights = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);

    ck_act_row a[4];
    for (int t = 0; t < TT; t++) a[t] = ck_act_row_at(kind, act, cols, t0 + t);
    __m256 acc[2][4];
    __m128 mins[2];  // lane t: Σ_b m_w · s_x of token t (Q4_1)
    for (int r = 0; r < R; r++) {
        mins[r] = _mm_setzero_ps();
        for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        // d_x (and s_x) of the tile's tokens, one lane each.
        const __m128 dx = _mm_setr_ps(a[0].d[b], TT > 1 ? a[1 % TT].d[b] : 0, TT > 2 ? a[2 % TT].d[b] : 0,
                                      TT > 3 ? a[3 % TT].d[b] : 0);
        __m128 sx = _mm_setzero_ps();
        if (T == CK_GGML_Q4_1) {
            sx = _mm_setr_ps(a[0].s[b], TT > 1 ? a[1 % TT].s[b] : 0, TT > 2 ? a[2 % TT].s[b] : 0,
                             TT > 3 ? a[3 % TT].s[b] : 0);
        }
        float scale[2][4] __attribute__((aligned(16)));
        __m256i wq[2], wabs[2];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)b * block_bytes, *qs = blk + qs_offset;
            const uint32_t fields = T == CK_GGML_Q4_1 ? ck_load_u32(blk) : ck_load_u16(blk);
            const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)fields));  // [d_w, m_w, 0, 0]
            _mm_store_ps(scale[r], _mm_mul_ps(_mm_broadcastss_ps(dm), dx));
            if (T == CK_GGML_Q4_1) mins[r] = _mm_fmadd_ps(_mm_permute_ps(dm, 0x55), sx, mins[r]);
            if (T == CK_GGML_Q8_0) {
                wq[r] = _mm256_loadu_si256((const __m256i *)(const void *)qs);
                wabs[r] = _mm256_abs_epi8(wq[r]);
            } else {
                const __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)qs);
                wq[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
            }
        }
        for (int t = 0; t < TT; t++) {
            const __m256i yq = _mm256_loadu_si256((const __m256i *)(const void *)(a[t].q + 32 * b));
            __m256i y8 = _mm256_setzero_si256();
            if (T == CK_GGML_Q4_0) y8 = _mm256_maddubs_epi16(eights, yq);
            for (int r = 0; r < R; r++) {
                __m256i pairs;
                if (T == CK_GGML_Q8_0) {
                    pairs = _mm256_maddubs_epi16(wabs[r], _mm256_sign_epi8(yq, wq[r]));
                } else {
                    pairs = _mm256_maddubs_epi16(wq[r], yq);
                    if (T == CK_GGML_Q4_0) pairs = _mm256_sub_epi16(pairs, y8);
                }
                const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                acc[r][t] = _mm256_fmadd_ps(sums, _mm256_broadcast_ss(&scale[r][t]), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        float m[4] __attribute__((aligned(16)));
        _mm_store_ps(m, mins[r]);
        for (int t = 0; t < TT; t++) {
            float *out = y + (size_t)(t0 + t) * ldy + o + r;
            const float v = hsum_ps(acc[r][t]) + (T == CK_GGML_Q4_1 ? m[t] : 0.0f);
            *out = accumulate ? *out + v : v;
        }
    }
}

/// Tiles of 4, then 2, then 1 token over R rows.
CK_AVX2 CK_INLINE void rows_32_tokens(const int T, const int R, const uint8_t *w, size_t row_bytes, int cols,
                                      const void *act, int tokens, float *y, size_t ldy, int o, int accumulate) {
    int t0 = 0;
    if (CK_TILE_TOKENS == 4) {
        for (; t0 + 4 <= tokens; t0 += 4) rows_32_tile(T, R, 4, w, row_bytes, cols, act, t0, y, ldy, o, accumulate);
    }
    for (; t0 + 2 <= tokens; t0 += 2) {
        rows_32_tile(T, R, 2, w, row_bytes, cols, act, t0, y, ldy, o, accumulate);
    }
    if (t0 < tokens) rows_32_tile(T, R, 1, w, row_bytes, cols, act, t0, y, ldy, o, accumulate);
}

CK_AVX2 CK_INLINE void matmul_32(const int T, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                                 int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    int o = row_begin;
    if (tokens == 1) {
        for (; o + CK_ROWS <= row_end; o += CK_ROWS) {
            rows_32(T, CK_ROWS, w + (size_t)o * row_bytes, row_bytes, cols, act, y, o, accumulate);
        }
        for (; o < row_end; o++) rows_32(T, 1, w + (size_t)o * row_bytes, row_bytes, cols, act, y, o, accumulate);
        return;
    }
    for (; o + CK_TILE_ROWS <= row_end; o += CK_TILE_ROWS) {
        rows_32_tokens(T, CK_TILE_ROWS, w + (size_t)o * row_bytes, row_bytes, cols, act, tokens, y, ldy, o, accumulate);
    }
    for (; o < row_end; o++) rows_32_tokens(T, 1, w + (size_t)o * row_bytes, row_bytes, cols, act, tokens, y, ldy, o, accumulate);
}

CK_AVX2 static void matmul_q8_0(const uint8_t *w, size_t rb, int cols, const void *act, int tokens, float *y,
                                size_t ldy, int b, int e, int acc) {
    matmul_32(CK_GGML_Q8_0, w, rb, cols, act, tokens, y, ldy, b, e, acc);
}
CK_AVX2 static void matmul_q4_0(const uint8_t *w, size_t rb, int cols, const void *act, int tokens, float *y,
                                size_t ldy, int b, int e, int acc) {
    matmul_32(CK_GGML_Q4_0, w, rb, cols, act, tokens, y, ldy, b, e, acc);
}
CK_AVX2 static void matmul_q4_1(const uint8_t *w, size_t rb, int cols, const void *act, int tokens, float *y,
                                size_t ldy, int b, int e, int acc) {
    matmul_32(CK_GGML_Q4_1, w, rb, cols, act, tokens, y, ldy, b, e, acc);
}

void ck_quant_matmul_avx2(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                          int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    switch (ggml_type) {
    case CK_GGML_Q8_0: matmul_q8_0(w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate); break;
    case CK_GGML_Q4_0: matmul_q4_0(w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate); break;
    case CK_GGML_Q4_1: matmul_q4_1(w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate); break;
    }
}

// MARK: - Decoders (bit for bit the scalar ones: the same single roundings, no fused operations)

CK_AVX2 static void dequantize_q8_0_row(const uint8_t *w, int cols, float *out) {
    for (int b = 0; b < cols / 32; b++, w += 34, out += 32) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ck_load_u16(w)));
        for (int k = 0; k < 4; k++) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(w + 2 + 8 * k)));
            _mm256_storeu_ps(out + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

/// The 32 nibble codes of a Q4_0/Q4_1 block as four vectors of eight int32 (element order).
CK_AVX2 CK_INLINE void nibbles32(const uint8_t *qs, __m256i c[4]) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)qs), m4 = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(raw, m4), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
    c[0] = _mm256_cvtepu8_epi32(lo);
    c[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
    c[2] = _mm256_cvtepu8_epi32(hi);
    c[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
}

CK_AVX2 static void dequantize_q4_0_row(const uint8_t *w, int cols, float *out) {
    const __m256i eight = _mm256_set1_epi32(8);
    for (int b = 0; b < cols / 32; b++, w += 18, out += 32) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ck_load_u16(w)));
        __m256i c[4];
        nibbles32(w + 2, c);
        for (int k = 0; k < 4; k++) {
            _mm256_storeu_ps(out + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c[k], eight)), d));
        }
    }
}

CK_AVX2 static void dequantize_q4_1_row(const uint8_t *w, int cols, float *out) {
    for (int b = 0; b < cols / 32; b++, w += 20, out += 32) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(ck_load_u16(w))), m = _mm256_set1_ps(_cvtsh_ss(ck_load_u16(w + 2)));
        __m256i c[4];
        nibbles32(w + 4, c);
        for (int k = 0; k < 4; k++) {
            _mm256_storeu_ps(out + 8 * k, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(c[k]), d), m));
        }
    }
}

void ck_quant_dequantize_k_avx2(int ggml_type, const uint8_t *w, int cols, float *out);

void ck_quant_dequantize_avx2(int ggml_type, const uint8_t *w, size_t row_bytes, int cols,
                              int row_begin, int row_end, float *out) {
    for (int o = row_begin; o < row_end; o++) {
        const uint8_t *row = w + (size_t)o * row_bytes;
        float *dst = out + (size_t)(o - row_begin) * cols;
        switch (ggml_type) {
        case CK_GGML_Q8_0: dequantize_q8_0_row(row, cols, dst); break;
        case CK_GGML_Q4_0: dequantize_q4_0_row(row, cols, dst); break;
        case CK_GGML_Q4_1: dequantize_q4_1_row(row, cols, dst); break;
        default: ck_quant_dequantize_k_avx2(ggml_type, row, cols, dst); break;
        }
    }
}
