import Compression
import Synchronization

/// One place in the scheduler's `running_jobs`: a job from the moment it is taken from the queue
/// (admission) until its thread ends. It holds what status queries read while the job runs — the
/// runner's last progress — and the stop request, which may come before the job's context exists.
final class JobSlot: Sendable {
    let id: Int64
    let context: Mutex<JobContext?> = Mutex(nil)
    /// A stop asked for before the context exists (during admission).
    let earlyStop: Mutex<JobContext.StopReason?> = Mutex(nil)
    let live: Mutex<Live>

    struct Live {
        var modelName: String
        var progress: CompressionProgress?
        var lastWrite = -Double.infinity
        var lastStage: CompressionStage?
        var writeFailureLogged = false
    }

    init(id: Int64, modelName: String) {
        self.id = id
        live = Mutex(Live(modelName: modelName))
    }

    /// Asks the job to stop; a cancel replaces a daemon stop, not the other way round (as `JobContext`).
    func requestStop(_ reason: JobContext.StopReason) {
        earlyStop.withLock { current in
            switch (current, reason) {
            case (nil, _), (.daemonStopping, .cancelled): current = reason
            default: break
            }
        }
        context.withLock { $0 }?.requestStop(reason)
    }

    var stopReason: JobContext.StopReason? {
        context.withLock { $0 }?.stopReason ?? earlyStop.withLock { $0 }
    }
}
