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
    for _ in 0..<10 {
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

// MARK: - Quantised matvec (decode): W [2048, 5632] (a 1B model's ffn_down) × one token

/// Random blocks of `type` with a realistic binary16 step in every block (codes are random bytes).
func randomQuantizedMatrix(_ type: QuantizedBlockType, rows: Int, cols: Int) -> QuantizedMatrix {
    var generator = SystemRandomNumberGenerator()
    let blocks = rows * cols / type.blockSize
    var bytes = (0..<blocks * type.blockBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let step = Float16(0.01).bitPattern
    for b in 0..<blocks {
        bytes[b * type.blockBytes] = UInt8(step & 0xFF)
        bytes[b * type.blockBytes + 1] = UInt8(step >> 8)
    }
    return try! QuantizedMatrix(type: type, rows: rows, cols: cols, copying: bytes, name: "benchmark \(type)")
}

/// Seconds of the fastest of many single calls (at least 200 calls and 0.3 s): a call takes under a
/// millisecond, so on a shared machine the fastest one is the uncontended time, where the mean of
/// a batch measures the neighbours' load.
func measureFastestCall(_ body: () -> Void) -> Double {
    body()
    var best = Double.infinity, calls = 0
    let start = DispatchTime.now().uptimeNanoseconds
    while calls < 200 || DispatchTime.now().uptimeNanoseconds - start < 300_000_000 {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        calls += 1
    }
    return best
}

/// Decode-time products: seconds per call, bytes = the weights read (GB/s = bytes / seconds).
func quantizedMatvecCases() {
    let rows = 2048, cols = 5632
    let x = randomTensor([1, cols]), y = Tensor(zeros: [1, rows])
    let scratch = CompressedMatmulScratch()
    for type in [QuantizedBlockType.q8_0, .q4_0] {
        let matrix = randomQuantizedMatrix(type, rows: rows, cols: cols)
        for threads in [1, 2] {
            let pool = WorkerPool(threadCount: threads)
            let seconds = measureFastestCall { compressedMatmul(x, matrix, into: y, scratch: scratch, pool: pool) }
            emit("quantized matvec \(type) \(rows)x\(cols) threads=\(threads) (\(KernelPath.best))", seconds,
                 bytes: Double(matrix.storedByteCount))
            FileHandle.standardError.write(Data(String(format: "%@ %dx%d, %d thread(s): %.1f µs, %.2f GB/s of weights\n",
                                                       type.description, rows, cols, threads, seconds * 1e6,
                                                       Double(matrix.storedByteCount) / seconds / 1e9).utf8))
        }
    }
}

/// `--quantized-only`: just the quantised matvec cases.
if CommandLine.arguments.contains("--quantized-only") {
    quantizedMatvecCases()
    exit(0)
}

// MARK: - sgemm at the shapes of a 135M LLaMA: activations [rows, in] · Wᵀ, W [out, in]

/// `--key-shape-only`: just 576×1536 at 512 rows, to compare kernel sets (OPENBLAS_CORETYPE) quickly.
if CommandLine.arguments.contains("--key-shape-only") {
    let weight = randomTensor([1536, 576], scale: 0.05), x = randomTensor([512, 576]), y = Tensor(zeros: [512, 1536])
    emit("sgemm 576x1536 rows=512", measure { matmul(x, weight, transposeB: true, into: y) }, flops: 2.0 * 512 * 576 * 1536)
    exit(0)
}

runSparseBenchmarks(exitAfterwards: CommandLine.arguments.contains("--sparse-only"))

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

// MARK: - Element-wise and row-wise ops at decoder shapes (bytes = values read + written)

let tokens = 2048, hidden = 576, ffn = 1536, heads = 9, headDim = 64, vocabulary = 49152
let a = randomTensor([tokens, ffn]), b = randomTensor([tokens, ffn]), c = Tensor(zeros: [tokens, ffn])
let d = randomTensor([tokens, ffn]), e = Tensor(zeros: [tokens, ffn])
let ffnBytes = Double(tokens * ffn * 4)
emit("add [2048x1536]", measure { add(a, b, into: c) }, bytes: 3 * ffnBytes)
emit("multiply [2048x1536]", measure { multiply(a, b, into: c) }, bytes: 3 * ffnBytes)
emit("silu [2048x1536]", measure { silu(a, into: c) }, bytes: 2 * ffnBytes)
emit("swiglu [2048x1536]", measure { swiglu(gate: a, up: b, into: c) }, bytes: 3 * ffnBytes)
emit("swiglu backward [2048x1536]", measure {
    c.zero(); e.zero()
    swigluBackward(d, gate: a, up: b, dGate: c, dUp: e)
}, bytes: 5 * ffnBytes)

let x = randomTensor([tokens, hidden]), w = randomTensor([hidden]), y = Tensor(zeros: [tokens, hidden])
let dy = randomTensor([tokens, hidden]), dx = Tensor(zeros: [tokens, hidden]), dw = Tensor(zeros: [hidden])
let hiddenBytes = Double(tokens * hidden * 4)
emit("rmsnorm [2048x576]", measure { rmsNorm(x, weight: w, epsilon: 1e-5, into: y) }, bytes: 2 * hiddenBytes)
emit("rmsnorm backward [2048x576]", measure {
    dx.zero(); dw.zero()
    rmsNormBackward(dy, x: x, weight: w, reciprocalRMS: nil, epsilon: 1e-5, dX: dx, dWeight: dw)
}, bytes: 3 * hiddenBytes)

let scores = randomTensor([heads * 512, 512], scale: 4), probabilities = Tensor(zeros: [heads * 512, 512])
let dProbabilities = randomTensor([heads * 512, 512]), dScores = Tensor(zeros: [heads * 512, 512])
let scoreBytes = Double(scores.count * 4)
emit("softmax [4608x512]", measure { softmax(scores, into: probabilities) }, bytes: 2 * scoreBytes)
emit("softmax backward [4608x512]", measure {
    dScores.zero()
    softmaxBackward(dProbabilities, y: probabilities, dX: dScores)
}, bytes: 3 * scoreBytes)

let queries = randomTensor([tokens, heads, headDim])
let table = RotaryTable(headDimension: headDim, theta: 100_000, positionCount: tokens)
let positions = (0..<tokens).map { Int32($0) }
emit("rope half-split [2048x9x64]", measure {
    rotaryEmbeddingForward(queries, positions: positions, table: table, layout: .halfSplit)
}, bytes: 2 * Double(queries.count * 4))

let logits = randomTensor([512, vocabulary], scale: 8)
let targets = (0..<512).map { Int32(($0 * 7919) % vocabulary) }
emit("cross-entropy [512x49152]", measure { _ = crossEntropy(logits: logits, targets: targets) },
     bytes: Double(logits.count * 4))

quantizedMatvecCases()
