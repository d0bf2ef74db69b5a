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

    /// How the sparse file stores kept values: 4-bit for a source whose projections are stored in 5 bits or
    /// fewer (the sparse file then stays smaller than the source), 8-bit otherwise.
    public static func sparseValueKind(for checkpoint: Checkpoint) -> SparseValueKind {
        let lowBit: Set<String> = ["Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"]
        let projections = checkpoint.tensors.filter { $0.role?.isMatrix == true && $0.role != .tokenEmbedding && $0.role != .output }
        let low = projections.filter { lowBit.contains($0.type) }.count
        return low * 2 > projections.count ? .s4 : .s8
    }

    /// Writes the sparse file of the merged weights; its summary for the report.
    func writeSparseOutput(_ weights: DecoderWeights, source: Checkpoint) throws(CompressionError) -> CompressionReport.OutputSummary {
        let path = Self.sparseOutputPath(for: request.output)
        let kind = Self.sparseValueKind(for: source)
        report(.export, message: "writing \(path) (sparse, \(kind.rawValue) values)")
        let projections = projectionTensors(weights)
        let written: SparseModelWriteResult
        do {
            written = try SparseModelWriter(source: source, valueKind: kind, metadata: exportMetadata())
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
