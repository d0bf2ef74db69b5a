// Quantised dense products for GGML block formats: the public entry points (ckernels.h), the
// activation quantiser and the scalar reference kernels every SIMD path is held to.
//
// Method as in ggml's CPU backend (ggml-quants.c / ggml-cpu/quants.c: vec_dot_q*_q8_*): each
// token's activation row is quantised once to 8 bits in blocks matching the weight type's blocks,
// so that a block's dot product is an exact integer sum scaled once by the two block scales.
// Layouts: quant_internal.h. The AVX2 kernels are in quant_avx2.c (32-blocks) and quant_avx2_k.c,
// the AVX-512 ones in quant_avx512.c (32-blocks) and quant_avx512_k.c.
#include <math.h>

#include "quant_internal.h"

// ggml evaluates `q·d + m` and `(d·sc)·q − dmin·m` with a rounding after each operation; a fused
// multiply-add would round once and differ in the last bit from the reference decoders.
#pragma clang fp contract(off)

// MARK: - Public entry points
//
// The AVX-512 path has its own products for all five types (quant_avx512.c, quant_avx512_k.c); for
// the decoders and the activation quantiser it runs the AVX2 kernels, which every AVX-512 CPU can run.

int ck_quant_supported(int ggml_type) { return ck_act_kind(ggml_type) != CK_ACT_NONE; }

size_t ck_quant_activation_row_bytes(int ggml_type, int cols) {
    int kind = ck_act_kind(ggml_type);
    if (kind == CK_ACT_NONE || cols <= 0) return 0;
    return ck_act_row_layout(kind, cols, NULL, NULL, NULL);
}

void ck_quant_quantize_activations(int ggml_type, const float *x, int tokens, int cols, size_t ldx,
                                   void *act, int path) {
    int kind = ck_act_kind(ggml_type);
    if (kind == CK_ACT_NONE || tokens <= 0 || cols <= 0) return;
    if (path >= CK_PATH_AVX2) {
        ck_quant_activations_avx2(kind, x, tokens, cols, ldx, act);
    } else {
        ck_quant_activations_scalar(kind, x, tokens, cols, ldx, act);
    }
}

void ck_quant_matmul(int ggml_type, const void *weights, size_t row_bytes, int cols,
                     const void *act, int tokens, float *y, size_t ldy,
                     int row_begin, int row_end, int accumulate, int path) {
    if (!ck_quant_supported(ggml_type) || tokens <= 0 || row_end <= row_begin || cols <= 0) return;
    const uint8_t *w = (const uint8_t *)weights;
    if (path >= CK_PATH_AVX512 && ck_quant_matmul_avx512_supports(ggml_type)) {
        if (ggml_type == CK_GGML_Q4_K || ggml_type == CK_GGML_Q6_K) {
            ck_quant_matmul_k_avx512(ggml_type, w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
        } else {
            ck_quant_matmul_avx512(ggml_type, w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
        }
    } else if (path >= CK_PATH_AVX2) {
        if (ggml_type == CK_GGML_Q4_K || ggml_type == CK_GGML_Q6_K) {
            ck_quant_matmul_k_avx2(ggml_type, w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
        } else {
            ck_quant_matmul_avx2(ggml_type, w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
        }
    } else {
        ck_quant_matmul_scalar(ggml_type, w, row_bytes, cols, act, tokens, y, ldy, row_begin, row_end, accumulate);
    }
}

void ck_quant_dequantize_rows(int ggml_type, const void *weights, size_t row_bytes, int cols,
                              int row_begin, int row_end, float *out, int path) {
    if (!ck_quant_supported(ggml_type) || row_end <= row_begin || cols <= 0) return;
    const uint8_t *w = (const uint8_t *)weights;
    if (path >= CK_PATH_AVX2) {
        ck_quant_dequantize_avx2(ggml_type, w, row_bytes, cols, row_begin, row_end, out);
    } else {
        ck_quant_dequantize_scalar(ggml_type, w, row_bytes, cols, row_begin, row_end, out);
    }
}

// MARK: - Activation quantiser (reference)

/// round-half-even(v) for |v| ≤ 127 after clamping; NaN (from an infinite or NaN input) gives −127,
/// as the AVX2 path's max(v, −127) does.
static inline int8_t ck_round_code(float v) {
    v = v > -127.0f ? v : -127.0f;   // NaN fails the comparison and takes −127
    v = v < 127.0f ? v : 127.0f;
    return (int8_t)(int)nearbyintf(v);
}

void ck_quant_activations_scalar(int kind, const float *x, int tokens, int cols, size_t ldx, void *act) {
    const int block = ck_act_block(kind), nb = cols / block;
    for (int t = 0; t < tokens; t++) {
        const float *xt = x + (size_t)t * ldx;
        ck_act_row_mut a = ck_act_row_at_mut(kind, act, cols, t);
        for (int b = 0; b < nb; b++) {
            const float *v = xt + (size_t)b * block;
            float amax = 0;
            for (int j = 0; j < block; j++) {
                float m = fabsf(v[j]);
                amax = amax > m ? amax : m;
            }
            const float d = amax / 127.0f;
            const float id = amax != 0 ? 127.0f / amax : 0.0f;
            a.d[b] = d;
            int sum = 0;
            for (int j = 0; j < block; j++) {
                int8_t q = ck_round_code(v[j] * id);
                a.q[b * block + j] = q;
                sum += q;
                if (kind == CK_ACT_Q8_K && (j % 16) == 15) {
                    a.bsums[b * 16 + j / 16] = (int16_t)sum;
                    sum = 0;
                }
            }
            if (kind == CK_ACT_Q8_S) a.s[b] = d * (float)sum;
        }
    }
}

// MARK: - Reference dot products: one weight row · one activation row

static float dot_q8_0_scalar(const uint8_t *w, ck_act_row a, int nb) {
    float sum = 0;
    for (int b = 0; b < nb; b++, w += 34) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += (int8_t)w[2 + j] * a.q[32 * b + j];
        sum += (float)sumi * (ck_half_to_float(ck_load_u16(w)) * a.d[b]);
    }
    return sum;
}

static float dot_q4_0_scalar(const uint8_t *w, ck_act_row a, int nb) {
    float sum = 0;
    for (int b = 0; b < nb; b++, w += 18) {
        const int8_t *q = a.q + 32 * b;
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((w[2 + j] & 0x0F) - 8) * q[j];
            sumi += ((w[2 + j] >> 4) - 8) * q[j + 16];
        }
        sum += (float)sumi * (ck_half_to_float(ck_load_u16(w)) * a.d[b]);
    }
    return sum;
}

static float dot_q4_1_scalar(const uint8_t *w, ck_act_row a, int nb) {
    float sum = 0;
    for (int b = 0; b < nb; b++, w += 20) {
        const int8_t *q = a.q + 32 * b;
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (w[4 + j] & 0x0F) * q[j];
            sumi += (w[4 + j] >> 4) * q[j + 16];
        }
        // Σ (d·c + m)·(dx·q) = d·dx·Σ c·q + m·(dx·Σ q)
        sum += (float)sumi * (ck_half_to_float(ck_load_u16(w)) * a.d[b]) + ck_half_to_float(ck_load_u16(w + 2)) * a.s[b];
    }
    return sum;
}

static float dot_q4_k_scalar(const uint8_t *w, ck_act_row a, int nb) {
    float sum = 0;
    for (int b = 0; b < nb; b++, w += 144) {
        uint8_t sc[8], mn[8];
        ck_unpack_q4k_scales(w + 4, sc, mn);
        const int8_t *q = a.q + 256 * b;
        const uint8_t *qs = w + 16;
        int sumi = 0, summ = 0;
        for (int c = 0; c < 4; c++) {
            int lo = 0, hi = 0;
            for (int l = 0; l < 32; l++) {
                lo += (qs[32 * c + l] & 0x0F) * q[64 * c + l];
                hi += (qs[32 * c + l] >> 4) * q[64 * c + 32 + l];
            }
            sumi += sc[2 * c] * lo + sc[2 * c + 1] * hi;
        }
        for (int g = 0; g < 8; g++) summ += mn[g] * (a.bsums[16 * b + 2 * g] + a.bsums[16 * b + 2 * g + 1]);
        // Σ ((d·sc)·c − dmin·m)·(dx·q) = d·dx·Σ sc·Σ c·q − dmin·dx·Σ m·Σ q
        const float dx = a.d[b];
        sum += ck_half_to_float(ck_load_u16(w)) * dx * (float)sumi - ck_half_to_float(ck_load_u16(w + 2)) * dx * (float)summ;
    }
    return sum;
}

static float dot_q6_k_scalar(const uint8_t *w, ck_act_row a, int nb) {
    float sum = 0;
    for (int b = 0; b < nb; b++, w += 210) {
        const int8_t *scales = (const int8_t *)(w + 192);
        const int8_t *q = a.q + 256 * b;
        int sumi = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = w + 64 * half, *qh = w + 128 + 32 * half;
            for (int k = 0; k < 4; k++) {
                int group_sum[2] = { 0, 0 };
                for (int l = 0; l < 32; l++) {
                    const uint8_t low = ql[l + 32 * (k % 2)];
                    const int nibble = k < 2 ? (low & 0x0F) : (low >> 4);
                    const int code = (nibble | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
                    group_sum[l / 16] += code * q[128 * half + 32 * k + l];
                }
                const int g = 8 * half + 2 * k;
                sumi += scales[g] * group_sum[0] + scales[g + 1] * group_sum[1];
            }
        }
        sum += ck_half_to_float(ck_load_u16(w + 208)) * a.d[b] * (float)sumi;
    }
    return sum;
}

void ck_quant_matmul_scalar(int ggml_type, const uint8_t *w, size_t row_bytes, int cols, const void *act,
                            int tokens, float *y, size_t ldy, int row_begin, int row_end, int accumulate) {
    const int kind = ck_act_kind(ggml_type), nb = cols / ck_act_block(kind);
    for (int o = row_begin; o < row_end; o++) {
        const uint8_t *row = w + (size_t)o * row_bytes;
        for (int t = 0; t < tokens; t++) {
            ck_act_row a = ck_act_row_at(kind, act, cols, t);
            float v = 0;
            switch (ggml_type) {
            case CK_GGML_Q8_0: v = dot_q8_0_scalar(row, a, nb); break;
            case CK_GGML_Q4_0: v = dot_q4_0_scalar(row, a, nb); break;
            case CK_GGML_Q4_1: v = dot_q4_1_scalar(row, a, nb); break;
            case CK_GGML_Q4_K: v = dot_q4_k_scalar(row, a, nb); break;
            case CK_GGML_Q6_K: v = dot_q6_k_scalar(row, a, nb); break;
            }
            float *out = y + (size_t)t * ldy + o;
            *out = accumulate ? *out + v : v;
        }
    }
}

// MARK: - Reference decoders (bit for bit ggml's dequantize_row_*)

static void dequantize_row_scalar(int ggml_type, const uint8_t *w, int cols, float *out) {
    switch (ggml_type) {
    case CK_GGML_Q8_0:
        for (int b = 0; b < cols / 32; b++, w += 34, out += 32) {
            const float d = ck_half_to_float(ck_load_u16(w));
            for (int j = 0; j < 32; j++) out[j] = (float)(int8_t)w[2 + j] * d;
        }
        break;
    case CK_GGML_Q4_0:
        for (int b = 0; b < cols / 32; b++, w += 18, out += 32) {
            const float d = ck_half_to_float(ck_load_u16(w));
            for (int j = 0; j < 16; j++) {
                out[j] = (float)((w[2 + j] & 0x0F) - 8) * d;
                out[j + 16] = (float)((w[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    case CK_GGML_Q4_1:
        for (int b = 0; b < cols / 32; b++, w += 20, out += 32) {
            const float d = ck_half_to_float(ck_load_u16(w)), m = ck_half_to_float(ck_load_u16(w + 2));
            for (int j = 0; j < 16; j++) {
                out[j] = (float)(w[4 + j] & 0x0F) * d + m;
                out[j + 16] = (float)(w[4 + j] >> 4) * d + m;
            }
        }
        break;
    case CK_GGML_Q4_K:
        for (int b = 0; b < cols / 256; b++, w += 144, out += 256) {
            const float d = ck_half_to_float(ck_load_u16(w)), dmin = ck_half_to_float(ck_load_u16(w + 2));
            uint8_t sc[8], mn[8];
            ck_unpack_q4k_scales(w + 4, sc, mn);
            for (int c = 0; c < 4; c++) {
                const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
                const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
                for (int l = 0; l < 32; l++) {
                    const uint8_t byte = w[16 + 32 * c + l];
                    out[64 * c + l] = d1 * (float)(byte & 0x0F) - m1;
                    out[64 * c + 32 + l] = d2 * (float)(byte >> 4) - m2;
                }
            }
        }
        break;
    case CK_GGML_Q6_K:
        for (int b = 0; b < cols / 256; b++, w += 210, out += 256) {
            const float d = ck_half_to_float(ck_load_u16(w + 208));
            const int8_t *scales = (const int8_t *)(w + 192);
            for (int half = 0; half < 2; half++) {
                const uint8_t *ql = w + 64 * half, *qh = w + 128 + 32 * half;
                for (int l = 0; l < 32; l++) {
                    for (int k = 0; k < 4; k++) {
                        const uint8_t low = ql[l + 32 * (k % 2)];
                        const int nibble = k < 2 ? (low & 0x0F) : (low >> 4);
                        const int code = (nibble | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
                        const int e = 32 * k + l;
                        out[128 * half + e] = d * (float)scales[8 * half + e / 16] * (float)code;
                    }
                }
            }
        }
        break;
    }
}

void ck_quant_dequantize_scalar(int ggml_type, const uint8_t *w, size_t row_bytes, int cols,
                                int row_begin, int row_end, float *out) {
    for (int o = row_begin; o < row_end; o++) {
        dequantize_row_scalar(ggml_type, w + (size_t)o * row_bytes, cols, out + (size_t)(o - row_begin) * cols);
    }
}
