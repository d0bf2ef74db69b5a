// Kernels throughput, printed as JSON lines for scripts/bench_kernels.py,
// which runs the same cases in numpy and prints the side-by-side table.
// Build in release: `make bench-kernels`.
import Foundation
import Kernels

/// Seconds per call: the best of several timed batches, each long enough to time reliably.
func measure(_ body: () -> Void) -> Double {
    body()  // warm-up: page faults, OpenBLAS thread start
    var calls = 1
    while true {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { body() }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if elapsed > 0.05 { break }
        calls *= 2
    }
    var best = Double.infinity
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { body() }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(calls))
    }
    return best
}

func emit(_ name: String, _ seconds: Double, flops: Double? = nil, bytes: Double? = nil) {
    var record: [String: Any] = ["name": name, "seconds": seconds]
    if let flops { record["flops"] = flops }
    if let bytes { record["bytes"] = bytes }
    let data = try! JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func randomTensor(_ shape: [Int], scale: Float = 1) -> Tensor {
    var generator = SystemRandomNumberGenerator()
    let t = Tensor(zeros: shape)
    t.withUnsafeMutableBufferPointer { buffer in
        for i in buffer.indices { buffer[i] = Float.random(in: -scale...scale, using: &generator) }
    }
    return t
}

let blas: OpenBLAS
do { blas = try Kernels.prepare() } catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(1)
}
let info: [String: Any] = ["openblas_core": blas.coreName, "openblas_threads": blas.threadCount,
                           "workers": WorkerPool.shared.threadCount, "openblas_config": blas.configuration]
print(String(decoding: try! JSONSerialization.data(withJSONObject: ["info": info], options: [.sortedKeys]), as: UTF8.self))

// MARK: - sgemm at the shapes of a 135M LLaMA: activations [rows, in] · Wᵀ, W [out, in]

let linearShapes = [(576, 576), (576, 1536), (1536, 576), (576, 49152)]
for (inFeatures, outFeatures) in linearShapes {
    let weight = randomTensor([outFeatures, inFeatures], scale: 0.05)
    for rows in [256, 512, 1024, 2048] {
        if outFeatures == 49152 && rows > 1024 { continue }  // 400 MB of logits; the shape's rate is clear by then
        let x = randomTensor([rows, inFeatures])
        let y = Tensor(zeros: [rows, outFeatures])
        let seconds = measure { matmul(x, weight, transposeB: true, into: y) }
        emit("sgemm \(inFeatures)x\(outFeatures) rows=\(rows)", seconds, flops: 2.0 * Double(rows * inFeatures * outFeatures))
    }
}
