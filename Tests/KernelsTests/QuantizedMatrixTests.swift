import CKernels
import Foundation
import Testing
@testable import Kernels

// The quantised product kernels (CKernels quant_*.c through QuantizedMatrix), every path this CPU
// runs: products against Double products of the decoded operands, the fast paths against the scalar
// reference, and compressedMatmul's two strategies against the dense float product. (That the
// decoders equal ggml's bit for bit is checked against ModelFormats' reference decoders in
// ModelFormatsTests/QuantizedMatrixReferenceTests.swift.)

// MARK: - Test data

/// Random blocks of `type` for a [rows, cols] matrix: random codes, scales that are finite binary16
/// values of a realistic size (|d| ≈ 0.002–0.03), so every code pattern the kernels can meet is met.
func randomQuantizedBytes(_ type: QuantizedBlockType, rows: Int, cols: Int, _ rng: inout TestRandom) -> [UInt8] {
    let blocks = rows * cols / type.blockSize
    var bytes = (0..<blocks * type.blockBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    func putHalf(_ value: Float, _ offset: Int) {
        let bits = Float16(value).bitPattern
        bytes[offset] = UInt8(bits & 0xFF)
        bytes[offset + 1] = UInt8(bits >> 8)
    }
    for b in 0..<blocks {
        let base = b * type.blockBytes
        let d = rng.uniform(0.002, 0.03)
        switch type {
        case .q8_0, .q4_0:
            putHalf(d, base)
        case .q4_1:
            putHalf(d, base)
            putHalf(rng.uniform(-0.2, 0.2), base + 2)  // the block minimum m, either sign
        case .q4_K:
            putHalf(d / 16, base)       // 6-bit scales up to 63
            putHalf(d / 16, base + 2)
        case .q6_K:
            putHalf(d / 32, base + 208)  // signed 8-bit scales
        }
    }
    return bytes
}

/// One token's quantised activations decoded to Float, from the layout quant_internal.h documents:
/// q int8[cols] | d f32[cols / block] | (Q4_1) s f32[cols / 32] | (K types) bsums int16[cols / 16].
struct DecodedActivations {
    var values: [Float]
    /// The step d of the block holding each column.
    var steps: [Float]
    /// The int8 codes.
    var codes: [Int8]
    var sums: [Float]
    var blockSums: [Int16]
}

func decodeActivations(_ act: UnsafeRawPointer, type: QuantizedBlockType, cols: Int) -> DecodedActivations {
    let block = (type == .q4_K || type == .q6_K) ? 256 : 32
    let nb = cols / block
    let codes = (0..<cols).map { act.load(fromByteOffset: $0, as: Int8.self) }
    let d = (0..<nb).map { act.loadUnaligned(fromByteOffset: cols + 4 * $0, as: Float.self) }
    var sums: [Float] = [], blockSums: [Int16] = []
    if type == .q4_1 { sums = (0..<nb).map { act.loadUnaligned(fromByteOffset: cols + 4 * nb + 4 * $0, as: Float.self) } }
    if block == 256 {
        blockSums = (0..<cols / 16).map { act.loadUnaligned(fromByteOffset: cols + 4 * nb + 2 * $0, as: Int16.self) }
    }
    let steps = (0..<cols).map { d[$0 / block] }
    return DecodedActivations(values: (0..<cols).map { Float(codes[$0]) * steps[$0] }, steps: steps, codes: codes,
                              sums: sums, blockSums: blockSums)
}

/// A matrix, its decoded Float weights (scalar decoder), and a tokens × cols input.
struct QuantizedCase {
    let matrix: QuantizedMatrix
    let weights: [Float]  // [rows, cols]
    let x: [Float]        // [tokens, cols]
    let tokens: Int

    init(_ type: QuantizedBlockType, rows: Int, blocksPerRow: Int, tokens: Int, seed: UInt64) throws {
        var rng = TestRandom(seed: seed)
        let cols = blocksPerRow * type.blockSize
        let matrix = try QuantizedMatrix(type: type, rows: rows, cols: cols,
                                         copying: randomQuantizedBytes(type, rows: rows, cols: cols, &rng), name: "test")
        var w = [Float](repeating: 0, count: rows * cols)
        w.withUnsafeMutableBufferPointer { matrix.dequantize(rows: 0..<rows, into: $0.baseAddress!, path: .scalar) }
        self.matrix = matrix
        weights = w
        // Inputs with an outlier column, as transformer activations have: the 8-bit rounding then
        // matters, and the bound below must account for it.
        var values = rng.values(tokens * cols, -1.5, 1.5)
        for t in 0..<tokens { values[t * cols + rng.below(cols)] *= 12 }
        x = values
        self.tokens = tokens
    }

    var rows: Int { matrix.rows }
    var cols: Int { matrix.cols }

    /// The activations quantised on `path`, as raw bytes (tokens rows).
    func activations(_ path: KernelPath) -> [UInt8] {
        var act = [UInt8](repeating: 0xAA, count: tokens * matrix.activationRowBytes)
        x.withUnsafeBufferPointer { xb in
            act.withUnsafeMutableBytes { matrix.quantizeActivations(xb.baseAddress!, tokens: tokens, stride: cols,
                                                                    into: $0.baseAddress!, path: path) }
        }
        return act
    }

    func decoded(_ act: [UInt8], token t: Int) -> DecodedActivations {
        act.withUnsafeBytes { decodeActivations($0.baseAddress! + t * matrix.activationRowBytes, type: matrix.type, cols: cols) }
    }

    /// y [tokens, ldy] from the direct kernel on rows `range`, starting from `initial`.
    func multiply(_ act: [UInt8], rows range: Range<Int>, ldy: Int, initial: [Float], accumulate: Bool,
                  path: KernelPath) -> [Float] {
        var y = initial
        act.withUnsafeBytes { a in
            y.withUnsafeMutableBufferPointer {
                matrix.multiply(activations: a.baseAddress!, tokens: tokens, into: $0.baseAddress!, ldy: ldy,
                                rows: range, accumulate: accumulate, path: path)
            }
        }
        return y
    }

    /// Σ_i W[o][i]·v[i] in Double, and Σ_i |W[o][i]·v[i]| (the scale of its rounding errors).
    func dot(row o: Int, _ v: [Float]) -> (value: Double, magnitude: Double) {
        var value = 0.0, magnitude = 0.0
        for i in 0..<cols {
            let p = Double(weights[o * cols + i]) * Double(v[i])
            value += p
            magnitude += abs(p)
        }
        return (value, magnitude)
    }
}

// MARK: - Tests

@Suite("Quantised matrix products")
struct QuantizedMatrixTests {
    static let types = QuantizedBlockType.allCases

    @Test("the activation quantiser writes the same bytes on every path, within half a step of x",
          arguments: types)
    func activationQuantiser(type: QuantizedBlockType) throws {
        let c = try QuantizedCase(type, rows: 1, blocksPerRow: type.blockSize == 32 ? 24 : 3, tokens: 3, seed: 11)
        let reference = c.activations(.scalar)
        for path in KernelPath.supported {
            #expect(c.activations(path) == reference, "\(type) activations on \(path)")
        }
        for t in 0..<c.tokens {
            let a = c.decoded(reference, token: t)
            let block = type.blockSize
            for i in 0..<c.cols {
                let x = c.x[t * c.cols + i]
                #expect(a.codes[i] >= -127, "code −128 at \(i)")
                #expect(abs(a.values[i] - x) <= a.steps[i] * 0.5001, "\(type) x[\(t)][\(i)] = \(x) decodes to \(a.values[i])")
            }
            // Each block's step is its max|x| / 127.
            for b in 0..<c.cols / block {
                let amax = (0..<block).map { abs(c.x[t * c.cols + b * block + $0]) }.max()!
                #expect(a.steps[b * block] == amax / 127)
            }
            if type == .q4_1 {
                for b in 0..<c.cols / 32 {
                    let sum = (0..<32).reduce(0) { $0 + Int(a.codes[32 * b + $1]) }
                    #expect(a.sums[b] == a.steps[32 * b] * Float(sum))
                }
            }
            if type == .q4_K || type == .q6_K {
                for g in 0..<c.cols / 16 {
                    let sum = (0..<16).reduce(0) { $0 + Int(a.codes[16 * g + $1]) }
                    #expect(Int(a.blockSums[g]) == sum)
                }
            }
        }
    }

    @Test("the product equals the Double product of the decoded weights and decoded activations, on every path",
          arguments: types)
    func productOfDecodedOperands(type: QuantizedBlockType) throws {
        var rng = TestRandom(seed: 7)
        for (rows, tokens) in [(1, 1), (7, 3), (37, 9), (6, 5)] {
            let blocks = type.blockSize == 32 ? 1 + rng.below(40) : 1 + rng.below(4)
            let c = try QuantizedCase(type, rows: rows, blocksPerRow: blocks, tokens: tokens, seed: rng.next())
            let act = c.activations(.scalar)
            for path in KernelPath.supported {
                let y = c.multiply(act, rows: 0..<rows, ldy: rows, initial: [Float](repeating: .nan, count: tokens * rows),
                                   accumulate: false, path: path)
                var worst = 0.0
                for t in 0..<tokens {
                    let xq = c.decoded(act, token: t).values
                    for o in 0..<rows {
                        let (want, magnitude) = c.dot(row: o, xq)
                        worst = max(worst, abs(Double(y[t * rows + o]) - want) / max(magnitude, 1e-30))
                    }
                }
                #expect(worst <= 1e-5, "\(type) \(path) [\(rows), \(c.cols)] × \(tokens) tokens: error \(worst) of Σ|w·x|")
            }
        }
    }

    @Test("the product is within the 8-bit activation rounding of the float product of the original x",
          arguments: types)
    func productOfOriginalInput(type: QuantizedBlockType) throws {
        let c = try QuantizedCase(type, rows: 13, blocksPerRow: type.blockSize == 32 ? 48 : 6, tokens: 4, seed: 3)
        let act = c.activations(.scalar)
        for path in KernelPath.supported {
            let y = c.multiply(act, rows: 0..<c.rows, ldy: c.rows, initial: [Float](repeating: 0, count: c.tokens * c.rows),
                               accumulate: false, path: path)
            for t in 0..<c.tokens {
                let steps = c.decoded(act, token: t).steps
                let x = Array(c.x[t * c.cols..<(t + 1) * c.cols])
                for o in 0..<c.rows {
                    // |Σ w·(x − x̂)| ≤ Σ |w|·d/2 (each value rounds to the nearest step), plus the
                    // kernel's own float rounding.
                    var bound = 0.0
                    for i in 0..<c.cols { bound += abs(Double(c.weights[o * c.cols + i])) * Double(steps[i]) / 2 }
                    let (want, magnitude) = c.dot(row: o, x)
                    let error = abs(Double(y[t * c.rows + o]) - want)
                    #expect(error <= bound * 1.0001 + 1e-5 * magnitude,
                            "\(type) \(path) y[\(t)][\(o)] = \(y[t * c.rows + o]), float product \(want), bound \(bound)")
                    // The bound is not vacuous: it is a small fraction of the product's scale.
                    #expect(bound < 0.05 * magnitude)
                }
            }
        }
    }

    @Test("every path agrees with the scalar reference on random shapes, row ranges and accumulation",
          arguments: types)
    func pathsAgree(type: QuantizedBlockType) throws {
        var rng = TestRandom(seed: 99)
        for trial in 0..<8 {
            let rows = 1 + rng.below(23)
            let tokens = 1 + rng.below(9)
            let blocks = type.blockSize == 32 ? 1 + rng.below(70) : 1 + rng.below(5)
            let c = try QuantizedCase(type, rows: rows, blocksPerRow: blocks, tokens: tokens, seed: rng.next())
            let lower = rng.below(rows), upper = lower + 1 + rng.below(rows - lower)
            let ldy = rows + rng.below(3)
            let accumulate = trial % 2 == 1
            let initial = rng.values(tokens * ldy, -3, 3)
            let act = c.activations(.scalar)
            let reference = c.multiply(act, rows: lower..<upper, ldy: ldy, initial: initial, accumulate: accumulate, path: .scalar)
            for t in 0..<tokens {
                let xq = c.decoded(act, token: t).values
                for o in 0..<ldy {
                    let i = t * ldy + o
                    if o < lower || o >= upper {
                        #expect(reference[i] == initial[i], "scalar wrote y[\(t)][\(o)] outside rows \(lower)..<\(upper)")
                    } else {
                        let (want, magnitude) = c.dot(row: o, xq)
                        let expected = (accumulate ? Double(initial[i]) : 0) + want
                        #expect(abs(Double(reference[i]) - expected) <= 1e-5 * (magnitude + abs(Double(initial[i]))) + 1e-7,
                                "\(type) scalar y[\(t)][\(o)]")
                    }
                }
            }
            for path in KernelPath.supported where path != .scalar {
                let y = c.multiply(act, rows: lower..<upper, ldy: ldy, initial: initial, accumulate: accumulate, path: path)
                for t in 0..<tokens {
                    let xq = c.decoded(act, token: t).values
                    for o in 0..<ldy {
                        let i = t * ldy + o
                        if o < lower || o >= upper {
                            #expect(y[i] == initial[i], "\(path) wrote y[\(t)][\(o)] outside rows \(lower)..<\(upper)")
                        } else {
                            let magnitude = c.dot(row: o, xq).magnitude + abs(Double(initial[i]))
                            #expect(abs(Double(y[i]) - Double(reference[i])) <= 5e-6 * magnitude + 1e-7,
                                    "\(type) \(path) y[\(t)][\(o)] = \(y[i]), scalar \(reference[i]) (rows \(lower)..<\(upper) of \(rows), \(tokens) tokens, accumulate \(accumulate))")
                        }
                    }
                }
            }
        }
    }

    @Test("row decoding is identical on every path and rows decode independently", arguments: types)
    func decodingPathsAgree(type: QuantizedBlockType) throws {
        let c = try QuantizedCase(type, rows: 9, blocksPerRow: type.blockSize == 32 ? 5 : 2, tokens: 1, seed: 5)
        for path in KernelPath.supported {
            var out = [Float](repeating: .nan, count: 4 * c.cols)
            out.withUnsafeMutableBufferPointer { c.matrix.dequantize(rows: 3..<7, into: $0.baseAddress!, path: path) }
            let want = Array(c.weights[3 * c.cols..<7 * c.cols])
            #expect(out.map(\.bitPattern) == want.map(\.bitPattern), "\(type) rows 3..<7 on \(path)")
        }
    }

    @Test("compressedMatmul's direct kernel and its decoded-panel path both match the dense float product",
          arguments: types)
    func compressedMatmulStrategies(type: QuantizedBlockType) throws {
        _ = try Kernels.prepare()
        let scratch = CompressedMatmulScratch()
        for tokens in [1, 5, 8, 9, 20] {
            let c = try QuantizedCase(type, rows: 45, blocksPerRow: type.blockSize == 32 ? 16 : 2, tokens: tokens,
                                      seed: UInt64(tokens))
            let x = Tensor(shape: [tokens, c.cols], values: c.x)
            for path in KernelPath.supported {
                for accumulate in [false, true] {
                    let initial = (0..<tokens * c.rows).map { Float($0 % 7) - 3 }
                    let y = Tensor(shape: [tokens, c.rows], values: initial)
                    compressedMatmul(x, c.matrix, into: y, accumulate: accumulate, scratch: scratch, path: path)
                    let direct = tokens <= compressedMatmulDirectTokenLimit
                    for t in 0..<tokens {
                        let xt = Array(c.x[t * c.cols..<(t + 1) * c.cols])
                        // The direct kernel rounds x to 8 bits: allow the bound of productOfOriginalInput;
                        // the panel path multiplies the decoded weights by x in float.
                        let steps: [Float] = direct ? {
                            let a = c.activations(path)
                            return c.decoded(a, token: t).steps
                        }() : []
                        for o in 0..<c.rows {
                            let (want, magnitude) = c.dot(row: o, xt)
                            var bound = 1e-5 * magnitude
                            if direct {
                                for i in 0..<c.cols { bound += abs(Double(c.weights[o * c.cols + i])) * Double(steps[i]) / 2 * 1.0001 }
                            }
                            let got = Double(y.pointer[t * c.rows + o]) - (accumulate ? Double(initial[t * c.rows + o]) : 0)
                            #expect(abs(got - want) <= bound + 1e-5,
                                    "\(type) \(path) \(tokens) tokens accumulate \(accumulate) y[\(t)][\(o)]: \(got) vs \(want)")
                        }
                    }
                }
            }
        }
    }

    @Test("a matrix whose columns are not whole blocks, or whose bytes do not fit its shape, is refused")
    func invalidMatrices() {
        #expect(throws: QuantizedMatrixError.columnsNotBlockMultiple(name: "blk.0.ffn_down.weight", type: .q4_K, cols: 288)) {
            try QuantizedMatrix(type: .q4_K, rows: 2, cols: 288, copying: [UInt8](repeating: 0, count: 400),
                                name: "blk.0.ffn_down.weight")
        }
        #expect(throws: QuantizedMatrixError.byteCountMismatch(name: "w", type: .q8_0, rows: 3, cols: 64, expected: 204, actual: 203)) {
            try QuantizedMatrix(type: .q8_0, rows: 3, cols: 64, copying: [UInt8](repeating: 0, count: 203), name: "w")
        }
        #expect(throws: QuantizedMatrixError.invalidShape(name: "w", rows: 0, cols: 32)) {
            try QuantizedMatrix(type: .q4_0, rows: 0, cols: 32, copying: [UInt8](), name: "w")
        }
        let error = QuantizedMatrixError.columnsNotBlockMultiple(name: "blk.0.ffn_down.weight", type: .q4_K, cols: 288)
        #expect(error.description.contains("blk.0.ffn_down.weight") && error.description.contains("256"))
    }

    @Test("each block type maps to its GGML id and back")
    func typeIDs() {
        for type in QuantizedBlockType.allCases {
            #expect(QuantizedBlockType(ggmlTypeID: type.ggmlTypeID) == type)
            #expect(ck_quant_supported(type.ggmlTypeID) == 1)
        }
        #expect(QuantizedBlockType(ggmlTypeID: 1) == nil)  // F16
        #expect(ck_quant_supported(13) == 0)  // Q5_K: no kernel
    }
}
