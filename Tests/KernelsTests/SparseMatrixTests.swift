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
                case .s8, .s4:
                    let scale = Float(Float16(bitPattern: m.scales![o * m.groups + i / 64]))
                    // Q4_0 clamps w / scale above 7.5 to 7 (−8…7 is asymmetric): up to one step there.
                    let steps: Float = kind == .s4 && w / scale > 7.5 ? 1 : 0.5
                    #expect(abs(got - w) <= steps * abs(scale) * 1.0001, "weight (\(o), \(i)): \(got) for \(w), scale \(scale)")
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

    @Test func s4PacksTheFirstValueInTheLowNibbleWithTheQ4_0Scale() {
        let m = SparseMatrix.encode(Self.example(), kind: .s4)
        let s = SparseSections(m)
        // Row 0: group 0 (127, −3): scale 127 / −8 = −15.875, nibbles 0 and 8 → 0x80; group 1 (254):
        // scale −31.75, nibble 0, the unused high nibble 0 → 0x00. Row 1: (−63.5): scale 7.9375,
        // nibble 0 → 0x00; (508, −8): scale −63.5, nibbles 0 and 8 → 0x80.
        #expect(s.rowOffsets == [0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0])
        #expect(Array(s.values.prefix(4)) == [0x80, 0x00, 0x00, 0x80])
        // f16 −15.875 = 0xCBF0, −31.75 = 0xCFF0, 7.9375 = 0x47F0, −63.5 = 0xD3F0
        #expect(s.scales == [0xF0, 0xCB, 0xF0, 0xCF, 0xF0, 0x47, 0xF0, 0xD3])
        let decoded = m.decode()
        #expect(decoded.pointer[0] == 127 && decoded.pointer[2] == 0, "decoded \(decoded.pointer[0]), \(decoded.pointer[2])")
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
