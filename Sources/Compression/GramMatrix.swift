import Kernels

/// The Gram matrix K = X·Xᵀ of one layer's input features (shared/docs/LOSA.md, "The dynamic loop", step 3),
/// accumulated in Double from Float features.
///
/// Shapes: n calibration samples; X [n, T·C], one row per sample (its T tokens × C hidden, flattened);
/// K [n, n], symmetric. Only K is kept, so a caller computes one layer's K from the features it
/// holds for that layer and drops them before the next layer.
///
/// Because K_ij = Σ_k X_ik·X_jk sums over feature columns, features may arrive in any split:
/// all samples at once (`accumulate(_:)`), a chunk of columns of all samples at a time (the same
/// call, repeated), or batches of samples (`init(batches:)`, or `accumulate(_:samples:_:samples:)`
/// for one pair of batches).
public struct GramMatrix: Sendable, Equatable {
    /// n, the number of calibration samples.
    public let sampleCount: Int
    /// K row-major [n, n]; exactly symmetric.
    public private(set) var values: [Double]

    /// The largest n accepted: K alone is n²·8 bytes (2 GiB at this bound).
    public static let maximumSampleCount = 16_384

    /// An all-zero K for `sampleCount` samples.
    public init(sampleCount: Int) {
        precondition((1...GramMatrix.maximumSampleCount).contains(sampleCount),
                     "Gram matrix: \(sampleCount) samples, expected 1...\(GramMatrix.maximumSampleCount)")
        self.sampleCount = sampleCount
        values = Array(repeating: 0, count: sampleCount * sampleCount)
    }

    /// K from its values [n, n] row-major (a checkpoint, a test); they must be symmetric.
    public init(sampleCount: Int, values: [Double]) {
        self.init(sampleCount: sampleCount)
        precondition(values.count == sampleCount * sampleCount,
                     "Gram matrix: \(values.count) values for \(sampleCount)×\(sampleCount)")
        for i in 0..<sampleCount {
            for j in 0..<i where values[i * sampleCount + j] != values[j * sampleCount + i] {
                preconditionFailure("Gram matrix: K[\(i), \(j)] = \(values[i * sampleCount + j]) but K[\(j), \(i)] = \(values[j * sampleCount + i])")
            }
        }
        self.values = values
    }

    /// The Gram matrix of features held in consecutive batches of samples: batches[k] [b_k, …],
    /// every batch with the same number of features per sample; n = Σ b_k.
    public init(batches: [Tensor]) {
        let counts = batches.map { $0.shape.first ?? 0 }
        self.init(sampleCount: counts.reduce(0, +))
        var starts = [0]
        for count in counts { starts.append(starts.last! + count) }
        for i in batches.indices {
            for j in i..<batches.count {
                accumulate(batches[i], samples: starts[i]..<starts[i + 1], batches[j], samples: starts[j]..<starts[j + 1])
            }
        }
    }

    /// K[i, j].
    public subscript(i: Int, j: Int) -> Double { values[i * sampleCount + j] }

    /// K += X·Xᵀ for features X [n, …] of every sample: the whole flattened features, or one chunk of their
    /// columns. Only the element count matters: n·d values, sample by sample (so [n·T, C] reads as [n, T·C]).
    public mutating func accumulate(_ features: Tensor) {
        accumulate(features, samples: 0..<sampleCount, features, samples: 0..<sampleCount)
    }

    /// K[rows, columns] += A·Bᵀ and K[columns, rows] += B·Aᵀ, for A [|rows|, …] the features of samples
    /// `rows` and B [|columns|, …] the same feature columns of samples `columns`. The two sample ranges
    /// are equal (a diagonal block, A and B the same features) or disjoint.
    public mutating func accumulate(_ a: Tensor, samples rows: Range<Int>, _ b: Tensor, samples columns: Range<Int>) {
        let n = sampleCount
        precondition(rows.lowerBound >= 0 && rows.upperBound <= n && columns.lowerBound >= 0 && columns.upperBound <= n,
                     "Gram matrix: samples \(rows) and \(columns) outside 0..<\(n)")
        precondition(!rows.isEmpty && !columns.isEmpty, "Gram matrix: an empty block of samples \(rows) × \(columns)")
        let diagonal = rows == columns
        precondition(diagonal || !rows.overlaps(columns), "Gram matrix: sample blocks \(rows) and \(columns) overlap without being equal")
        precondition(a.count % rows.count == 0 && b.count == a.count / rows.count * columns.count,
                     "Gram matrix: features \(a.shape) for samples \(rows) and \(b.shape) for \(columns) differ in features per sample")
        let d = a.count / rows.count
        guard d > 0 else { return }
        let block = GramMatrix.product(a.pointer, rows: rows.count, b.pointer, rows: columns.count, features: d,
                                       sameOperand: diagonal)
        let m = columns.count
        for i in 0..<rows.count {
            for j in 0..<m {
                if diagonal {
                    // The upper triangle, mirrored: K stays exactly symmetric whatever order the kernel summed in.
                    guard j >= i else { continue }
                    let value = block[i * m + j]
                    values[(rows.lowerBound + i) * n + columns.lowerBound + j] += value
                    if i != j { values[(columns.lowerBound + j) * n + rows.lowerBound + i] += value }
                } else {
                    let value = block[i * m + j]
                    values[(rows.lowerBound + i) * n + columns.lowerBound + j] += value
                    values[(columns.lowerBound + j) * n + rows.lowerBound + i] += value
                }
            }
        }
    }

    /// A·Bᵀ [ra, rb] in Double, for A [ra, d] and B [rb, d] in Float; the features are converted
    /// a chunk of columns at a time so the Double copies stay a few MiB whatever d is.
    /// `chunkColumns` overrides the chunk width (tests use it to cross chunk boundaries).
    static func product(_ a: UnsafePointer<Float>, rows ra: Int, _ b: UnsafePointer<Float>, rows rb: Int,
                        features d: Int, sameOperand: Bool, chunkColumns: Int? = nil) -> [Double] {
        let chunk = max(1, min(d, chunkColumns ?? max(64, (1 << 19) / max(ra, rb))))
        var block = [Double](repeating: 0, count: ra * rb)
        var bufferA = [Double](repeating: 0, count: ra * chunk)
        var bufferB = [Double](repeating: 0, count: sameOperand ? 0 : rb * chunk)
        var start = 0
        while start < d {
            let width = min(chunk, d - start)
            func convert(_ source: UnsafePointer<Float>, _ rows: Int, into buffer: inout [Double]) {
                for row in 0..<rows {
                    let from = source + row * d + start
                    for k in 0..<width { buffer[row * width + k] = Double(from[k]) }
                }
            }
            convert(a, ra, into: &bufferA)
            if !sameOperand { convert(b, rb, into: &bufferB) }
            bufferA.withUnsafeBufferPointer { pa in
                bufferB.withUnsafeBufferPointer { pb in
                    block.withUnsafeMutableBufferPointer { pc in
                        DoubleProducts.addProductTransposed(m: ra, n: rb, k: width, a: pa.baseAddress!, lda: width,
                                                            b: sameOperand ? pa.baseAddress! : pb.baseAddress!, ldb: width,
                                                            c: pc.baseAddress!, ldc: rb)
                    }
                }
            }
            start += width
        }
        return block
    }

    /// K = X·Xᵀ by the definition, each entry one Double dot product: the reference the fast path is held to.   X [n, …]
    public static func reference(features: Tensor) -> GramMatrix {
        let n = features.shape.first ?? 0
        var gram = GramMatrix(sampleCount: n)
        let d = features.count / n, x = features.pointer
        for i in 0..<n {
            for j in 0...i {
                var sum = 0.0
                for k in 0..<d { sum += Double(x[i * d + k]) * Double(x[j * d + k]) }
                gram.values[i * n + j] = sum
                gram.values[j * n + i] = sum
            }
        }
        return gram
    }
}
