// What the quantised product files share (not part of the public API): the GGML block layouts
// they read, the layout of the quantised activations they write and read, and a few helpers.
//
// Weight blocks (ggml-common.h; all fields little-endian, blocks packed, rows unaligned):
//   Q8_0  34 B / 32:  d f16 | qs int8[32]                       w = d·q
//   Q4_0  18 B / 32:  d f16 | qs u8[16]                         w = d·(nibble − 8); element j < 16 is
//                                                               the low nibble of qs[j], j + 16 the high one
//   Q4_1  20 B / 32:  d f16 | m f16 | qs u8[16]                 w = d·nibble + m (nibbles as Q4_0)
//   Q4_K 144 B / 256: d f16 | dmin f16 | scales u8[12] | qs u8[128]
//                     eight 32-groups, 6-bit scale sc and min m each (packing: unpack_q4k_scales);
//                     64 values per 32 qs bytes, low nibbles group 2c, high nibbles group 2c+1;
//                     w = (d·sc)·q − dmin·m
//   Q6_K 210 B / 256: ql u8[128] | qh u8[64] | scales int8[16] | d f16
//                     two 128-halves (ql 64 B, qh 32 B each); element l of quarter k (k < 4, l < 32)
//                     is nibble k/2 of ql[l + 32·(k%2)] | bits 2k..2k+1 of qh[l] << 4; sixteen
//                     16-groups with a signed scale; w = (d·sc)·(q − 32)
//
// Quantised activations (our own layout, not ggml's). One row per token, rows
// ck_quant_activation_row_bytes apart (a multiple of 64 bytes), each row structure-of-arrays so
// that the int8 values are one contiguous run the kernels load 32 at a time:
//   ACT_Q8    (Q8_0, Q4_0): q int8[cols] | d f32[cols/32]
//   ACT_Q8_S  (Q4_1):       q int8[cols] | d f32[cols/32] | s f32[cols/32]      s = d · Σ q over the block
//   ACT_Q8_K  (Q4_K, Q6_K): q int8[cols] | d f32[cols/256] | bsums int16[cols/16]  (Σ q per 16 values)
// x ≈ d·q with d = max|x| / 127 over the block and q = round-half-even(x · 127/max|x|) in [−127, 127]:
// never −128, so that a kernel may negate q (the sign trick of the Q8_0 product) without overflow.
// Both paths write the same bytes (the same float operations, the same rounding).
#ifndef LOSAD_QUANT_INTERNAL_H
#define LOSAD_QUANT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ckernels.h"

#define CK_QK 32     // values per block of the 32-block types
#define CK_QK_K 256  // values per super-block of the K types

enum { CK_ACT_Q8 = 0, CK_ACT_Q8_S = 1, CK_ACT_Q8_K = 2, CK_ACT_NONE = -1 };

/// The activation layout `ggml_type` pairs with, or CK_ACT_NONE.
static inline int ck_act_kind(int ggml_type) {
    switch (ggml_type) {
    case CK_GGML_Q8_0:
    case CK_GGML_Q4_0: return CK_ACT_Q8;
    case CK_GGML_Q4_1: return CK_ACT_Q8_S;
    case CK_GGML_Q4_K:
    case CK_GGML_Q6_K: return CK_ACT_Q8_K;
    default: return CK_ACT_NONE;
    }
}

/// Values per activation block (one d) of an activation kind.
static inline int ck_act_block(int kind) { return kind == CK_ACT_Q8_K ? CK_QK_K : CK_QK; }

/// The fields of one quantised activation row.
typedef struct {
    const int8_t *q;        // [cols]
    const float *d;         // [cols / block]
    const float *s;         // [cols / 32] (ACT_Q8_S) or NULL
    const int16_t *bsums;   // [cols / 16] (ACT_Q8_K) or NULL
} ck_act_row;

typedef struct {
    int8_t *q;
    float *d;
    float *s;
    int16_t *bsums;
} ck_act_row_mut;

/// Byte offsets of the fields inside a row and the row's size (rounded up to 64 bytes).
static inline size_t ck_act_row_layout(int kind, int cols, size_t *d_off, size_t *s_off, size_t *bsums_off) {
    size_t nb = (size_t)cols / (size_t)ck_act_block(kind);
    size_t d = (size_t)cols, end = d + 4 * nb, s = 0, b = 0;
    if (kind == CK_ACT_Q8_S) { s = end; end += 4 * nb; }
    if (kind == CK_ACT_Q8_K) { b = end; end += 2 * ((size_t)cols / 16); }
    if (d_off) *d_off = d;
    if (s_off) *s_off = s;
    if (bsums_off) *bsums_off = b;
    return (end + 63) & ~(size_t)63;
}

static inline ck_act_row_mut ck_act_row_at_mut(int kind, void *act, int cols, int t) {
    size_t d_off, s_off, b_off;
    size_t bytes = ck_act_row_layout(kind, cols, &d_off, &s_off, &b_off);
    uint8_t *row = (uint8_t *)act + (size_t)t * bytes;
    ck_act_row_mut r = { (int8_t *)row, (float *)(void *)(row + d_off),
                         kind == CK_ACT_Q8_S ? (float *)(void *)(row + s_off) : NULL,
                         kind == CK_ACT_Q8_K ? (int16_t *)(void *)(row + b_off) : NULL };
    return r;
}

static inline ck_act_row ck_act_row_at(int kind, const void *act, int cols, int t) {
    ck_act_row_mut m = ck_act_row_at_mut(kind, (void *)act, cols, t);
    ck_act_row r = { m.q, m.d, m.s, m.bsums };
    return r;
}

// MARK: - Field access (unaligned, little-endian hosts only: x86-64)

static inline uint16_t ck_load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t ck_load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/// IEEE binary16 bits to float, exactly (subnormals included; a NaN comes back quiet, as F16C's
/// vcvtph2ps returns it).
static inline float ck_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu, bits;
    float f;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13) | (mantissa ? 0x400000u : 0);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else {
        f = (float)mantissa * 0x1p-24f;  // subnormal (or zero): exact in float
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    memcpy(&f, &bits, 4);
    return f;
}

/// Q4_K's eight 6-bit scales and mins from its 12 packed bytes (ggml's get_scale_min_k4, four
/// groups at a time): groups 0–3 keep theirs in the low six bits of bytes 0–3 (scales) and 4–7
/// (mins); groups 4–7 take a nibble of bytes 8–11 and the top two bits of bytes 0–3 / 4–7.
static inline void ck_unpack_q4k_scales(const uint8_t *packed, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u0 = ck_load_u32(packed), u1 = ck_load_u32(packed + 4), u2 = ck_load_u32(packed + 8);
    uint32_t s_lo = u0 & 0x3F3F3F3Fu;
    uint32_t m_lo = u1 & 0x3F3F3F3Fu;
    uint32_t s_hi = (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4);
    uint32_t m_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4);
    memcpy(sc, &s_lo, 4); memcpy(sc + 4, &s_hi, 4);
    memcpy(mn, &m_lo, 4); memcpy(mn + 4, &m_hi, 4);
}

// MARK: - Per-path entry points (quant_dot.c dispatches)

void ck_quant_activations_scalar(int kind, const float *x, int tokens, int cols, size_t ldx, void *act);
void ck_quant_activations_avx2(int kind, const float *x, int tokens, int cols, size_t ldx, void *act);

void ck_quant_matmul_scalar(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                            int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate);
void ck_quant_matmul_avx2(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                          int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate);
void ck_quant_matmul_k_avx2(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                            int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate);

int ck_quant_matmul_avx512_supports(int ggml_type);
void ck_quant_matmul_avx512(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                            int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate);
void ck_quant_matmul_k_avx512(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                              int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate);

void ck_quant_dequantize_scalar(int ggml_type, const uint8_t *w, size_t row_bytes, int cols,
                                int row_begin, int row_end, float *out);
void ck_quant_dequantize_avx2(int ggml_type, const uint8_t *w, size_t row_bytes, int cols,
                              int row_begin, int row_end, float *out);


/// An AVX-512 file's product of one weight row at `w` (nb blocks of `cols`) with up to 8 tokens' activations at
/// `act` into out[0…nt−1]; one specialisation per token count nt.
typedef void (*ck_quant_row_kernel)(const uint8_t *w, int cols, const void *act, int nb, float *out);

/// y[t·ldy + o] (+)= row o · token t for rows [row_begin, row_end) and every token, 8 tokens per pass through
/// kernels[nt − 1]: how the AVX-512 quantised products drive their row kernels.
static inline void ck_quant_drive_rows(const ck_quant_row_kernel kernels[8], int nb, const uint8_t *w, size_t row_bytes,
                                       int cols, const void *act, size_t act_bytes, int tokens, float *y, size_t ldy,
                                       int row_begin, int row_end, int accumulate) {
    for (int o = row_begin; o < row_end; o++) {
        for (int t0 = 0; t0 < tokens; t0 += 8) {
            int nt = tokens - t0 < 8 ? tokens - t0 : 8;
            float sums[8];
            kernels[nt - 1](w + (size_t)o * row_bytes, cols, (const uint8_t *)act + (size_t)t0 * act_bytes, nb, sums);
            for (int t = 0; t < nt; t++) {
                float *target = y + (size_t)(t0 + t) * ldy + o;
                *target = accumulate ? *target + sums[t] : sums[t];
            }
        }
    }
}

#endif
