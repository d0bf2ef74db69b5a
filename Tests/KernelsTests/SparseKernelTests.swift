import Testing
@testable import Kernels

/// The C sparse kernels on every path this CPU runs, held to the Swift reference decoder, a Swift
/// reference of the activation quantiser, and Double products of what both stand for.
@Suite struct SparseKernelTests {
    /// (rows, cols, density; 2:4 when density is nil): cols off multiples of 64, odd rows.
    static let shapes: [(Int, Int, Double?)] = [
        (1, 1, 1.0), (3, 64, 0.5), (5, 100, 0.3), (7, 130, 0.7), (2, 257, 0.0), (9, 513, 0.5),
        (4, 200, nil), (6, 1000, 1.0), (5, 333, 0.5),
    ]

    static func matrix(_ index: Int, kind: SparseValueKind) -> (SparseMatrix, Tensor) {
        let (rows, cols, density) = shapes[index]
        var random = TestRandom(seed: UInt64(100 + index))
        let dense = sparseTestMatrix(rows: rows, cols: cols, density: density ?? 0.5, twoOfFour: density == nil,
                                     random: &random)
        let m = SparseMatrix.encode(dense, kind: kind)
        return (m, m.decode())
    }

    @Test(arguments: SparseValueKind.allCases, KernelPath.supported)
    func dequantizingRowsEqualsTheReferenceDecodeExactly(kind: SparseValueKind, path: KernelPath) {
        for index in Self.shapes.indices {
            let (m, decoded) = Self.matrix(index, kind: kind)
            for range in [0..<m.rows, (m.rows / 2)..<m.rows] where !range.isEmpty {
                var out = [Float](repeating: .nan, count: range.count * m.cols)
                m.dequantize(rows: range, into: &out, path: path)
                let want = Array(decoded.scalars[(range.lowerBound * m.cols)..<(range.upperBound * m.cols)])
                #expect(out == want, "\(kind) \(path) shape \(Self.shapes[index]) rows \(range)")
            }
        }
    }

    @Test(arguments: SparseValueKind.allCases, KernelPath.supported)
    func quantizedActivationsEqualTheSwiftReferenceBytes(kind: SparseValueKind, path: KernelPath) {
        var random = TestRandom(seed: 7)
        for cols in [1, 63, 64, 65, 200, 1000] {
            let tokens = 3, stride = cols + 5
            var x = random.values(tokens * stride, -3, 3)
            x[0] = 0  // a zero and an all-zero group are quantised too
            let m = SparseMatrix.encode(Tensor(zeros: [1, cols]), kind: kind)
            let rowBytes = m.activationRowBytes
            var act = [UInt8](repeating: 0xAA, count: tokens * rowBytes)
            act.withUnsafeMutableBytes { m.quantizeActivations(x, tokens: tokens, stride: stride, into: $0.baseAddress!, path: path) }
            for t in 0..<tokens {
                let want = sparseReferenceActivations(kind: kind, x: Array(x[(t * stride)..<(t * stride + cols)]))
                #expect(want.count == rowBytes)
                let got = Array(act[(t * rowBytes)..<((t + 1) * rowBytes)])
                let firstDifference = got.indices.first { got[$0] != want[$0] }
                #expect(firstDifference == nil, "\(kind) \(path) cols \(cols) token \(t): byte \(firstDifference ?? -1) differs")
            }
        }
    }

    @Test(arguments: SparseValueKind.allCases, KernelPath.supported)
    func theProductEqualsTheDoubleProductOfDecodedWeightsAndActivations(kind: SparseValueKind, path: KernelPath) {
        var random = TestRandom(seed: 31)
        for index in Self.shapes.indices {
            let (m, decoded) = Self.matrix(index, kind: kind)
            let rows = m.rows, cols = m.cols
            for tokens in 1...9 {
                let x = random.values(tokens * cols)
                let rowBytes = m.activationRowBytes
                let act = UnsafeMutableRawPointer.allocate(byteCount: tokens * rowBytes, alignment: 64)
                defer { act.deallocate() }
                m.quantizeActivations(x, tokens: tokens, stride: cols, into: act, path: path)
                let accumulate = tokens % 2 == 0
                let range = tokens % 3 == 0 ? (rows / 2)..<rows : 0..<rows
                let before = random.values(tokens * rows)
                var y = before
                m.multiply(activations: act, tokens: tokens, into: &y, ldy: rows, rows: range, accumulate: accumulate, path: path)
                for t in 0..<tokens {
                    let xt = sparseActivationValues(kind: kind, row: act + t * rowBytes, cols: cols)
                    for o in 0..<rows {
                        let got = y[t * rows + o]
                        guard range.contains(o) else {
                            #expect(got == before[t * rows + o], "row \(o) outside \(range) was written")
                            continue
                        }
                        var want = 0.0, magnitude = 0.0
                        for i in 0..<cols {
                            let term = Double(decoded.pointer[o * cols + i]) * xt[i]
                            want += term
                            magnitude += abs(term)
                        }
                        if accumulate { want += Double(before[t * rows + o]); magnitude += abs(Double(before[t * rows + o])) }
                        #expect(abs(Double(got) - want) <= 1e-5 * magnitude + 1e-30,
                                "\(kind) \(path) shape \(Self.shapes[index]) tokens \(tokens) y[\(t)][\(o)] = \(got), want \(want)")
                    }
                }
            }
        }
    }

    @Test(arguments: SparseValueKind.allCases)
    func everyPathAgreesWithTheScalarReference(kind: SparseValueKind) {
        var random = TestRandom(seed: 77)
        let (m, _) = Self.matrix(8, kind: kind)
        let tokens = 5
        let x = random.values(tokens * m.cols)
        let act = UnsafeMutableRawPointer.allocate(byteCount: tokens * m.activationRowBytes, alignment: 64)
        defer { act.deallocate() }
        m.quantizeActivations(x, tokens: tokens, stride: m.cols, into: act, path: .scalar)
        var reference = [Float](repeating: 0, count: tokens * m.rows)
        m.multiply(activations: act, tokens: tokens, into: &reference, ldy: m.rows, rows: 0..<m.rows, accumulate: false, path: .scalar)
        for path in KernelPath.supported where path != .scalar {
            var y = [Float](repeating: 0, count: tokens * m.rows)
            m.multiply(activations: act, tokens: tokens, into: &y, ldy: m.rows, rows: 0..<m.rows, accumulate: false, path: path)
            for i in y.indices {
                #expect(abs(y[i] - reference[i]) <= 1e-5 * max(1, abs(reference[i])), "\(kind) \(path) y[\(i)]")
            }
        }
    }

    /// compressedMatmul: ≤ 8 tokens multiplies quantised activations directly (within the bound of
    /// the activations' rounding), more decodes panels for sgemm (float x: to float rounding).
    @Test(arguments: SparseValueKind.allCases, [3, 8, 12])
    func compressedMatmulMatchesTheDenseFloatProduct(kind: SparseValueKind, tokens: Int) throws {
        _ = try Kernels.prepare()
        var random = TestRandom(seed: 3)
        let rows = 37, cols = 300
        let w = SparseMatrix.encode(sparseTestMatrix(rows: rows, cols: cols, density: 0.5, random: &random), kind: kind)
        let decoded = w.decode()
        let x = random.tensor([tokens, cols])
        let y = Tensor(zeros: [tokens, rows])
        compressedMatmul(x, w, into: y, scratch: CompressedMatmulScratch())
        let direct = tokens <= compressedMatmulDirectTokenLimit
        for t in 0..<tokens {
            for o in 0..<rows {
                var want = 0.0, magnitude = 0.0, rounding = 0.0
                for g in 0..<((cols + 63) / 64) {
                    let columns = (g * 64)..<min(cols, g * 64 + 64)
                    let absmax = columns.map { abs(Double(x.pointer[t * cols + $0])) }.max()!
                    for i in columns {
                        let wi = Double(decoded.pointer[o * cols + i]), xi = Double(x.pointer[t * cols + i])
                        want += wi * xi
                        magnitude += abs(wi * xi)
                        // int8 activations: each x within half a step of absmax / 127 (plus float slack).
                        if direct && kind != .f16 { rounding += abs(wi) * absmax / 254 * 1.001 }
                    }
                }
                let got = Double(y.pointer[t * rows + o])
                #expect(abs(got - want) <= rounding + 1e-5 * magnitude + 1e-6,
                        "\(kind) tokens \(tokens) y[\(t)][\(o)] = \(got), want \(want)")
            }
        }
    }
}
