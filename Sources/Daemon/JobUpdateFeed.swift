import Compression
import Foundation
import Ledger
import Logging
import Synchronization

/// A change to one job: its ledger row after the change, and the runner's latest progress while it runs.
public struct JobUpdate: Sendable, Equatable {
    public var job: JobRecord
    /// The runner's last report (iterations, steps, loss and ETA are not in the ledger); nil unless running.
    public var progress: CompressionProgress?

    public init(job: JobRecord, progress: CompressionProgress? = nil) {
        self.job = job
        self.progress = progress
    }
}

/// Hands every job update to each subscriber (`losactl watch` through the control server).
///
/// A subscriber that reads slowly loses the oldest updates, never blocks the scheduler and never
/// makes the daemon hold more than `bufferLimit` updates for it: the latest state is what matters.
public final class JobUpdateFeed: Sendable {
    public static let bufferLimit = 256

    struct Subscriber {
        var job: Int64?
        var continuation: AsyncStream<JobUpdate>.Continuation
    }

    private let subscribers = Mutex<[UUID: Subscriber]>([:])

    public init() {}

    /// Updates from now on, for `job` only when given. The stream ends when `finish()` is called
    /// (the daemon stops) or when the caller stops iterating it.
    public func subscribe(job: Int64? = nil) -> AsyncStream<JobUpdate> {
        // Filtered before buffering, so other jobs' updates cannot push this job's out.
        let (stream, continuation) = AsyncStream.makeStream(of: JobUpdate.self,
                                                            bufferingPolicy: .bufferingNewest(JobUpdateFeed.bufferLimit))
        let key = UUID()
        subscribers.withLock { $0[key] = Subscriber(job: job, continuation: continuation) }
        continuation.onTermination = { [weak self] _ in self?.remove(key) }
        return stream
    }

    /// Sends `update` to every subscriber that wants it.
    public func publish(_ update: JobUpdate) {
        let targets = subscribers.withLock { $0.values.filter { $0.job == nil || $0.job == update.job.id }.map(\.continuation) }
        for continuation in targets { continuation.yield(update) }
    }

    /// Ends every subscription.
    public func finish() {
        let all = subscribers.withLock { s in
            defer { s.removeAll() }
            return s.values.map(\.continuation)
        }
        for continuation in all { continuation.finish() }
    }

    /// How many streams are subscribed now.
    public var subscriberCount: Int { subscribers.withLock { $0.count } }

    private func remove(_ key: UUID) { _ = subscribers.withLock { $0.removeValue(forKey: key) } }
}

extension JobUpdateFeed {
    /// Runs a ledger state change and publishes the row it leaves; an error (e.g. the job was marked
    /// interrupted by a stop that ran out of time) is logged, not thrown: a job thread must end.
    func record(_ logger: Logger, _ change: () throws -> JobRecord) {
        do {
            publish(JobUpdate(job: try change()))
        } catch {
            logger.error("ledger: \(error)")
        }
    }
}
