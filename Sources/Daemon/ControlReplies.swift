import Compression
import Control
import Foundation
import Ledger

/// The daemon's records as the values of `io.losa.Manager` (Sources/Control/io.losa.Manager.varlink):
/// a ledger row and the runner's live progress become a `Control.Job`, a job's history and figures
/// become `GetJob`'s events, iterations and figures.
///
/// The interface has five job states; the ledger's sixth, `refused` (admission declined the job),
/// is shown as `failed` with the refusal as its error. Every number that is not finite is left out,
/// as JSON cannot carry it.
enum ControlReplies {
    // MARK: - Jobs

    /// A job row as the queue shows it; `progress` is the runner's last report while it runs.
    static func job(_ record: JobRecord, progress: CompressionProgress?) -> Control.Job {
        Control.Job(id: Int(record.id ?? 0), model: (record.inputPath as NSString).lastPathComponent, input: record.inputPath,
                    state: state(record.state), settings: settings(record.settings),
                    progress: record.state == .running ? self.progress(progress, record: record) : nil,
                    submittedAt: time(record.createdAt), startedAt: record.startedAt.map(time),
                    finishedAt: record.finishedAt.map(time), output: record.outputPath, error: record.error)
    }

    static func state(_ state: JobRecord.State) -> Control.JobState {
        switch state {
        case .queued: return .queued
        case .running: return .running
        case .succeeded: return .succeeded
        case .failed, .refused: return .failed
        case .cancelled: return .cancelled
        }
    }

    /// The ledger states a `ListJobs` filter on `state` covers.
    static func ledgerStates(_ state: Control.JobState) -> Set<JobRecord.State> {
        switch state {
        case .queued: return [.queued]
        case .running: return [.running]
        case .succeeded: return [.succeeded]
        case .failed: return [.failed, .refused]
        case .cancelled: return [.cancelled]
        }
    }

    /// The runner's report, or, before its first one, what the ledger row says. The engine counts
    /// iterations and steps from 1 and says 0 where there are none; the interface leaves those out.
    static func progress(_ live: CompressionProgress?, record: JobRecord) -> Control.JobProgress {
        guard let live else {
            return Control.JobProgress(stage: record.stage ?? "starting", fraction: fraction(record.progress),
                                       iteration: record.iteration, step: record.step)
        }
        return Control.JobProgress(stage: live.stage.rawValue, fraction: fraction(live.fraction),
                                   iteration: live.iteration > 0 ? live.iteration : nil,
                                   iterations: live.iterations > 0 ? live.iterations : nil,
                                   step: live.steps > 0 ? live.step : nil, steps: live.steps > 0 ? live.steps : nil,
                                   loss: finite(live.loss), etaSeconds: finite(live.remaining).map { max(0, $0) })
    }

    /// Settings as stored (`Ledger.canonicalJSON` of `JobSettings`), read leniently so that a row
    /// written by another version still lists: a missing key shows as "unknown".
    static func settings(_ json: String) -> Control.SubmittedSettings {
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        func text(_ key: String) -> String { object[key] as? String ?? "unknown" }
        let sparsity = (object["sparsity"] as? NSNumber)?.doubleValue
        return Control.SubmittedSettings(sparsity: finite(sparsity) ?? 0, method: text("method"), pattern: text("pattern"),
                                   allocation: text("allocation"), recovery: text("recovery"), profile: text("profile"),
                                   calibration: object["calibration_corpus"] as? String,
                                   evaluation: object["evaluation_corpus"] as? String,
                                   outputs: object["outputs"] as? [String])
    }

    // MARK: - One job in full

    /// `GetJob`'s reply.
    static func getJob(_ view: JobView) -> GetJobReply {
        let details = view.details
        return GetJobReply(job: job(details.job, progress: view.progress), iterations: iterations(details.layerStatistics),
                           figures: figures(details.metrics), events: details.events.map(event))
    }

    /// Per-layer rows grouped by LoSA iteration. The ledger keeps each layer's sparsity and rank, so
    /// an iteration's sparsity and rank are the means over its layers; loss and time per iteration
    /// are not recorded and stay absent.
    static func iterations(_ rows: [LayerStatistic]) -> [IterationFigures] {
        Dictionary(grouping: rows, by: \.iteration).sorted { $0.key < $1.key }.map { iteration, rows in
            let layers = rows.sorted { $0.layer < $1.layer }.map {
                LayerFigures(layer: $0.layer, sparsity: finite($0.sparsity) ?? 0, rank: $0.rank, importance: finite($0.importance),
                             reconstructionError: finite($0.reconstructionError))
            }
            let count = Double(max(1, layers.count))
            return IterationFigures(iteration: iteration, sparsity: layers.map(\.sparsity).reduce(0, +) / count,
                                    meanRank: Double(layers.map(\.rank).reduce(0, +)) / count, layers: layers)
        }
    }

    /// The figures `CompressionRunner` records (`perplexity.{dense,pruned,final,sparse}.<text>`, `sparsity`,
    /// `output.bytes`, `output.sparse.bytes`, `decode.{input,sparse}`, `memory.peak`, `wall`). With several evaluation texts, the perplexities are those
    /// of the first text (by name) that has a final one.
    static func figures(_ metrics: [JobMetric]) -> JobFigures {
        var values: [String: Double] = [:]
        for metric in metrics { values[metric.name] = finite(metric.value) }
        let texts = metrics.compactMap { perplexityName($0.name) }.map(\.text)
        let text = texts.sorted().first { values["perplexity.final.\($0)"] != nil } ?? texts.sorted().first
        return JobFigures(densePerplexity: text.flatMap { values["perplexity.dense.\($0)"] },
                          prunedPerplexity: text.flatMap { values["perplexity.pruned.\($0)"] },
                          perplexity: text.flatMap { values["perplexity.final.\($0)"] },
                          measuredSparsity: values["sparsity"],
                          peakMemoryBytes: values["memory.peak"].flatMap(integer),
                          outputBytes: values["output.bytes"].flatMap(integer),
                          seconds: values["wall"],
                          sparsePerplexity: text.flatMap { values["perplexity.sparse.\($0)"] },
                          sparseOutputBytes: values["output.sparse.bytes"].flatMap(integer),
                          inputDecodeTokensPerSecond: values["decode.input"],
                          sparseDecodeTokensPerSecond: values["decode.sparse"])
    }

    /// "perplexity.final.wikitext" → ("final", "wikitext").
    static func perplexityName(_ name: String) -> (kind: String, text: String)? {
        let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "perplexity", ["dense", "pruned", "final", "sparse"].contains(parts[1]) else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    /// A ledger event in the interface's words: a checkpoint marks a finished LoSA iteration, an
    /// interruption (the daemon stopped; the job waits to resume) and a note are messages, a refusal is
    /// a failure.
    static func event(_ event: JobEventRecord) -> Control.JobEvent {
        let kind: String
        let state: Control.JobState?
        switch event.kind {
        case .queued: (kind, state) = ("queued", .queued)
        case .started: (kind, state) = ("started", .running)
        case .stage: (kind, state) = ("stage", nil)
        case .checkpoint: (kind, state) = ("iteration", nil)
        case .interrupted: (kind, state) = ("message", .queued)
        case .succeeded: (kind, state) = ("succeeded", .succeeded)
        case .failed, .refused: (kind, state) = ("failed", .failed)
        case .cancelled: (kind, state) = ("cancelled", .cancelled)
        case .retried: (kind, state) = ("retried", .queued)
        case .note: (kind, state) = ("message", nil)
        }
        return Control.JobEvent(time: time(event.time), kind: kind, message: event.message, state: state)
    }

    // MARK: - Values

    /// RFC 3339 in UTC, to the second ("2025-01-01T10:00:00Z").
    static func time(_ date: Date) -> String { date.formatted(.iso8601) }

    static func finite(_ value: Double?) -> Double? {
        guard let value, value.isFinite else { return nil }
        return value
    }

    static func fraction(_ value: Double) -> Double { value.isFinite ? min(max(value, 0), 1) : 0 }

    static func integer(_ value: Double) -> Int? {
        guard value.isFinite, abs(value) < 9e18 else { return nil }
        return Int(value)
    }
}
