import Compression
import Control
import Ledger

/// The one line the daemon shows for itself (systemd's STATUS=, `losactl status`): the running jobs
/// with stage and progress, then the queue; when nothing runs, the last job that ended.
enum StatusLine {
    struct Running {
        var id: Int64
        var modelName: String
        var progress: CompressionProgress?
    }

    static func compose(running: [Running], queued: Int, paused: Bool, stopping: Bool, ledger: Ledger) -> String {
        var parts = running.sorted { $0.id < $1.id }.map { job in
            "job \(job.id) (\(job.modelName)): " + (job.progress.map(describe) ?? "starting")
        }
        if stopping {
            parts.insert("stopping", at: 0)
        } else if parts.isEmpty {
            parts.append(paused ? "paused" : "idle")
        } else if paused {
            parts.append("queue paused")
        }
        parts.append("\(queued) queued")
        // With nothing running, the last job that ended says what the daemon did last.
        if running.isEmpty, let last = (try? ledger.jobs(in: [.succeeded, .failed, .cancelled, .refused], limit: 1))?.first {
            let name = (try? ledger.model(last.modelID))??.name ?? "model \(last.modelID)"
            parts.append("last: job \(last.id!) (\(name)) \(last.state.rawValue)")
        }
        return parts.joined(separator: "; ")
    }

    /// "train 2/5 step 40/100, 41%, ETA 3m10s".
    static func describe(_ p: CompressionProgress) -> String {
        var text = p.stage.rawValue
        if p.iteration > 0, p.iterations > 0 { text += " \(p.iteration)/\(p.iterations)" }
        if p.steps > 0 { text += " step \(p.step)/\(p.steps)" }
        text += ", " + Quantities.percent(p.fraction)
        if let eta = p.remaining, eta.isFinite, eta >= 0 { text += ", ETA " + Quantities.duration(eta) }
        return text
    }
}
