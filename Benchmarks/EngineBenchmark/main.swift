// End-to-end engine throughput on the demo model, printed as JSON lines for
// scripts/bench_engine.py, which runs the same phases in PyTorch and prints the
// side-by-side table. Build in release: `make bench-engine`.
//
//     EngineBenchmark PHASE [--model PATH] [--warmup N] [--steps N]
//
// PHASE is one of
//   forward      inference forward to logits [B·T, V] (Decoder.forward + head), no adapters
//   train        one training step, dropout 0.1: adapted forward, next-token loss, backward to the adapters
//   train-nodrop the same step with dropout 0
// One phase per process, so that the peak RSS (getrusage ru_maxrss) is the phase's own.
//
// Shapes (B batch, T tokens, V vocab): tokens and targets [B][T], B = 4, T = 256. The tokens come from
// a 64-bit LCG the Python side reproduces; targets are the next token of the same stream.
// Before any phase, the seven projections of every layer are pruned to 50%: in each row the in/2
// entries of smallest |W| (ties by lower index first) are set to zero, so that the sparse-LoRA mask
// M = (W ≠ 0) of LOSA.md is half dense on both sides.
import Foundation
import Kernels
import ModelFormats
import Transformer

let batch = 4, tokenCount = 256, rank = 8

func emit(_ record: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    fflush(nil)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("EngineBenchmark: \(message)\n".utf8))
    exit(1)
}

/// Peak resident set size of this process so far, in bytes (Linux reports ru_maxrss in KiB).
func peakRSS() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// [B][T + 1] token ids: x ← x·6364136223846793005 + 1442695040888963407 (mod 2⁶⁴), id = (x >> 33) mod V,
/// starting from x = seed; windows are consecutive slices of one stream.
func tokenStream(seed: UInt64, vocabulary: Int) -> [[Int32]] {
    var x = seed
    return (0..<batch).map { _ in
        (0...tokenCount).map { _ in
            x = x &* 6364136223846793005 &+ 1442695040888963407
            return Int32((x >> 33) % UInt64(vocabulary))
        }
    }
}

/// Zeroes the in/2 entries of smallest |W| in every row of W [out, in] (stable: among equal |W|, lower index first).
func pruneRows(_ w: Tensor) {
    let rows = w.shape[0], columns = w.shape[1], p = w.pointer
    for row in 0..<rows {
        let base = p + row * columns
        let order = (0..<columns).sorted { i, j in
            let a = abs(base[i]), b = abs(base[j])
            return a < b || (a == b && i < j)
        }
        for i in order.prefix(columns / 2) { base[i] = 0 }
    }
}

// MARK: - Arguments

var arguments = Array(CommandLine.arguments.dropFirst())
@MainActor func option(_ name: String, default value: Int) -> Int {
    guard let i = arguments.firstIndex(of: name) else { return value }
    guard i + 1 < arguments.count, let n = Int(arguments[i + 1]), n >= 0 else { fail("\(name) needs a count") }
    arguments.removeSubrange(i...(i + 1))
    return n
}
var modelPath = ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if let i = arguments.firstIndex(of: "--model") {
    guard i + 1 < arguments.count else { fail("--model needs a path") }
    modelPath = arguments[i + 1]
    arguments.removeSubrange(i...(i + 1))
}
let phase = arguments.first ?? ""
guard ["forward", "train", "train-nodrop"].contains(phase) else {
    fail("usage: EngineBenchmark forward|train|train-nodrop [--model PATH] [--warmup N] [--steps N]")
}
let isForward = phase == "forward"
let warmup = option("--warmup", default: 1)
let steps = option("--steps", default: isForward ? 5 : 3)
guard steps >= 1 else { fail("--steps must be at least 1") }

// MARK: - Model

let blas: OpenBLAS
do { blas = try Kernels.prepare() } catch { fail("\(error)") }
let loadStart = now()
let decoder: Decoder
do { decoder = try Decoder(checkpoint: try Checkpoint.open(modelPath)) } catch { fail("loading \(modelPath): \(error)") }
let config = decoder.config
for layer in decoder.weights.layers {
    for projection in SparseLoRA.Projection.allCases { pruneRows(SparseLoRA.weight(layer, projection)) }
}
emit(["phase": phase, "event": "loaded", "seconds": now() - loadStart, "peak_rss_bytes": peakRSS(),
      "openblas_core": blas.coreName, "openblas_threads": blas.threadCount,
      "workers": WorkerPool.shared.threadCount, "layers": config.layerCount, "hidden": config.hiddenSize])

let stream = tokenStream(seed: 42, vocabulary: config.vocabSize)
let inputs = stream.map { Array($0[0..<tokenCount]) }
let targets = stream.map { Array($0[1...tokenCount]) }

// MARK: - Phases

/// Runs `body` warm-up + steps times; returns the timed steps' seconds.
@MainActor func timed(_ body: () -> Void) -> [Double] {
    for _ in 0..<warmup { body() }
    return (0..<steps).map { _ in
        let start = now()
        body()
        return now() - start
    }
}

var seconds: [Double] = []
var extra: [String: Any] = [:]
if isForward {
    let workspace = decoder.makeWorkspace(batch: batch, tokens: tokenCount)
    let logits = Tensor(zeros: [batch * tokenCount, config.vocabSize])
    seconds = timed {
        let hidden = decoder.forward(inputs, workspace: workspace)
        decoder.head(hidden, into: logits)
    }
    extra["what"] = "Decoder.forward + head: logits [B·T, V], no adapters"
} else {
    let dropout: Float = phase == "train" ? 0.1 : 0
    let adapters = SparseLoRA(config: config, settings: SparseLoRA.Settings(maximumRank: rank, scaling: 2, dropout: dropout), seed: 7)
    // B starts at zero; a nonzero B makes ΔW (and its mask) take part in the numbers, as after a first update.
    var generator = RandomGenerator(seed: 11)
    for layer in 0..<config.layerCount {
        for projection in SparseLoRA.Projection.allCases {
            adapters.b(layer, projection).withUnsafeMutableBufferPointer { values in
                for i in values.indices { values[i] = Float.random(in: -0.01...0.01, using: &generator) }
            }
        }
    }
    adapters.training = true
    let workspace = LoRATrainingWorkspace(weights: decoder.weights, batch: batch, tokens: tokenCount)
    var step: UInt64 = 0
    var losses: [Double] = []
    seconds = timed {
        step += 1
        adapters.dropoutSeed = step
        adapters.zeroGradients()
        losses.append(try! decoder.adapterGradients(tokens: inputs, targets: targets, adapters: adapters, workspace: workspace).total)
    }
    extra["loss"] = losses.last!
    extra["dropout"] = Double(dropout)
    extra["what"] = "zero grads + adaptedForward + chunked CE + backward to A, B (rank \(rank), 7 projections, masked)"
}

let median = seconds.sorted()[seconds.count / 2]
var record: [String: Any] = ["phase": phase, "event": "result", "batch": batch, "tokens": tokenCount,
                             "step_seconds": seconds, "median_seconds": median,
                             "tokens_per_second": Double(batch * tokenCount) / median,
                             "peak_rss_bytes": peakRSS()]
record.merge(extra) { a, _ in a }
emit(record)
