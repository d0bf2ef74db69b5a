// ckernels-check: a stand-alone check and benchmark of losad's C kernels (Sources/CKernels) for
// machines without Swift. Built by `make ckernels-check` (static) into .build/ckernels-check.
//
//   .build/ckernels-check [--no-bench] [--bench-only] [--threads N] [--reps N] [--seed N] [--bench-mb N]
//
// 1. The CPU's features and the path ck_best_path() chooses (LOSAD_KERNEL_PATH caps it).
// 2. For every kernel and every path up to ck_best_path(): random shapes, blocks, masks, tokens,
//    row ranges and accumulate flags. The scalar path is held to an independent double product of
//    the decoded weights and the decoded activations (sparse weights decoded here, from
//    docs/sparse-format.md; quantised weights by the scalar decoder), every other path to the scalar
//    path's output, with the Swift tests' rule |y − want| ≤ 1e-5 · (Σ|w·x| + |y₀|) + 1e-7 (y₀ the
//    value accumulated onto); rows outside the range must be untouched; decoders and activation
//    quantisers must give the scalar path's bits exactly (sparse decoders: the format's values, ±0
//    equal; the scalar quantised decoder is the reference the others are held to, so it has no line). One PASS/FAIL line per (kernel, type,
//    path) with the worst error (as a fraction of the bound's Σ|w·x| + |y₀|) and the first failing
//    case. Exit status 1 if any fails.
// 3. Decode throughput per path (scalar skipped: too slow to matter), TinyLlama-1B shapes, weights
//    repeated over ≥ 256 MB of distinct copies so that they come from memory; µs per call and GB/s
//    of weight bytes (sparse: masks + scales + values + row offsets), the median of --reps
//    repetitions. Activations are quantised once, outside the timing. With --threads N the rows of
//    each call are split over N pthreads; each thread walks all copies on its own (no barrier per
//    call), so that table is a throughput figure.
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckernels.h"
#include "../Sources/CKernels/quant_internal.h"

size_t ck_sparse_activation_scale_bytes(int cols);  // sparse_dot.c (not in ckernels.h)

static const char *path_names[] = {"scalar", "avx2", "avx512"};

// MARK: - What is running (named if it crashes: SIGILL from an instruction the CPU lacks, SIGSEGV)

static char current_step[320] = "startup";

static void crash_handler(int signal_number) {
    static const char prefix[] = "\nCRASH (signal ";
    char number[4] = {(char)('0' + signal_number / 10 % 10), (char)('0' + signal_number % 10), ')', ' '};
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, number, 4);
    (void)!write(2, "while running: ", 15);
    (void)!write(2, current_step, strlen(current_step));
    (void)!write(2, "\n", 1);
    _exit(3);
}

#define STEP(...) snprintf(current_step, sizeof current_step, __VA_ARGS__)

// MARK: - Random numbers and values

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static int below(int n) { return (int)(rnd() % (uint64_t)n); }
static float uniform(void) { return (float)((rnd() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }
static double chance(void) { return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }

/// A sane f16 scale: ± 2^(e−15) · (1 + m/1024) with e in [lo, hi] (normal numbers only).
static uint16_t random_half(int lo, int hi, int allow_negative) {
    uint16_t sign = allow_negative && (rnd() & 1) ? 0x8000 : 0;
    return (uint16_t)(sign | ((lo + below(hi - lo + 1)) << 10) | below(1024));
}

/// binary16 → float, written from IEEE 754 (normal, subnormal, zero; no NaN/inf are generated here).
static double half_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static void fill_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

static void *xmalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", n); exit(2); }
    return p;
}

// MARK: - Results

typedef struct {
    char name[64];
    int cases, failures;
    double worst;          // worst error / bound scale (the Σ|w·x| + |y₀| of its case)
    char first_failure[256];
} result;

static result results[256];
static int result_count = 0;

static result *result_for(const char *kernel, const char *type, int path) {
    char name[64];
    snprintf(name, sizeof name, "%-20s %-5s %-7s", kernel, type, path_names[path]);
    for (int i = 0; i < result_count; i++) if (strcmp(results[i].name, name) == 0) return &results[i];
    result *r = &results[result_count++];
    memset(r, 0, sizeof *r);
    strcpy(r->name, name);
    return r;
}

static void record(result *r, int ok, double worst, const char *what) {
    r->cases++;
    if (worst > r->worst) r->worst = worst;
    if (!ok) {
        if (r->failures == 0) snprintf(r->first_failure, sizeof r->first_failure, "%s", what);
        r->failures++;
    }
}

/// Compares y (path output) with want over rows [lo, hi) of `rows`, and the rest with y0 bit for bit.
/// mag[t·rows + o] = Σ|w·x| for that output. Returns 1 if all hold; *worst = max error / scale.
static int compare_outputs(const float *y, const double *want, const float *y0, const double *mag, int tokens,
                           int rows, int lo, int hi, int accumulate, double *worst, char *detail, size_t detail_size) {
    int ok = 1;
    *worst = 0;
    for (int t = 0; t < tokens; t++) {
        for (int o = 0; o < rows; o++) {
            size_t i = (size_t)t * rows + o;
            if (o < lo || o >= hi) {
                if (memcmp(&y[i], &y0[i], sizeof(float)) != 0) {
                    if (ok) snprintf(detail, detail_size, "row %d outside [%d, %d) was written (token %d)", o, lo, hi, t);
                    ok = 0;
                }
                continue;
            }
            double scale = mag[i] + (accumulate ? fabs((double)y0[i]) : 0);
            double error = fabs((double)y[i] - want[i]);
            double bound = 1e-5 * scale + 1e-7;
            double relative = error / (scale > 0 ? scale : 1e-30);
            if (error <= bound && relative > *worst) *worst = relative;
            if (!(error <= bound)) {  // NaN fails too
                if (ok) snprintf(detail, detail_size, "y[%d][%d] = %.9g, want %.9g (|err| %.3g > bound %.3g)", t, o,
                                 (double)y[i], want[i], error, bound);
                if (isfinite(relative) && relative > *worst) *worst = relative;
                if (!isfinite(relative)) *worst = INFINITY;
                ok = 0;
            }
        }
    }
    return ok;
}

// MARK: - Quantised dense: random blocks

static const int quant_types[] = {CK_GGML_Q8_0, CK_GGML_Q4_0, CK_GGML_Q4_1, CK_GGML_Q4_K, CK_GGML_Q6_K};
static const char *quant_name(int type) {
    switch (type) {
    case CK_GGML_Q8_0: return "Q8_0";
    case CK_GGML_Q4_0: return "Q4_0";
    case CK_GGML_Q4_1: return "Q4_1";
    case CK_GGML_Q4_K: return "Q4_K";
    case CK_GGML_Q6_K: return "Q6_K";
    }
    return "?";
}
static int quant_block_values(int type) { return type == CK_GGML_Q4_K || type == CK_GGML_Q6_K ? 256 : 32; }
static int quant_block_bytes(int type) {
    switch (type) {
    case CK_GGML_Q8_0: return 34;
    case CK_GGML_Q4_0: return 18;
    case CK_GGML_Q4_1: return 20;
    case CK_GGML_Q4_K: return 144;
    case CK_GGML_Q6_K: return 210;
    }
    return 0;
}

/// One random valid block of `type` at p: random codes, sane f16 scales.
static void random_block(int type, uint8_t *p) {
    int bytes = quant_block_bytes(type);
    fill_bytes(p, (size_t)bytes);
    uint16_t h;
    switch (type) {
    case CK_GGML_Q8_0:
    case CK_GGML_Q4_0:
        h = random_half(5, 12, 1); memcpy(p, &h, 2);  // 2^-10 … 2^-3
        break;
    case CK_GGML_Q4_1:
        h = random_half(5, 12, 1); memcpy(p, &h, 2);
        h = random_half(5, 12, 1); memcpy(p + 2, &h, 2);
        break;
    case CK_GGML_Q4_K:
        h = random_half(3, 9, 0); memcpy(p, &h, 2);
        h = random_half(3, 9, 0); memcpy(p + 2, &h, 2);
        break;
    case CK_GGML_Q6_K:
        h = random_half(3, 9, 1); memcpy(p + 208, &h, 2);
        break;
    }
}

/// Sets every weight code of the block at p to its largest unsigned value (Q4_0/Q4_1/Q4_K 15, Q6_K
/// 63, Q8_0 −1), scales kept: with activations all ±127 this is the largest integer partial sum a
/// kernel can meet (Q6_K: 4 · 63 · 127 = 32004 per four products, the int16 bound the AVX-512 K
/// kernels pack to).
static void largest_codes(int type, uint8_t *p) {
    switch (type) {
    case CK_GGML_Q8_0: memset(p + 2, 0xFF, 32); break;
    case CK_GGML_Q4_0: memset(p + 2, 0xFF, 16); break;
    case CK_GGML_Q4_1: memset(p + 4, 0xFF, 16); break;
    case CK_GGML_Q4_K: memset(p + 16, 0xFF, 128); break;
    case CK_GGML_Q6_K: memset(p, 0xFF, 192); break;
    }
}

/// The value of activation element i of token t (the dequantised activation the kernels multiply).
static double quant_act_value(int type, const void *act, int cols, int t, int i) {
    int kind = ck_act_kind(type);
    ck_act_row a = ck_act_row_at(kind, act, cols, t);
    return (double)a.d[i / ck_act_block(kind)] * (double)a.q[i];
}

// Every pass width of the 8-token kernels (1…8), one and two full passes plus a tail, and a prefill batch.
static const int token_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 64};
#define TOKEN_COUNTS ((int)(sizeof token_counts / sizeof token_counts[0]))

static void check_quant_matmul(int type, int best, int cases) {
    const int bv = quant_block_values(type), bb = quant_block_bytes(type);
    for (int c = 0; c < cases; c++) {
        int nb = bv == 32 ? 1 + below(c % 3 == 0 ? 80 : 12) : 1 + below(c % 3 == 0 ? 10 : 3);
        int cols = nb * bv, rows = 1 + below(c % 4 == 0 ? 100 : 20);
        int tokens = token_counts[c % TOKEN_COUNTS], accumulate = (c / TOKEN_COUNTS) % 2;
        int lo = rows > 1 ? below(rows) : 0, hi = lo + 1 + below(rows - lo);
        if (c % 7 == 0) { lo = 0; hi = rows; }
        size_t row_bytes = (size_t)nb * bb;
        uint8_t *w = xmalloc(row_bytes * rows);
        for (int o = 0; o < rows; o++) for (int b = 0; b < nb; b++) random_block(type, w + o * row_bytes + (size_t)b * bb);
        float *x = xmalloc(sizeof(float) * tokens * cols);
        for (int i = 0; i < tokens * cols; i++) x[i] = uniform() * (1 + (i % 97 == 0) * 20);
        if (c >= cases - 2) {  // the extremes: largest codes against activations all +127, then all −127
            for (int o = 0; o < rows; o++) for (int b = 0; b < nb; b++) largest_codes(type, w + o * row_bytes + (size_t)b * bb);
            for (int i = 0; i < tokens * cols; i++) x[i] = c == cases - 1 ? -1.0f : 1.0f;
        }
        size_t act_bytes = ck_quant_activation_row_bytes(type, cols);
        void *act = xmalloc(act_bytes * tokens);
        memset(act, 0, act_bytes * tokens);
        ck_quant_quantize_activations(type, x, tokens, cols, (size_t)cols, act, CK_PATH_SCALAR);
        float *deq = xmalloc(sizeof(float) * rows * cols);
        ck_quant_dequantize_rows(type, w, row_bytes, cols, 0, rows, deq, CK_PATH_SCALAR);
        size_t ny = (size_t)tokens * rows;
        double *want = xmalloc(sizeof(double) * ny), *mag = xmalloc(sizeof(double) * ny);
        float *y0 = xmalloc(sizeof(float) * ny), *ys = xmalloc(sizeof(float) * ny), *y = xmalloc(sizeof(float) * ny);
        for (size_t i = 0; i < ny; i++) y0[i] = uniform();
        for (int t = 0; t < tokens; t++) {
            for (int o = 0; o < rows; o++) {
                double s = 0, m = 0;
                for (int i = 0; i < cols; i++) {
                    double term = (double)deq[(size_t)o * cols + i] * quant_act_value(type, act, cols, t, i);
                    s += term; m += fabs(term);
                }
                want[(size_t)t * rows + o] = s + (accumulate ? y0[(size_t)t * rows + o] : 0);
                mag[(size_t)t * rows + o] = m;
            }
        }
        char what[256], detail[160];
        for (int path = 0; path <= best; path++) {
            memcpy(y, y0, sizeof(float) * ny);
            STEP("quant matmul %s %s rows %d cols %d tokens %d range [%d, %d)", quant_name(type), path_names[path], rows,
                 cols, tokens, lo, hi);
            ck_quant_matmul(type, w, row_bytes, cols, act, tokens, y, (size_t)rows, lo, hi, accumulate, path);
            double worst;
            int ok;
            if (path == CK_PATH_SCALAR) {
                ok = compare_outputs(y, want, y0, mag, tokens, rows, lo, hi, accumulate, &worst, detail, sizeof detail);
                memcpy(ys, y, sizeof(float) * ny);
            } else {
                double *scalar = xmalloc(sizeof(double) * ny);
                for (size_t i = 0; i < ny; i++) scalar[i] = ys[i];
                ok = compare_outputs(y, scalar, y0, mag, tokens, rows, lo, hi, accumulate, &worst, detail, sizeof detail);
                free(scalar);
            }
            snprintf(what, sizeof what, "rows %d cols %d tokens %d range [%d, %d) accumulate %d: %s", rows, cols, tokens,
                     lo, hi, accumulate, ok ? "" : detail);
            record(result_for("quant matmul", quant_name(type), path), ok, worst, what);
        }
        free(w); free(x); free(act); free(deq); free(want); free(mag); free(y0); free(ys); free(y);
    }
}

static void check_quant_dequantize(int type, int best, int cases) {
    const int bv = quant_block_values(type), bb = quant_block_bytes(type);
    for (int c = 0; c < cases; c++) {
        int nb = 1 + below(bv == 32 ? 40 : 4), cols = nb * bv, rows = 2 + below(20);
        int lo = below(rows), hi = lo + 1 + below(rows - lo);
        size_t row_bytes = (size_t)nb * bb;
        uint8_t *w = xmalloc(row_bytes * rows);
        for (int o = 0; o < rows; o++) for (int b = 0; b < nb; b++) random_block(type, w + o * row_bytes + (size_t)b * bb);
        size_t n = (size_t)(hi - lo) * cols;
        float *ref = xmalloc(sizeof(float) * n), *out = xmalloc(sizeof(float) * n);
        ck_quant_dequantize_rows(type, w, row_bytes, cols, lo, hi, ref, CK_PATH_SCALAR);
        for (int path = 1; path <= best; path++) {
            memset(out, 0xAB, sizeof(float) * n);
            STEP("quant dequantize %s %s rows [%d, %d) cols %d", quant_name(type), path_names[path], lo, hi, cols);
            ck_quant_dequantize_rows(type, w, row_bytes, cols, lo, hi, out, path);
            size_t bad = n;
            for (size_t i = 0; i < n && bad == n; i++) if (memcmp(&out[i], &ref[i], 4) != 0) bad = i;
            char what[256] = "";
            if (bad < n) snprintf(what, sizeof what, "rows [%d, %d) cols %d: out[%zu] = %.9g, scalar %.9g (bits differ)",
                                  lo, hi, cols, bad, (double)out[bad], (double)ref[bad]);
            record(result_for("quant dequantize", quant_name(type), path), bad == n, bad == n ? 0 : INFINITY, what);
        }
        free(w); free(ref); free(out);
    }
}

static void check_quant_activations(int type, int best, int cases) {
    const int bv = quant_block_values(type);
    int kind = ck_act_kind(type);
    for (int c = 0; c < cases; c++) {
        int cols = (1 + below(bv == 32 ? 40 : 4)) * bv, tokens = 1 + below(5);
        size_t ldx = (size_t)cols + (size_t)below(3);
        float *x = xmalloc(sizeof(float) * ldx * tokens);
        for (size_t i = 0; i < ldx * tokens; i++) x[i] = uniform() * (c % 5 == 0 ? 1000 : 1) * (i % 13 == 0 ? 0 : 1);
        if (c % 6 == 0) for (int i = 0; i < bv; i++) x[i] = 0;  // an all-zero block
        size_t bytes = ck_quant_activation_row_bytes(type, cols) * tokens;
        uint8_t *ref = xmalloc(bytes), *out = xmalloc(bytes);
        memset(ref, 0x5A, bytes);
        ck_quant_quantize_activations(type, x, tokens, cols, ldx, ref, CK_PATH_SCALAR);
        // The scalar path: each value within half a step of x, never −128.
        char what[256] = "";
        int ok = 1;
        double worst = 0;
        for (int t = 0; t < tokens && ok; t++) {
            ck_act_row a = ck_act_row_at(kind, ref, cols, t);
            for (int i = 0; i < cols; i++) {
                double step = a.d[i / ck_act_block(kind)], error = fabs(step * a.q[i] - x[(size_t)t * ldx + i]);
                if (step > 0 && error / step > worst) worst = error / step;
                if (a.q[i] == -128 || error > 0.5001 * step) {
                    snprintf(what, sizeof what, "cols %d: token %d x[%d] = %g decodes to %g (step %g)", cols, t, i,
                             (double)x[(size_t)t * ldx + i], step * a.q[i], step);
                    ok = 0;
                    break;
                }
            }
        }
        record(result_for("quant activations", quant_name(type), CK_PATH_SCALAR), ok, worst, what);
        for (int path = 1; path <= best; path++) {
            memset(out, 0x5A, bytes);
            STEP("quant activations %s %s cols %d tokens %d", quant_name(type), path_names[path], cols, tokens);
            ck_quant_quantize_activations(type, x, tokens, cols, ldx, out, path);
            size_t bad = bytes;
            for (size_t i = 0; i < bytes && bad == bytes; i++) if (out[i] != ref[i]) bad = i;
            if (bad < bytes) snprintf(what, sizeof what, "cols %d tokens %d: byte %zu is %u, scalar %u", cols, tokens, bad,
                                      out[bad], ref[bad]);
            record(result_for("quant activations", quant_name(type), path), bad == bytes, bad == bytes ? 0 : INFINITY, what);
        }
        free(x); free(ref); free(out);
    }
}

// MARK: - Sparse: random matrices

static const char *sparse_name(int kind) { return kind == CK_SPARSE_S8 ? "s8" : kind == CK_SPARSE_S4 ? "s4" : "f16"; }

typedef struct {
    ck_sparse_matrix view;
    uint64_t *masks;
    uint32_t *offsets;
    uint8_t *values;
    uint16_t *scales;
    size_t value_bytes;  // without the padding
} sparse_matrix;

/// A random matrix in the encoding of docs/sparse-format.md: each column stored with probability
/// `density`, row 0 all stored and row 1 none (when rows > 2), random values and sane scales (+0 for an
/// empty group), the 64 zero padding bytes after the values.
static sparse_matrix random_sparse(int kind, int rows, int cols, double density) {
    sparse_matrix s;
    int groups = (cols + 63) / 64;
    s.masks = xmalloc(sizeof(uint64_t) * rows * groups);
    s.offsets = xmalloc(sizeof(uint32_t) * (rows + 1));
    s.scales = kind == CK_SPARSE_F16 ? NULL : xmalloc(sizeof(uint16_t) * rows * groups);
    size_t total = 0;
    for (int o = 0; o < rows; o++) {
        s.offsets[o] = (uint32_t)total;
        for (int g = 0; g < groups; g++) {
            uint64_t m = 0;
            for (int j = 0; j < 64 && 64 * g + j < cols; j++) {
                int stored = rows > 2 && o == 0 ? 1 : rows > 2 && o == 1 ? 0 : chance() < density;
                if (stored) m |= 1ull << j;
            }
            s.masks[(size_t)o * groups + g] = m;
            int n = __builtin_popcountll(m);
            if (s.scales) s.scales[(size_t)o * groups + g] = n ? random_half(3, 10, 1) : 0;
            total += kind == CK_SPARSE_S8 ? (size_t)n : kind == CK_SPARSE_S4 ? (size_t)(n + 1) / 2 : 2 * (size_t)n;
        }
    }
    s.offsets[rows] = (uint32_t)total;
    s.value_bytes = total;
    s.values = xmalloc(total + CK_SPARSE_VALUE_PADDING);
    memset(s.values + total, 0, CK_SPARSE_VALUE_PADDING);
    uint8_t *v = s.values;
    for (int o = 0; o < rows; o++) {
        for (int g = 0; g < groups; g++) {
            int n = __builtin_popcountll(s.masks[(size_t)o * groups + g]);
            if (kind == CK_SPARSE_S8) {
                for (int k = 0; k < n; k++) *v++ = (uint8_t)(int8_t)(below(255) - 127);
            } else if (kind == CK_SPARSE_S4) {
                for (int k = 0; k < (n + 1) / 2; k++) v[k] = (uint8_t)rnd();
                if (n % 2) v[n / 2] &= 0x0F;  // an odd count leaves the last high nibble 0
                v += (n + 1) / 2;
            } else {
                for (int k = 0; k < n; k++) {
                    uint16_t h = below(50) == 0 ? 0 : random_half(8, 18, 1);
                    memcpy(v, &h, 2);
                    v += 2;
                }
            }
        }
    }
    ck_sparse_matrix view = {rows, cols, kind, s.masks, s.offsets, s.values, s.scales};
    s.view = view;
    return s;
}

static void free_sparse(sparse_matrix *s) { free(s->masks); free(s->offsets); free(s->values); free(s->scales); }

/// Row o decoded from the format's definition (independent of the kernels' code).
static void decode_sparse_row(const sparse_matrix *s, int o, double *out) {
    const ck_sparse_matrix *w = &s->view;
    int groups = (w->cols + 63) / 64;
    const uint8_t *v = w->values + w->row_offsets[o];
    for (int g = 0; g < groups; g++) {
        uint64_t m = w->masks[(size_t)o * groups + g];
        double scale = w->kind == CK_SPARSE_F16 ? 1 : half_value(w->scales[(size_t)o * groups + g]);
        int k = 0;
        for (int j = 0; j < 64 && 64 * g + j < w->cols; j++) {
            double value = 0;
            if (m >> j & 1) {
                if (w->kind == CK_SPARSE_S8) value = scale * (int8_t)v[k];
                else if (w->kind == CK_SPARSE_S4) value = scale * ck_sparse_s4_levels[(v[k / 2] >> (4 * (k % 2))) & 15];
                else value = half_value((uint16_t)(v[2 * k] | v[2 * k + 1] << 8));
                k++;
            }
            out[64 * g + j] = value;
        }
        v += w->kind == CK_SPARSE_S8 ? k : w->kind == CK_SPARSE_S4 ? (k + 1) / 2 : 2 * k;
    }
}

/// Activation element i of token t as the kernels multiply it.
static double sparse_act_value(int kind, const uint8_t *act, int cols, int t, int i) {
    const uint8_t *row = act + (size_t)t * ck_sparse_activation_row_bytes(kind, cols);
    if (kind == CK_SPARSE_F16) return ((const float *)row)[i];
    return (double)((const float *)row)[i / 64] * (double)((const int8_t *)(row + ck_sparse_activation_scale_bytes(cols)))[i];
}

static const double densities[] = {0.0, 0.3, 0.5, 0.7, 1.0};

static int random_sparse_cols(int c) {
    switch (c % 4) {
    case 0: return 64 * (1 + below(12));            // whole groups
    case 1: return 32 * (1 + below(40));            // multiples of 32 (a half last group when odd)
    case 2: return 1 + below(700);                  // any width: a ragged last group
    default: return 2048 + below(3) * 64 + (c % 8 == 3 ? 17 : 0);
    }
}

static void check_sparse_matmul(int kind, int best, int cases) {
    for (int c = 0; c < cases; c++) {
        double density = densities[c % 5];
        int cols = random_sparse_cols(c / 5), rows = 1 + below(c % 3 == 0 ? 90 : 20);
        static const int sparse_token_counts[] = {1, 3, 8, 9, 64};
        int tokens = sparse_token_counts[(c / 2) % 5], accumulate = c % 2;
        int lo = rows > 1 ? below(rows) : 0, hi = lo + 1 + below(rows - lo);
        if (c % 7 == 0) { lo = 0; hi = rows; }
        sparse_matrix s = random_sparse(kind, rows, cols, density);
        float *x = xmalloc(sizeof(float) * tokens * cols);
        for (int i = 0; i < tokens * cols; i++) x[i] = uniform() * (1 + (i % 89 == 0) * 30);
        size_t act_bytes = ck_sparse_activation_row_bytes(kind, cols);
        uint8_t *act = xmalloc(act_bytes * tokens);
        ck_sparse_quantize_activations(kind, x, tokens, cols, (size_t)cols, act, CK_PATH_SCALAR);
        size_t ny = (size_t)tokens * rows;
        double *want = xmalloc(sizeof(double) * ny), *mag = xmalloc(sizeof(double) * ny);
        double *wrow = xmalloc(sizeof(double) * (cols + 64));
        float *y0 = xmalloc(sizeof(float) * ny), *ys = xmalloc(sizeof(float) * ny), *y = xmalloc(sizeof(float) * ny);
        for (size_t i = 0; i < ny; i++) y0[i] = uniform();
        for (int o = 0; o < rows; o++) {
            decode_sparse_row(&s, o, wrow);
            for (int t = 0; t < tokens; t++) {
                double sum = 0, m = 0;
                for (int i = 0; i < cols; i++) {
                    double term = wrow[i] * sparse_act_value(kind, act, cols, t, i);
                    sum += term; m += fabs(term);
                }
                want[(size_t)t * rows + o] = sum + (accumulate ? y0[(size_t)t * rows + o] : 0);
                mag[(size_t)t * rows + o] = m;
            }
        }
        char what[256], detail[160];
        for (int path = 0; path <= best; path++) {
            memcpy(y, y0, sizeof(float) * ny);
            STEP("sparse matmul %s %s rows %d cols %d density %.1f tokens %d range [%d, %d)", sparse_name(kind),
                 path_names[path], rows, cols, density, tokens, lo, hi);
            ck_sparse_matmul(&s.view, act, tokens, y, (size_t)rows, lo, hi, accumulate, path);
            double worst;
            int ok;
            if (path == CK_PATH_SCALAR) {
                ok = compare_outputs(y, want, y0, mag, tokens, rows, lo, hi, accumulate, &worst, detail, sizeof detail);
                memcpy(ys, y, sizeof(float) * ny);
            } else {
                double *scalar = xmalloc(sizeof(double) * ny);
                for (size_t i = 0; i < ny; i++) scalar[i] = ys[i];
                ok = compare_outputs(y, scalar, y0, mag, tokens, rows, lo, hi, accumulate, &worst, detail, sizeof detail);
                free(scalar);
            }
            snprintf(what, sizeof what, "rows %d cols %d density %.1f tokens %d range [%d, %d) accumulate %d: %s", rows,
                     cols, density, tokens, lo, hi, accumulate, ok ? "" : detail);
            record(result_for("sparse matmul", sparse_name(kind), path), ok, worst, what);
        }
        free_sparse(&s);
        free(x); free(act); free(want); free(mag); free(wrow); free(y0); free(ys); free(y);
    }
}

static void check_sparse_dequantize(int kind, int best, int cases) {
    for (int c = 0; c < cases; c++) {
        double density = densities[c % 5];
        int cols = random_sparse_cols(c / 5), rows = 3 + below(20);
        int lo = below(rows), hi = lo + 1 + below(rows - lo);
        if (c % 4 == 0) { lo = 0; hi = rows; }
        sparse_matrix s = random_sparse(kind, rows, cols, density);
        size_t n = (size_t)(hi - lo) * cols;
        float *out = xmalloc(sizeof(float) * n);
        double *wrow = xmalloc(sizeof(double) * (cols + 64));
        for (int path = 0; path <= best; path++) {
            memset(out, 0xAB, sizeof(float) * n);
            STEP("sparse dequantize %s %s rows [%d, %d) cols %d density %.1f", sparse_name(kind), path_names[path], lo, hi,
                 cols, density);
            ck_sparse_dequantize_rows(&s.view, lo, hi, out, path);
            // Every path exactly the format's values (scale · q is one rounding in float, as here
            // in double then to float: the product of an f16 and a small int is exact in float).
            // Compared as numbers: the AVX2 path writes scale · 0 = −0 for an unstored column of a
            // group with a negative scale, the scalar path +0.
            char what[256] = "";
            int ok = 1;
            for (int o = lo; o < hi && ok; o++) {
                decode_sparse_row(&s, o, wrow);
                for (int i = 0; i < cols; i++) {
                    float got = out[(size_t)(o - lo) * cols + i], want = (float)wrow[i];
                    if (!(got == want)) {  // ±0 equal: an unstored column times a negative scale may give −0
                        snprintf(what, sizeof what, "rows [%d, %d) cols %d density %.1f: W[%d][%d] = %.9g, want %.9g", lo,
                                 hi, cols, density, o, i, (double)got, (double)want);
                        ok = 0;
                        break;
                    }
                }
            }
            record(result_for("sparse dequantize", sparse_name(kind), path), ok, ok ? 0 : INFINITY, what);
        }
        free_sparse(&s);
        free(out); free(wrow);
    }
}

static void check_sparse_activations(int kind, int best, int cases) {
    for (int c = 0; c < cases; c++) {
        int cols = random_sparse_cols(c), tokens = 1 + below(5);
        size_t ldx = (size_t)cols + (size_t)below(3);
        float *x = xmalloc(sizeof(float) * ldx * tokens);
        for (size_t i = 0; i < ldx * tokens; i++) x[i] = uniform() * (c % 5 == 0 ? 1000 : 1) * (i % 11 == 0 ? 0 : 1);
        if (c % 6 == 0) for (int i = 0; i < 64 && i < cols; i++) x[i] = 0;
        size_t bytes = ck_sparse_activation_row_bytes(kind, cols) * tokens;
        uint8_t *ref = xmalloc(bytes), *out = xmalloc(bytes);
        memset(ref, 0x5A, bytes);
        ck_sparse_quantize_activations(kind, x, tokens, cols, ldx, ref, CK_PATH_SCALAR);
        char what[256] = "";
        int ok = 1;
        double worst = 0;
        for (int t = 0; t < tokens && ok; t++) {
            for (int i = 0; i < cols; i++) {
                double value = sparse_act_value(kind, ref, cols, t, i), xi = x[(size_t)t * ldx + i];
                double step = kind == CK_SPARSE_F16 ? 0 : ((const float *)(ref + t * ck_sparse_activation_row_bytes(kind, cols)))[i / 64];
                double error = fabs(value - xi);
                if (step > 0 && error / step > worst) worst = error / step;
                if (error > 0.5001 * step) {
                    snprintf(what, sizeof what, "cols %d: token %d x[%d] = %g decodes to %g (step %g)", cols, t, i, xi, value, step);
                    ok = 0;
                    break;
                }
            }
        }
        record(result_for("sparse activations", sparse_name(kind), CK_PATH_SCALAR), ok, worst, what);
        for (int path = 1; path <= best; path++) {
            memset(out, 0x5A, bytes);
            STEP("sparse activations %s %s cols %d tokens %d", sparse_name(kind), path_names[path], cols, tokens);
            ck_sparse_quantize_activations(kind, x, tokens, cols, ldx, out, path);
            size_t bad = bytes;
            for (size_t i = 0; i < bytes && bad == bytes; i++) if (out[i] != ref[i]) bad = i;
            if (bad < bytes) snprintf(what, sizeof what, "cols %d tokens %d: byte %zu is %u, scalar %u", cols, tokens, bad,
                                      out[bad], ref[bad]);
            record(result_for("sparse activations", sparse_name(kind), path), bad == bytes, bad == bytes ? 0 : INFINITY, what);
        }
        free(x); free(ref); free(out);
    }
}

// MARK: - Benchmark

typedef struct {
    int is_sparse, type;          // ggml type or sparse kind
    int copies, rows, cols, tokens, path;
    uint8_t **quant;              // [copies] weight copies
    size_t row_bytes;
    sparse_matrix *sparse;        // [copies]
    const void *act;
    float *y;                     // [threads][tokens · rows]
    int begin, end;
} bench_job;

static void run_slice(const bench_job *j, float *y) {
    for (int k = 0; k < j->copies; k++) {
        if (j->is_sparse) {
            ck_sparse_matmul(&j->sparse[k].view, j->act, j->tokens, y, (size_t)j->rows, j->begin, j->end, 0, j->path);
        } else {
            ck_quant_matmul(j->type, j->quant[k], j->row_bytes, j->cols, j->act, j->tokens, y, (size_t)j->rows, j->begin,
                            j->end, 0, j->path);
        }
    }
}

static void *bench_thread(void *arg) {
    bench_job *j = arg;
    run_slice(j, j->y);
    return NULL;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/// Seconds per pass over all copies, the median of `reps` (after one warm-up pass).
static double time_passes(bench_job base, int threads, int reps) {
    double times[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        bench_job jobs[256];
        pthread_t ids[256];
        double start = now_seconds();
        for (int i = 0; i < threads; i++) {
            jobs[i] = base;
            jobs[i].begin = (int)((long)base.rows * i / threads);
            jobs[i].end = (int)((long)base.rows * (i + 1) / threads);
            jobs[i].y = base.y + (size_t)i * base.tokens * base.rows;
            if (threads == 1) bench_thread(&jobs[i]);
            else pthread_create(&ids[i], NULL, bench_thread, &jobs[i]);
        }
        if (threads > 1) for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
        double elapsed = now_seconds() - start;
        if (r >= 0) times[r] = elapsed;
    }
    qsort(times, (size_t)reps, sizeof(double), compare_doubles);
    return times[reps / 2];
}

static void benchmark(int best, int threads, int reps, size_t min_bytes) {
    static const int shapes[][2] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}};
    struct { int is_sparse, type; double density; const char *name; } kernels[] = {
        {0, CK_GGML_Q8_0, 1, "Q8_0"}, {0, CK_GGML_Q4_0, 1, "Q4_0"}, {0, CK_GGML_Q4_K, 1, "Q4_K"}, {0, CK_GGML_Q6_K, 1, "Q6_K"},
        {1, CK_SPARSE_S8, 0.5, "s8 50%"}, {1, CK_SPARSE_S8, 0.3, "s8 70%"},
        {1, CK_SPARSE_S4, 0.5, "s4 50%"}, {1, CK_SPARSE_S4, 0.3, "s4 70%"},
    };
    int thread_counts[2] = {1, threads};
    printf("\n== Decode throughput (weights repeated over >= %zu MB of distinct copies; median of %d; "
           "µs per call, GB/s of weight bytes) ==\n", min_bytes >> 20, reps);
    printf("%-8s %-7s %-11s %7s %8s %6s %10s %8s\n", "kernel", "path", "shape", "tokens", "threads", "copies", "us/call",
           "GB/s");
    for (size_t kk = 0; kk < sizeof kernels / sizeof kernels[0]; kk++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int rows = shapes[si][0], cols = shapes[si][1];
            bench_job base;
            memset(&base, 0, sizeof base);
            base.is_sparse = kernels[kk].is_sparse;
            base.type = kernels[kk].type;
            base.rows = rows;
            base.cols = cols;
            size_t bytes_per_copy;
            if (!base.is_sparse) {
                base.row_bytes = (size_t)cols / quant_block_values(base.type) * quant_block_bytes(base.type);
                bytes_per_copy = base.row_bytes * rows;
                base.copies = (int)((min_bytes + bytes_per_copy - 1) / bytes_per_copy);
                base.quant = xmalloc(sizeof(uint8_t *) * base.copies);
                uint8_t *first = xmalloc(bytes_per_copy);
                int nb = cols / quant_block_values(base.type);
                for (int o = 0; o < rows; o++)
                    for (int b = 0; b < nb; b++) random_block(base.type, first + (size_t)o * base.row_bytes + (size_t)b * quant_block_bytes(base.type));
                for (int k = 0; k < base.copies; k++) {
                    base.quant[k] = xmalloc(bytes_per_copy);
                    memcpy(base.quant[k], first, bytes_per_copy);
                }
                free(first);
            } else {
                sparse_matrix first = random_sparse(base.type, rows, cols, kernels[kk].density);
                int groups = (cols + 63) / 64;
                size_t mask_bytes = sizeof(uint64_t) * rows * groups, scale_bytes = sizeof(uint16_t) * rows * groups;
                size_t offset_bytes = sizeof(uint32_t) * (rows + 1);
                bytes_per_copy = mask_bytes + scale_bytes + offset_bytes + first.value_bytes;
                base.copies = (int)((min_bytes + bytes_per_copy - 1) / bytes_per_copy);
                base.sparse = xmalloc(sizeof(sparse_matrix) * base.copies);
                for (int k = 0; k < base.copies; k++) {
                    sparse_matrix *s = &base.sparse[k];
                    *s = first;
                    s->masks = xmalloc(mask_bytes); memcpy(s->masks, first.masks, mask_bytes);
                    s->scales = xmalloc(scale_bytes); memcpy(s->scales, first.scales, scale_bytes);
                    s->offsets = xmalloc(offset_bytes); memcpy(s->offsets, first.offsets, offset_bytes);
                    s->values = xmalloc(first.value_bytes + CK_SPARSE_VALUE_PADDING);
                    memcpy(s->values, first.values, first.value_bytes + CK_SPARSE_VALUE_PADDING);
                    ck_sparse_matrix view = {rows, cols, base.type, s->masks, s->offsets, s->values, s->scales};
                    s->view = view;
                }
                free_sparse(&first);
            }
            for (int tok = 0; tok < 2; tok++) {
                base.tokens = tok == 0 ? 1 : 8;
                float *x = xmalloc(sizeof(float) * base.tokens * cols);
                for (int i = 0; i < base.tokens * cols; i++) x[i] = uniform();
                size_t act_bytes = base.is_sparse ? ck_sparse_activation_row_bytes(base.type, cols)
                                                  : ck_quant_activation_row_bytes(base.type, cols);
                void *act = xmalloc(act_bytes * base.tokens);
                if (base.is_sparse) ck_sparse_quantize_activations(base.type, x, base.tokens, cols, (size_t)cols, act, CK_PATH_SCALAR);
                else ck_quant_quantize_activations(base.type, x, base.tokens, cols, (size_t)cols, act, CK_PATH_SCALAR);
                base.act = act;
                base.y = xmalloc(sizeof(float) * (size_t)base.tokens * rows * (threads > 0 ? threads : 1));
                for (int path = CK_PATH_AVX2 <= best ? CK_PATH_AVX2 : CK_PATH_SCALAR; path <= best; path++) {
                    base.path = path;
                    STEP("benchmark %s %s %dx%d tokens %d", kernels[kk].name, path_names[path], rows, cols, base.tokens);
                    for (int ti = 0; ti < (threads > 1 ? 2 : 1); ti++) {
                        double seconds = time_passes(base, thread_counts[ti], reps);
                        double per_call = seconds / base.copies;
                        char shape[32];
                        snprintf(shape, sizeof shape, "%dx%d", rows, cols);
                        printf("%-8s %-7s %-11s %7d %8d %6d %10.1f %8.2f\n", kernels[kk].name, path_names[path], shape,
                               base.tokens, thread_counts[ti], base.copies, per_call * 1e6,
                               (double)bytes_per_copy / per_call / 1e9);
                        fflush(stdout);
                    }
                }
                free(x); free(act); free(base.y);
            }
            for (int k = 0; k < base.copies; k++) {
                if (base.is_sparse) free_sparse(&base.sparse[k]);
                else free(base.quant[k]);
            }
            free(base.quant); free(base.sparse);
        }
    }
}

// MARK: - Main

int main(int argc, char **argv) {
    int bench = 1, checks = 1, threads = 1, reps = 3;
    size_t bench_mb = 256;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-bench") == 0) bench = 0;
        else if (strcmp(argv[i], "--bench-only") == 0) checks = 0;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) rng_state = strtoull(argv[++i], NULL, 0) | 1;
        else if (strcmp(argv[i], "--bench-mb") == 0 && i + 1 < argc) bench_mb = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--no-bench] [--bench-only] [--threads N] [--reps N] [--seed N] [--bench-mb N]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256) threads = 1;
    if (reps < 1) reps = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);  // lines out as they come, even into a pipe, should a kernel crash
    signal(SIGILL, crash_handler);
    signal(SIGSEGV, crash_handler);
    signal(SIGBUS, crash_handler);
    signal(SIGFPE, crash_handler);
    printf("== CPU ==\n");
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    printf("avx512f %d  avx512bw %d  avx512vl %d  avx512vnni %d  avx512vbmi2 %d  |  avx2 %d  fma %d  f16c %d\n",
           !!__builtin_cpu_supports("avx512f"), !!__builtin_cpu_supports("avx512bw"),
           !!__builtin_cpu_supports("avx512vl"), !!__builtin_cpu_supports("avx512vnni"),
           !!__builtin_cpu_supports("avx512vbmi2"), !!__builtin_cpu_supports("avx2"), !!__builtin_cpu_supports("fma"),
           !!__builtin_cpu_supports("f16c"));
#endif
    const char *cap = getenv("LOSAD_KERNEL_PATH");
    int best = ck_best_path();
#ifdef CK_EMULATED_AVX512
    // make ckernels-check-emulated: the AVX-512 files run on plain-C stand-ins of the intrinsics.
    best = CK_PATH_AVX512;
    printf("EMULATED: the avx512 rows run sparse_avx512.c, quant_avx512.c and quant_avx512_k.c on "
           "scripts/ckernels_emulated/immintrin.h\n");
#endif
    printf("CPU path: %s   ck_best_path(): %s   (LOSAD_KERNEL_PATH=%s)\n", path_names[ck_cpu_path()], path_names[best],
           cap ? cap : "unset");

    int failures = 0;
    if (checks) {
        uint64_t seed = rng_state;
        for (size_t i = 0; i < sizeof quant_types / sizeof quant_types[0]; i++) {
            check_quant_matmul(quant_types[i], best, 72);
            check_quant_dequantize(quant_types[i], best, 15);
            check_quant_activations(quant_types[i], best, 15);
        }
        for (int kind = 0; kind < 3; kind++) {
            check_sparse_matmul(kind, best, 80);
            check_sparse_dequantize(kind, best, 30);
            check_sparse_activations(kind, best, 20);
        }
        printf("\n== Checks (seed 0x%llx; tolerance |y - want| <= 1e-5 (sum|w x| + |y0|) + 1e-7; "
               "decoders and activations bit for bit, sparse decoders as numbers) ==\n", (unsigned long long)seed);
        for (int i = 0; i < result_count; i++) {
            result *r = &results[i];
            printf("%s %s  %3d cases  worst %.2e%s%s\n", r->failures ? "FAIL" : "PASS", r->name, r->cases, r->worst,
                   r->failures ? "  first failure: " : "", r->failures ? r->first_failure : "");
            if (r->failures) failures++;
        }
        printf("%d of %d lines failed\n", failures, result_count);
    }
    if (bench) benchmark(best, threads, reps, bench_mb << 20);
    return failures ? 1 : 0;
}
