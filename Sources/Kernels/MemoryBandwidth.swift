import Foundation

/// The rate at which this machine's cores stream a buffer far larger than any cache from memory:
/// the ceiling of a memory-bound kernel such as decode, which reads every weight once per token.
///
/// Each pool thread sums its share of a 1 GiB buffer with vector loads (a read, as decode does);
/// the best of a few passes counts, as a benchmark's peak.
public enum MemoryBandwidth {
    /// Bytes per second read by `pool`'s threads together.
    public static func measureRead(bytes: Int = 1 << 30, passes: Int = 3, pool: WorkerPool = .shared) -> Double {
        let count = bytes / MemoryLayout<SIMD16<Float>>.stride
        let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: count)
        defer { buffer.deallocate() }
        // Touch every page first, so the passes measure reads rather than page faults.
        pool.parallelFor(count, minimumChunk: 4096) { range in
            for i in range { buffer[i] = SIMD16(repeating: Float(i & 7)) }
        }
        var best = 0.0
        for _ in 0..<passes {
            let sinks = UnsafeMutablePointer<Float>.allocate(capacity: pool.threadCount * 16)
            defer { sinks.deallocate() }
            let start = DispatchTime.now().uptimeNanoseconds
            pool.parallelFor(count, minimumChunk: 4096) { range in
                var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), d = SIMD16<Float>()
                var i = range.lowerBound
                while i + 4 <= range.upperBound {
                    a += buffer[i]; b += buffer[i + 1]; c += buffer[i + 2]; d += buffer[i + 3]
                    i += 4
                }
                while i < range.upperBound { a += buffer[i]; i += 1 }
                // Keeps the sums alive so the loads are not optimised away.
                sinks[(range.lowerBound / max(1, count / pool.threadCount)) % pool.threadCount * 16] = (a + b + c + d).sum()
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(count * MemoryLayout<SIMD16<Float>>.stride) / seconds)
        }
        return best
    }
}
