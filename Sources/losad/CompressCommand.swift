import ArgumentParser
import Compression
import Daemon
import Foundation

/// `losad compress INPUT --out DIR …`: one compression job in the foreground — exactly what the daemon runs
/// for a model dropped into its inbox. The job settings parse through `JobSettings`, as the daemon's `[job]`
/// keys and `losactl submit` do, so a value is refused with the same sentence everywhere.
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
        topics for calibration and training, the others held out for evaluation. The budget options take 0 for the \
        profile's value. Exit status: 0 done, 1 the job failed (with a sentence saying why), 64 usage (EX_USAGE), 130 cancelled.
        """
    )

    @Argument(help: "A .gguf file or a Hugging Face model folder.")
    var input: String

    @Option(name: .long, help: "Output folder (created; the model and report.json go inside).")
    var out: String

    @Option(name: .long, help: "Target average sparsity of the projections, from 0.01 to 0.95.")
    var sparsity: String?
    @Option(name: .long, help: "Pruning method: wanda, sparsegpt or magnitude.")
    var method: String?
    @Option(name: .long, help: "Sparsity pattern: unstructured, or N:M such as 2:4 or 4:8.")
    var pattern: String?
    @Option(name: .long, help: "Layer-wise sparsity: rmi (from layer similarity) or uniform.")
    var allocation: String?
    @Option(name: .long, help: "Recovery: losa, lora (the dense-LoRA baseline) or none (pruning only).")
    var recovery: String?
    @Option(name: .long, help: "Budget profile: quick (minutes; the default here), standard, or paper (the reference hyper-parameters).")
    var profile = CompressionProfile.quick.rawValue
    @Option(name: .long, help: "Tensor type of the pruned projections: auto, q8_0, q4_0, f16, bf16 or f32.")
    var exportType: String?
    @Option(name: .long, help: "The files to write: gguf (the interoperable export), sparse (losad's sparse file), or both: gguf,sparse.")
    var outputs: String?
    @Option(name: .long, help: "Training objective: ce (next-token cross-entropy), kd (distillation from the dense model's next-token distribution), hidden (the dense model's block outputs), combined with +: ce, kd, ce+kd, ce+hidden, kd+hidden or ce+kd+hidden.")
    var objective: String?
    @Option(name: .long, help: "Temperature of the distillation term, from 0.25 to 16.")
    var kdTemperature: String?
    @Option(name: .long, help: "Weight of the hidden-state term (when the objective has it).")
    var hiddenLossWeight: String?
    @Option(name: .long, help: "After Wanda or magnitude pruning: none, or least-squares (refit the kept weights to the outputs before pruning).")
    var weightReconstruction: String?
    @Option(name: .long, help: "LoSA iterations T.")
    var iterations: String?
    @Option(name: .long, help: "Training windows over the whole job.")
    var trainingSamples: String?
    @Option(name: .long, help: "Calibration windows.")
    var calibrationWindows: String?
    @Option(name: .long, help: "Tokens per calibration window.")
    var calibrationLength: String?
    @Option(name: .long, help: "Tokens per training window.")
    var trainingLength: String?
    @Option(name: .long, help: "Tokens per evaluation window.")
    var evalLength: String?
    @Option(name: .long, help: "Evaluation windows per text.")
    var evalWindows: String?

    @Option(name: .long, help: "Calibration text: a text file, a JSONL file with \"text\" fields, or a folder of .txt files. Also the training text unless --train is given.")
    var calib: String?
    @Option(name: .long, help: "Training text (same forms as --calib). Default: the calibration text.")
    var train: String?
    @Option(name: .long, help: "Evaluation text (repeatable; 'default' names the held-out Python documentation).")
    var eval: [String] = []
    @Option(name: .long, help: "Peak learning rate.")
    var learningRate: Double?
    @Option(name: .long, help: "Share of each iteration's training steps spent warming the learning rate up, from 0 to below 1.")
    var warmupFraction: Double?
    @Option(name: .long, help: "Share of the training windows given to LoSA's last iteration (the others share the rest), above 0 up to 1.")
    var lastIterationShare: Double?
    @Option(name: .long, help: "Dropout on the adapters' input during training, from 0 to below 1.")
    var loraDropout: Double?
    @Option(name: .long, help: "Seed of every random draw (the job is reproducible from it).")
    var seed: UInt64?
    @Option(name: .long, help: "Memory the job may use at its peak: auto (what the machine has available) or a size such as 1200M or 6GiB. The job keeps a Float32 copy of the model and stores training's activations only when it then fits, else it keeps the model compactly (the input read in place, a mask per projection) and recomputes; a job that cannot fit is refused before it starts.")
    var memoryLimit = "auto"
    @Flag(name: .long, help: "Print the report as JSON instead of the table.")
    var json = false

    /// The options as job settings, by key; parsed by `JobSettings.applying`.
    var changes: [JobSettingKey: JobSettings.Value] {
        let given: [(JobSettingKey, String?)] = [
            (.sparsity, sparsity), (.method, method), (.pattern, pattern), (.allocation, allocation), (.recovery, recovery),
            (.profile, profile), (.exportType, exportType), (.iterations, iterations),
            (.calibrationWindows, calibrationWindows), (.trainingSamples, trainingSamples), (.evaluationWindows, evalWindows),
            (.calibrationLength, calibrationLength), (.trainingLength, trainingLength), (.evaluationLength, evalLength),
            (.objective, objective), (.kdTemperature, kdTemperature), (.hiddenLossWeight, hiddenLossWeight),
            (.weightReconstruction, weightReconstruction),
        ]
        var changes = Dictionary(uniqueKeysWithValues: given.compactMap { key, text in text.map { (key, JobSettings.Value.text($0)) } })
        if let outputs { changes[.outputs] = .list(outputs.split(separator: ",", omittingEmptySubsequences: false).map(String.init)) }
        return changes
    }

    func settings() throws -> CompressionSettings {
        do {
            var s = try JobSettings.defaults.applying(changes).compressionSettings()
            if let learningRate { s.learningRate = learningRate }
            if let warmupFraction { s.warmupFraction = warmupFraction }
            if let lastIterationShare { s.lastIterationShare = lastIterationShare }
            if let loraDropout { s.loraDropout = loraDropout }
            if let seed { s.seed = seed }
            try s.validate()
            return s
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws {
        _ = try settings()
        _ = try parsedMemoryLimit()
    }

    func parsedMemoryLimit() throws -> DaemonConfig.MemoryLimit {
        guard let limit = DaemonConfig.MemoryLimit(parsing: memoryLimit) else {
            throw ValidationError("--memory-limit \(memoryLimit) is not allowed; expected auto, or a size of at least 64M such as 1200M or 6GiB")
        }
        return limit
    }

    func run() throws {
        let settings = try settings()
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            FileHandle.standardError.write(Data("losad compress: cannot create \(out): \(error)\n".utf8))
            throw ExitCode(1)
        }
        var request = CompressionJob.Request(
            input: input, output: (out as NSString).appendingPathComponent(CompressionJob.outputName(input: input, settings: settings)),
            settings: settings,
            texts: TextSources(calibration: calib.map(TextSource.file) ?? .pythonDocumentation,
                               training: train.map(TextSource.file),
                               evaluation: eval.isEmpty ? [] : eval.map { $0 == "default" ? .pythonDocumentation : .file($0) }),
            checkpointDirectory: (out as NSString).appendingPathComponent(".checkpoint"))
        request.version = Losad.version
        // The job's bound: the given size, or what the machine and this process's cgroup leave, if less.
        request.memoryLimit = MemoryAdmission.bound(availability: .read(), limit: try parsedMemoryLimit())?.bytes
        let interrupted = InterruptFlag.install()
        let display = ProgressBar(terminal: isatty(STDERR_FILENO) == 1)
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
        print(json ? String(decoding: try report.json(), as: UTF8.self) : report.summaryTable)
    }
}
