// losad's CPU kernels in C: quantised dense and compact-sparse matrix products for decode and
// small prefill batches. Plain C so that each SIMD path can carry its own target attribute and be
// chosen at run time (one binary runs on AVX-512, AVX2-only and plain x86-64 CPUs), and so that
// tests can force every path the CPU supports and hold it to the scalar reference.
//
// Conventions: W is row-major [rows, cols]; y[t][o] (+)= Σ_i W[o][i] · x[t][i] for rows
// [row_begin, row_end), so callers split rows over threads. `path` is a ck_path the CPU supports
// (ck_best_path() or lower); a path the CPU lacks must never be passed.
#ifndef LOSAD_CKERNELS_H
#define LOSAD_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// SIMD paths, in increasing order of what they need.
typedef enum {
    CK_PATH_SCALAR = 0,   ///< plain C: the reference every other path must match
    CK_PATH_AVX2 = 1,     ///< AVX2 + FMA + F16C
    CK_PATH_AVX512 = 2,   ///< AVX-512 F/BW/VL + VNNI + VBMI2 (vpexpandb / vpexpandw): its own sparse
                          ///< products and decoders (sparse_avx512.c) and quantised products
                          ///< (quant_avx512.c: Q8_0 / Q4_0 / Q4_1; quant_avx512_k.c: Q4_K / Q6_K); the
                          ///< quantised decoders and both activation quantisers run the AVX2 kernels
} ck_path;

/// The best path this CPU supports (cpuid through the compiler's builtins: AVX-512 needs
/// avx512f, avx512bw, avx512vl, avx512vnni and avx512vbmi2 besides AVX2's), capped by the
/// environment variable LOSAD_KERNEL_PATH = scalar | avx2 | avx512 when set (read once, on the
/// first call; a path the CPU lacks is never returned, another value means no cap), so that a
/// benchmark can run the AVX2 path on an AVX-512 CPU.
int ck_best_path(void);

/// The best path this CPU supports, ignoring LOSAD_KERNEL_PATH.
int ck_cpu_path(void);

// MARK: - Quantised dense products (GGML block formats, ggml-common.h layouts)

/// GGML type ids (ggml.h) with a product kernel here.
enum {
    CK_GGML_Q4_0 = 2,
    CK_GGML_Q4_1 = 3,
    CK_GGML_Q8_0 = 8,
    CK_GGML_Q4_K = 12,
    CK_GGML_Q6_K = 14,
};

/// 1 when `ggml_type` has a product kernel here.
int ck_quant_supported(int ggml_type);

/// Bytes of one quantised activation row of `cols` values for weights of `ggml_type`
/// (Q8_0 blocks for Q4_0/Q8_0, Q8_1-like blocks for Q4_1, Q8_K blocks for the K types).
size_t ck_quant_activation_row_bytes(int ggml_type, int cols);

/// Quantises `tokens` rows of x [tokens, cols] (row stride ldx floats) into the activation format
/// `ggml_type` pairs with; row t goes to act + t · ck_quant_activation_row_bytes(ggml_type, cols).
void ck_quant_quantize_activations(int ggml_type, const float *x, int tokens, int cols, size_t ldx,
                                   void *act, int path);

/// y[t·ldy + o] (+)= W[o] · x[t] for o in [row_begin, row_end), t in [0, tokens); W's rows are
/// `row_bytes` apart (cols / block size · block bytes). Each weight row is read once for all tokens.
void ck_quant_matmul(int ggml_type, const void *weights, size_t row_bytes, int cols,
                     const void *act, int tokens, float *y, size_t ldy,
                     int row_begin, int row_end, int accumulate, int path);

/// Dequantises rows [row_begin, row_end) into out[(o − row_begin) · cols + i] (for prefill: a panel
/// of float rows then goes through sgemm).
void ck_quant_dequantize_rows(int ggml_type, const void *weights, size_t row_bytes, int cols,
                              int row_begin, int row_end, float *out, int path);

// MARK: - Compact sparse products (docs/sparse-format.md, "The encoding")

/// How the nonzeros of a sparse matrix are stored.
typedef enum {
    CK_SPARSE_S8 = 0,   ///< int8 in [-127, 127] × one f16 scale per group
    CK_SPARSE_S4 = 1,   ///< 4-bit codebook index (ck_sparse_s4_levels[nibble]) × one f16 scale per group, groups padded to whole bytes
    CK_SPARSE_F16 = 2,  ///< IEEE half values, no scales
} ck_sparse_kind;

/// The 16 int8 levels an s4 nibble stands for (docs/sparse-format.md, version 2): non-uniform, denser
/// near 0; |level| ≤ 64 so that the AVX2 dot may add two maddubs results in 16 bits.
extern const int8_t ck_sparse_s4_levels[16];

/// The s4 nibble of r = w / scale: the nearest level, ties to the lower one; NaN gives 8 (level 0).
uint8_t ck_sparse_s4_nibble(float r);

/// Encodes one group's `n` stored values as s4: returns the scale's f16 bits (the search of
/// docs/sparse-format.md: for each sign and each start ± max|w| · (0.6 … 1.4 by 0.05) / 64, the nibbles at
/// it and the least-squares scale for them; the f16 scale of smallest squared error, the first of equals;
/// +0 for an empty or all-zero group) and ORs the nibbles into `nibbles` (low nibble first; zeroed by the caller).
uint16_t ck_sparse_s4_encode_group(const float *values, int n, uint8_t *nibbles);

/// ck_sparse_s4_encode_group with the scale chosen for Σ weights[k] · (values[k] − scale · level)² instead
/// (weights ≥ 0: the importance of each value, e.g. the second moment of its input column). Candidates: the
/// unweighted scale first, then ± max|w| · (0.5 … 1.5 by 0.05) / 64, each refitted by weighted least squares up
/// to 3 times; the first of smallest weighted error. The nibbles are the nearest levels at that scale (for a
/// diagonal weighting, each value's nearest level minimises its own term). weights NULL, or a group whose weights
/// sum to 0 or are not finite: exactly ck_sparse_s4_encode_group's bytes.
uint16_t ck_sparse_s4_encode_group_weighted(const float *values, const float *weights, int n, uint8_t *nibbles);

/// Columns per mask word and per scale.
#define CK_SPARSE_GROUP 64
/// Bytes a kernel may read past the last value byte of a matrix: the value buffer must have them.
#define CK_SPARSE_VALUE_PADDING 64

/// A borrowed view of one encoded matrix (docs/sparse-format.md). groups = ceil(cols / 64).
typedef struct {
    int rows;
    int cols;
    int kind;                      ///< ck_sparse_kind
    const uint64_t *masks;         ///< [rows][groups]; bit j of word g ⇔ column 64·g + j is stored
    const uint32_t *row_offsets;   ///< [rows + 1]; byte offset of each row's values in `values`
    const uint8_t *values;         ///< packed nonzeros, row after row, + CK_SPARSE_VALUE_PADDING bytes
    const uint16_t *scales;        ///< [rows][groups] f16 bits (NULL for CK_SPARSE_F16)
} ck_sparse_matrix;

/// Bytes of one sparse activation row of `cols` values for `kind`
/// (S8/S4: per 64-column group a float scale and 64 int8; F16: cols floats padded to a group).
size_t ck_sparse_activation_row_bytes(int kind, int cols);

/// Quantises `tokens` rows of x [tokens, cols] (row stride ldx floats) into the activation
/// format of `kind`; row t goes to act + t · ck_sparse_activation_row_bytes(kind, cols).
void ck_sparse_quantize_activations(int kind, const float *x, int tokens, int cols, size_t ldx,
                                    void *act, int path);

/// y[t·ldy + o] (+)= W[o] · x[t] for o in [row_begin, row_end), t in [0, tokens).
void ck_sparse_matmul(const ck_sparse_matrix *w, const void *act, int tokens, float *y, size_t ldy,
                      int row_begin, int row_end, int accumulate, int path);

/// Decodes rows [row_begin, row_end) to float: out[(o − row_begin) · cols + i] (zeros included).
void ck_sparse_dequantize_rows(const ck_sparse_matrix *w, int row_begin, int row_end, float *out, int path);

#ifdef __cplusplus
}
#endif

#endif
