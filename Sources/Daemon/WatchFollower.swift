import Control
import Foundation
import Ledger

/// Turns the scheduler's updates into `Watch` replies for one job: the first reply is the job as it
/// is (no event), each later one carries the event that changed it — its state, its stage, its LoSA
/// iteration, or plain progress — and the reply whose job is final is the last. An update that
/// changes nothing the interface shows makes no reply.
///
/// Without a job to follow (nothing ran or waited when the watch began) it follows the first job an
/// update shows that has not ended: the next one queued or started.
struct WatchFollower {
    /// The job followed; nil until the first update picks one.
    private(set) var jobID: Int64?
    private var last: Control.Job?
    private var lastMessage: String?

    init(job: Int64?) { jobID = job }

    /// The reply `update` makes, or nil when it is about another job (or an ended one, before a job was picked).
    mutating func reply(to update: JobUpdate, at date: Date = Date()) -> WatchReply? {
        if jobID == nil {
            guard !update.job.state.isFinal else { return nil }
            jobID = update.job.id
        }
        guard update.job.id == jobID else { return nil }
        let job = ControlReplies.job(update.job, progress: update.progress)
        let message = update.progress.flatMap { $0.message.isEmpty ? nil : $0.message }
        defer {
            self.last = job
            lastMessage = message
        }
        guard let last else { return WatchReply(job: job) }
        // The scheduler may publish the same state twice (a progress write and a checkpoint); one reply is enough.
        guard job != last || message != lastMessage else { return nil }
        return WatchReply(job: job, event: Self.event(from: last, to: job, record: update.job, message: message, at: date))
    }

    /// What changed between two views of the same job.
    static func event(from old: Control.Job, to new: Control.Job, record: JobRecord, message: String?, at date: Date) -> Control.JobEvent {
        let time = ControlReplies.time(date)
        if new.state != old.state {
            let kind: String
            let text: String
            switch new.state {
            case .running:
                kind = "started"
                text = "started"
            case .queued:
                // Back to the queue: a retry, or the daemon stopped while it ran (it resumes at the next start).
                kind = old.state.isFinal ? "retried" : "message"
                text = old.state.isFinal ? "queued again" : (record.error ?? "queued again, to resume from its checkpoint")
            case .succeeded:
                kind = "succeeded"
                text = new.output.map { "wrote \($0)" } ?? "succeeded"
            case .failed, .cancelled:
                kind = new.state.rawValue
                text = new.error ?? new.state.rawValue
            }
            return Control.JobEvent(time: time, kind: kind, message: text, state: new.state, progress: new.progress)
        }
        guard let progress = new.progress else {
            return Control.JobEvent(time: time, kind: "message", message: message ?? new.state.rawValue, state: new.state)
        }
        if progress.stage != old.progress?.stage {
            return Control.JobEvent(time: time, kind: "stage", message: message ?? progress.stage, progress: progress)
        }
        if let iteration = progress.iteration, iteration != old.progress?.iteration {
            let of = progress.iterations.map { "/\($0)" } ?? ""
            return Control.JobEvent(time: time, kind: "iteration", message: message ?? "iteration \(iteration)\(of)", progress: progress)
        }
        return Control.JobEvent(time: time, kind: "progress", message: message ?? progress.stage, progress: progress)
    }
}
