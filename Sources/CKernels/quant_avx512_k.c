// AVX-512 VNNI quantised products for the K types (Q4_K, Q6_K, 256-value super-blocks), held to
// quant_dot.c's scalar reference. Same contract and activation layout (ACT_Q8_K) as the AVX2 ones
// in quant_avx2_k.c; the decoders and the activation quantiser stay AVX2 on this path.
//
// Per super-block, weight codes are unsigned bytes (Q4_K: 0…15; Q6_K: 0…63, the −32 offset kept
// out), so vpdpbusd multiplies them by the signed activation bytes directly: 64 codes against 64
// contiguous activation bytes give sixteen int32 lanes, each an exact sum of four products.
//   Q4_K: chunk c's 32 bytes hold group 2c (low nibbles) and 2c + 1 (high nibbles), against
//         q[64c … 64c + 63]: one vector per chunk, [low nibbles, high nibbles]; each 256-bit half
//         is one 32-group.
//   Q6_K: per 128-half, quarters 0–1 and quarters 2–3 are one vector each, against q[128h …] and
//         q[128h + 64 …]; each 128-bit lane is one 16-group.
// A lane's four products are at most 4·63·127 = 32004 in magnitude, so vpackssdw narrows two
// such vectors to int16 without saturating, and one vpmaddwd applies the group scales (int16,
// arranged to match the pack's lane order) and sums pairs back into int32: the exact integer
// Σ sc·Σ c·q the reference forms. The terms that do not depend on the codes (Q4_K's mins, Q6_K's
// −32 · Σ sc·Σ q) come from the activation's 16-value sums, as in the AVX2 kernels; then one
// convert and one FMA by d·dx per super-block (and for Q4_K one by dmin·dx for the mins).
// Each weight row is read once for up to 8 tokens (one float accumulator per token).
#include <immintrin.h>

#include "quant_internal.h"

#ifdef CK_EMULATED_AVX512
#define CK_AVX512  // make ckernels-check-emulated: plain-C stand-ins for the intrinsics, no target
#else
#define CK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#endif
#define CK_INLINE static inline __attribute__((always_inline))

/// Tokens per pass over a weight row.
#define TOKENS_PER_PASS 8

/// vpshufb masks that build int16 scale vectors from a broadcast 16-byte source (one mask per
/// 128-bit lane; 0x80 gives a zero byte). Q4_K's source is [sc0…sc7, m0…m7] (unsigned: the byte
/// goes low, zero high); Q6_K's is its 16 signed scales (the byte goes high, then vpsraw by 8).
/// Pack order: lane L of packs(a, b) holds a's int32 lanes 4L…4L+3, then b's.
#define LO(g) g, 0x80, g, 0x80, g, 0x80, g, 0x80                   // four words, scale g (unsigned)
#define HI(g) 0x80, g, 0x80, g, 0x80, g, 0x80, g                   // four words, scale g << 8
static const uint8_t q4k_scale_masks[2][64] __attribute__((aligned(64))) = {
    // packs(chunk 0, chunk 1): lanes 0–1 are groups 0 and 2, lanes 2–3 groups 1 and 3.
    { LO(0), LO(2), LO(0), LO(2), LO(1), LO(3), LO(1), LO(3) },
    // packs(chunk 2, chunk 3): groups 4 and 6, then 5 and 7.
    { LO(4), LO(6), LO(4), LO(6), LO(5), LO(7), LO(5), LO(7) },
};
/// Each min twice (bytes 8…15 of the source), in the order of the 16-value sums: words 0…15.
static const uint8_t q4k_min_mask[64] __attribute__((aligned(64))) = {
    8, 0x80, 8, 0x80, 9, 0x80, 9, 0x80, 10, 0x80, 10, 0x80, 11, 0x80, 11, 0x80,
    12, 0x80, 12, 0x80, 13, 0x80, 13, 0x80, 14, 0x80, 14, 0x80, 15, 0x80, 15, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};
static const uint8_t q6k_scale_masks[2][64] __attribute__((aligned(64))) = {
    // Half h, packs(quarters 0–1, quarters 2–3): lane L is group 8h + L, then 8h + 4 + L.
    { HI(0), HI(4), HI(1), HI(5), HI(2), HI(6), HI(3), HI(7) },
    { HI(8), HI(12), HI(9), HI(13), HI(10), HI(14), HI(11), HI(15) },
};
#undef LO
#undef HI

/// The 16 int16 activation sums of one super-block in words 0…15, zero above.
CK_INLINE CK_AVX512 __m512i load_bsums(const int16_t *bsums) {
    return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)bsums));
}

/// out[t] = W[o] · x_t for nt tokens (1…8, constant after inlining) of one Q4_K row at `w`.
CK_INLINE CK_AVX512 void row_q4_k(const uint8_t *w, int cols, const void *act, int nb, const int nt, float *out) {
    const __m512i zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(0x0F);
    const __m512i mask01 = _mm512_load_si512((const void *)q4k_scale_masks[0]);
    const __m512i mask23 = _mm512_load_si512((const void *)q4k_scale_masks[1]);
    const __m512i mask_min = _mm512_load_si512((const void *)q4k_min_mask);
    ck_act_row a[TOKENS_PER_PASS];
    __m512 acc[TOKENS_PER_PASS];
    for (int t = 0; t < nt; t++) {
        a[t] = ck_act_row_at(CK_ACT_Q8_K, act, cols, t);
        acc[t] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++, w += 144) {
        uint8_t packed[16];
        ck_unpack_q4k_scales(w + 4, packed, packed + 8);
        const __m512i source = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)packed));
        const __m512i scales01 = _mm512_shuffle_epi8(source, mask01);
        const __m512i scales23 = _mm512_shuffle_epi8(source, mask23);
        const __m512i mins = _mm512_shuffle_epi8(source, mask_min);
        // Chunk c: its 32 bytes in both halves, the upper half's words shifted down a nibble.
        __m512i codes[4];
        for (int c = 0; c < 4; c++) {
            const __m512i raw = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(w + 16 + 32 * c)));
            codes[c] = _mm512_and_si512(_mm512_mask_srli_epi16(raw, (__mmask32)0xFFFF0000u, raw, 4), m4);
        }
        const float d = _cvtsh_ss(ck_load_u16(w)), dmin = _cvtsh_ss(ck_load_u16(w + 2));
        for (int t = 0; t < nt; t++) {
            const int8_t *q = a[t].q + 256 * b;
            __m512i dot[4];
            for (int c = 0; c < 4; c++) dot[c] = _mm512_dpbusd_epi32(zero, codes[c], _mm512_loadu_si512(q + 64 * c));
            const __m512i sumi = _mm512_add_epi32(_mm512_madd_epi16(_mm512_packs_epi32(dot[0], dot[1]), scales01),
                                                  _mm512_madd_epi16(_mm512_packs_epi32(dot[2], dot[3]), scales23));
            // m_g · Σ_{32-group g} q in lanes 0…7 (the sums' upper words are zero).
            const __m512i minterm = _mm512_madd_epi16(load_bsums(a[t].bsums + 16 * b), mins);
            const float dx = a[t].d[b];
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(sumi), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * dx), _mm512_cvtepi32_ps(minterm), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}

/// out[t] = W[o] · x_t for nt tokens (1…8) of one Q6_K row at `w`.
CK_INLINE CK_AVX512 void row_q6_k(const uint8_t *w, int cols, const void *act, int nb, const int nt, float *out) {
    const __m512i zero = _mm512_setzero_si512(), m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i mask0 = _mm512_load_si512((const void *)q6k_scale_masks[0]);
    const __m512i mask1 = _mm512_load_si512((const void *)q6k_scale_masks[1]);
    ck_act_row a[TOKENS_PER_PASS];
    __m512 acc[TOKENS_PER_PASS];
    for (int t = 0; t < nt; t++) {
        a[t] = ck_act_row_at(CK_ACT_Q8_K, act, cols, t);
        acc[t] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++, w += 210) {
        const __m128i raw_scales = _mm_loadu_si128((const __m128i *)(const void *)(w + 192));
        const __m512i source = _mm512_broadcast_i32x4(raw_scales);
        __m512i scales[2];
        scales[0] = _mm512_srai_epi16(_mm512_shuffle_epi8(source, mask0), 8);
        scales[1] = _mm512_srai_epi16(_mm512_shuffle_epi8(source, mask1), 8);
        // All sixteen scales in order (words 0…15) for the offset term.
        const __m512i scales_in_order = _mm512_zextsi256_si512(_mm256_cvtepi8_epi16(raw_scales));
        // codes[2h]: quarters 0–1 of half h; codes[2h + 1]: quarters 2–3. Quarter k's high bits are
        // bits 2k, 2k + 1 of qh, moved to bits 4–5 by a 16-bit shift (what a shift carries across
        // a byte boundary lands outside the 0x30 mask).
        __m512i codes[4];
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512((const void *)(w + 64 * h));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(w + 128 + 32 * h)));
            const __m512i qh2 = _mm512_slli_epi16(qh, 2);
            const __m512i high01 = _mm512_mask_slli_epi16(qh2, (__mmask32)0x0000FFFFu, qh2, 2);  // << 4, << 2
            const __m512i high23 = _mm512_mask_srli_epi16(qh, (__mmask32)0xFFFF0000u, qh, 2);    // << 0, >> 2
            codes[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(high01, m30));
            codes[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(high23, m30));
        }
        const float d = _cvtsh_ss(ck_load_u16(w + 208));
        for (int t = 0; t < nt; t++) {
            const int8_t *q = a[t].q + 256 * b;
            __m512i dot[4];
            for (int k = 0; k < 4; k++) dot[k] = _mm512_dpbusd_epi32(zero, codes[k], _mm512_loadu_si512(q + 64 * k));
            // −32 · Σ_g sc_g · Σ_{16-group g} q: the codes' offset, from the activation sums.
            const __m512i offset = _mm512_madd_epi16(load_bsums(a[t].bsums + 16 * b), scales_in_order);
            __m512i sumi = _mm512_sub_epi32(_mm512_madd_epi16(_mm512_packs_epi32(dot[0], dot[1]), scales[0]),
                                            _mm512_slli_epi32(offset, 5));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(_mm512_packs_epi32(dot[2], dot[3]), scales[1]));
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * a[t].d[b]), _mm512_cvtepi32_ps(sumi), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]);
}


#define CK_ROW_KERNELS(NT)                                                                                      \
    static CK_AVX512 __attribute__((noinline)) void row_q4_k_##NT(const uint8_t *w, int cols, const void *act,   \
                                                                 int nb, float *out) {                          \
        row_q4_k(w, cols, act, nb, NT, out);                                                                   \
    }                                                                                                           \
    static CK_AVX512 __attribute__((noinline)) void row_q6_k_##NT(const uint8_t *w, int cols, const void *act,   \
                                                                 int nb, float *out) {                          \
        row_q6_k(w, cols, act, nb, NT, out);                                                                   \
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

static const ck_quant_row_kernel q4_k_kernels[TOKENS_PER_PASS] = {row_q4_k_1, row_q4_k_2, row_q4_k_3, row_q4_k_4,
                                                         row_q4_k_5, row_q4_k_6, row_q4_k_7, row_q4_k_8};
static const ck_quant_row_kernel q6_k_kernels[TOKENS_PER_PASS] = {row_q6_k_1, row_q6_k_2, row_q6_k_3, row_q6_k_4,
                                                         row_q6_k_5, row_q6_k_6, row_q6_k_7, row_q6_k_8};

void ck_quant_matmul_k_avx512(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                              int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    const ck_quant_row_kernel *kernels = ggml_type == CK_GGML_Q4_K ? q4_k_kernels : q6_k_kernels;
    const int nb = cols / CK_QK_K;
    const size_t act_bytes = ck_quant_activation_row_bytes(ggml_type, cols);
    ck_quant_drive_rows(kernels, nb, w, row_bytes, cols, act, act_bytes, tokens, y, ldy, row_begin, row_end, accumulate);
}
