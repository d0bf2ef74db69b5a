// The s4 encoder of one group of stored values (docs/sparse-format.md, "The encoding", version 2):
// the scale search and the nibbles. It lives in C, built -O3 in every configuration, because the
// search fits each group 68 times and the suite encodes whole models in debug builds, where the
// same loops in Swift took over ten minutes for the demo model.
//
// ck_sparse_s4_encode_group_weighted is losad's own choice of scale beside it (the format does not say how a
// writer picks scales): the same nibble rule, the scale minimising Σ h·(w − s·level)² for per-value importances h.
//
// The arithmetic is the rule's, step for step in float (no contraction into fused multiply-adds),
// so that scripts/sparse_format.py computes the same bytes.
#pragma STDC FP_CONTRACT OFF
#include <string.h>
#include "ckernels.h"

// The weighted search's starts: ± max|w| · (FIRST + STRIDE · i) / 64 for i = 0 … STEPS, each refitted up to REFITS times.
#define S4_WEIGHTED_FIRST 0.5f
#define S4_WEIGHTED_STRIDE 0.05f
#define S4_WEIGHTED_STEPS 20
#define S4_WEIGHTED_REFITS 3

/// The 15 midpoints between neighbouring levels, in units of the scale ((level[i] + level[i + 1]) / 2, exact
/// in float), and a 16th of +∞ so that the search below needs no bound check.
static const float s4_midpoints[16] = {
    -58.0f, -47.0f, -37.0f, -28.0f, -21.0f, -14.5f, -8.0f, -2.5f, 3.0f, 9.0f, 15.5f, 22.5f, 30.0f, 39.0f, 50.0f,
    __builtin_inff()
};

uint8_t ck_sparse_s4_nibble(float r) {
    if (r != r) return 8;
    // The first i with r ≤ midpoint[i] (15 if none): a binary search, as the scale search calls this ~10⁹ times
    // per model.
    uint8_t i = 0;
    for (uint8_t step = 8; step > 0; step >>= 1) {
        if (!(r <= s4_midpoints[i + step - 1])) i += step;
    }
    return i;
}

/// Σ (w − scale · level)² at `scale`, and the least-squares scale Σ w · level / Σ level² for the same nibbles.
static void s4_fit(const float *values, int n, float scale, float *error, float *refined) {
    float inverse = scale == 0 ? 0 : 1 / scale;
    float e = 0, dot = 0, norm = 0;
    for (int k = 0; k < n; k++) {
        float w = values[k];
        float level = (float)ck_sparse_s4_levels[ck_sparse_s4_nibble(w * inverse)];
        float d = w - scale * level;
        e += d * d;
        dot += w * level;
        norm += level * level;
    }
    *error = e;
    *refined = norm > 0 ? dot / norm : 0;
}

/// s rounded to binary16 (nearest, ties to even) after clamping to ± the largest finite half, as Swift's
/// Float16(max(−L, min(L, s))) does (a NaN clamps to L).
static _Float16 s4_rounded(float s) {
    const float largest = 65504.0f;
    float a = s < largest ? s : largest;
    float b = a >= -largest ? a : -largest;
    return (_Float16)b;
}

/// ORs each value's nibble at `scale` into `nibbles` and returns the scale's f16 bits: the end of both searches.
static uint16_t s4_store(const float *values, int n, _Float16 scale, uint8_t *nibbles) {
    float inverse = scale == 0 ? 0 : 1 / (float)scale;
    for (int k = 0; k < n; k++) {
        uint8_t nibble = ck_sparse_s4_nibble(values[k] * inverse);
        nibbles[k >> 1] |= (k & 1) ? (uint8_t)(nibble << 4) : nibble;
    }
    uint16_t bits;
    memcpy(&bits, &scale, sizeof bits);
    return bits;
}

uint16_t ck_sparse_s4_encode_group(const float *values, int n, uint8_t *nibbles) {
    float largest = 0;
    for (int k = 0; k < n; k++) {
        float a = values[k] < 0 ? -values[k] : values[k];
        if (values[k] == values[k] && a > largest) largest = a;
    }
    _Float16 best = 0;
    if (largest > 0) {
        float best_error = __builtin_inff();
        for (int s = 0; s < 2; s++) {
            float sign = s == 0 ? 1.0f : -1.0f;
            for (int i = 0; i < 17; i++) {
                float step = 0.6f + 0.05f * (float)i;
                _Float16 start = s4_rounded(sign * largest * step / 64);
                if (start == 0) continue;
                float error, refined;
                s4_fit(values, n, (float)start, &error, &refined);
                if (error < best_error) { best = start; best_error = error; }
                _Float16 rounded = s4_rounded(refined);
                if (rounded == 0) continue;
                float unused;
                s4_fit(values, n, (float)rounded, &error, &unused);
                if (error < best_error) { best = rounded; best_error = error; }
            }
        }
        // No finite error (an infinite or NaN weight): the plain max|w| / 64, so that ±∞ saturates.
        if (best == 0) best = s4_rounded(largest / 64);
    }
    return s4_store(values, n, best, nibbles);
}

/// Σ h (w − scale · level)² at `scale`, and the weighted least-squares scale Σ h w level / Σ h level² for the same nibbles.
static void s4_fit_weighted(const float *values, const float *weights, int n, float scale, float *error, float *refined) {
    float inverse = scale == 0 ? 0 : 1 / scale;
    float e = 0, dot = 0, norm = 0;
    for (int k = 0; k < n; k++) {
        float w = values[k], h = weights[k];
        float level = (float)ck_sparse_s4_levels[ck_sparse_s4_nibble(w * inverse)];
        float d = w - scale * level;
        e += h * (d * d);
        dot += h * (w * level);
        norm += h * (level * level);
    }
    *error = e;
    *refined = norm > 0 ? dot / norm : 0;
}

uint16_t ck_sparse_s4_encode_group_weighted(const float *values, const float *weights, int n, uint8_t *nibbles) {
    if (weights == NULL) return ck_sparse_s4_encode_group(values, n, nibbles);
    // The unweighted scale is the first candidate, so the weighted error is never worse than its.
    uint8_t scratch[CK_SPARSE_GROUP / 2] = {0};
    uint16_t plain_bits = ck_sparse_s4_encode_group(values, n, n <= CK_SPARSE_GROUP ? scratch : nibbles);
    if (n > CK_SPARSE_GROUP) memset(nibbles, 0, (size_t)(n + 1) / 2);
    _Float16 best;
    memcpy(&best, &plain_bits, sizeof best);
    float largest = 0, total = 0;
    for (int k = 0; k < n; k++) {
        float a = values[k] < 0 ? -values[k] : values[k];
        if (values[k] == values[k] && a > largest) largest = a;
        total += weights[k];
    }
    // total > 0 also refuses NaN importances; a group without weight keeps the unweighted scale.
    if (best != 0 && largest > 0 && total > 0 && total <= __builtin_huge_valf()) {
        float best_error, unused;
        s4_fit_weighted(values, weights, n, (float)best, &best_error, &unused);
        if (!(best_error <= __builtin_huge_valf())) best_error = __builtin_inff();
        for (int s = 0; s < 2; s++) {
            float sign = s == 0 ? 1.0f : -1.0f;
            for (int i = 0; i <= S4_WEIGHTED_STEPS; i++) {
                float step = S4_WEIGHTED_FIRST + S4_WEIGHTED_STRIDE * (float)i;
                _Float16 candidate = s4_rounded(sign * largest * step / 64);
                // Each start, then weighted least-squares refits of its nibbles until they settle.
                for (int r = 0; r <= S4_WEIGHTED_REFITS && candidate != 0; r++) {
                    float error, refined;
                    s4_fit_weighted(values, weights, n, (float)candidate, &error, &refined);
                    if (error < best_error) { best = candidate; best_error = error; }
                    _Float16 next = s4_rounded(refined);
                    if (next == candidate) break;
                    candidate = next;
                }
            }
        }
    }
    return s4_store(values, n, best, nibbles);
}
