// Compact sparse products (docs/sparse-format.md, "The encoding of one matrix"): the activation
// formats, the entry points that choose a path, and the plain-C reference every SIMD path is held
// to (sparse_avx2.c).
//
// Shapes: W [rows, cols] in the sparse encoding, G = ceil(cols / 64) groups per row; x [T, cols]
// floats; y [T, rows] (row stride ldy). Kernels trust the matrix: Kernels/Sparse validates a view
// before it reaches them.
//
// Activation row layouts (internal to this file and sparse_avx2.c; Swift sees only the row size,
// and Tests/KernelsTests/SparseTestSupport.swift mirrors the layout as a reference):
//   S8/S4: G float scales d, padded to a multiple of 64 bytes, then G × 64 int8 q (columns past
//          cols are 0, and so is the padding): x ≈ d[g] · q[64g + j]. Scales first so every
//          64-column int8 block starts on a cache line. d = absmax / 127,
//          q = round-half-even(x · (127 / absmax)).
//   F16:   G × 64 floats: x itself, zero past cols (the values are widened f16, x stays f32).
#include "ckernels.h"

#include <math.h>
#include <string.h>

// The AVX2 paths (sparse_avx2.c).
void ck_sparse_quantize_activations_avx2(int kind, const float *x, int tokens, int cols, size_t ldx, void *act);
void ck_sparse_matmul_avx2(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                           int row_begin, int row_end, int accumulate);
void ck_sparse_dequantize_rows_avx2(const ck_sparse_matrix *w, int row_begin, int row_end, float *out);

// The AVX-512 paths (sparse_avx512.c); its activations are the AVX2 quantiser's.
void ck_sparse_matmul_avx512(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                             int row_begin, int row_end, int accumulate);
void ck_sparse_dequantize_rows_avx512(const ck_sparse_matrix *w, int row_begin, int row_end, float *out);

// MARK: - Shared helpers

const int8_t ck_sparse_s4_levels[16] = {-64, -52, -42, -32, -24, -18, -11, -5, 0, 6, 12, 19, 26, 34, 44, 56};

static int groups_of(int cols) { return (cols + CK_SPARSE_GROUP - 1) / CK_SPARSE_GROUP; }

/// Bytes of the scale block that opens an S8/S4 activation row: G floats, whole cache lines.
size_t ck_sparse_activation_scale_bytes(int cols) {
    size_t bytes = (size_t)groups_of(cols) * sizeof(float);
    return (bytes + 63) & ~(size_t)63;
}

/// IEEE binary16 bits → float, exactly (subnormals, infinities, NaN), without F16C.
float ck_sparse_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal: 2^-24 · mantissa is exact in float.
        float value = (float)mantissa * 0x1p-24f;
        memcpy(&bits, &value, 4);
        bits |= sign;
    }
    float result;
    memcpy(&result, &bits, 4);
    return result;
}

/// The path of the activation quantiser: AVX-512 uses the AVX2 one (same bytes, not the bottleneck).
static int effective_path(int path) {
    return path >= CK_PATH_AVX2 ? CK_PATH_AVX2 : CK_PATH_SCALAR;
}

// MARK: - Activations

size_t ck_sparse_activation_row_bytes(int kind, int cols) {
    size_t groups = (size_t)groups_of(cols);
    if (kind == CK_SPARSE_F16) return groups * CK_SPARSE_GROUP * sizeof(float);
    return ck_sparse_activation_scale_bytes(cols) + groups * CK_SPARSE_GROUP;
}

static void quantize_activations_scalar(int kind, const float *x, int tokens, int cols, size_t ldx, void *act) {
    size_t row_bytes = ck_sparse_activation_row_bytes(kind, cols);
    int groups = groups_of(cols);
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
        int8_t *q = (int8_t *)(row + ck_sparse_activation_scale_bytes(cols));
        memset(scales + groups, 0, ck_sparse_activation_scale_bytes(cols) - (size_t)groups * sizeof(float));
        for (int g = 0; g < groups; g++) {
            int begin = g * CK_SPARSE_GROUP;
            int end = begin + CK_SPARSE_GROUP < cols ? begin + CK_SPARSE_GROUP : cols;
            float absmax = 0;
            for (int i = begin; i < end; i++) absmax = fmaxf(absmax, fabsf(xt[i]));
            float inverse = absmax > 0 ? 127.0f / absmax : 0.0f;
            scales[g] = absmax / 127.0f;
            for (int i = begin; i < begin + CK_SPARSE_GROUP; i++) {
                if (i >= end) { q[i] = 0; continue; }
                float r = nearbyintf(xt[i] * inverse);
                q[i] = (int8_t)(r > 127 ? 127 : (r < -127 ? -127 : r));
            }
        }
    }
}

void ck_sparse_quantize_activations(int kind, const float *x, int tokens, int cols, size_t ldx, void *act, int path) {
    if (effective_path(path) == CK_PATH_AVX2) {
        ck_sparse_quantize_activations_avx2(kind, x, tokens, cols, ldx, act);
    } else {
        quantize_activations_scalar(kind, x, tokens, cols, ldx, act);
    }
}

// MARK: - Scalar reference product

/// Σ over row o of W[o][i] · x_t[i], in the form every path computes: per group an exact integer
/// dot (S8/S4) times w_scale · x_scale, or float products (F16).
static float row_dot_scalar(const ck_sparse_matrix *w, int o, const uint8_t *act_row) {
    int groups = groups_of(w->cols);
    const uint64_t *masks = w->masks + (size_t)o * groups;
    const uint8_t *v = w->values + w->row_offsets[o];
    float sum = 0;
    if (w->kind == CK_SPARSE_F16) {
        const float *x = (const float *)act_row;
        for (int g = 0; g < groups; g++) {
            uint64_t m = masks[g];
            const float *xg = x + g * CK_SPARSE_GROUP;
            for (int j = 0; j < CK_SPARSE_GROUP; j++) {
                if (!((m >> j) & 1)) continue;
                uint16_t h = (uint16_t)(v[0] | (v[1] << 8));
                sum += ck_sparse_half_to_float(h) * xg[j];
                v += 2;
            }
        }
        return sum;
    }
    const float *x_scales = (const float *)act_row;
    const int8_t *xq = (const int8_t *)(act_row + ck_sparse_activation_scale_bytes(w->cols));
    const uint16_t *w_scales = w->scales + (size_t)o * groups;
    for (int g = 0; g < groups; g++) {
        uint64_t m = masks[g];
        const int8_t *xg = xq + g * CK_SPARSE_GROUP;
        int32_t dot = 0;
        int k = 0;
        for (int j = 0; j < CK_SPARSE_GROUP; j++) {
            if (!((m >> j) & 1)) continue;
            int q = w->kind == CK_SPARSE_S8 ? (int8_t)v[k] : ck_sparse_s4_levels[(v[k >> 1] >> ((k & 1) * 4)) & 15];
            dot += q * xg[j];
            k++;
        }
        v += w->kind == CK_SPARSE_S8 ? k : (k + 1) / 2;
        sum += (float)dot * (ck_sparse_half_to_float(w_scales[g]) * x_scales[g]);
    }
    return sum;
}

static void matmul_scalar(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                          int row_begin, int row_end, int accumulate) {
    size_t row_bytes = ck_sparse_activation_row_bytes(w->kind, w->cols);
    for (int o = row_begin; o < row_end; o++) {
        for (int t = 0; t < tokens; t++) {
            float dot = row_dot_scalar(w, o, (const uint8_t *)act + (size_t)t * row_bytes);
            float *target = y + (size_t)t * ldy + o;
            *target = accumulate ? *target + dot : dot;
        }
    }
}

void ck_sparse_matmul(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                      int row_begin, int row_end, int accumulate, int path) {
    if (row_begin >= row_end || tokens <= 0) return;
    if (path >= CK_PATH_AVX512) {
        ck_sparse_matmul_avx512(w, act, tokens, y, ldy, row_begin, row_end, accumulate);
    } else if (path == CK_PATH_AVX2) {
        ck_sparse_matmul_avx2(w, act, tokens, y, ldy, row_begin, row_end, accumulate);
    } else {
        matmul_scalar(w, act, tokens, y, ldy, row_begin, row_end, accumulate);
    }
}

// MARK: - Scalar reference decoding

static void dequantize_rows_scalar(const ck_sparse_matrix *w, int row_begin, int row_end, float *out) {
    int groups = groups_of(w->cols);
    for (int o = row_begin; o < row_end; o++) {
        const uint64_t *masks = w->masks + (size_t)o * groups;
        const uint8_t *v = w->values + w->row_offsets[o];
        float *row = out + (size_t)(o - row_begin) * w->cols;
        for (int g = 0; g < groups; g++) {
            uint64_t m = masks[g];
            float scale = w->kind == CK_SPARSE_F16 ? 0 : ck_sparse_half_to_float(w->scales[(size_t)o * groups + g]);
            int k = 0;
            for (int j = 0; j < CK_SPARSE_GROUP && g * CK_SPARSE_GROUP + j < w->cols; j++) {
                float value = 0;
                if ((m >> j) & 1) {
                    switch (w->kind) {
                    case CK_SPARSE_S8: value = scale * (float)(int8_t)v[k]; break;
                    case CK_SPARSE_S4: value = scale * (float)ck_sparse_s4_levels[(v[k >> 1] >> ((k & 1) * 4)) & 15]; break;
                    default: value = ck_sparse_half_to_float((uint16_t)(v[2 * k] | (v[2 * k + 1] << 8))); break;
                    }
                    k++;
                }
                row[g * CK_SPARSE_GROUP + j] = value;
            }
            v += w->kind == CK_SPARSE_S8 ? k : (w->kind == CK_SPARSE_S4 ? (k + 1) / 2 : 2 * k);
        }
    }
}

void ck_sparse_dequantize_rows(const ck_sparse_matrix *w, int row_begin, int row_end, float *out, int path) {
    if (row_begin >= row_end) return;
    if (path >= CK_PATH_AVX512) {
        ck_sparse_dequantize_rows_avx512(w, row_begin, row_end, out);
    } else if (path == CK_PATH_AVX2) {
        ck_sparse_dequantize_rows_avx2(w, row_begin, row_end, out);
    } else {
        dequantize_rows_scalar(w, row_begin, row_end, out);
    }
}
