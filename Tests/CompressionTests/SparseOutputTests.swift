import Compression
import Foundation
import Kernels
import ModelFormats
import Testing
import Transformer

/// A job's second output: losad's compact sparse file beside the interoperable export.
@Suite struct SparseOutputTests {
    typealias Job = CompressionJobTests

    @Test func aJobWritesTheSparseFileBesideTheExportWithTheSameZerosAndMeasuresIt() throws {
        let directory = try Job.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let report = try CompressionJob(Job.request(directory, settings: Job.settings(.none))).run()

        let export = directory.appendingPathComponent("model").path
        let sparse = directory.appendingPathComponent("model.sparse.gguf").path
        #expect(CompressionJob.sparseOutputPath(for: export) == sparse)
        let checkpoint = try Checkpoint.open(sparse)
        #expect(checkpoint.format == .sparse)
        let summary = try #require(report.sparseOutput)
        #expect(summary.path == sparse && summary.bytes == checkpoint.fileSize && summary.projectionType == "sparse-s8")
        // Every weight pruned in the export is unstored in the sparse file (s8 may round a few more kept values to 0).
        let exported = try Decoder(checkpoint: Checkpoint.open(export)), stored = try Decoder(checkpoint: checkpoint)
        for (a, b) in zip(exported.weights.layers, stored.weights.layers) {
            for p in SparseLoRA.Projection.allCases {
                let w = SparseLoRA.weight(a, p), s = SparseLoRA.weight(b, p)
                #expect((0..<w.count).allSatisfy { w.pointer[$0] != 0 || s.pointer[$0] == 0 })
            }
        }
        // Its perplexity, read in place by the sparse kernels, is the export's within the 8-bit rounding.
        let evaluation = report.evaluations[0]
        let final = try #require(evaluation.final), measured = try #require(evaluation.sparse)
        #expect(abs(measured / final - 1) < 0.02)
        let speed = try #require(report.decodeSpeed)
        #expect(speed.inputTokensPerSecond > 0 && speed.sparseTokensPerSecond > 0 && speed.threads >= 1)
        #expect(report.summaryTable.contains("sparse file"))
    }

    @Test func aJobAskedForTheSparseFileAloneWritesNoInteroperableExport() throws {
        let directory = try Job.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var settings = Job.settings(.none)
        settings.outputs = [.sparse]
        let report = try CompressionJob(Job.request(directory, settings: settings)).run()
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("model").path))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("model.sparse.gguf").path))
        #expect(report.output == nil && report.sparseOutput != nil)
        let evaluation = report.evaluations[0]
        #expect(evaluation.final != nil && evaluation.sparse == evaluation.final)
        #expect(report.finalSparsity?.verified == true)
    }

    @Test func sparsifyStoresAMagnitudePrunedModelAndReadsBackItsZeros() throws {
        let directory = try Job.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Checkpoint.open(Job.tinyModel)
        let path = directory.appendingPathComponent("tiny.sparse.gguf").path
        let result = try SparseConversion.write(source, to: path, values: .s8, magnitudeSparsity: 0.5)
        #expect(result.path == path)
        let dense = try Decoder(checkpoint: source), sparse = try Decoder(checkpoint: Checkpoint.open(path))
        for (a, b) in zip(dense.weights.layers, sparse.weights.layers) {
            for p in SparseLoRA.Projection.allCases {
                let w = SparseLoRA.weight(a, p), s = SparseLoRA.weight(b, p)
                let zeros = (0..<s.count).filter { s.pointer[$0] == 0 }.count
                #expect(zeros * 2 >= s.count)
                // Every kept weight is the largest half of its row, within the group's 8-bit step.
                let largest = (0..<w.count).map { abs(w.pointer[$0]) }.max()!
                #expect((0..<s.count).allSatisfy { s.pointer[$0] == 0 || abs(s.pointer[$0] - w.pointer[$0]) <= largest / 127 })
            }
        }
    }

    @Test func calibratedS4LogitsAreCloserToS8sThanPlainS4s() throws {
        // The tiny model pruned by magnitude, stored as s8, as s4 (the format's scale search), as s4 with scales
        // weighted by its inputs' second moments, and as s4 rounded by GPTQ; logits on windows of the calibration
        // text, distance to the s8 file's (s8 is within 0.5% of the weights: the reference here).
        let directory = try Job.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Checkpoint.open(Job.tinyModel)
        var settings = CompressionSettings()
        settings.calibrationWindows = 16
        settings.calibrationLength = 32
        func path(_ name: String) -> String { directory.appendingPathComponent(name + ".sparse.gguf").path }
        try SparseConversion.write(source, to: path("s8"), values: .s8, magnitudeSparsity: 0.5)
        try SparseConversion.write(source, to: path("s4"), values: .s4, magnitudeSparsity: 0.5)
        let moments = try SparseConversion.inputSecondMoments(of: source, text: .file(Job.text), magnitudeSparsity: 0.5,
                                                              settings: settings)
        #expect(moments.count == 7 * source.config.layerCount && moments.values.allSatisfy { $0.allSatisfy { $0 >= 0 } })
        try SparseConversion.write(source, to: path("weighted"), values: .s4, magnitudeSparsity: 0.5, importances: moments)
        try SparseConversion.writeS4RoundedWithHessian(source, to: path("gptq"), text: .file(Job.text), magnitudeSparsity: 0.5,
                                                       settings: settings)
        let tokens = source.tokenizer.encode(try String(contentsOfFile: Job.text, encoding: .utf8), addSpecialTokens: false)
        let windows = (0..<8).map { Array(tokens[(200 + 48 * $0)..<(248 + 48 * $0)]) }
        let reference = try Decoder(checkpoint: Checkpoint.open(path("s8"))).logits(tokens: windows)
        func distance(_ name: String) throws -> Double {
            let logits = try Decoder(checkpoint: Checkpoint.open(path(name))).logits(tokens: windows)
            return (0..<logits.count).reduce(0.0) { $0 + pow(Double(logits.pointer[$1] - reference.pointer[$1]), 2) }
        }
        let plain = try distance("s4"), weighted = try distance("weighted"), gptq = try distance("gptq")
        print("tiny model, squared logit distance to s8: s4 \(plain), weighted \(weighted), gptq \(gptq)")
        #expect(weighted < plain && gptq < plain, "s4 \(plain), weighted \(weighted), gptq \(gptq)")
    }
}
