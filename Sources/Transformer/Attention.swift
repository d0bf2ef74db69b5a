import Foundation
import Kernels
import ModelFormats

/// Grouped-query causal self-attention with rotary position embedding
/// (Vaswani et al. 2017; Ainslie et al. 2023, "GQA"; Su et al. 2021, "RoFormer"),
/// as transformers' LlamaAttention / Gemma2Attention compute it:
///
///     s_h = softcap(q_h·k_gᵀ · scale),   g = h / (H / Hkv)
///     out_h = softmax(s_h + mask) · v_g
///
/// with scale 1/√D unless the family sets its own, softcap only where the family caps (gemma2),
/// and the mask causal — query i sees keys up to its own position, and on sliding layers only the
/// last `window` of them. The keys are either the rows' own (full-sequence windows) or a KV cache's
/// (incremental decoding); `AttentionKeys` says which, and both go through `attend`.
///
/// Shapes: q, out [N, H, D]; k, v [N, Hkv, D] or the cache's [Hkv, K, D]; scores [H/Hkv, N, keys].
enum Attention {
    /// How the scores of one layer are formed and masked.
    struct Scoring {
        /// Multiplies q·kᵀ.
        var scale: Float
        /// s ← cap·tanh(s / cap), or nil.
        var softcap: Float?
        /// Keys a query sees on this layer (its own included), or nil for every earlier one.
        var window: Int?

        init(config c: ModelConfig, layer l: Int) {
            scale = Float(c.block.attentionScale ?? 1 / Double(c.headDim).squareRoot())
            softcap = c.block.attentionSoftcap.map { Float($0) }
            window = c.span(ofLayer: l) == .sliding ? c.block.slidingWindow : nil
        }

        init(scale: Float, softcap: Float? = nil, window: Int? = nil) {
            (self.scale, self.softcap, self.window) = (scale, softcap, window)
        }
    }

    /// y (+)= x·Wᵀ (+ bias, broadcast over rows).   x [N, C]; W [O, C]; bias [O]; y [N, O]
    static func project(_ x: Tensor, _ weight: LinearWeight, bias: Tensor?, into y: Tensor, accumulate: Bool = false,
                        scratch: CompressedMatmulScratch?) {
        precondition(bias == nil || !accumulate, "projection: a bias is added to a fresh output, not accumulated")
        if let bias {
            for row in 0..<y.rowCount { (y.pointer + row * y.rowLength).update(from: bias.pointer, count: bias.count) }
        }
        weight.apply(x, into: y, accumulate: accumulate || bias != nil, scratch: scratch)
    }

    /// Attention of `n` query rows at positions offset..<offset+n against keys 0..<`keyCount`, every
    /// group of G = H/Hkv query heads sharing one k/v head; one group's scores at a time, so the buffer
    /// is [G, n, keys]. Key j of kv head g is at `key + g·groupStride + j·rowStride` (values alike).
    ///
    /// query, out [n, H, D]; scores ≥ [G, n, keyCount].
    static func attend(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                       rowStride: Int, groupStride: Int, out: UnsafeMutablePointer<Float>, scores: Tensor,
                       queries n: Int, keys keyCount: Int, offset: Int,
                       heads h: Int, kvHeads hkv: Int, headDimension d: Int, scoring: Scoring) {
        let group = h / hkv
        precondition(scores.count >= group * n * keyCount,
                     "attention: scores \(scores.shape) for \(group) heads of \(n)×\(keyCount)")
        for g in 0..<hkv {
            // s_h = q_h · k_gᵀ · scale for the group's heads (stride D between heads in a row).
            batchedSgemm(transposeA: false, transposeB: true, m: n, n: keyCount, k: d, alpha: scoring.scale,
                         a: query + g * group * d, lda: h * d, strideA: d,
                         b: key + g * groupStride, ldb: rowStride, strideB: 0,
                         c: scores.pointer, ldc: keyCount, strideC: n * keyCount, batchCount: group)
            if let cap = scoring.softcap { softcapForward(scores.pointer, count: group * n * keyCount, cap: cap) }
            causalSoftmaxForward(scores.pointer, y: scores.pointer, matrices: group, queries: n, keys: keyCount,
                                 offset: offset, window: scoring.window)
            // out_h = P_h · v_g, written into the head's D columns of each row.
            batchedSgemm(transposeA: false, transposeB: false, m: n, n: d, k: keyCount,
                         a: scores.pointer, lda: keyCount, strideA: n * keyCount,
                         b: value + g * groupStride, ldb: rowStride, strideB: 0,
                         c: out + g * group * d, ldc: h * d, strideC: d, batchCount: group)
        }
    }

    /// Causal attention of one window of `t` rows over its own keys, with LLaMA's scoring (1/√D, no
    /// cap, no window).   query, out [T, H, D]; key, value [T, Hkv, D]; scores ≥ [G, T, T].
    static func attend(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                       out: UnsafeMutablePointer<Float>, scores: Tensor,
                       tokens t: Int, heads h: Int, kvHeads hkv: Int, headDimension d: Int) {
        attend(query: query, key: key, value: value, rowStride: hkv * d, groupStride: d, out: out, scores: scores,
               queries: t, keys: t, offset: 0, heads: h, kvHeads: hkv, headDimension: d,
               scoring: Scoring(scale: 1 / Float(d).squareRoot()))
    }

    /// Backward of one window's attention (see `attend`), accumulating into dQuery, dKey, dValue; the
    /// probabilities are recomputed per kv group from q and k.
    ///
    ///     S_h = softcap(q_h·k_gᵀ·scale),  P_h = mask-softmax(S_h),  out_h = P_h·v_g
    ///     dV_g += Σ_h P_hᵀ·dOut_h;   dP_h = dOut_h·v_gᵀ;   dS_h = softmax'(P_h, dP_h) ⊙ softcap'(S_h)
    ///     dQ_h += dS_h·k_g·scale;    dK_g += Σ_h dS_hᵀ·q_h·scale
    ///
    /// query, dOut, dQuery [T, H, D]; key, value, dKey, dValue [T, Hkv, D]; probabilities,
    /// dProbabilities, dScores ≥ [G, T, T]; capped ≥ [G, T, T] when the scoring caps.
    static func attendBackward(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                               dOut: UnsafePointer<Float>, dQuery: UnsafeMutablePointer<Float>,
                               dKey: UnsafeMutablePointer<Float>, dValue: UnsafeMutablePointer<Float>,
                               probabilities p: UnsafeMutablePointer<Float>, dProbabilities dP: UnsafeMutablePointer<Float>,
                               dScores dS: UnsafeMutablePointer<Float>, capped: UnsafeMutablePointer<Float>?,
                               tokens t: Int, heads h: Int, kvHeads hkv: Int, headDimension d: Int, scoring: Scoring) {
        let group = h / hkv, scale = scoring.scale, count = group * t * t
        for g in 0..<hkv {
            batchedSgemm(transposeA: false, transposeB: true, m: t, n: t, k: d, alpha: scale,
                         a: query + g * group * d, lda: h * d, strideA: d, b: key + g * d, ldb: hkv * d, strideB: 0,
                         c: p, ldc: t, strideC: t * t, batchCount: group)
            if let cap = scoring.softcap, let capped {
                softcapForward(p, count: count, cap: cap)
                capped.update(from: p, count: count)
            }
            causalSoftmaxForward(p, y: p, matrices: group, queries: t, keys: t, offset: 0, window: scoring.window)
            // dP_h = dOut_h · v_gᵀ
            batchedSgemm(transposeA: false, transposeB: true, m: t, n: t, k: d,
                         a: dOut + g * group * d, lda: h * d, strideA: d, b: value + g * d, ldb: hkv * d, strideB: 0,
                         c: dP, ldc: t, strideC: t * t, batchCount: group)
            dS.update(repeating: 0, count: count)
            causalSoftmaxBackward(dY: dP, y: p, dX: dS, matrices: group, queries: t, keys: t, offset: 0, window: scoring.window)
            if let cap = scoring.softcap, let capped { softcapBackward(dY: dS, y: capped, dX: dS, count: count, cap: cap) }
            // dQ_h += dS_h · k_g · scale
            batchedSgemm(transposeA: false, transposeB: false, m: t, n: d, k: t, alpha: scale,
                         a: dS, lda: t, strideA: t * t, b: key + g * d, ldb: hkv * d, strideB: 0,
                         beta: 1, c: dQuery + g * group * d, ldc: h * d, strideC: d, batchCount: group)
            // The group's heads share dK_g and dV_g: one head at a time, so no two products write them together.
            for head in 0..<group {
                let column = (g * group + head) * d
                sgemm(transposeA: true, transposeB: false, m: t, n: d, k: t,
                      a: p + head * t * t, lda: t, b: dOut + column, ldb: h * d,
                      beta: 1, c: dValue + g * d, ldc: hkv * d)
                sgemm(transposeA: true, transposeB: false, m: t, n: d, k: t, alpha: scale,
                      a: dS + head * t * t, lda: t, b: query + column, ldb: h * d,
                      beta: 1, c: dKey + g * d, ldc: hkv * d)
            }
        }
    }
}

// MARK: - Reference

extension Attention {
    /// The same causal GQA attention of one window computed naively in Double, for tests of `attend`.
    /// query, out [T, H, D]; key, value [T, Hkv, D].
    static func referenceAttend(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                                out: UnsafeMutablePointer<Float>, tokens t: Int, heads h: Int, kvHeads hkv: Int,
                                headDimension d: Int, scoring: Scoring? = nil) {
        let group = h / hkv
        let scale = Double(scoring?.scale ?? 1 / Float(d).squareRoot())
        for head in 0..<h {
            let g = head / group
            for i in 0..<t {
                let first = scoring?.window.map { max(0, i + 1 - $0) } ?? 0
                var scores = [Double](repeating: -.infinity, count: i + 1)
                for j in first...i {
                    var dot = 0.0
                    for e in 0..<d { dot += Double(query[(i * h + head) * d + e]) * Double(key[(j * hkv + g) * d + e]) }
                    var score = dot * scale
                    if let cap = scoring?.softcap { score = Double(cap) * tanh(score / Double(cap)) }
                    scores[j] = score
                }
                let maximum = scores.max()!
                let weights = scores.map { exp($0 - maximum) }
                let total = weights.reduce(0, +)
                for e in 0..<d {
                    var sum = 0.0
                    for j in 0...i { sum += weights[j] / total * Double(value[(j * hkv + g) * d + e]) }
                    out[(i * h + head) * d + e] = Float(sum)
                }
            }
        }
    }
}
