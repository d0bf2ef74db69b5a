#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
@testable import Daemon

@Suite("ComputePriority")
struct ComputePriorityTests {
    /// Runs `body` on a new OS thread and returns its result (so the test runner's threads stay untouched).
    func onNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let value = body()
            result.withLock { $0 = value }
            done.signal()
        }.start()
        done.wait()
        return result.withLock { $0! }
    }

    struct Observed: Sendable, Equatable {
        var policy: Int32
        var nice: Int32
        var childPolicy: Int32
        var childNice: Int32
        var failed: String?
    }

    func observe(_ priority: DaemonConfig.Priority) -> Observed {
        onNewThread {
            var failed: String?
            do { try ComputePriority.apply(priority) } catch { failed = "\(error)" }
            let own = ComputePriority.current()
            let child = onNewThread { ComputePriority.current() }
            return Observed(policy: own.policy, nice: own.nice, childPolicy: child.policy, childNice: child.nice, failed: failed)
        }
    }

    @Test("idle puts the thread and the threads it creates at SCHED_IDLE, nice 19")
    func idle() {
        let before = ComputePriority.current()
        #expect(observe(.idle) == Observed(policy: ComputePriority.schedIdle, nice: 19,
                                           childPolicy: ComputePriority.schedIdle, childNice: 19, failed: nil))
        #expect(ComputePriority.current() == before)   // the calling thread is untouched
    }

    @Test("batch puts the thread and its children at SCHED_BATCH, nice 19")
    func batch() {
        #expect(observe(.batch) == Observed(policy: ComputePriority.schedBatch, nice: 19,
                                            childPolicy: ComputePriority.schedBatch, childNice: 19, failed: nil))
    }

    @Test("normal leaves the thread as it was")
    func normal() {
        let base = ComputePriority.current()
        #expect(observe(.normal) == Observed(policy: base.policy, nice: base.nice, childPolicy: base.policy, childNice: base.nice, failed: nil))
    }

    @Test("another thread is lowered by its id, and listed among the process's threads")
    func byThreadID() throws {
        let tid = Mutex<pid_t>(0)
        let ready = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread {
            tid.withLock { $0 = ComputePriority.currentThreadID() }
            ready.signal()
            release.wait()
        }.start()
        ready.wait()
        defer { release.signal() }
        let id = tid.withLock { $0 }
        #expect(id != getpid() && id != ComputePriority.currentThreadID())
        #expect(try ComputePriority.threadIDs().contains(id))
        #expect(try ComputePriority.apply(.idle, toThreads: [id, 999_999_999]) == 1)
        let observed = ComputePriority.current(thread: id)
        #expect(observed.policy == ComputePriority.schedIdle && observed.nice == 19)
    }
}
