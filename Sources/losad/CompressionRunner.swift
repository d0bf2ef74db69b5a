import Compression
import Daemon
import Foundation
import Kernels
import ModelFormats

/// The daemon's job runner: a job from the ledger run through `CompressionJob`, exactly the code path of
/// `losad compress`. Progress, checkpoints and per-layer figures go to the scheduler through the context;
/// the job stops at its next step when the context asks (cancel or daemon stop) and resumes from its
/// checkpoint folder when it is started again.
struct CompressionRunner: JobRunner {
    /// The job's settings as the engine takes them: the profile's budgets with the job's choices on top.
    static func settings(_ job: JobSettings) throws -> CompressionSettings {
        var s = CompressionSettings(profile: CompressionProfile(rawValue: job.profile.rawValue) ?? .quick)
        s.sparsity = job.sparsity
        s.method = try PruningMethod(parsing: job.method.rawValue)
        s.pattern = try SparsityPattern(parsing: job.pattern.rawValue)
        s.allocation = LayerAllocationMode(rawValue: job.allocation.rawValue) ?? .rmi
        s.recovery = RecoveryMethod(rawValue: job.recovery.rawValue) ?? .losa
        s.exportType = ExportTensorType(rawValue: job.exportType.rawValue) ?? .auto
        if let v = job.budget?.iterations { s.iterations = v }
        if let v = job.budget?.calibrationWindows { s.calibrationWindows = v }
        if let v = job.budget?.trainingSamples { s.trainingSamples = v }
        if let v = job.budget?.evaluationWindows { s.evaluationWindows = v }
        if let v = job.budget?.calibrationLength { s.calibrationLength = v }
        if let v = job.budget?.trainingLength { s.trainingLength = v }
        if let v = job.budget?.evaluationLength { s.evaluationLength = v }
        try s.validate()
        return s
    }

    static func texts(_ job: JobSettings) -> TextSources {
        TextSources(calibration: job.calibrationCorpus.map(TextSource.file) ?? .pythonDocumentation,
                    evaluation: job.evaluationCorpus.map { [.file($0)] } ?? [])
    }

    func estimateMemory(_ job: JobSpec) throws -> MemoryEstimate {
        let checkpoint = try Checkpoint.open(job.inputPath)
        let parts = CompressionJob.memoryEstimate(checkpoint: checkpoint, settings: try Self.settings(job.settings))
        return MemoryEstimate(parts: parts.map { MemoryEstimate.Part(name: $0.name, bytes: $0.bytes) })
    }

    func run(_ job: JobSpec, context: JobContext) throws -> JobOutcome {
        let settings = try Self.settings(job.settings)
        let output = (job.outputFolder as NSString).appendingPathComponent(CompressionJob.outputName(input: job.inputPath,
                                                                                                     settings: settings))
        var request = CompressionJob.Request(input: job.inputPath, output: output, settings: settings,
                                             texts: Self.texts(job.settings),
                                             checkpointDirectory: (job.checkpointFolder as NSString).appendingPathComponent("losa"))
        request.publishedOutput = (job.publishedFolder as NSString).appendingPathComponent((output as NSString).lastPathComponent)
        let compression = CompressionJob(request, cancellation: Cancellation(context.shouldStop), logger: context.logger,
                                         progress: { p in
            context.report(JobProgress(stage: p.stage.rawValue, iteration: p.iteration > 0 ? p.iteration : nil,
                                       iterations: p.iterations > 0 ? p.iterations : nil, step: p.steps > 0 ? p.step : nil,
                                       steps: p.steps > 0 ? p.steps : nil, loss: p.loss, fraction: p.fraction,
                                       etaSeconds: p.remaining, message: p.message))
        }, iterationFinished: { record, checkpoint in
            context.record(layerStatistics: Self.rows(record))
            if let checkpoint { context.checkpointWritten(path: checkpoint, iteration: record.iteration) }
        })
        let report = try compression.run()
        return JobOutcome(outputPath: output, reportPath: CompressionJob.reportPath(forOutput: output),
                          metrics: Self.metrics(report), layerStatistics: report.iterations.flatMap(Self.rows))
    }

    static func rows(_ record: CompressionReport.IterationRecord) -> [JobOutcome.LayerRow] {
        record.layers.map {
            JobOutcome.LayerRow(iteration: record.iteration, layer: $0.layer, sparsity: $0.sparsity, rank: $0.rank ?? 0,
                                importance: $0.importance ?? 1, reconstructionError: $0.reconstructionError ?? 0)
        }
    }

    static func metrics(_ report: CompressionReport) -> [JobOutcome.Metric] {
        var metrics: [JobOutcome.Metric] = []
        for e in report.evaluations {
            if let v = e.dense { metrics.append(.init(name: "perplexity.dense.\(e.text)", value: v)) }
            if let v = e.pruned { metrics.append(.init(name: "perplexity.pruned.\(e.text)", value: v)) }
            if let v = e.final { metrics.append(.init(name: "perplexity.final.\(e.text)", value: v)) }
        }
        if let s = report.finalSparsity {
            metrics.append(.init(name: "sparsity", value: s.fraction, unit: "fraction"))
            metrics.append(.init(name: "sparsity.exported", value: s.exportedFraction, unit: "fraction"))
        }
        if let o = report.output { metrics.append(.init(name: "output.bytes", value: Double(o.bytes), unit: "bytes")) }
        metrics.append(.init(name: "wall", value: report.wallSeconds, unit: "seconds"))
        metrics.append(.init(name: "memory.peak", value: Double(report.peakMemoryBytes), unit: "bytes"))
        return metrics
    }
}

/// The compute threads (OpenBLAS's and the worker pool) take the scheduling class of the thread that creates
/// them: create them once, at start, from a thread at the configured compute priority, so every product a job
/// runs is at that priority while the daemon's own threads (control, watchdog, watcher) are not.
enum ComputeThreads {
    static func prepare(priority: DaemonConfig.Priority) {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            try? ComputePriority.apply(priority)
            _ = OpenBLAS.loaded
            _ = WorkerPool.shared
            done.signal()
        }
        thread.start()
        done.wait()
    }
}
