import Foundation
import Kernels

/// The compute threads (OpenBLAS's and the worker pool) take the scheduling class of the thread that creates
/// them: create them once, at start, from a thread at the configured compute priority, so every product a job
/// runs is at that priority while the daemon's own threads (control, watchdog, watcher) are not.
public enum ComputeThreads {
    public static func prepare(priority: DaemonConfig.Priority) {
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
