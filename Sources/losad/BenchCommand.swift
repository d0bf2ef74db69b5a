import ArgumentParser
import Foundation
import Kernels
import ModelFormats
import Transformer

/// `losad bench MODEL…`: prefill and decode speed of models read in place, against the memory-bound limit.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prefill and decode tokens/s of models as losad runs them (weights read in place).",
        discussion: "Each model is loaded as `losad generate` loads it — quantised GGUF blocks and losad's sparse tensors multiplied in place, memory-mapped, no Float32 copy — and timed as llama-bench times its pp and tg tests (random tokens, an empty cache, the median of --repetitions runs after a warm-up). Decode reads every weight once per token, so its ceiling is the machine's memory read bandwidth (measured first, with the same threads) divided by the weight bytes per token; 'of limit' is the measured decode speed as a fraction of that ceiling."
    )

    @Argument(help: "Models to measure: .gguf files (dense or losad's sparse file) or Hugging Face folders.")
    var models: [String]

    @Option(name: .long, help: "Threads for the kernels and OpenBLAS (default: the usable CPUs).")
    var threads: Int?

    @Option(name: .long, help: "Prompt tokens of the prefill test.")
    var promptTokens = 512

    @Option(name: .long, help: "Tokens generated in the decode test.")
    var decodeTokens = 128

    @Option(name: .long, help: "Timed runs of each test (the median counts).")
    var repetitions = 3

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    struct ModelFigures: Codable {
        var model: String
        var weights: String
        var fileBytes: Int
        var weightBytesPerToken: Int
        var prefillTokensPerSecond: Double
        var decodeTokensPerSecond: Double
        /// Bandwidth ÷ weight bytes per token.
        var decodeLimitTokensPerSecond: Double
        var fractionOfLimit: Double
        /// VmRSS with the model loaded, after its runs.
        var residentBytes: Int
    }

    struct Report: Codable {
        var threads: Int
        var kernelPath: String
        var readBandwidthBytesPerSecond: Double
        var promptTokens: Int
        var decodeTokens: Int
        var repetitions: Int
        var models: [ModelFigures]
    }

    func validate() throws {
        guard !models.isEmpty else { throw ValidationError("name at least one model.") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, not \(threads).") }
        guard promptTokens >= 1, decodeTokens >= 1, repetitions >= 1 else {
            throw ValidationError("--prompt-tokens, --decode-tokens and --repetitions must be at least 1.")
        }
    }

    func run() throws {
        // Before the worker pool exists: it reads LOSAD_THREADS once.
        if let threads { setenv("LOSAD_THREADS", String(threads), 1) }
        do {
            let blas = try Kernels.prepare()
            blas.setThreadCount(WorkerPool.shared.threadCount)
            let bandwidth = MemoryBandwidth.measureRead()
            var figures: [ModelFigures] = []
            for path in models {
                let checkpoint = try Checkpoint.open(path)
                let decoder = try Decoder(readingInPlace: checkpoint)
                let result = decoder.benchmark(promptTokens: promptTokens, decodeTokens: decodeTokens, repetitions: repetitions)
                let bytes = decoder.weightBytesPerToken
                let limit = bandwidth / Double(bytes)
                figures.append(ModelFigures(model: path, weights: decoder.weightFormSummary, fileBytes: checkpoint.fileSize,
                                            weightBytesPerToken: bytes,
                                            prefillTokensPerSecond: result.prefillTokensPerSecond,
                                            decodeTokensPerSecond: result.decodeTokensPerSecond,
                                            decodeLimitTokensPerSecond: limit,
                                            fractionOfLimit: result.decodeTokensPerSecond / limit,
                                            residentBytes: ProcessMemory.residentBytes))
            }
            let report = Report(threads: WorkerPool.shared.threadCount, kernelPath: KernelPath.best.description,
                                readBandwidthBytesPerSecond: bandwidth, promptTokens: promptTokens,
                                decodeTokens: decodeTokens, repetitions: repetitions, models: figures)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(Self.table(report))
            }
        } catch {
            FileHandle.standardError.write(Data("losad bench: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func table(_ r: Report) -> String {
        let mib = { (bytes: Int) in String(format: "%.1f", Double(bytes) / 1_048_576) }
        var lines = [
            String(format: "%d threads, %@ kernels; memory read bandwidth %.1f GB/s; pp%d, tg%d, median of %d",
                   r.threads, r.kernelPath, r.readBandwidthBytesPerSecond / 1e9, r.promptTokens, r.decodeTokens, r.repetitions),
            "",
            "model                                      weights                    file MiB  MiB/token  prefill tok/s  decode tok/s  limit tok/s  of limit  RSS MiB",
        ]
        func cell(_ text: String, _ width: Int, left: Bool = false) -> String {
            let clipped = String(text.prefix(width)), pad = String(repeating: " ", count: width - clipped.count)
            return left ? clipped + pad : pad + clipped
        }
        for m in r.models {
            lines.append([cell((m.model as NSString).lastPathComponent, 42, left: true), cell(m.weights, 26, left: true),
                          cell(mib(m.fileBytes), 8), cell(mib(m.weightBytesPerToken), 10),
                          cell(String(format: "%.1f", m.prefillTokensPerSecond), 14),
                          cell(String(format: "%.2f", m.decodeTokensPerSecond), 13),
                          cell(String(format: "%.2f", m.decodeLimitTokensPerSecond), 12),
                          cell(String(format: "%.0f%%", m.fractionOfLimit * 100), 9), cell(mib(m.residentBytes), 8)]
                .joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}
