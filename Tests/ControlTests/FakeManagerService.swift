import Control
import Foundation
import NIOConcurrencyHelpers

/// A `ManagerService` with a fixed little queue, standing in for the daemon:
/// job 1 succeeded, 2 running, 3 queued, 4 failed. Watching job 2 streams
/// `watchSteps` progress events and then its success; watching job 3 streams
/// progress forever (until the client goes away). It counts what it was asked
/// and the watch streams still open.
final class FakeManagerService: ManagerService {
    static let settings = SubmittedSettings(sparsity: 0.5, method: "wanda", pattern: "unstructured", allocation: "rmi",
                                      recovery: "losa", profile: "quick")
    static let jobs: [Job] = [
        Job(id: 1, model: "SmolLM2-135M-Instruct.Q4_1.gguf", input: "/srv/inbox/SmolLM2-135M-Instruct.Q4_1.gguf",
            state: .succeeded, settings: settings, submittedAt: "2025-01-01T10:00:00Z", startedAt: "2025-01-01T10:00:01Z",
            finishedAt: "2025-01-01T10:09:30Z", output: "/srv/outbox/SmolLM2-135M-Instruct.Q4_1-losa50.gguf"),
        Job(id: 2, model: "tiny-llama", input: "/srv/inbox/tiny-llama", state: .running, settings: settings,
            progress: JobProgress(stage: "train", fraction: 0.42, iteration: 3, iterations: 5, step: 7, steps: 20,
                                  loss: 2.5, etaSeconds: 120),
            submittedAt: "2025-01-01T11:00:00Z", startedAt: "2025-01-01T11:00:02Z"),
        Job(id: 3, model: "queued.gguf", input: "/srv/inbox/queued.gguf", state: .queued, settings: settings,
            submittedAt: "2025-01-01T12:00:00Z"),
        Job(id: 4, model: "broken.gguf", input: "/srv/inbox/broken.gguf", state: .failed, settings: settings,
            submittedAt: "2025-01-01T09:00:00Z", startedAt: "2025-01-01T09:00:01Z", finishedAt: "2025-01-01T09:00:02Z",
            error: "tensor blk.0.attn_q.weight: data runs past the end of the file"),
    ]

    let watchSteps: Int
    let watchInterval: Duration
    private let state = NIOLockedValueBox(State())

    struct State {
        var paused = false
        var openWatches = 0
        var calls: [String] = []
        var submitted: [SubmitParameters] = []
        var callers: [PeerCredentials] = []
    }

    init(watchSteps: Int = 5, watchInterval: Duration = .milliseconds(5)) {
        self.watchSteps = watchSteps
        self.watchInterval = watchInterval
    }

    var openWatches: Int { state.withLockedValue { $0.openWatches } }
    var calls: [String] { state.withLockedValue { $0.calls } }
    var submitted: [SubmitParameters] { state.withLockedValue { $0.submitted } }
    var callers: [PeerCredentials] { state.withLockedValue { $0.callers } }

    private func record(_ call: String, _ caller: PeerCredentials) {
        state.withLockedValue {
            $0.calls.append(call)
            $0.callers.append(caller)
        }
    }

    private func job(_ id: Int) throws -> Job {
        guard let job = Self.jobs.first(where: { $0.id == id }) else { throw ManagerError.jobNotFound(id: id) }
        return job
    }

    func status(caller: PeerCredentials) async throws -> StatusReply {
        record("Status", caller)
        let paused = state.withLockedValue { $0.paused }
        return StatusReply(state: paused ? .paused : .running, version: "0.1.0", queued: 1,
                           running: Self.jobs.filter { $0.state == .running }, device: "cpu: Test CPU (2 threads)",
                           kernel: "Haswell", inbox: "/srv/inbox", outbox: "/srv/outbox", uptimeSeconds: 12.5)
    }

    func listJobs(_ parameters: ListJobsParameters, caller: PeerCredentials) async throws -> ListJobsReply {
        record("ListJobs", caller)
        let jobs = Self.jobs.filter { parameters.state == nil || $0.state == parameters.state }.sorted { $0.id > $1.id }
        return ListJobsReply(jobs: Array(jobs.prefix(parameters.limit ?? ListJobsParameters.defaultLimit)))
    }

    func getJob(id: Int, caller: PeerCredentials) async throws -> GetJobReply {
        record("GetJob", caller)
        let job = try job(id)
        let layers = (0..<3).map { LayerFigures(layer: $0, sparsity: 0.5 + 0.01 * Double($0 - 1), rank: 6 + $0,
                                                importance: 0.3, reconstructionError: 0.01 * Double($0 + 1)) }
        return GetJobReply(
            job: job,
            iterations: [IterationFigures(iteration: 1, sparsity: 0.2439, meanRank: 6, loss: 2.9, seconds: 61, layers: layers)],
            figures: JobFigures(densePerplexity: 14.3, prunedPerplexity: 21.1, perplexity: 17.2, measuredSparsity: 0.5,
                                parameterCount: 134_515_008, peakMemoryBytes: 1 << 30, outputBytes: 143_000_000, seconds: 570,
                                sparsePerplexity: 17.25, sparseOutputBytes: 76_000_000, inputDecodeTokensPerSecond: 100,
                                sparseDecodeTokensPerSecond: 125),
            events: [JobEvent(time: job.submittedAt, kind: "queued", message: "queued", state: .queued)])
    }

    func submit(_ parameters: SubmitParameters, caller: PeerCredentials) async throws -> JobReply {
        record("Submit", caller)
        guard parameters.path.hasSuffix(".gguf") else {
            throw ManagerError.invalidModel(path: parameters.path, reason: "not a .gguf file nor a Hugging Face folder")
        }
        if let method = parameters.method, !["magnitude", "wanda", "sparsegpt"].contains(method) {
            throw VarlinkServiceError.invalidParameter(parameter: "method")
        }
        state.withLockedValue { $0.submitted.append(parameters) }
        var settings = Self.settings
        settings.sparsity = parameters.sparsity ?? settings.sparsity
        settings.method = parameters.method ?? settings.method
        return JobReply(job: Job(id: 5, model: (parameters.path as NSString).lastPathComponent, input: parameters.path,
                                 state: .queued, settings: settings, submittedAt: "2025-01-02T00:00:00Z"))
    }

    func cancel(id: Int, caller: PeerCredentials) async throws -> JobReply {
        record("Cancel", caller)
        var job = try job(id)
        guard !job.state.isFinal else {
            throw ManagerError.invalidState(id: id, state: job.state.rawValue, reason: "the job has already ended")
        }
        job.state = .cancelled
        return JobReply(job: job)
    }

    func retry(id: Int, caller: PeerCredentials) async throws -> JobReply {
        record("Retry", caller)
        var job = try job(id)
        guard job.state == .failed || job.state == .cancelled else {
            throw ManagerError.invalidState(id: id, state: job.state.rawValue, reason: "only a failed or cancelled job can be retried")
        }
        job.state = .queued
        return JobReply(job: job)
    }

    func pause(caller: PeerCredentials) async throws -> QueueReply {
        record("Pause", caller)
        state.withLockedValue { $0.paused = true }
        return QueueReply(state: .paused)
    }

    func resume(caller: PeerCredentials) async throws -> QueueReply {
        record("Resume", caller)
        state.withLockedValue { $0.paused = false }
        return QueueReply(state: .running)
    }

    func reload(caller: PeerCredentials) async throws {
        record("Reload", caller)
    }

    func watch(id: Int?, caller: PeerCredentials) async throws -> AsyncThrowingStream<WatchReply, any Error> {
        record("Watch", caller)
        var job = try job(id ?? 2)
        let endless = job.state == .queued
        let steps = watchSteps, interval = watchInterval
        state.withLockedValue { $0.openWatches += 1 }
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: WatchReply.self)
        let producer = Task {
            continuation.yield(WatchReply(job: job))
            var step = 0
            while !job.state.isFinal {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                step += 1
                if !endless && step > steps {
                    job.state = .succeeded
                    job.progress = nil
                    continuation.yield(WatchReply(job: job, event: JobEvent(time: "2025-01-01T11:10:00Z", kind: "succeeded",
                                                                            message: "done", state: .succeeded)))
                    break
                }
                let progress = JobProgress(stage: "train", fraction: min(1, 0.5 + 0.05 * Double(step)), iteration: 3,
                                           iterations: 5, step: step, steps: max(steps, step), loss: 2.5 - 0.01 * Double(step),
                                           etaSeconds: Double(max(0, steps - step)))
                job.progress = progress
                continuation.yield(WatchReply(job: job, event: JobEvent(time: "2025-01-01T11:05:00Z", kind: "progress",
                                                                        message: "step \(step)", progress: progress)))
            }
            continuation.finish()
        }
        continuation.onTermination = { [state] _ in
            producer.cancel()
            state.withLockedValue { $0.openWatches -= 1 }
        }
        return stream
    }

    func metrics(caller: PeerCredentials) async throws -> MetricsReply {
        record("Metrics", caller)
        return MetricsReply(metrics: [
            Metric(name: "losad_jobs", kind: .gauge, help: "Jobs by state.",
                   samples: JobState.allCases.map { state in
                       MetricSample(labels: ["state": state.rawValue], value: Double(Self.jobs.filter { $0.state == state }.count))
                   }),
            Metric(name: "losad_compressed_bytes_total", kind: .counter, help: "Bytes of compressed models written.",
                   samples: [MetricSample(value: 143_000_000)]),
        ])
    }
}
