import Kernels
import ModelFormats

/// The rows one pass of a decoder layer writes, as views of N rows of some workspace: what forward
/// produces and, in training, what backward reads. The optional ones exist where the family needs
/// them (q/k norms, post-sublayer norms) or where backward does (the `rrms` and `xMid` copies,
/// and the un-normed q and k); inference leaves them nil and writes `hidden` over `gate`.
///
/// Shapes: normed1, normed2, xMid, attentionOutput, ffnOutput, sublayerNormed [N, C];
/// rrms1, rrms2, attentionOutputRRMS, ffnOutputRRMS [N]; query, queryUnnormed, attention [N, H·D];
/// key, value, keyUnnormed [N, Hkv·D]; queryRRMS [N·H]; keyRRMS [N·Hkv]; gate, up, hidden [N, F].
struct LayerActivations {
    var normed1: Tensor
    var rrms1: Tensor? = nil
    var queryUnnormed: Tensor? = nil
    var keyUnnormed: Tensor? = nil
    var queryRRMS: Tensor? = nil
    var keyRRMS: Tensor? = nil
    /// After the q/k norms and rope.
    var query: Tensor
    var key: Tensor
    var value: Tensor
    var attention: Tensor
    /// The output projection's rows before the post-attention norm (post-sublayer-norm families).
    var attentionOutput: Tensor? = nil
    var attentionOutputRRMS: Tensor? = nil
    /// The residual between the two sublayers (training).
    var xMid: Tensor? = nil
    var normed2: Tensor
    var rrms2: Tensor? = nil
    var gate: Tensor
    var up: Tensor
    /// act(gate) ⊙ up; `gate` itself in inference.
    var hidden: Tensor
    /// The down projection's rows before the post-MLP norm (post-sublayer-norm families).
    var ffnOutput: Tensor? = nil
    var ffnOutputRRMS: Tensor? = nil
    /// A sublayer's normed output before it joins the residual (post-sublayer-norm families).
    var sublayerNormed: Tensor? = nil
}

/// The buffers a layer uses besides its activations: attention scores, the compressed-product
/// scratch, and the adapters' scratch (training).
///
/// Shapes: scores ≥ [H/Hkv, N, keys]; delta ≥ [max out·in]; adapterInput ≥ [N, max(C, F, H·D)].
struct LayerScratch {
    var scores: Tensor
    var matmul: CompressedMatmulScratch?
    var delta: Tensor? = nil
    var adapterInput: Tensor? = nil
}

/// Where one layer pass finds its keys and values.
enum AttentionKeys {
    /// `batch` windows of `tokens` rows each attend to their own rows (positions 0..<T per window).
    case windows(batch: Int, tokens: Int)
    /// The rows are new positions after the cache's; their k, v are appended to layer `layer`'s cache first.
    case cache(KVCache, layer: Int)
}
