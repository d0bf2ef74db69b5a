// The s4 encoder of one group of stored values (docs/sparse-format.md, "The encoding", version 2):
// the scale search and the nibbles. It lives in C, built -O3 in every configuration, because the
// search fits each group 68 times and the suite encodes whole models in debug builds, where the
// same loops in Swift took over ten minutes for the demo model.
//
// The arithmetic is the rule's, step for step in float (no contraction into fused multiply-adds),
// so that scripts/sparse_format.py computes the same bytes.
#pragma STDC FP_CONTRACT OFF
#include <string.h>
#include "ckernels.h"

/// The midpoints between neighbouring levels, in units of the scale.
static float s4_midpoint(int i) { return ((float)ck_sparse_s4_levels[i] + (float)ck_sparse_s4_levels[i + 1]) / 2.0f; }

uint8_t ck_sparse_s4_nibble(float r) {
    if (r != r) return 8;
    uint8_t i = 0;
    while (i < 15 && !(r <= s4_midpoint(i))) i++;
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
    float inverse = best == 0 ? 0 : 1 / (float)best;
    for (int k = 0; k < n; k++) {
        uint8_t nibble = ck_sparse_s4_nibble(values[k] * inverse);
        nibbles[k >> 1] |= (k & 1) ? (uint8_t)(nibble << 4) : nibble;
    }
    uint16_t bits;
    memcpy(&bits, &best, sizeof bits);
    return bits;
}
