// AVX-512 VNNI quantised products for Q8_0, Q4_0 and Q4_1. Held to quant_dot.c's scalar reference.
// The Q4_K and Q6_K products are in quant_avx512_k.c; the decoders of all types and the activation
// quantiser on the AVX-512 path are the AVX2 kernels (quant_dot.c dispatches).
//
// Two 32-value blocks per 512-bit vector: block b's 32 weights in bytes 0…31, block b + 1's in
// 32…63, against the 64 contiguous activation bytes of the two blocks (ACT_Q8: q int8[cols]).
// vpdpbusd multiplies unsigned bytes by signed bytes into sixteen int32 lanes (lanes 0–7: block
// b, 8–15: block b + 1), each an exact sum of four products, then one convert and one FMA by
// [d_w·d_x of b ×8, of b + 1 ×8] (the product the reference forms) per pair.
//   Q8_0: the sign trick, |w| (u8; −128 gives 128, still right) times x negated where w < 0 (x is
//         never −128, so the negation is exact).
//   Q4_0: the codes c = nibble stay unsigned; Σ (c − 8)·x = vpdpbusd(c, x) − vpdpbusd(8, x).
//   Q4_1: vpdpbusd(c, x) times d_w·d_x, and m · s (s = d_x · Σ q, stored with the activations)
//         added per block in a scalar sum, as the reference does.
// Each weight row is read once for up to 8 tokens (one accumulator per token); an odd last block
// goes through the same code with the upper half masked off.
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

/// [a ×8, b ×8].
CK_INLINE CK_AVX512 __m512 pair_ps(float a, float b) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(a))),
                                               _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

/// Bytes per block of the 32-value types.
#define BLOCK_BYTES(T) ((T) == CK_GGML_Q8_0 ? 34 : (T) == CK_GGML_Q4_0 ? 18 : 20)

/// The 64 weights (Q8_0: int8; Q4_0, Q4_1: nibble codes 0…15 in element order) of blocks b and
/// b + 1 at `w` (block b + 1 only when `two`; otherwise its half is zero).
CK_INLINE CK_AVX512 __m512i load_pair(int T, const uint8_t *w, int two) {
    const int block_bytes = BLOCK_BYTES(T), qs = T == CK_GGML_Q4_1 ? 4 : 2;
    if (T == CK_GGML_Q8_0) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i b = two ? _mm256_loadu_si256((const __m256i *)(w + block_bytes + 2)) : _mm256_setzero_si256();
        return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    }
    // Q4_0, Q4_1: element j < 16 is the low nibble of qs[j], j + 16 the high one: 128-bit lanes
    // [qs_b, qs_b >> 4, qs_b+1, qs_b+1 >> 4], then & 0x0f.
    __m128i qa = _mm_loadu_si128((const __m128i *)(w + qs));
    __m128i qb = two ? _mm_loadu_si128((const __m128i *)(w + block_bytes + qs)) : _mm_setzero_si128();
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(qa, qa)), _mm256_set_m128i(qb, qb), 1);
    v = _mm512_mask_blend_epi64(0xCC, v, _mm512_srli_epi16(v, 4));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

/// out[t] = W[o] · x_t for nt tokens (1…8, constant after inlining), row at `w`, nb blocks.
CK_INLINE CK_AVX512 void row_32(const int T, const uint8_t *w, int cols, const void *act, int nb, const int nt,
                                float *out) {
    const int block_bytes = BLOCK_BYTES(T), kind = T == CK_GGML_Q4_1 ? CK_ACT_Q8_S : CK_ACT_Q8;
    const __m512i zero = _mm512_setzero_si512(), eights = _mm512_set1_epi8(8);
    ck_act_row a[TOKENS_PER_PASS];
    __m512 acc[TOKENS_PER_PASS];
    float mins[TOKENS_PER_PASS];  // Q4_1: Σ m · s
    for (int t = 0; t < nt; t++) {
        a[t] = ck_act_row_at(kind, act, cols, t);
        acc[t] = _mm512_setzero_ps();
        mins[t] = 0;
    }
    for (int b = 0; b < nb; b += 2, w += 2 * block_bytes) {
        const int two = b + 1 < nb;
        __m512i wq = load_pair(T, w, two);
        float d0 = _cvtsh_ss(ck_load_u16(w)), d1 = two ? _cvtsh_ss(ck_load_u16(w + block_bytes)) : 0.0f;
        __m512 dw = pair_ps(d0, d1);
        __m512i magnitude = wq;
        __mmask64 negative = 0;
        if (T == CK_GGML_Q8_0) {
            magnitude = _mm512_abs_epi8(wq);
            negative = _mm512_movepi8_mask(wq);
        }
        const __mmask64 bytes = two ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
        for (int t = 0; t < nt; t++) {
            __m512i x = _mm512_maskz_loadu_epi8(bytes, a[t].q + 32 * b);
            __m512i dot;
            if (T == CK_GGML_Q8_0) {
                dot = _mm512_dpbusd_epi32(zero, magnitude, _mm512_mask_sub_epi8(x, negative, zero, x));
            } else if (T == CK_GGML_Q4_0) {
                dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, magnitude, x), _mm512_dpbusd_epi32(zero, eights, x));
            } else {
                dot = _mm512_dpbusd_epi32(zero, magnitude, x);
                mins[t] += _cvtsh_ss(ck_load_u16(w + 2)) * a[t].s[b];
                if (two) mins[t] += _cvtsh_ss(ck_load_u16(w + block_bytes + 2)) * a[t].s[b + 1];
            }
            __m512 dx = pair_ps(a[t].d[b], two ? a[t].d[b + 1] : 0.0f);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, dx), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = _mm512_reduce_add_ps(acc[t]) + mins[t];
}


#define CK_ROW_KERNELS(NT)                                                                                      \
    static CK_AVX512 __attribute__((noinline)) void row_q8_0_##NT(const uint8_t *w, int cols, const void *act,   \
                                                                 int nb, float *out) {                          \
        row_32(CK_GGML_Q8_0, w, cols, act, nb, NT, out);                                                       \
    }                                                                                                           \
    static CK_AVX512 __attribute__((noinline)) void row_q4_0_##NT(const uint8_t *w, int cols, const void *act,   \
                                                                 int nb, float *out) {                          \
        row_32(CK_GGML_Q4_0, w, cols, act, nb, NT, out);                                                       \
    }                                                                                                           \
    static CK_AVX512 __attribute__((noinline)) void row_q4_1_##NT(const uint8_t *w, int cols, const void *act,   \
                                                                 int nb, float *out) {                          \
        row_32(CK_GGML_Q4_1, w, cols, act, nb, NT, out);                                                       \
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

static const ck_quant_row_kernel q8_0_kernels[TOKENS_PER_PASS] = {row_q8_0_1, row_q8_0_2, row_q8_0_3, row_q8_0_4,
                                                         row_q8_0_5, row_q8_0_6, row_q8_0_7, row_q8_0_8};
static const ck_quant_row_kernel q4_0_kernels[TOKENS_PER_PASS] = {row_q4_0_1, row_q4_0_2, row_q4_0_3, row_q4_0_4,
                                                         row_q4_0_5, row_q4_0_6, row_q4_0_7, row_q4_0_8};
static const ck_quant_row_kernel q4_1_kernels[TOKENS_PER_PASS] = {row_q4_1_1, row_q4_1_2, row_q4_1_3, row_q4_1_4,
                                                         row_q4_1_5, row_q4_1_6, row_q4_1_7, row_q4_1_8};

/// 1 when the AVX-512 path has a product for `ggml_type`: Q8_0, Q4_0, Q4_1 here, Q4_K and Q6_K in
/// quant_avx512_k.c (quant_dot.c runs the AVX2 one otherwise).
int ck_quant_matmul_avx512_supports(int ggml_type) {
    return ggml_type == CK_GGML_Q8_0 || ggml_type == CK_GGML_Q4_0 || ggml_type == CK_GGML_Q4_1 ||
           ggml_type == CK_GGML_Q4_K || ggml_type == CK_GGML_Q6_K;
}

void ck_quant_matmul_avx512(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                            int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    const ck_quant_row_kernel *kernels = ggml_type == CK_GGML_Q8_0 ? q8_0_kernels
                              : ggml_type == CK_GGML_Q4_0 ? q4_0_kernels : q4_1_kernels;
    const int nb = cols / CK_QK;
    const size_t act_bytes = ck_quant_activation_row_bytes(ggml_type, cols);
    ck_quant_drive_rows(kernels, nb, w, row_bytes, cols, act, act_bytes, tokens, y, ldy, row_begin, row_end, accumulate);
}
