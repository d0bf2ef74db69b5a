import Compression
import Foundation
import Kernels
import ModelFormats

/// The daemon's job runner: a job from the ledger run through `CompressionJob`, exactly the code path of
/// `losad compress`. Progress, checkpoints and per-layer figures go to the scheduler through the context;
/// the job stops at its next step when the context asks (cancel or daemon stop) and resumes from its
/// checkpoint folder when it is started again.
public struct CompressionJobRunner: JobRunner {
    /// The version written into outputs and reports.
    public var version: String

    public init(version: String) { self.version = version }

    public func estimateMemory(_ job: JobSpec) throws -> MemoryEstimate {
        let checkpoint = try Checkpoint.open(job.inputPath)
        let plan = try CompressionJob.memoryPlan(checkpoint: checkpoint, settings: try job.settings.compressionSettings(),
                                                 limit: job.memoryLimit)
        return MemoryEstimate(parts: plan.parts.map { MemoryEstimate.Part(name: $0.name, bytes: $0.bytes) })
    }

    public func run(_ job: JobSpec, context: JobContext) throws -> JobOutcome {
        let settings = try job.settings.compressionSettings()
        let output = (job.outputFolder as NSString).appendingPathComponent(CompressionJob.outputName(input: job.inputPath,
                                                                                                     settings: settings))
        var request = CompressionJob.Request(input: job.inputPath, output: output, settings: settings,
                                             texts: job.settings.texts,
                                             checkpointDirectory: (job.checkpointFolder as NSString).appendingPathComponent("losa"))
        request.version = version
        request.memoryLimit = job.memoryLimit
        request.publishedOutput = (job.publishedFolder as NSString).appendingPathComponent((output as NSString).lastPathComponent)
        let compression = CompressionJob(request, cancellation: Cancellation(context.shouldStop), logger: context.logger,
                                         progress: { context.report($0) }, iterationFinished: { record, checkpoint in
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
            if let v = e.sparse { metrics.append(.init(name: "perplexity.sparse.\(e.text)", value: v)) }
        }
        if let s = report.finalSparsity {
            metrics.append(.init(name: "sparsity", value: s.fraction, unit: "fraction"))
            metrics.append(.init(name: "sparsity.exported", value: s.exportedFraction, unit: "fraction"))
        }
        if let o = report.output { metrics.append(.init(name: "output.bytes", value: Double(o.bytes), unit: "bytes")) }
        if let o = report.sparseOutput { metrics.append(.init(name: "output.sparse.bytes", value: Double(o.bytes), unit: "bytes")) }
        if let d = report.decodeSpeed {
            metrics.append(.init(name: "decode.input", value: d.inputTokensPerSecond, unit: "tokens/s"))
            metrics.append(.init(name: "decode.sparse", value: d.sparseTokensPerSecond, unit: "tokens/s"))
        }
        metrics.append(.init(name: "wall", value: report.wallSeconds, unit: "seconds"))
        metrics.append(.init(name: "memory.peak", value: Double(report.peakMemoryBytes), unit: "bytes"))
        return metrics
    }
}
