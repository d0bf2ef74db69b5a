// The AVX2 (+ FMA, F16C) path of the compact sparse products; sparse_dot.c holds the entry points,
// the activation layouts and the scalar reference this path must match.
//
// Expansion: the stored values of a 64-column group are spread back to their columns with byte
// shuffles. A table entry per mask byte (8 columns) gives the pshufb indices of those columns
// (0x80, which shuffles in a zero, for an unstored one); two entries make the 128-bit pattern of
// 16 columns read from one 16-byte load, the second entry's indices offset by the popcount of the
// first byte (see low16). Two such 16-column halves, loaded at their own offsets, fill a 256-bit
// register. The int8 dot then runs densely on 64 columns:
// maddubs(|w|, sign(x, w)) → madd → int32, × (w_scale · x_scale) into float accumulators.
// s4 values are first unpacked to bytes (their codebook levels, one pshufb) in a small buffer, then
// expanded the same way;
// f16 values are expanded as byte pairs 8 columns at a time and widened with vcvtph2ps.
//
// Cost: the expansion (mask bytes → patterns → shuffles, value offsets by popcount) is ~40 of the
// ~58 micro-ops per group and token-independent; the loop is bound by micro-op count, not memory,
// so the time per group hardly depends on the density (measured on Zen 3: 50 % and 70 % sparse
// take the same time; dense Q8_0's dot needs ~26 micro-ops per 64 weights).
//
// Over-reads: a 16-byte load at a 16-column half's first value, or the 32 bytes of an s4 group,
// reach at most 32 bytes past the matrix's last value byte: within CK_SPARSE_VALUE_PADDING.
#include "ckernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define CK_AVX2 __attribute__((target("avx2,fma,f16c,popcnt")))
#define CK_INLINE static inline __attribute__((always_inline))

size_t ck_sparse_activation_scale_bytes(int cols);

/// The pshufb pattern of 16 columns with mask bytes lo, hi is low16[lo] + (0, high8[hi]): low16[lo]
/// holds lo's 8 indices (column i → the rank of its value; 0x80, a zero, if unstored) and then
/// popcount(lo) eight times, high8[hi] holds hi's indices, loaded into the upper half of a zero
/// register, so the high byte's indices land past the low byte's values (0x80 + 8 keeps its top
/// bit). Two loads and an add, no scalar popcount: the loop is bound by its micro-op count.
static uint8_t low16[256][16] __attribute__((aligned(16)));
static uint64_t high8[256];
/// expand16[b]: the 16 pshufb indices that spread the f16 values of mask byte b to 8 columns.
static uint8_t expand16[256][16] __attribute__((aligned(16)));

__attribute__((constructor)) static void build_expansion_tables(void) {
    for (int b = 0; b < 256; b++) {
        int rank = 0;
        for (int i = 0; i < 8; i++) {
            int stored = (b >> i) & 1;
            low16[b][i] = stored ? (uint8_t)rank : 0x80;
            if (i == 0) high8[b] = 0;
            high8[b] |= (uint64_t)(stored ? rank : 0x80) << (8 * i);
            expand16[b][2 * i] = stored ? (uint8_t)(2 * rank) : 0x80;
            expand16[b][2 * i + 1] = stored ? (uint8_t)(2 * rank + 1) : 0x80;
            rank += stored;
        }
        for (int i = 8; i < 16; i++) low16[b][i] = (uint8_t)rank;
    }
}

static int groups_of(int cols) { return (cols + CK_SPARSE_GROUP - 1) / CK_SPARSE_GROUP; }

CK_INLINE CK_AVX2 float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CK_INLINE CK_AVX2 float horizontal_max(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// MARK: - Expansion

/// The shuffle pattern of 16 columns (mask bytes lo, hi) read from one 16-byte load.
CK_INLINE CK_AVX2 __m128i pattern16(unsigned lo, unsigned hi) {
    __m128i high = _mm_castpd_si128(_mm_loadh_pd(_mm_setzero_pd(), (const double *)&high8[hi]));
    return _mm_add_epi8(_mm_load_si128((const __m128i *)low16[lo]), high);
}

/// The 64 int8 weights of one group, unstored columns 0: columns 0…31 in *w0, 32…63 in *w1.
/// `mask` points at the group's mask word; its bytes are loaded one by one (volatile, so that the
/// compiler does not turn them back into shifts of m: the loads measured ~7 % faster, the loop
/// being bound by its micro-op count). `v` points at the group's first value byte.
CK_INLINE CK_AVX2 void expand_bytes(const uint64_t *mask, const uint8_t *v, __m256i *w0, __m256i *w1) {
    uint64_t m = *mask;
    const volatile uint8_t *b = (const volatile uint8_t *)mask;
    unsigned s2 = (unsigned)__builtin_popcountll(m & 0xffffull);
    unsigned s4 = (unsigned)__builtin_popcountll(m & 0xffffffffull);
    unsigned s6 = (unsigned)__builtin_popcountll(m & 0xffffffffffffull);
    __m256i p0 = _mm256_inserti128_si256(_mm256_castsi128_si256(pattern16(b[0], b[1])), pattern16(b[2], b[3]), 1);
    __m256i p1 = _mm256_inserti128_si256(_mm256_castsi128_si256(pattern16(b[4], b[5])), pattern16(b[6], b[7]), 1);
    __m256i v0 = _mm256_loadu2_m128i((const __m128i *)(v + s2), (const __m128i *)v);
    __m256i v1 = _mm256_loadu2_m128i((const __m128i *)(v + s6), (const __m128i *)(v + s4));
    *w0 = _mm256_shuffle_epi8(v0, p0);
    *w1 = _mm256_shuffle_epi8(v1, p1);
}

/// Unpacks the s4 groups [g_begin, g_end) of a row, starting at value byte `v`, to one byte per
/// value (its level, ck_sparse_s4_levels[nibble], looked up with pshufb), group g at
/// out + 64·(g − g_begin). Returns the first byte after them.
CK_INLINE CK_AVX2 const uint8_t *unpack_s4(const uint64_t *masks, int g_begin, int g_end, const uint8_t *v,
                                           uint8_t *out) {
    const __m256i low = _mm256_set1_epi16(0x000f), high = _mm256_set1_epi16(0x00f0);
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ck_sparse_s4_levels));
    for (int g = g_begin; g < g_end; g++) {
        // Byte i → 16-bit lane i; its low nibble (value 2i) to the low byte, high nibble (2i + 1) above.
        __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)v));
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(v + 16)));
        a = _mm256_or_si256(_mm256_and_si256(a, low), _mm256_slli_epi16(_mm256_and_si256(a, high), 4));
        b = _mm256_or_si256(_mm256_and_si256(b, low), _mm256_slli_epi16(_mm256_and_si256(b, high), 4));
        uint8_t *group = out + (size_t)(g - g_begin) * CK_SPARSE_GROUP;
        _mm256_store_si256((__m256i *)group, _mm256_shuffle_epi8(levels, a));
        _mm256_store_si256((__m256i *)(group + 32), _mm256_shuffle_epi8(levels, b));
        v += (__builtin_popcountll(masks[g]) + 1) / 2;
    }
    return v;
}

/// The 64 float weights of one f16 group (unstored columns +0) into out[0…63].
CK_INLINE CK_AVX2 void expand_halves(uint64_t m, const uint8_t *v, float *out) {
    for (int k = 0; k < 8; k++) {
        unsigned start = k == 0 ? 0 : (unsigned)__builtin_popcountll(m & ((1ull << (8 * k)) - 1));
        __m128i halves = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(v + 2 * start)),
                                          _mm_load_si128((const __m128i *)expand16[(m >> (8 * k)) & 255]));
        _mm256_storeu_ps(out + 8 * k, _mm256_cvtph_ps(halves));
    }
}

// MARK: - Activations

CK_AVX2 void ck_sparse_quantize_activations_avx2(int kind, const float *x, int tokens, int cols, size_t ldx, void *act) {
    size_t row_bytes = ck_sparse_activation_row_bytes(kind, cols);
    size_t scale_bytes = ck_sparse_activation_scale_bytes(cols);
    int groups = groups_of(cols);
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int t = 0; t < tokens; t++) {
        const float *xt = x + (size_t)t * ldx;
        uint8_t *row = (uint8_t *)act + (size_t)t * row_bytes;
        if (kind == CK_SPARSE_F16) {
            float *out = (float *)row;
            memcpy(out, xt, (size_t)cols * sizeof(float));
            memset(out + cols, 0, (size_t)(groups * CK_SPARSE_GROUP - cols) * sizeof(float));
            continue;
        }
        float *scales = (float *)row;
        int8_t *q = (int8_t *)(row + scale_bytes);
        memset(scales + groups, 0, scale_bytes - (size_t)groups * sizeof(float));
        for (int g = 0; g < groups; g++) {
            const float *xg = xt + (size_t)g * CK_SPARSE_GROUP;
            float padded[CK_SPARSE_GROUP];
            int count = cols - g * CK_SPARSE_GROUP;
            if (count < CK_SPARSE_GROUP) {
                memcpy(padded, xg, (size_t)count * sizeof(float));
                memset(padded + count, 0, (size_t)(CK_SPARSE_GROUP - count) * sizeof(float));
                xg = padded;
            }
            __m256 v[8];
            __m256 amax = _mm256_setzero_ps();
            for (int i = 0; i < 8; i++) {
                v[i] = _mm256_loadu_ps(xg + 8 * i);
                amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
            }
            float absmax = horizontal_max(amax);
            // The same float operations as the scalar reference, so both give the same bytes.
            float inverse = absmax > 0 ? 127.0f / absmax : 0.0f;
            scales[g] = absmax / 127.0f;
            __m256 mul = _mm256_set1_ps(inverse);
            __m256i i32[8];
            for (int i = 0; i < 8; i++) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], mul));
            __m256i a = _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
            __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i32[4], i32[5]), _mm256_packs_epi32(i32[6], i32[7]));
            _mm256_storeu_si256((__m256i *)(q + (size_t)g * CK_SPARSE_GROUP), _mm256_permutevar8x32_epi32(a, order));
            _mm256_storeu_si256((__m256i *)(q + (size_t)g * CK_SPARSE_GROUP + 32), _mm256_permutevar8x32_epi32(b, order));
        }
    }
}

// MARK: - Products

/// Groups per chunk of a row: 2 KiB of unpacked s4 bytes, in L1 when the expansion reads them.
#define CHUNK 32

/// y-sums of row o for `nt` tokens (a compile-time constant after inlining, 1…4): out[t] = W[o] · x_t.
/// The row's masks, scales and values are read once for all nt tokens. The row is walked in chunks
/// of CHUNK groups: their scale products w_scale · x_scale first (8 at a time), the s4 values
/// unpacked to bytes, then the expansion and dot products.
CK_INLINE CK_AVX2 void row_int8(const ck_sparse_matrix *w, int o, int groups, const uint8_t *act,
                                size_t row_bytes, size_t scale_bytes, const int nt, const int s4, float *out) {
    const uint64_t *masks = w->masks + (size_t)o * groups;
    const uint16_t *w_scales = w->scales + (size_t)o * groups;
    const uint8_t *v = w->values + w->row_offsets[o];
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    _Alignas(32) uint8_t unpacked[CHUNK * CK_SPARSE_GROUP + 32];
    _Alignas(32) float scale[4][CHUNK];
    for (int g_begin = 0; g_begin < groups; g_begin += CHUNK) {
        int count = groups - g_begin < CHUNK ? groups - g_begin : CHUNK;
        for (int t = 0; t < nt; t++) {
            const float *x_scales = (const float *)(act + (size_t)t * row_bytes) + g_begin;
            int i = 0;
            for (; i + 8 <= count; i += 8) {
                __m256 ws = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w_scales + g_begin + i)));
                _mm256_store_ps(scale[t] + i, _mm256_mul_ps(ws, _mm256_loadu_ps(x_scales + i)));
            }
            for (; i < count; i++) scale[t][i] = _cvtsh_ss(w_scales[g_begin + i]) * x_scales[i];
        }
        if (s4) v = unpack_s4(masks, g_begin, g_begin + count, v, unpacked);
        const uint64_t *chunk_masks = masks + g_begin;
        const int8_t *xq = (const int8_t *)(act + scale_bytes) + (size_t)g_begin * CK_SPARSE_GROUP;
        for (int i = 0; i < count; i++) {
            uint64_t m = chunk_masks[i];
            __m256i w0, w1;
            if (s4) {
                expand_bytes(chunk_masks + i, unpacked + (size_t)i * CK_SPARSE_GROUP, &w0, &w1);
            } else {
                expand_bytes(chunk_masks + i, v, &w0, &w1);
                v += __builtin_popcountll(m);
            }
            __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
            for (int t = 0; t < nt; t++) {
                const int8_t *x = xq + (size_t)t * row_bytes + (size_t)i * CK_SPARSE_GROUP;
                __m256i x0 = _mm256_loadu_si256((const __m256i *)x);
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(x + 32));
                __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(x0, w0));
                __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(x1, w1));
                // |s4 level| ≤ 64, |x| ≤ 127: p0 + p1 ≤ 4 · 64 · 127 < 2^15 cannot overflow; s8's can.
                __m256i dot = s4 ? _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones)
                                 : _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(&scale[t][i]), acc[t]);
            }
        }
    }
    for (int t = 0; t < nt; t++) out[t] = horizontal_sum(acc[t]);
}

/// The f16 counterpart of row_int8: x stays float, values are widened.
CK_INLINE CK_AVX2 void row_f16(const ck_sparse_matrix *w, int o, int groups, const uint8_t *act,
                               size_t row_bytes, const int nt, float *out) {
    const uint64_t *masks = w->masks + (size_t)o * groups;
    const uint8_t *v = w->values + w->row_offsets[o];
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int g = 0; g < groups; g++) {
        uint64_t m = masks[g];
        for (int k = 0; k < 8; k++) {
            unsigned start = k == 0 ? 0 : (unsigned)__builtin_popcountll(m & ((1ull << (8 * k)) - 1));
            __m128i halves = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(v + 2 * start)),
                                              _mm_load_si128((const __m128i *)expand16[(m >> (8 * k)) & 255]));
            __m256 f = _mm256_cvtph_ps(halves);
            for (int t = 0; t < nt; t++) {
                const float *x = (const float *)(act + (size_t)t * row_bytes) + (size_t)g * CK_SPARSE_GROUP + 8 * k;
                acc[t] = _mm256_fmadd_ps(f, _mm256_loadu_ps(x), acc[t]);
            }
        }
        v += 2 * __builtin_popcountll(m);
    }
    for (int t = 0; t < nt; t++) out[t] = horizontal_sum(acc[t]);
}

// One function per kind and token count (1…4), so that each keeps its accumulators and pointers
// in registers.
typedef void (*row_kernel)(const ck_sparse_matrix *, int, int, const uint8_t *, size_t, size_t, float *);

#define CK_ROW_KERNELS(NT)                                                                                   \
    static CK_AVX2 __attribute__((noinline)) void row_s8_##NT(const ck_sparse_matrix *w, int o, int groups,   \
        const uint8_t *act, size_t row_bytes, size_t scale_bytes, float *out) {                              \
        row_int8(w, o, groups, act, row_bytes, scale_bytes, NT, 0, out);                                    \
    }                                                                                                        \
    static CK_AVX2 __attribute__((noinline)) void row_s4_##NT(const ck_sparse_matrix *w, int o, int groups,   \
        const uint8_t *act, size_t row_bytes, size_t scale_bytes, float *out) {                              \
        row_int8(w, o, groups, act, row_bytes, scale_bytes, NT, 1, out);                                    \
    }                                                                                                        \
    static CK_AVX2 __attribute__((noinline)) void row_f16_##NT(const ck_sparse_matrix *w, int o, int groups,  \
        const uint8_t *act, size_t row_bytes, size_t scale_bytes, float *out) {                              \
        (void)scale_bytes;                                                                                   \
        row_f16(w, o, groups, act, row_bytes, NT, out);                                                      \
    }
CK_ROW_KERNELS(1)
CK_ROW_KERNELS(2)
CK_ROW_KERNELS(3)
CK_ROW_KERNELS(4)
#undef CK_ROW_KERNELS

static const row_kernel row_kernels[3][4] = {
    {row_s8_1, row_s8_2, row_s8_3, row_s8_4},
    {row_s4_1, row_s4_2, row_s4_3, row_s4_4},
    {row_f16_1, row_f16_2, row_f16_3, row_f16_4},
};

CK_AVX2 void ck_sparse_matmul_avx2(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                                   int row_begin, int row_end, int accumulate) {
    int groups = groups_of(w->cols);
    size_t row_bytes = ck_sparse_activation_row_bytes(w->kind, w->cols);
    size_t scale_bytes = ck_sparse_activation_scale_bytes(w->cols);
    for (int o = row_begin; o < row_end; o++) {
        // Blocks of 4 tokens keep the accumulators in registers; past 4 tokens a row is expanded
        // again per block, from L1 (a row is a few KiB), not from memory.
        for (int t0 = 0; t0 < tokens; t0 += 4) {
            int nt = tokens - t0 < 4 ? tokens - t0 : 4;
            float sums[4];
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

CK_AVX2 void ck_sparse_dequantize_rows_avx2(const ck_sparse_matrix *w, int row_begin, int row_end, float *out) {
    int groups = groups_of(w->cols);
    _Alignas(32) uint8_t unpacked[CK_SPARSE_GROUP + 32];
    _Alignas(32) int8_t bytes[CK_SPARSE_GROUP];
    _Alignas(32) float decoded[CK_SPARSE_GROUP];
    for (int o = row_begin; o < row_end; o++) {
        const uint64_t *masks = w->masks + (size_t)o * groups;
        const uint8_t *v = w->values + w->row_offsets[o];
        float *row = out + (size_t)(o - row_begin) * w->cols;
        for (int g = 0; g < groups; g++) {
            uint64_t m = masks[g];
            int count = w->cols - g * CK_SPARSE_GROUP;
            float *target = count >= CK_SPARSE_GROUP ? row + (size_t)g * CK_SPARSE_GROUP : decoded;
            if (w->kind == CK_SPARSE_F16) {
                expand_halves(m, v, target);
                v += 2 * __builtin_popcountll(m);
            } else {
                __m256i w0, w1;
                if (w->kind == CK_SPARSE_S4) {
                    v = unpack_s4(masks, g, g + 1, v, unpacked);
                    expand_bytes(masks + g, unpacked, &w0, &w1);
                } else {
                    expand_bytes(masks + g, v, &w0, &w1);
                    v += __builtin_popcountll(m);
                }
                _mm256_store_si256((__m256i *)bytes, w0);
                _mm256_store_si256((__m256i *)(bytes + 32), w1);
                __m256 scale = _mm256_set1_ps(_cvtsh_ss(w->scales[(size_t)o * groups + g]));
                for (int k = 0; k < 8; k++) {
                    __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(bytes + 8 * k)));
                    _mm256_storeu_ps(target + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), scale));
                }
            }
            if (target == decoded) memcpy(row + (size_t)g * CK_SPARSE_GROUP, decoded, (size_t)count * sizeof(float));
        }
    }
}

#else

// Not x86: ck_best_path never returns an AVX2 path, so these are never called.
void ck_sparse_quantize_activations_avx2(int kind, const float *x, int tokens, int cols, size_t ldx, void *act) {}
void ck_sparse_matmul_avx2(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                           int row_begin, int row_end, int accumulate) {}
void ck_sparse_dequantize_rows_avx2(const ck_sparse_matrix *w, int row_begin, int row_end, float *out) {}

#endif
