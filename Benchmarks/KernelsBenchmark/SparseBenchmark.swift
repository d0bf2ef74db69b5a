// Compact sparse matvec (docs/sparse-format.md) at a 1B model's FFN shape: what decoding one token
// costs per projection. `bytes` is what the product streams (masks, offsets, values, scales), and
// `dense_weights_per_second` counts rows × cols, stored or not, to compare with a dense kernel.
// `cpu_seconds` is the process CPU time per call (all threads): on a shared machine, where the wall
// time includes waiting for a core, it is the cost the kernel itself has.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kernels

/// s8 and s4 at 50 % and 70 % random sparsity on 2048 × 5632, one token, on 1 and 2 threads.
/// With `exitAfterwards` (`--sparse-only`) the process ends after these cases.
func runSparseBenchmarks(exitAfterwards: Bool) {
    let rows = 2048, cols = 5632
    let pools = [1, 2].map { WorkerPool(threadCount: $0) }
    var random = RandomGenerator(seed: 42)
    let x = Tensor(zeros: [1, cols])
    random.fillUniform(x, in: -1, 1)
    let y = Tensor(zeros: [1, rows])
    let scratch = CompressedMatmulScratch()
    for sparsity in [0.5, 0.7] {
        let dense = Tensor(zeros: [rows, cols])
        for i in 0..<dense.count where random.nextDouble() >= sparsity {
            dense.pointer[i] = random.nextNormal() * 0.02
        }
        for kind in [SparseValueKind.s8, .s4] {
            let m = SparseMatrix.encode(dense, kind: kind)
            for pool in pools {
                let seconds = measure {
                    compressedMatmul(x, m, into: y, scratch: scratch, pool: pool)
                }
                // measure() reports the best wall time only: a separate run of known length for CPU time.
                let calls = max(1, Int(0.2 / seconds))
                let cpuStart = processCPUSeconds()
                for _ in 0..<calls { compressedMatmul(x, m, into: y, scratch: scratch, pool: pool) }
                let cpuSeconds = (processCPUSeconds() - cpuStart) / Double(calls)
                let record: [String: Any] = [
                    "name": "sparse \(kind.rawValue) matvec \(rows)x\(cols) sparsity=\(sparsity) threads=\(pool.threadCount)",
                    "seconds": seconds,
                    "bytes": Double(m.storedByteCount),
                    "gb_per_second": Double(m.storedByteCount) / seconds / 1e9,
                    "dense_weights_per_second": Double(rows * cols) / seconds,
                    "path": KernelPath.best.description,
                    "cpu_seconds": cpuSeconds,
                ]
                let data = try! JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }
    if exitAfterwards { exit(0) }
}

/// CPU time of the whole process so far (user + system, every thread).
private func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
