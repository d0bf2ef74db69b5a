import ArgumentParser
import Compression
import Foundation
import Logging
import ModelFormats

/// `losad compress INPUT --out DIR …`: one compression job in the foreground — exactly what the daemon runs
/// for a model dropped into its inbox.
struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Sparsify a model and recover its quality with LoSA, in the foreground.",
        discussion: """
        Writes the compressed model into DIR in the input's format (GGUF → GGUF, Hugging Face folder → folder) \
        and report.json beside it, and prints a summary table: the perplexity of every evaluation text for the dense, \
        pruned-only and final model (measured on the exported file). A checkpoint after each LoSA iteration lives in \
        DIR/.checkpoint; running the same command again resumes from it. Ctrl-C stops at the next step. \
        Without --calib/--eval, the English Python documentation shipped with Python (pydoc_data) is used: some \
        topics for calibration and training, the others held out for evaluation. Exit status: 0 done, 1 the job \
        failed (with a sentence saying why), 2 usage, 130 cancelled.
        """
    )

    @Argument(help: "A .gguf file or a Hugging Face model folder.")
    var input: String

    @Option(name: .long, help: "Output folder (created; the model and report.json go inside).")
    var out: String

    @Option(name: .long, help: "Target average sparsity of the projections, in [0, 1).")
    var sparsity: Double?

    @Option(name: .long, help: "Pruning method: wanda, sparsegpt or magnitude.")
    var method: String?

    @Option(name: .long, help: "Sparsity pattern: unstructured, 2:4 or 4:8.")
    var pattern: String?

    @Option(name: .long, help: "Layer-wise sparsity: rmi (from layer similarity) or uniform.")
    var allocation: LayerAllocationMode?

    @Option(name: .long, help: "Recovery: losa, lora (the dense-LoRA baseline) or none (pruning only).")
    var recovery: RecoveryMethod?

    @Option(name: .long, help: "Budget profile: quick (minutes), standard, or paper (the reference hyper-parameters).")
    var profile: CompressionProfile = .quick

    @Option(name: .long, help: "Calibration text: a text file, a JSONL file with \"text\" fields, or a folder of .txt files. Also the training text unless --train is given.")
    var calib: String?

    @Option(name: .long, help: "Training text (same forms as --calib). Default: the calibration text.")
    var train: String?

    @Option(name: .long, help: "Evaluation text (repeatable; 'default' names the held-out Python documentation).")
    var eval: [String] = []

    @Option(name: .long, help: "LoSA iterations T.")
    var iterations: Int?

    @Option(name: .long, help: "Training windows over the whole job.")
    var trainingSamples: Int?

    @Option(name: .long, help: "Calibration windows.")
    var calibrationWindows: Int?

    @Option(name: .long, help: "Tokens per calibration window.")
    var calibrationLength: Int?

    @Option(name: .long, help: "Tokens per training window.")
    var trainingLength: Int?

    @Option(name: .long, help: "Tokens per evaluation window.")
    var evalLength: Int?

    @Option(name: .long, help: "Peak learning rate.")
    var learningRate: Double?

    @Option(name: .long, help: "Evaluation windows per text (0: all).")
    var evalWindows: Int?

    @Option(name: .long, help: "Tensor type of the pruned projections: auto, q8_0, q4_0, f16, bf16 or f32.")
    var exportType: String?

    @Option(name: .long, help: "Seed of every random draw (the job is reproducible from it).")
    var seed: UInt64?

    @Flag(name: .long, help: "Print the report as JSON instead of the table.")
    var json = false

    func settings() throws -> CompressionSettings {
        var s = CompressionSettings(profile: profile)
        if let sparsity { s.sparsity = sparsity }
        if let method {
            guard let m = PruningMethod(rawValue: method) else {
                throw ValidationError("--method must be wanda, sparsegpt or magnitude, not '\(method)'.")
            }
            s.method = m
        }
        if let pattern {
            do { s.pattern = try SparsityPattern(parsing: pattern) } catch {
                throw ValidationError("--pattern must be unstructured, 2:4 or 4:8, not '\(pattern)'.")
            }
        }
        if let allocation { s.allocation = allocation }
        if let recovery { s.recovery = recovery }
        if let iterations { s.iterations = iterations }
        if let trainingSamples { s.trainingSamples = trainingSamples }
        if let calibrationWindows { s.calibrationWindows = calibrationWindows }
        if let calibrationLength { s.calibrationLength = calibrationLength }
        if let trainingLength { s.trainingLength = trainingLength }
        if let evalLength { s.evaluationLength = evalLength }
        if let learningRate { s.learningRate = learningRate }
        if let evalWindows { s.evaluationWindows = evalWindows }
        if let exportType {
            guard let t = ExportTensorType(rawValue: exportType) else {
                throw ValidationError("--export-type must be one of \(ExportTensorType.allCases.map(\.rawValue).joined(separator: ", ")), not '\(exportType)'.")
            }
            s.exportType = t
        }
        if let seed { s.seed = seed }
        do { try s.validate() } catch { throw ValidationError("\(error)") }
        return s
    }

    func validate() throws { _ = try settings() }

    func run() throws {
        let settings = try settings()
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            FileHandle.standardError.write(Data("losad compress: cannot create \(out): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let request = CompressionJob.Request(
            input: input, output: (out as NSString).appendingPathComponent(CompressionJob.outputName(input: input, settings: settings)),
            settings: settings,
            texts: TextSources(calibration: calib.map(TextSource.file) ?? .pythonDocumentation,
                               training: train.map(TextSource.file),
                               evaluation: eval.isEmpty ? [] : eval.map { $0 == "default" ? .pythonDocumentation : .file($0) }),
            checkpointDirectory: (out as NSString).appendingPathComponent(".checkpoint"))
        let interrupted = InterruptFlag.install()
        let display = ProgressDisplay(terminal: isatty(STDERR_FILENO) == 1)
        let job = CompressionJob(request, cancellation: Cancellation { interrupted.isSet }) { display.show($0) }
        let report: CompressionReport
        do {
            report = try job.run()
        } catch .cancelled {
            display.finish()
            FileHandle.standardError.write(Data("losad compress: cancelled; run the same command again to resume from the last finished iteration\n".utf8))
            throw ExitCode(130)
        } catch {
            display.finish()
            FileHandle.standardError.write(Data("losad compress: \(error)\n".utf8))
            throw ExitCode(1)
        }
        display.finish()
        if json {
            print(String(decoding: try report.json(), as: UTF8.self))
        } else {
            print(report.summaryTable)
        }
    }
}

/// Set by SIGINT/SIGTERM: the job stops at its next step.
final class InterruptFlag: @unchecked Sendable {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    private static let shared = InterruptFlag()

    var isSet: Bool { InterruptFlag.flag != 0 }

    static func install() -> InterruptFlag {
        signal(SIGINT) { _ in InterruptFlag.flag = 1 }
        signal(SIGTERM) { _ in InterruptFlag.flag = 1 }
        return shared
    }
}

/// A progress bar on a terminal (redrawn in place on standard error), plain lines otherwise (one per stage
/// change and every few seconds).
final class ProgressDisplay: @unchecked Sendable {
    let terminal: Bool
    private let lock = NSLock()
    private var lastStage = ""
    private var lastLine = Date.distantPast
    private var drawn = false

    init(terminal: Bool) { self.terminal = terminal }

    func show(_ p: CompressionProgress) {
        lock.lock(); defer { lock.unlock() }
        let iteration = p.iterations > 0 && p.iteration > 0 ? " \(p.iteration)/\(p.iterations)" : ""
        let eta = p.remaining.map { " ETA " + Self.duration($0) } ?? ""
        let stage = "\(p.stage.rawValue)\(iteration)"
        if terminal {
            let width = 24, filled = Int((p.fraction * Double(width)).rounded())
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            var line = String(format: "\r[%@] %3.0f%% %@ — %@%@", bar, p.fraction * 100, stage, p.message, eta)
            line = String(line.prefix(160))
            FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
            drawn = true
        } else if stage != lastStage || Date().timeIntervalSince(lastLine) >= 10 {
            let line = String(format: "%6.1fs %3.0f%% %@: %@%@\n", p.elapsed, p.fraction * 100, stage, p.message, eta)
            FileHandle.standardError.write(Data(line.utf8))
            lastLine = Date()
        }
        lastStage = stage
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}

extension LayerAllocationMode: ExpressibleByArgument {}
extension RecoveryMethod: ExpressibleByArgument {}
extension CompressionProfile: ExpressibleByArgument {}
