import Foundation
import ModelFormats
import Transformer

/// Everything a compression job measured: what `report.json` holds (next to the exported model) and what
/// the ledger records. Perplexities of the final model are measured on the exported file, re-read from disk.
public struct CompressionReport: Sendable, Codable, Equatable {
    public static let formatVersion = 1

    public var formatVersion = CompressionReport.formatVersion
    public var losadVersion: String = ""
    public var input: ModelSummary
    public var output: OutputSummary?
    /// losad's compact sparse file, when the job wrote one.
    public var sparseOutput: OutputSummary?
    /// Decode speed of the input and of the sparse file on this machine, when the job wrote one.
    public var decodeSpeed: DecodeSpeed?
    public var settings: CompressionSettings
    /// Perplexity of each evaluation text: dense, pruned-only and final.
    public var evaluations: [EvaluationRecord] = []
    /// The pruned-only model (same method, pattern and allocation, no recovery): its layer sparsities.
    public var prunedBaseline: [LayerRecord] = []
    /// One record per LoSA iteration (one for the `lora` baseline's training, none for `none`).
    public var iterations: [IterationRecord] = []
    /// Zeros of the final projections: as the job made them, and as counted in the exported file.
    public var finalSparsity: SparsityCount?
    /// Seconds per stage (summed over iterations).
    public var stageSeconds: [String: Double] = [:]
    public var wallSeconds: Double = 0
    /// Peak resident memory of the process (VmHWM), bytes.
    public var peakMemoryBytes: Int = 0
    /// The memory plan the job started with (`CompressionMemoryPlan`): its estimate of the peak, the limit and
    /// how training kept its activations.
    public var memory: MemoryRecord?
    /// The iteration a resumed job restarted after (nil: ran from the start).
    public var resumedAfterIteration: Int?

    public init(input: ModelSummary, settings: CompressionSettings) {
        self.input = input
        self.settings = settings
    }

    /// The memory plan as the report records it.
    public struct MemoryRecord: Sendable, Codable, Equatable {
        public var estimateBytes: Int
        public var limitBytes: Int?
        /// The phase the estimate's peak falls in: pruning, evaluation, recovery or export.
        public var peakPhase: String
        /// "store" or "recompute" (`LoRATrainingWorkspace.ActivationPolicy`).
        public var trainingActivations: String
        /// Windows of an optimiser batch run through forward and backward together (nil in reports before it existed).
        public var trainingWindowsPerPass: Int?
        /// "stored" or "recomputed" (`CompressionMemoryPlan.DenseFeatures`).
        public var denseFeatures: String
        /// "float32" or "compact" (`CompressionMemoryPlan.StudentWeights`; nil in reports before it existed).
        public var studentWeights: String?
        /// The estimate's parts, bytes by name.
        public var parts: [String: Int]

        public init(_ plan: CompressionMemoryPlan) {
            estimateBytes = plan.totalBytes
            limitBytes = plan.limit
            peakPhase = plan.peakPhase
            trainingActivations = plan.trainingActivations.rawValue
            trainingWindowsPerPass = plan.trainingWindowsPerPass
            denseFeatures = plan.denseFeatures.rawValue
            studentWeights = plan.studentWeights.rawValue
            parts = Dictionary(plan.parts.map { ($0.name, $0.bytes) }, uniquingKeysWith: +)
        }
    }

    public struct ModelSummary: Sendable, Codable, Equatable {
        public var path: String
        public var format: String
        public var architecture: String
        public var layers: Int
        public var hiddenSize: Int
        /// Weights of the seven projections of every layer (what is pruned).
        public var projectionParameters: Int
        /// Every parameter of the checkpoint (nil in reports written before it was recorded).
        public var parameters: Int?
        public var fileBytes: Int
    }

    public struct OutputSummary: Sendable, Codable, Equatable {
        public var path: String
        public var format: String
        public var bytes: Int
        /// The type the pruned projections were written in.
        public var projectionType: String
    }

    public struct EvaluationRecord: Sendable, Codable, Equatable {
        public var text: String
        public var windowLength: Int
        public var windows: Int
        public var predictedTokens: Int
        public var dense: Double?
        public var pruned: Double?
        /// The final model, measured on the exported file (the sparse file when it is the only output).
        public var final: Double?
        /// The final model, measured on the sparse file read in place.
        public var sparse: Double?
    }

    /// Decode tokens/s (a short llama-bench-style tg run, weights read in place) of the input and the sparse file.
    public struct DecodeSpeed: Sendable, Codable, Equatable {
        public var threads: Int
        public var inputTokensPerSecond: Double
        public var sparseTokensPerSecond: Double
        public var speedup: Double { sparseTokensPerSecond / inputTokensPerSecond }

        enum CodingKeys: String, CodingKey { case threads, inputTokensPerSecond, sparseTokensPerSecond, speedup }

        public init(threads: Int, inputTokensPerSecond: Double, sparseTokensPerSecond: Double) {
            self.threads = threads
            self.inputTokensPerSecond = inputTokensPerSecond
            self.sparseTokensPerSecond = sparseTokensPerSecond
        }

        public init(from decoder: any Swift.Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(threads: try c.decode(Int.self, forKey: .threads),
                      inputTokensPerSecond: try c.decode(Double.self, forKey: .inputTokensPerSecond),
                      sparseTokensPerSecond: try c.decode(Double.self, forKey: .sparseTokensPerSecond))
        }

        public func encode(to encoder: any Swift.Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(threads, forKey: .threads)
            try c.encode(inputTokensPerSecond, forKey: .inputTokensPerSecond)
            try c.encode(sparseTokensPerSecond, forKey: .sparseTokensPerSecond)
            try c.encode(speedup, forKey: .speedup)
        }
    }

    public struct LayerRecord: Sendable, Codable, Equatable {
        public var layer: Int
        /// Sparsity asked of the layer, and zeros / size counted after pruning.
        public var targetSparsity: Double
        public var sparsity: Double
        public var redundancy: Double?
        public var importance: Double?
        public var reconstructionError: Double?
        public var rank: Int?
    }

    public struct IterationRecord: Sendable, Codable, Equatable {
        public var iteration: Int
        public var targetSparsity: Double
        public var meanRank: Double
        public var layers: [LayerRecord]
        public var trainingSteps: Int
        public var trainingWindows: Int
        /// Mean loss of each optimiser step (the weighted total of the objective's terms).
        public var losses: [Double]
        /// The same steps split by term, when the objective is more than cross-entropy (nil: `losses` is the cross-entropy).
        public var lossTerms: [TrainingLoss]?
        public var seconds: Double
    }

    public struct SparsityCount: Sendable, Codable, Equatable {
        /// Zeros of the merged model's projections (what pruning made), and their size.
        public var zeros: Int
        public var total: Int
        public var fraction: Double { total > 0 ? Double(zeros) / Double(total) : 0 }
        /// Zeros / size per layer.
        public var perLayer: [Double]
        /// Zeros counted in the exported file: at least `zeros` (a quantised type rounds a few small weights to 0).
        public var exportedZeros: Int
        public var exportedFraction: Double { total > 0 ? Double(exportedZeros) / Double(total) : 0 }
        /// Whether every zero the job made is zero in the exported file.
        public var verified: Bool

        enum CodingKeys: String, CodingKey { case zeros, total, fraction, perLayer, exportedZeros, exportedFraction, verified }

        public init(zeros: Int, total: Int, perLayer: [Double], exportedZeros: Int, verified: Bool) {
            self.zeros = zeros
            self.total = total
            self.perLayer = perLayer
            self.exportedZeros = exportedZeros
            self.verified = verified
        }

        public init(from decoder: any Swift.Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            zeros = try c.decode(Int.self, forKey: .zeros)
            total = try c.decode(Int.self, forKey: .total)
            perLayer = try c.decode([Double].self, forKey: .perLayer)
            exportedZeros = try c.decode(Int.self, forKey: .exportedZeros)
            verified = try c.decode(Bool.self, forKey: .verified)
        }

        public func encode(to encoder: any Swift.Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(zeros, forKey: .zeros)
            try c.encode(total, forKey: .total)
            try c.encode(fraction, forKey: .fraction)
            try c.encode(perLayer, forKey: .perLayer)
            try c.encode(exportedZeros, forKey: .exportedZeros)
            try c.encode(exportedFraction, forKey: .exportedFraction)
            try c.encode(verified, forKey: .verified)
        }
    }

    /// Pretty-printed, key-sorted JSON.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The table printed at the end of a job: perplexities side by side, sparsity, size and time.
    public var summaryTable: String {
        func ppl(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "—" }
        var lines: [String] = []
        let recovery = settings.recovery.rawValue
        let refit = settings.refitOptions != nil ? " + least squares" : ""
        lines.append(String(format: "%@ %@%@ %.0f%% %@, %@ allocation, recovery %@, profile %@",
                            (input.path as NSString).lastPathComponent, settings.method.rawValue, refit,
                            settings.sparsity * 100, settings.pattern.description, settings.allocation.rawValue,
                            recovery, settings.profile.rawValue))
        var header = ["text", "ctx", "tokens", "dense", "pruned-only", recovery == "none" ? "final" : recovery, "vs pruned"]
        let sparseColumn = evaluations.contains { $0.sparse != nil }
        if sparseColumn { header.append("sparse file") }
        var rows: [[String]] = [header]
        for e in evaluations {
            let gain = (e.pruned != nil && e.final != nil) ? String(format: "%+.1f%%", (e.final! / e.pruned! - 1) * 100) : "—"
            rows.append([e.text, "\(e.windowLength)", "\(e.predictedTokens)", ppl(e.dense), ppl(e.pruned), ppl(e.final), gain]
                        + (sparseColumn ? [ppl(e.sparse)] : []))
        }
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            lines.append(zip(row, widths).enumerated().map { i, cell in
                i == 0 ? cell.0.padding(toLength: cell.1, withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: cell.1 - cell.0.count) + cell.0
            }.joined(separator: "  "))
        }
        if let s = finalSparsity {
            lines.append(String(format: "sparsity %.4f (%d of %d projection weights pruned, every one zero in the exported file: %@)",
                                s.fraction, s.zeros, s.total, s.verified ? "verified" : "NOT verified"))
            if s.exportedZeros > s.zeros {
                lines.append(String(format: "exported file: %.4f zero (%d more weights rounded to 0 by %@)",
                                    s.exportedFraction, s.exportedZeros - s.zeros, output?.projectionType ?? "the export type"))
            }
        }
        for output in [output, sparseOutput].compactMap({ $0 }) {
            lines.append(String(format: "output %@ (%@, projections %@, %.1f MB; input %.1f MB)", output.path, output.format,
                                output.projectionType, Double(output.bytes) / 1e6, Double(input.fileBytes) / 1e6))
        }
        if let d = decodeSpeed {
            lines.append(String(format: "decode on this machine (%d threads): input %.1f tokens/s, sparse file %.1f tokens/s (%.2fx)",
                                d.threads, d.inputTokensPerSecond, d.sparseTokensPerSecond, d.speedup))
        }
        if settings.recovery != .none {
            lines.append("training objective: \(settings.objective.summary)")
            if let terms = iterations.last?.lossTerms, !terms.isEmpty {
                // The last iteration's last quarter of steps: where its training ended.
                let tail = terms.suffix(max(1, terms.count / 4))
                let mean = tail.dropFirst().reduce(tail.first!, +).divided(by: Double(tail.count))
                lines.append("training loss of the last \(tail.count) steps by term: \(mean.summary)")
            }
        }
        var memoryLine = String(format: "wall time %.1f s, peak memory %.2f GiB", wallSeconds, Double(peakMemoryBytes) / 1073741824)
        if let memory {
            // What the memory plan chose, so that a slower job under a tight limit says why.
            memoryLine += String(format: " (estimate %.2f GiB; ", Double(memory.estimateBytes) / 1073741824)
                + "model \(memory.studentWeights ?? "float32"), activations \(memory.trainingActivations), dense features \(memory.denseFeatures))"
        }
        lines.append(memoryLine)
        return lines.joined(separator: "\n")
    }
}

extension CompressionReport {
    /// Per iteration: target sparsity, mean rank, steps and mean loss; per layer: sparsity, rank, importance,
    /// reconstruction error.
    public var layerTable: String {
        var lines: [String] = []
        for record in iterations {
            var loss = record.losses.isEmpty ? "—" : String(format: "%.4f", record.losses.reduce(0, +) / Double(record.losses.count))
            if let terms = record.lossTerms, let first = terms.first {
                loss += " (" + terms.dropFirst().reduce(first, +).divided(by: Double(terms.count)).summary + ")"
            }
            lines.append(String(format: "iteration %d: target %.4f, mean rank %.1f, %d steps on %d windows, mean loss %@, %.1f s",
                                record.iteration, record.targetSparsity, record.meanRank, record.trainingSteps,
                                record.trainingWindows, loss, record.seconds))
            lines.append("  layer  sparsity  rank  importance  recon. error")
            for layer in record.layers {
                lines.append(String(format: "  %5d  %8.4f  %4@  %10@  %12@", layer.layer, layer.sparsity,
                                    layer.rank.map(String.init) ?? "—",
                                    layer.importance.map { String(format: "%.6f", $0) } ?? "—",
                                    layer.reconstructionError.map { String(format: "%.6g", $0) } ?? "—"))
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension TrainingObjective {
    /// The weighted terms, as the report names them: "1 × ce + 1 × kd (τ 2)".
    public var summary: String {
        var terms: [String] = []
        func name(_ weight: Double, _ term: String) { if weight > 0 { terms.append("\(weight.formatted(significantDigits: 4)) × \(term)") } }
        name(crossEntropyWeight, "ce")
        name(distillationWeight, "kd (τ \(temperature.formatted(significantDigits: 4)))")
        name(hiddenStateWeight, "hidden")
        return terms.joined(separator: " + ")
    }
}

extension TrainingLoss {
    /// "total 2.91: ce 2.95, kd 0.41, hidden 0.12".
    public var summary: String {
        var parts = [String(format: "ce %.4f", crossEntropy)]
        if let distillation { parts.append(String(format: "kd %.4f", distillation)) }
        if let hiddenState { parts.append(String(format: "hidden %.4f", hiddenState)) }
        return String(format: "total %.4f: ", total) + parts.joined(separator: ", ")
    }
}

extension Double {
    /// At most `significantDigits` significant digits, without trailing zeros ("2", "0.5").
    fileprivate func formatted(significantDigits: Int) -> String { String(format: "%.\(significantDigits)g", self) }
}
