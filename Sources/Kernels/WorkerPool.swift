#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A fixed set of threads, sized to the machine, that runs the parallel loops
/// of the element-wise and row-wise kernels.
///
/// One pool serves the process, so element-wise work never adds threads on top
/// of OpenBLAS's (the two never run at the same time: a kernel is either a BLAS
/// call or a pool loop). A loop started while the pool is busy — from inside
/// another loop, or from a second thread — runs serially on its caller instead
/// of waiting, so nesting cannot deadlock.
public final class WorkerPool: @unchecked Sendable {
    /// The pool every kernel uses; its size follows `LOSAD_THREADS` or the usable CPUs.
    public static let shared = WorkerPool(threadCount: defaultThreadCount())

    /// Threads taking part in a loop, the caller included.
    public let threadCount: Int

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let callerLock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    // Guarded by `lock`.
    private var generation = 0
    private var task: ((Int) -> Void)?
    private var taskCount = 0
    private var nextTask = 0
    private var unfinished = 0
    private var threads: [Thread] = []
    /// `generation`, readable without the lock: an idle worker watches it for a moment before it sleeps.
    private let publishedGeneration = Atomic<Int>(0)
    /// Loads of `publishedGeneration` an idle worker makes before it sleeps on `wake` (about 20 µs). Decode
    /// starts hundreds of short loops per token, and waking a sleeping thread took tens of µs each time
    /// (a fifth of a decode profile was the scheduler's).
    private static let spinChecks = 20_000

    /// Usable CPUs (affinity and cgroup aware through Foundation), or `LOSAD_THREADS`.
    public static func defaultThreadCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["LOSAD_THREADS"], let n = Int(text), n >= 1 {
            return min(n, 256)
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// A pool of `threadCount` threads (the caller counts as one). Its threads
    /// live for the rest of the process, so make pools once, not per call.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        pthread_mutex_init(lock, nil)
        pthread_mutex_init(callerLock, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
        for index in 1..<self.threadCount {
            let thread = Thread { self.workerLoop() }
            thread.name = "losad-worker-\(index)"
            thread.start()
            threads.append(thread)
        }
    }

    /// Runs `body(range)` over `0..<count` split into contiguous ranges of at
    /// least `minimumChunk` items, spread over the pool; returns when all are done.
    public func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunkCount = min(threadCount, max(1, count / max(1, minimumChunk)))
        if chunkCount == 1 || pthread_mutex_trylock(callerLock) != 0 {
            body(0..<count)
            return
        }
        defer { pthread_mutex_unlock(callerLock) }
        withoutActuallyEscaping(body) { body in
            let run: (Int) -> Void = { chunk in
                let start = count * chunk / chunkCount
                let end = count * (chunk + 1) / chunkCount
                body(start..<end)
            }
            pthread_mutex_lock(lock)
            task = run
            taskCount = chunkCount
            nextTask = 0
            unfinished = chunkCount
            generation &+= 1
            publishedGeneration.store(generation, ordering: .releasing)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(lock)
            drainTasks()
            pthread_mutex_lock(lock)
            // The other chunks are usually nearly done: look a few times before sleeping on `finished`.
            var checks = 0
            while unfinished > 0 && checks < Self.spinChecks / 16 {
                pthread_mutex_unlock(lock)
                checks += 1
                pthread_mutex_lock(lock)
            }
            while unfinished > 0 { pthread_cond_wait(finished, lock) }
            task = nil
            pthread_mutex_unlock(lock)
        }
    }

    /// Claims and runs chunks of the current loop until none is left.
    ///
    /// The caller's body is non-escaping: `parallelFor` checks on return that no
    /// reference to it survives. So a worker must never hold the closure once its
    /// chunk is counted as finished, nor while it merely finds no chunk left —
    /// hence the count is checked before `task` is touched, and the closure
    /// lives only inside `runChunk`.
    private func drainTasks() {
        while true {
            pthread_mutex_lock(lock)
            guard nextTask < taskCount else {
                pthread_mutex_unlock(lock)
                return
            }
            let chunk = nextTask
            nextTask += 1
            runChunk(chunk)  // unlocks
            pthread_mutex_lock(lock)
            unfinished -= 1
            if unfinished == 0 { pthread_cond_signal(finished) }
            pthread_mutex_unlock(lock)
        }
    }

    /// Runs one chunk of the current task; called with `lock` held, returns with it released.
    @inline(never)
    private func runChunk(_ chunk: Int) {
        let run = task!
        pthread_mutex_unlock(lock)
        run(chunk)
    }

    private func workerLoop() {
        var seen = 0
        while true {
            var checks = 0
            while publishedGeneration.load(ordering: .acquiring) == seen && checks < Self.spinChecks { checks += 1 }
            pthread_mutex_lock(lock)
            while generation == seen { pthread_cond_wait(wake, lock) }
            seen = generation
            pthread_mutex_unlock(lock)
            drainTasks()
        }
    }
}
