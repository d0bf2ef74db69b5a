import Foundation
import Kernels
import ModelFormats

/// Grouped-query causal self-attention with rotary position embedding
/// (Vaswani et al. 2017; Ainslie et al. 2023, "GQA"; Su et al. 2021, "RoFormer"),
/// as transformers' LlamaAttention / Qwen2Attention compute it:
///
///     q = x·Wqᵀ (+ bq), k = x·Wkᵀ (+ bk), v = x·Wvᵀ (+ bv)     rope(q), rope(k)
///     out_h = softmax(q_h·k_gᵀ / √D + causal mask) · v_g,   g = h / (H / Hkv)
///     residual += concat_h(out_h) · Woᵀ
///
/// Shapes: x [B·T, C] (normed); q, out [B·T, H, D]; k, v [B·T, Hkv, D];
/// scores [H/Hkv, T, T] per window and kv head; residual [B·T, C].
enum Attention {
    /// Adds attention over `input` (the normed residual, rows `0..<batch·T`) into `residual`.
    static func forward(_ weights: LayerWeights, config: ModelConfig, layout: RotaryLayout,
                        input: Tensor, residual: Tensor, batch: Int, workspace: DecoderWorkspace) {
        let t = workspace.tokens, n = batch * t
        let h = config.headCount, hkv = config.kvHeadCount, d = config.headDim
        let query = workspace.query.slice(0..<n), key = workspace.key.slice(0..<n), value = workspace.value.slice(0..<n)
        let attention = workspace.attention.slice(0..<n)

        let scratch = workspace.matmulScratch
        project(input, weights.query, bias: weights.queryBias, into: query, scratch: scratch)
        project(input, weights.key, bias: weights.keyBias, into: key, scratch: scratch)
        project(input, weights.value, bias: weights.valueBias, into: value, scratch: scratch)
        workspace.positions.withUnsafeBufferPointer { positions in
            rotaryEmbeddingForward(query.pointer, tokens: n, heads: h, headDimension: d,
                                   positions: positions.baseAddress!, table: workspace.rotary, layout: layout)
            rotaryEmbeddingForward(key.pointer, tokens: n, heads: hkv, headDimension: d,
                                   positions: positions.baseAddress!, table: workspace.rotary, layout: layout)
        }
        for b in 0..<batch {
            attend(query: query.pointer + b * t * h * d, key: key.pointer + b * t * hkv * d,
                   value: value.pointer + b * t * hkv * d, out: attention.pointer + b * t * h * d,
                   scores: workspace.scores, tokens: t, heads: h, kvHeads: hkv, headDimension: d)
        }
        weights.attentionOutput.apply(attention, into: residual, accumulate: true, scratch: scratch)
    }

    /// y = x·Wᵀ + bias (bias broadcast over rows, when given).   x [N, C]; W [O, C]; bias [O]; y [N, O]
    static func project(_ x: Tensor, _ weight: LinearWeight, bias: Tensor?, into y: Tensor,
                        scratch: CompressedMatmulScratch?) {
        if let bias {
            for row in 0..<y.rowCount { (y.pointer + row * y.rowLength).update(from: bias.pointer, count: bias.count) }
        }
        weight.apply(x, into: y, accumulate: bias != nil, scratch: scratch)
    }

    /// Causal attention of one window, every group of G = H/Hkv query heads sharing one k/v head;
    /// one group's scores at a time, so the buffer is [G, T, T] rather than [H, T, T].
    /// query, out [T, H, D]; key, value [T, Hkv, D]; scores ≥ [G, T, T].
    static func attend(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                       out: UnsafeMutablePointer<Float>, scores: Tensor,
                       tokens t: Int, heads h: Int, kvHeads hkv: Int, headDimension d: Int) {
        let group = h / hkv
        precondition(scores.count >= group * t * t, "attention: scores \(scores.shape) for \(group) heads of \(t)×\(t)")
        let scale = 1 / Float(d).squareRoot()
        for g in 0..<hkv {
            // scores_h = q_h · k_gᵀ / √D for the group's heads (stride D between heads in a row).
            batchedSgemm(transposeA: false, transposeB: true, m: t, n: t, k: d, alpha: scale,
                         a: query + g * group * d, lda: h * d, strideA: d,
                         b: key + g * d, ldb: hkv * d, strideB: 0,
                         c: scores.pointer, ldc: t, strideC: t * t, batchCount: group)
            causalSoftmaxForward(scores.pointer, y: scores.pointer, matrices: group, queries: t, keys: t, offset: 0)
            // out_h = P_h · v_g, written into the head's D columns of each row.
            batchedSgemm(transposeA: false, transposeB: false, m: t, n: d, k: t,
                         a: scores.pointer, lda: t, strideA: t * t,
                         b: value + g * d, ldb: hkv * d, strideB: 0,
                         c: out + g * group * d, ldc: h * d, strideC: d, batchCount: group)
        }
    }
}

// MARK: - Reference

extension Attention {
    /// The same causal GQA attention of one window computed naively in Double, for tests of `attend`.
    /// query, out [T, H, D]; key, value [T, Hkv, D].
    static func referenceAttend(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                                out: UnsafeMutablePointer<Float>, tokens t: Int, heads h: Int, kvHeads hkv: Int,
                                headDimension d: Int) {
        let group = h / hkv
        for head in 0..<h {
            let g = head / group
            for i in 0..<t {
                var scores = [Double](repeating: 0, count: i + 1)
                for j in 0...i {
                    var dot = 0.0
                    for e in 0..<d { dot += Double(query[(i * h + head) * d + e]) * Double(key[(j * hkv + g) * d + e]) }
                    scores[j] = dot / Double(d).squareRoot()
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
