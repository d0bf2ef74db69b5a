import Foundation
import Kernels
import ModelFormats
import Transformer

// The second output of a job (ARCHITECTURE.md "Two outputs per job"): losad's compact sparse file beside
// the interoperable export, its perplexity, and the decode speed it buys on this machine.

extension CompressionJob {
    /// Where the sparse file goes: beside the interoperable output, `<name>.sparse.gguf` (the `.gguf` of a
    /// GGUF output replaced, appended to a folder's name).
    public static func sparseOutputPath(for output: String) -> String {
        let trimmed = output.hasSuffix("/") ? String(output.dropLast()) : output
        let stem = trimmed.lowercased().hasSuffix(".gguf") ? String(trimmed.dropLast(5)) : trimmed
        return stem + ".sparse.gguf"
    }

    /// How a job's sparse file stores kept values: 8-bit. Measured on the demo model (Q4_1 source, LoSA 50%, quick;
    /// perplexity at 512 on 200 kB of perldiag.pod): the Q8_0 export 32.145, its s8 sparse file 32.142, its
    /// format-1 s4 sparse file 42.013 (+31%), the export requantised to Q4_0 44.505 (+38%); format 2's s4 (non-uniform
    /// levels, scale search) +20% against format 1's +33% on 12 kB of the same text: still far from s8, because
    /// the merged LoRA correction is ~0.5% of the weights and 4-bit rounding ~6%. Calibrated s4 (12 kB of perldiag /
    /// the held-out Python documentation, against s8): weighted scales +7.1% / +11.2%, GPTQ rounding +7.0% / +5.6%
    /// (docs/sparse-format.md, "Calibrated rounding") — closer, not within 3%. `losad sparsify --values s4` still
    /// writes them.
    public static let sparseValueKind = SparseValueKind.s8

    /// Writes the sparse file of the merged weights; its summary for the report.
    ///
    /// s4 values are rounded for the error of each projection's outputs on the job's calibration windows, block
    /// after block (`LayerwiseCalibration.roundS4Sequentially`: GPTQ with the mask fixed, scales weighted by the
    /// inputs' second moments) — one more pass over the merged model, on a copy of its projections that are put back
    /// afterwards; only for s4 (s8 and f16 store each weight as it is).
    func writeSparseOutput(_ weights: DecoderWeights, source: Checkpoint,
                           calibration: LayerwiseCalibration) throws(CompressionError) -> CompressionReport.OutputSummary {
        let path = Self.sparseOutputPath(for: request.output)
        let kind = Self.sparseValueKind
        report(.export, message: "writing \(path) (sparse, \(kind.rawValue) values)")
        let merged = kind == .s4 ? snapshotProjections(weights) : []
        defer { if !merged.isEmpty { restoreProjections(weights, from: merged) } }
        let scales = kind == .s4 ? try calibration.roundS4Sequentially(cancellation: cancellation) : [:]
        let projections = projectionTensors(weights)
        let written: SparseModelWriteResult
        do {
            written = try SparseModelWriter(source: source, valueKind: kind, metadata: exportMetadata(), s4Scales: scales)
                .write(weights: projections, sparse: Set(projections.keys), to: path)
        } catch {
            throw .unsupportedModel(path: path, reason: "writing the sparse file failed: \(error)")
        }
        let published = request.publishedOutput.map { Self.sparseOutputPath(for: $0) } ?? written.path
        return .init(path: published, format: "losa-sparse", bytes: written.bytesWritten, projectionType: "sparse-\(kind.rawValue)")
    }

    /// Decode tokens/s of the input and of the sparse file, both read in place, measured the same way one after
    /// the other (`losad bench`'s tg test, shorter).
    func measureDecodeSpeed(input: String, sparse: String) throws(CompressionError) -> CompressionReport.DecodeSpeed {
        report(.evaluate, message: "measuring decode speed of the input and the sparse file")
        func tokensPerSecond(_ path: String) throws(CompressionError) -> Double {
            do {
                let decoder = try Decoder(readingInPlace: Checkpoint.open(path))
                return decoder.benchmark(promptTokens: 16, decodeTokens: 32, repetitions: 3).decodeTokensPerSecond
            } catch {
                throw .unsupportedModel(path: path, reason: "cannot be read for the decode measurement: \(error)")
            }
        }
        let inputSpeed = try tokensPerSecond(input)
        let sparseSpeed = try tokensPerSecond(sparse)
        return .init(threads: WorkerPool.shared.threadCount, inputTokensPerSecond: inputSpeed, sparseTokensPerSecond: sparseSpeed)
    }
}
