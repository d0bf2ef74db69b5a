import Foundation
import Kernels

/// Perplexity of a token stream as shared/docs/LOSA.md "Evaluation" defines it:
/// cut the stream into non-overlapping windows of `windowLength` tokens, score
/// every next-token prediction inside each window (T − 1 per window), average
/// the negative log-likelihood over all of them, exponentiate.
///
/// Tokens after the last full window are not scored (as llama.cpp's
/// `llama-perplexity` drops them), so every window has the same length and one
/// workspace serves all batches. Losses come from `chunkedCrossEntropy`, so at
/// most `chunkRows` × V logits exist at a time; sums are kept in Double.
///
/// Shapes: stream [S]; windows [B][T] per batch; hidden [B·T, C]; scratch [chunkRows, V].
public struct PerplexityResult: Sendable, Equatable {
    /// exp(meanNLL).
    public let perplexity: Double
    /// Mean next-token negative log-likelihood, in nats.
    public let meanNLL: Double
    /// Predictions scored: windows × (windowLength − 1).
    public let predictedTokens: Int
    public let windows: Int
}

extension Decoder {
    /// The perplexity of `stream` over non-overlapping windows of `windowLength` without a prefix.
    public func perplexity(of stream: [Int32], windowLength: Int, batch: Int = 1, chunkRows: Int = 256,
                           stopIf: () -> Bool = { false }) throws -> PerplexityResult {
        try perplexity(of: stream, layout: WindowLayout(length: windowLength), batch: batch, chunkRows: chunkRows, stopIf: stopIf)
    }

    /// The perplexity of `stream` over the windows of `layout` (with a BOS prefix, the first text token is
    /// predicted from the BOS alone), `batch` windows per forward pass; `stopIf` is asked before every
    /// batch (a yes throws `TransformerError.interrupted`). `releasingPages`: matrices read in place drop their file
    /// pages once decoded (`CompressedMatmulScratch.releasesPages`), as a compression job evaluates a large model.
    public func perplexity(of stream: [Int32], layout: WindowLayout, batch: Int = 1, chunkRows: Int = 256,
                           releasingPages: Bool = false, stopIf: () -> Bool = { false }) throws -> PerplexityResult {
        let windowLength = layout.length
        precondition(windowLength >= 2 && batch >= 1 && chunkRows >= 1,
                     "perplexity: window \(windowLength), batch \(batch), chunks of \(chunkRows)")
        let windowCount = layout.windowCount(streamLength: stream.count)
        guard windowCount >= 1 else {
            throw TransformerError.streamTooShort(tokens: stream.count, windowLength: layout.textTokens)
        }
        let workspace = makeWorkspace(batch: min(batch, windowCount), tokens: windowLength)
        workspace.matmulScratch.releasesPages = releasingPages
        let scratch = Tensor(zeros: [min(chunkRows, workspace.batchCapacity * windowLength), config.vocabSize])
        var totalNLL = 0.0, scored = 0
        var first = 0
        while first < windowCount {
            if stopIf() { throw TransformerError.interrupted }
            let count = min(workspace.batchCapacity, windowCount - first)
            let windows = (first..<first + count).map { layout.window($0, of: stream) }
            // Row t predicts token t + 1 of its window; the last row of each window predicts nothing.
            let targets: [Int32] = windows.flatMap { window -> [Int32] in window.dropFirst() + [-1] }
            let hidden = forward(windows, workspace: workspace)
            let mean = chunkedCrossEntropy(hidden: hidden, head: weights.output, targets: targets,
                                           chunkRows: chunkRows, scratch: scratch, matmulScratch: workspace.matmulScratch,
                                           softcap: finalLogitSoftcap)
            let predicted = count * (windowLength - 1)
            totalNLL += mean * Double(predicted)
            scored += predicted
            first += count
        }
        let meanNLL = totalNLL / Double(scored)
        return PerplexityResult(perplexity: exp(meanNLL), meanNLL: meanNLL, predictedTokens: scored, windows: windowCount)
    }
}
