import Foundation
import Testing
@testable import Kernels

/// The worker pool's loop: a partition of the index range, whatever the
/// nesting or the number of callers.
@Suite struct WorkerPoolTests {
    /// Pools of several sizes, made once: their threads live for the whole process.
    static let pools = [WorkerPool(threadCount: 1), WorkerPool.shared, WorkerPool(threadCount: 4), WorkerPool(threadCount: 7)]

    /// The ranges one loop handed to its body, recorded from whichever thread ran them.
    final class RangeLog: @unchecked Sendable {
        private let lock = NSLock()
        private var ranges: [Range<Int>] = []

        func record(_ range: Range<Int>) {
            lock.lock()
            ranges.append(range)
            lock.unlock()
        }

        var sorted: [Range<Int>] {
            lock.lock()
            defer { lock.unlock() }
            return ranges.sorted { $0.lowerBound < $1.lowerBound }
        }
    }

    /// Checks that `ranges` partition 0..<count into at most `threads` pieces of at least `minimumChunk` (or all of count).
    static func isPartition(_ ranges: [Range<Int>], count: Int, minimumChunk: Int, threads: Int) -> Bool {
        guard count > 0 else { return ranges.isEmpty }
        guard let first = ranges.first, first.lowerBound == 0, ranges.last!.upperBound == count else { return false }
        for (a, b) in zip(ranges, ranges.dropFirst()) where a.upperBound != b.lowerBound { return false }
        let smallest = min(max(minimumChunk, 1), count)
        return ranges.allSatisfy { $0.count >= smallest } && ranges.count <= threads
    }

    @Test(arguments: 0..<4)
    func everyIndexRunsExactlyOnceInContiguousChunks(poolIndex: Int) {
        let pool = Self.pools[poolIndex]
        for count in [0, 1, 2, 3, 7, 16, 100, 1001, 65_537] {
            for minimumChunk in [0, 1, 3, 64, 1000, 100_000] {
                let log = RangeLog()
                var hits = [UInt8](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { buffer in
                    let base = buffer.baseAddress
                    pool.parallelFor(count, minimumChunk: minimumChunk) { range in
                        log.record(range)
                        for i in range { base![i] &+= 1 }
                    }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "count \(count), chunk \(minimumChunk), \(pool.threadCount) threads")
                #expect(Self.isPartition(log.sorted, count: count, minimumChunk: minimumChunk, threads: pool.threadCount),
                        "ranges \(log.sorted) for count \(count), chunk \(minimumChunk), \(pool.threadCount) threads")
            }
        }
    }

    /// Four threads that only the next test uses: tests run concurrently, and a
    /// loop started while its pool is busy runs serially, as one chunk.
    static let privatePool = WorkerPool(threadCount: 4)

    @Test func aLoopUsesAsManyChunksAsItsSizeAllows() {
        let pool = Self.privatePool
        let log = RangeLog()
        pool.parallelFor(1000, minimumChunk: 300) { log.record($0) }
        #expect(log.sorted == [0..<333, 333..<666, 666..<1000])
        let wide = RangeLog()
        pool.parallelFor(1000, minimumChunk: 1) { wide.record($0) }
        #expect(wide.sorted.count == 4)
    }

    @Test(.timeLimit(.minutes(1)))
    func nestedLoopsFinishAndCoverEveryPair() {
        let pool = Self.pools[2]
        let (outer, inner) = (8, 50)
        var hits = [UInt8](repeating: 0, count: outer * inner)
        hits.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            pool.parallelFor(outer) { rows in
                for row in rows {
                    // The pool is busy with the outer loop: this one runs on the calling thread.
                    pool.parallelFor(inner) { columns in
                        for column in columns { base[row * inner + column] &+= 1 }
                    }
                }
            }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }

    @Test(.timeLimit(.minutes(1)))
    func loopsStartedFromSeveralThreadsAtOnceAllFinish() {
        let pool = Self.pools[2]
        let callers = 6, count = 10_000
        let totals = RangeLog()  // each caller records one range: 0..<(its total)
        DispatchQueue.concurrentPerform(iterations: callers) { _ in
            var total = 0
            for _ in 0..<20 {
                var values = [Int](repeating: 0, count: count)
                values.withUnsafeMutableBufferPointer { buffer in
                    let base = buffer.baseAddress!
                    pool.parallelFor(count, minimumChunk: 100) { range in
                        for i in range { base[i] = i }
                    }
                }
                total += values.reduce(0, +)
            }
            totals.record(0..<total)
        }
        let expected = 20 * count * (count - 1) / 2
        #expect(totals.sorted == [Range<Int>](repeating: 0..<expected, count: callers))
    }

    @Test(.timeLimit(.minutes(1)))
    func manyShortLoopsInARowAllComplete() {
        // Thousands of back-to-back loops whose chunks finish at once: the
        // hand-over between one loop's end and the next one's start.
        let pool = Self.pools[3]
        var total = 0
        for iteration in 0..<5_000 {
            var partial = [Int](repeating: 0, count: 7)
            partial.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                pool.parallelFor(7) { range in
                    for i in range { base[i] = iteration + i }
                }
            }
            total += partial.reduce(0, +)
        }
        #expect(total == (0..<5_000).reduce(0) { $0 + 7 * $1 + 21 })
    }

    @Test(.timeLimit(.minutes(1)))
    func aLoopsClosureIsReleasedBeforeTheLoopReturns() async {
        // parallelFor lends its non-escaping body to the workers through
        // withoutActuallyEscaping, which traps if any reference outlives the
        // call. A worker that still holds the closure after reporting its chunk
        // done races with the caller's return; tight loops of empty two-chunk
        // bodies make that race likely. Run in a child process so a trap fails
        // this test instead of ending the whole run.
        await #expect(processExitsWith: .success) {
            // More threads than cores, so that a worker is often preempted
            // between reporting its chunk and dropping its reference.
            let pool = WorkerPool(threadCount: 32)
            for _ in 0..<30_000 { pool.parallelFor(32) { _ in } }
        }
    }
}
