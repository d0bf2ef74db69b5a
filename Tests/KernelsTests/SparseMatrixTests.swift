import CKernels
import Testing
@testable import Kernels

/// The sparse encoding (docs/sparse-format.md): the encoder's bytes against a hand-worked example,
/// the round trip through the reference decoder, and validate() refusing malformed views.
@Suite struct SparseMatrixTests {
    // MARK: - Round trip

    @Test(arguments: SparseValueKind.allCases)
    func encodingThenDecodingKeepsTheMaskAndEachWeightWithinHalfAStep(kind: SparseValueKind) {
        var random = TestRandom(seed: 11)
        let rows = 7, cols = 150
        let dense = sparseTestMatrix(rows: rows, cols: cols, density: 0.5, random: &random)
        // Magnitudes spread over several binary orders, so the f16 rounding of scales matters.
        for i in stride(from: 0, to: dense.count, by: 5) { dense.pointer[i] *= 37 }
        let m = SparseMatrix.encode(dense, kind: kind)
        let decoded = m.decode()
        var stored = 0
        for o in 0..<rows {
            for i in 0..<cols {
                let w = dense.pointer[o * cols + i], got = decoded.pointer[o * cols + i]
                let bit = m.masks[o * m.groups + i / 64] >> UInt64(i % 64) & 1
                #expect((bit == 1) == (w != 0), "mask bit of (\(o), \(i))")
                if w == 0 {
                    #expect(got == 0, "unstored weight (\(o), \(i)) decodes to \(got)")
                    continue
                }
                stored += 1
                switch kind {
                case .f16:
                    #expect(got == Float(Float16(w)), "f16 weight (\(o), \(i)): \(got) for \(w)")
                case .s8:
                    let scale = Float(Float16(bitPattern: m.scales![o * m.groups + i / 64]))
                    #expect(abs(got - w) <= 0.5 * abs(scale) * 1.0001, "weight (\(o), \(i)): \(got) for \(w), scale \(scale)")
                case .s4:
                    // The nearest of the 16 levels at the group's scale: no other level is closer.
                    let scale = Float(Float16(bitPattern: m.scales![o * m.groups + i / 64]))
                    #expect(scale != 0)
                    let nearest = SparseMatrix.s4Levels.map { abs(scale * Float($0) - w) }.min()!
                    #expect(abs(got - w) <= nearest * 1.0001, "weight (\(o), \(i)): \(got) for \(w), scale \(scale)")
                }
            }
        }
        #expect(abs(m.density - Double(stored) / Double(rows * cols)) < 1e-12)
        #expect(throws: Never.self) { try m.validate() }
    }

    @Test func anAllZeroMatrixStoresNothingAndDecodesToZeros() throws {
        for kind in SparseValueKind.allCases {
            let m = SparseMatrix.encode(Tensor(zeros: [3, 70]), kind: kind)
            #expect(m.valueByteCount == 0 && m.density == 0)
            #expect(m.decode().scalars.allSatisfy { $0 == 0 })
            try m.validate()
        }
    }

    // MARK: - The bytes of a hand-worked example

    /// 2 × 70 (groups of 64 and 6 columns); row 0 stores (0: 127), (2: −3), (65: 254); row 1 stores
    /// (63: −63.5), (64: 508), (69: −8). Each group's scale is a power of two or exact in f16.
    static func example() -> Tensor {
        let t = Tensor(zeros: [2, 70])
        t.pointer[0] = 127
        t.pointer[2] = -3
        t.pointer[65] = 254
        t.pointer[70 + 63] = -63.5
        t.pointer[70 + 64] = 508
        t.pointer[70 + 69] = -8
        return t
    }

    @Test func theMasksSetBitJForColumn64GPlusJLittleEndian() {
        let bytes = SparseSections(SparseMatrix.encode(Self.example(), kind: .s8)).masks
        #expect(bytes == [0x05, 0, 0, 0, 0, 0, 0, 0,   0x02, 0, 0, 0, 0, 0, 0, 0,
                          0, 0, 0, 0, 0, 0, 0, 0x80,   0x21, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func s8StoresInt8AgainstAnF16ScaleOfMaxOver127() {
        let m = SparseMatrix.encode(Self.example(), kind: .s8)
        let s = SparseSections(m)
        #expect(s.rowOffsets == [0, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0])
        // 127 / 1, −3 / 1 | 254 / 2 | −63.5 / 0.5 | 508 / 4, −8 / 4
        #expect(Array(s.values.prefix(6)) == [127, 0xFD, 127, 0x81, 127, 0xFE])
        #expect(s.values.count == 6 + 64 && s.values.suffix(64).allSatisfy { $0 == 0 })
        // f16 1.0, 2.0, 0.5, 4.0
        #expect(s.scales == [0x00, 0x3C, 0x00, 0x40, 0x00, 0x38, 0x00, 0x44])
    }

    @Test func s4PacksTheFirstValueInTheLowNibbleAsCodebookIndices() {
        // One group (28, −2.5, 9.5, −26) = 0.5 × (56, −5, 19, −52): four levels exactly. The positive
        // candidates 0.6…1.0 × 28 / 64 leave an error (at 1.0, 0.4375, −26 is nearest −64); 1.05's
        // (0.459375) nibbles are these, and their least-squares scale is 0.5 exactly, with no error.
        // Nibbles: 56 → 15, −5 → 7, 19 → 11, −52 → 1: bytes 0x7F, 0x1B (first value low).
        let t = Tensor(shape: [1, 4], values: [28, -2.5, 9.5, -26])
        let m = SparseMatrix.encode(t, kind: .s4)
        let s = SparseSections(m)
        #expect(s.scales == [0x00, 0x38])  // f16 0.5
        #expect(Array(s.values.prefix(2)) == [0x7F, 0x1B])
        #expect(m.decode().scalars == [28, -2.5, 9.5, -26])
    }

    @Test func s4LevelsAreSortedWithZeroAtNibble8AndWithinTheKernelsBound() {
        let levels = SparseMatrix.s4Levels
        #expect(levels.count == 16 && levels == levels.sorted() && Set(levels).count == 16)
        #expect(levels[8] == 0 && levels.allSatisfy { abs(Int($0)) <= 64 })
        // The C kernels' table is the same (their results are held to decode() in SparseKernelTests too).
        let c = withUnsafeBytes(of: ck_sparse_s4_levels) { Array($0.bindMemory(to: Int8.self)) }
        #expect(c == levels)
    }

    @Test func s4NibblesAreTheNearestLevelWithTiesToTheLowerOne() {
        // Midpoints around 0: −8, −2.5 | 3, 9; at the top 39, 50.
        #expect(SparseMatrix.s4Nibble(3) == 8 && SparseMatrix.s4Nibble(3.001) == 9)
        #expect(SparseMatrix.s4Nibble(-2.5) == 7 && SparseMatrix.s4Nibble(-2.499) == 8)
        #expect(SparseMatrix.s4Nibble(50) == 14 && SparseMatrix.s4Nibble(50.001) == 15)
        #expect(SparseMatrix.s4Nibble(1000) == 15 && SparseMatrix.s4Nibble(-1000) == 0)
        #expect(SparseMatrix.s4Nibble(0) == 8 && SparseMatrix.s4Nibble(-0.0) == 8 && SparseMatrix.s4Nibble(.nan) == 8)
    }

    @Test func s4ScaleSearchIsNeverWorseThanTheMaxOver64Scale() {
        // Per group, the chosen scale's squared error (decoded against the weights, in Double) is at
        // most that of the plain scale max|w| / 64, one of the candidates; on random groups it is
        // usually smaller.
        var random = TestRandom(seed: 5)
        let rows = 40, cols = 128
        let dense = sparseTestMatrix(rows: rows, cols: cols, density: 0.5, random: &random)
        let m = SparseMatrix.encode(dense, kind: .s4)
        let decoded = m.decode()
        var better = 0
        for o in 0..<rows {
            for g in 0..<2 {
                let columns = (64 * g)..<(64 * g + 64)
                let w = columns.map { dense.pointer[o * cols + $0] }.filter { $0 != 0 }
                guard let largest = w.map({ abs($0) }).max() else { continue }
                let plain = Float(Float16(largest / 64))
                let plainError = w.reduce(0.0) { sum, x in
                    let level = SparseMatrix.s4Levels[Int(SparseMatrix.s4Nibble(x * (1 / plain)))]
                    let d = Double(x) - Double(plain) * Double(level)
                    return sum + d * d
                }
                let chosenError = columns.reduce(0.0) { sum, i in
                    let d = Double(dense.pointer[o * cols + i]) - Double(decoded.pointer[o * cols + i])
                    return sum + d * d
                }
                #expect(chosenError <= plainError * (1 + 1e-5), "row \(o) group \(g): \(chosenError) > \(plainError)")
                if chosenError < plainError * 0.99 { better += 1 }
            }
        }
        #expect(better > rows / 2, "the search improved only \(better) of \(2 * rows) groups")
    }

    @Test(arguments: [SparseValueKind.s8, .s4])
    func emptyGroupsStoreTheScaleZeroItself(kind: SparseValueKind) throws {
        // Row 0 empty; row 1 stores only in its second group (columns 64…99).
        let values = (0..<200).map { index -> Float in index >= 164 ? Float(index - 180) / 7 : 0 }
        let m = SparseMatrix.encode(Tensor(shape: [2, 100], values: values), kind: kind)
        let scales = try #require(m.scales)
        #expect((0..<3).map { scales[$0] } == [0, 0, 0], "+0 bits, not −0 (0x8000)")
        #expect(scales[3] != 0)
    }

    @Test(arguments: SparseValueKind.allCases)
    func thePooledKernelDecodeIsTheReferenceDecodeBitForBit(kind: SparseValueKind) {
        // 600 rows of 300 columns: several chunks of `dequantizeChunkRows` for the worker pool.
        var random = TestRandom(seed: 29)
        let dense = sparseTestMatrix(rows: 600, cols: 300, density: 0.4, random: &random)
        #expect(SparseMatrix.dequantizeChunkRows(cols: 300) < 300)
        let m = SparseMatrix.encode(dense, kind: kind)
        let reference = m.decode().scalars
        for path in KernelPath.supported {
            let fast = m.dequantized(path: path).scalars
            // Signed zeros count: an unstored weight is +0, a stored nibble 8 under a negative scale −0.
            let first = fast.indices.first { fast[$0].bitPattern != reference[$0].bitPattern }
            #expect(first == nil, "\(kind) on the \(path) path: element \(first ?? -1): \(first.map { fast[$0] } ?? 0) against \(first.map { reference[$0] } ?? 0)")
        }
    }

    @Test func f16StoresHalvesLittleEndianWithoutScales() {
        let m = SparseMatrix.encode(Self.example(), kind: .f16)
        let s = SparseSections(m)
        #expect(s.scales == nil)
        #expect(s.rowOffsets == [0, 0, 0, 0, 6, 0, 0, 0, 12, 0, 0, 0])
        // 127 = 0x57F0, −3 = 0xC200, 254 = 0x5BF0, −63.5 = 0xD3F0, 508 = 0x5FF0, −8 = 0xC800
        #expect(Array(s.values.prefix(12)) == [0xF0, 0x57, 0x00, 0xC2, 0xF0, 0x5B, 0xF0, 0xD3, 0xF0, 0x5F, 0x00, 0xC8])
        #expect(m.decode().scalars == Self.example().scalars)
    }

    // MARK: - validate() refuses malformed views

    static func encoded(_ kind: SparseValueKind) -> SparseMatrix {
        var random = TestRandom(seed: 5)
        return SparseMatrix.encode(sparseTestMatrix(rows: 4, cols: 70, density: 0.5, random: &random), kind: kind)
    }

    static func sections(_ kind: SparseValueKind) -> SparseSections { SparseSections(encoded(kind)) }

    func refusal(_ s: SparseSections, kind: SparseValueKind = .s8) -> SparseFormatError? {
        do {
            _ = try s.open(rows: 4, cols: 70, kind: kind)
            return nil
        } catch {
            return error
        }
    }

    @Test func aValidViewOpens() throws {
        for kind in SparseValueKind.allCases {
            let m = try Self.sections(kind).open(rows: 4, cols: 70, kind: kind)
            #expect(m.decode().scalars == Self.encoded(kind).decode().scalars)
        }
    }

    @Test func truncatedValuesAreRefusedNamingValues() {
        var s = Self.sections(.s8)
        s.values.removeLast()
        let error = refusal(s)
        #expect(error?.field == .values)
        #expect(error?.description.contains("values") == true && error?.description.contains("padding") == true)
    }

    @Test func offsetsThatDisagreeWithTheMasksAreRefusedNamingTheRow() {
        var s = Self.sections(.s8)
        s.setOffset(2, s.offset(2) + 1)
        let error = refusal(s)
        #expect(error?.field == .rowOffsets && error?.row == 2)
        #expect(error?.description.contains("row_offsets of row 2") == true)
    }

    @Test func decreasingOffsetsAreRefused() {
        var s = Self.sections(.s8)
        s.setOffset(3, s.offset(2) - 1)
        let error = refusal(s)
        #expect(error?.field == .rowOffsets && error?.row == 3)
        #expect(error?.problem.contains("must not decrease") == true)
    }

    @Test func aFirstOffsetOtherThanZeroIsRefused() {
        var s = Self.sections(.s8)
        s.setOffset(0, 1)
        #expect(refusal(s)?.field == .rowOffsets)
    }

    @Test func maskBitsPastTheLastColumnAreRefusedNamingRowAndGroup() {
        var s = Self.sections(.s8)
        s.masks[(2 * 2 + 1) * 8] |= 0x40  // row 2, group 1, column 64 + 6 = 70
        let error = refusal(s)
        #expect(error?.field == .mask && error?.row == 2 && error?.group == 1)
        #expect(error?.description.contains("mask of row 2, group 1") == true)
    }

    @Test func sectionsOfTheWrongSizeAreRefusedNamingTheSection() {
        var s = Self.sections(.s8)
        s.masks.removeLast(8)
        #expect(refusal(s)?.field == .mask)
        s = Self.sections(.s8)
        s.rowOffsets.append(0)
        #expect(refusal(s)?.field == .rowOffsets)
        s = Self.sections(.s8)
        s.scales = nil
        #expect(refusal(s)?.field == .scales)
        s = Self.sections(.f16)
        s.scales = [0, 0]
        #expect(refusal(s, kind: .f16)?.field == .scales)
    }

    @Test func aScaleThatIsInfiniteOrSetForAnEmptyGroupIsRefused() {
        var s = Self.sections(.s8)
        s.scales![3] = 0x7C  // row 0, group 1: f16 0x7C00 = +∞
        var error = refusal(s)
        #expect(error?.field == .scales && error?.row == 0 && error?.group == 1)
        s = SparseSections(SparseMatrix.encode(Tensor(zeros: [4, 70]), kind: .s8))
        s.scales![0] = 1
        error = refusal(s)
        #expect(error?.field == .scales && error?.row == 0 && error?.group == 0)
    }

    @Test func anS4GroupWithANonZeroUnusedNibbleIsRefused() {
        let t = Tensor(zeros: [4, 70])
        t.pointer[0] = 1  // row 0, group 0: one value, its byte's high nibble unused
        var s = SparseSections(SparseMatrix.encode(t, kind: .s4))
        s.values[0] |= 0x30
        let error = refusal(s, kind: .s4)
        #expect(error?.field == .values && error?.row == 0 && error?.group == 0)
    }

    @Test func aWrongShapeIsRefusedBeforeAnythingIsRead() {
        let s = Self.sections(.s8)
        #expect(throws: SparseFormatError.self) { _ = try s.open(rows: 0, cols: 70, kind: .s8) }
        #expect((try? s.open(rows: 5, cols: 70, kind: .s8)) == nil)
    }

    @Test func theErrorNamesTheTensorWhenTheReaderGivesIt() {
        var s = Self.sections(.s8)
        s.values.removeLast()
        #expect(refusal(s)?.named("blk.0.ffn_up.weight").description.contains("'blk.0.ffn_up.weight'") == true)
    }

    // MARK: - Fuzzing

    /// Random byte flips and truncations of valid encodings: validate throws, or every kernel runs
    /// on every path without reading past a buffer (each ends at an unmapped page).
    @Test func damagedEncodingsAreRefusedOrMultiplyWithinTheirBuffers() {
        var random = TestRandom(seed: 2024)
        var refused = 0, accepted = 0
        for _ in 0..<400 {
            let kind = SparseValueKind.allCases[random.below(3)]
            let rows = 1 + random.below(5), cols = 1 + random.below(200)
            let dense = sparseTestMatrix(rows: rows, cols: cols, density: Double(random.uniform(0, 1)), random: &random)
            var s = SparseSections(SparseMatrix.encode(dense, kind: kind))
            let section = random.below(s.scales == nil ? 3 : 4)
            func damage(_ bytes: inout [UInt8]) {
                if random.below(4) == 0, !bytes.isEmpty {
                    bytes.removeLast(1 + random.below(min(bytes.count, 70)))
                } else {
                    for _ in 0...random.below(3) where !bytes.isEmpty {
                        bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8))
                    }
                }
            }
            switch section {
            case 0: damage(&s.masks)
            case 1: damage(&s.rowOffsets)
            case 2: damage(&s.values)
            default: damage(&s.scales!)
            }
            guard let m = try? s.open(rows: rows, cols: cols, kind: kind) else {
                refused += 1
                continue
            }
            accepted += 1
            let x = random.values(3 * cols)
            let act = UnsafeMutableRawPointer.allocate(byteCount: 3 * m.activationRowBytes, alignment: 64)
            defer { act.deallocate() }
            var y = [Float](repeating: 0, count: 3 * rows)
            var decoded = [Float](repeating: 0, count: rows * cols)
            for path in KernelPath.supported {
                m.quantizeActivations(x, tokens: 3, stride: cols, into: act, path: path)
                m.multiply(activations: act, tokens: 3, into: &y, ldy: rows, rows: 0..<rows, accumulate: false, path: path)
                m.dequantize(rows: 0..<rows, into: &decoded, path: path)
            }
        }
        #expect(refused > 50 && accepted > 50, "refused \(refused), accepted \(accepted): both outcomes must be exercised")
    }
}
