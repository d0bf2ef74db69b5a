#if canImport(Glibc)
import Glibc
#endif
import Compression
import Foundation
import ModelFormats
import Synchronization
@testable import Daemon

/// A job runner for scheduler and daemon tests: it "trains" for `iterations` × `stepsPerIteration`
/// steps of `stepSeconds` each, reports progress after every step, polls the stop request between
/// steps, writes a checkpoint file after each iteration and resumes from the last one, writes a small
/// model and report atomically at the end, and fails when told to. Behaviour is chosen per model name.
final class FakeJobRunner: JobRunner {
    struct Behaviour: Sendable {
        var iterations = 2
        var stepsPerIteration = 3
        var stepSeconds = 0.005
        /// Throw this message at this global step (0-based), instead of finishing.
        var failAt: (step: Int, message: String)?
        var estimateBytes = 1 << 20
        var estimateError: String?
        /// Progress reports per step: "train" inside the loop, then "export".
        var reportsPerStep = 1
    }

    /// One call of `run`.
    struct Start: Sendable, Equatable {
        var job: Int64
        var model: String
        /// The first iteration this attempt ran (1 when starting over).
        var firstIteration: Int
        var attempt: Int
        var resumeFrom: String?
        /// The job thread's scheduling policy (sched_getscheduler) and nice value.
        var policy: Int32
        var nice: Int32
        /// The bound admission held the job to (`JobSpec.memoryLimit`).
        var memoryLimit: Int?
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    private let behaviours: Mutex<[String: Behaviour]>
    private let fallback: Behaviour
    private let log = Mutex<[Start]>([])
    private let concurrent = Mutex<(now: Int, most: Int)>((0, 0))
    /// Seconds from a stop request to the runner noticing it, per job.
    private let stopLatency = Mutex<[Int64: Double]>([:])

    init(_ fallback: Behaviour = Behaviour(), per model: [String: Behaviour] = [:]) {
        self.fallback = fallback
        behaviours = Mutex(model)
    }

    var starts: [Start] { log.withLock { $0 } }
    /// The `JobSpec.memoryLimit` of every estimate asked for.
    var limitsSeenByEstimates: [Int?] { estimateLimits.withLock { $0 } }
    private let estimateLimits = Mutex<[Int?]>([])
    var mostConcurrent: Int { concurrent.withLock { $0.most } }

    func behaviour(_ model: String) -> Behaviour { behaviours.withLock { $0[model] } ?? fallback }

    func estimateMemory(_ job: JobSpec) throws -> MemoryEstimate {
        let b = behaviour(job.modelName)
        if let message = b.estimateError { throw Failure(message: message) }
        estimateLimits.withLock { $0.append(job.memoryLimit) }
        return MemoryEstimate(parts: [MemoryEstimate.Part(name: "weights", bytes: b.estimateBytes)])
    }

    func run(_ job: JobSpec, context: JobContext) throws -> JobOutcome {
        let b = behaviour(job.modelName)
        let checkpointFile = job.checkpointFolder + "/iteration"
        let done = (try? String(contentsOfFile: checkpointFile, encoding: .utf8)).flatMap { Int($0) } ?? 0
        let own = ComputePriority.current()
        log.withLock {
            $0.append(Start(job: job.id, model: job.modelName, firstIteration: done + 1, attempt: job.attempt,
                            resumeFrom: job.resumeFrom, policy: own.policy, nice: own.nice, memoryLimit: job.memoryLimit))
        }
        concurrent.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
        defer { concurrent.withLock { $0.now -= 1 } }

        let total = b.iterations * b.stepsPerIteration
        for iteration in (done + 1)...max(done + 1, b.iterations) where iteration <= b.iterations {
            for step in 0..<b.stepsPerIteration {
                try context.checkStop()
                let global = (iteration - 1) * b.stepsPerIteration + step
                if let failure = b.failAt, failure.step == global { throw Failure(message: failure.message) }
                usleep(useconds_t(b.stepSeconds * 1e6))
                for _ in 0..<b.reportsPerStep {
                    context.report(CompressionProgress(stage: .train, iteration: iteration, iterations: b.iterations,
                                                       step: step + 1, steps: b.stepsPerIteration, loss: 2.0 / Double(global + 1),
                                                       fraction: Double(global + 1) / Double(total + 1),
                                                       remaining: Double(total - global - 1) * b.stepSeconds))
                }
            }
            try FakeJobRunner.writeAtomically("\(iteration)", to: checkpointFile)
            context.checkpointWritten(path: checkpointFile, iteration: iteration)
            context.record(layerStatistics: [JobOutcome.LayerRow(iteration: iteration, layer: 0, sparsity: 0.5, rank: 4,
                                                                 importance: 0.9, reconstructionError: 0.01 * Double(iteration))])
        }
        context.report(CompressionProgress(stage: .export, fraction: Double(total) / Double(total + 1)))
        try context.checkStop()
        let model = job.outputFolder + "/\(job.modelName).gguf"
        try FakeJobRunner.writeAtomically("compressed \(job.contentHash)", to: model)
        let report = job.outputFolder + "/report.json"
        try FakeJobRunner.writeAtomically("{\"job\": \(job.id)}", to: report)
        return JobOutcome(outputPath: model, reportPath: report,
                          metrics: [JobOutcome.Metric(name: "sparsity", value: job.settings.sparsity, unit: "fraction"),
                                    JobOutcome.Metric(name: "perplexity.losa", value: 12.5)])
    }

    /// Through the daemon's one durable-write helper, as the real runner writes.
    static func writeAtomically(_ text: String, to path: String) throws {
        try AtomicOutputFile.write(Array(text.utf8), to: path, replacingExisting: true)
    }
}
