#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Puts compute threads in a CPU scheduling class (sched(7)) that yields to the machine's real work.
///
/// On Linux the scheduling policy and the nice value belong to a thread, and a new thread inherits
/// its creator's: apply a priority on the thread that runs a job *before* it starts its worker
/// pool, and those workers follow. Lowering is always allowed; raising back needs privileges, so
/// never apply it on the main thread or the watchdog thread.
public enum ComputePriority {
    /// Linux's policy numbers (include/uapi/linux/sched.h); glibc hides the last two behind _GNU_SOURCE.
    public static let schedOther: Int32 = 0
    public static let schedBatch: Int32 = 3
    public static let schedIdle: Int32 = 5

    /// The calling thread's kernel id, from /proc/thread-self (gettid(2) is not exported to Swift).
    public static func currentThreadID() -> pid_t {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        let text = String(decoding: buffer.prefix(max(count, 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let tid = text.split(separator: "/").last.flatMap({ pid_t($0) }) else { return getpid() }
        return tid
    }

    /// Applies `priority` to the thread `thread` (0: the calling one): SCHED_IDLE or SCHED_BATCH at
    /// nice 19, or nothing for `.normal`.
    public static func apply(_ priority: DaemonConfig.Priority, thread: pid_t = 0) throws {
        let policy: Int32
        switch priority {
        case .normal: return
        case .batch: policy = schedBatch
        case .idle: policy = schedIdle
        }
        // Nice 19 first: should the policy change be refused (a seccomp filter), the thread is still last in line.
        guard setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), 19) == 0 else {
            throw SystemdError.errno("setpriority(thread \(thread), nice 19)")
        }
        var parameters = sched_param(sched_priority: 0)
        guard sched_setscheduler(thread, policy, &parameters) == 0 else {
            throw SystemdError.errno("sched_setscheduler(thread \(thread), \(priority.rawValue))")
        }
    }

    /// The kernel ids of the process's threads now (from /proc/self/task).
    public static func threadIDs() throws -> [pid_t] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { pid_t($0) }.sorted()
    }

    /// Applies `priority` to each of `threads` — e.g. `threadIDs()` less the main and watchdog threads,
    /// for pools a library started before the job thread could lower itself. A thread that ended
    /// meanwhile is skipped. Returns how many threads were changed.
    @discardableResult
    public static func apply(_ priority: DaemonConfig.Priority, toThreads threads: [pid_t]) throws -> Int {
        var changed = 0
        for tid in threads where tid > 0 {
            do {
                try apply(priority, thread: tid)
                changed += 1
            } catch where !FileManager.default.fileExists(atPath: "/proc/self/task/\(tid)") {
                continue
            }
        }
        return changed
    }

    /// The scheduling policy and nice value of `thread` (0: the calling one).
    public static func current(thread: pid_t = 0) -> (policy: Int32, nice: Int32) {
        errno = 0
        let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread))
        return (sched_getscheduler(thread), nice)
    }
}
