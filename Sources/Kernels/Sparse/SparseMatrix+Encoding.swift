import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Encoding a dense matrix into docs/sparse-format.md ("The encoding of one matrix") and the plain
/// Swift decoder the C kernels are held to.
extension SparseMatrix {
    /// One allocation holding the four sections of an encoded matrix.
    final class OwnedStorage {
        let base: UnsafeMutableRawPointer

        init(bytes: Int) {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, max(bytes, 64)) == 0, let raw else {
                fatalError("out of memory allocating \(bytes) bytes for a sparse matrix")
            }
            memset(raw, 0, max(bytes, 64))
            base = raw
        }

        deinit { free(base) }
    }

    /// Encodes W [rows, cols] (a rank-2 tensor): its zeros are the unstored weights, every other
    /// value is stored and quantised per the format's rules — the scale rounded to f16 first and the
    /// values quantised against the rounded scale; s8: scale = max|w| / 127, q = round(w / scale);
    /// s4: the scale that minimises the group's squared error over the codebook `s4Levels` (the search of
    /// `ck_sparse_s4_encode_group`), each value the nearest level. Empty groups store scale +0. Non-finite weights do
    /// not trap: ±∞ saturates, NaN becomes 0 (s8) or nibble 8, level 0 (s4); f16 stores them as they are.
    ///
    /// `importances` ([cols], ≥ 0; s4 only): how much an error in each input column costs — the second moment of
    /// that input over calibration tokens. With them each s4 scale minimises Σ h_j (w_j − s · level)² over the
    /// group's stored values (`ck_sparse_s4_encode_group_weighted`): the writer's choice, the format is the same.
    public static func encode(_ dense: Tensor, kind: SparseValueKind, importances: [Float]? = nil) -> SparseMatrix {
        encode(dense, kind: kind, importances: importances, s4Scales: nil)
    }

    /// Encodes W as s4 with the scales given ([rows · groups] f16 bits, as `scales` stores them; 0 for every empty
    /// group) instead of searching them: each stored value gets the nearest level at its group's scale. For weights
    /// already rounded to scale · level elsewhere (`roundS4WithHessian`), this stores exactly those values.
    public static func encodeS4(_ dense: Tensor, scales: [UInt16]) -> SparseMatrix {
        encode(dense, kind: .s4, importances: nil, s4Scales: scales)
    }

    /// s4: the f16 scale the encoder picks for one group's stored values — by the format's search, or with
    /// `weights` (one per value) by the importance-weighted one.
    public static func s4Scale(_ values: [Float], weights: [Float]?) -> Float16 {
        var nibbles = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        let bits = weights.map { ck_sparse_s4_encode_group_weighted(values, $0, Int32(values.count), &nibbles) }
            ?? ck_sparse_s4_encode_group(values, Int32(values.count), &nibbles)
        return Float16(bitPattern: bits)
    }

    private static func encode(_ dense: Tensor, kind: SparseValueKind, importances: [Float]?, s4Scales: [UInt16]?) -> SparseMatrix {
        precondition(dense.rank == 2 && dense.shape[0] > 0 && dense.shape[1] > 0,
                     "sparse encode: W must be a non-empty matrix, not \(dense.shape)")
        let rows = dense.shape[0], cols = dense.shape[1]
        precondition(importances.map { $0.count == cols } ?? true,
                     "sparse encode: \(importances?.count ?? 0) importances for \(cols) columns")
        precondition(s4Scales.map { $0.count == rows * ((cols + groupSize - 1) / groupSize) } ?? true,
                     "sparse encode: \(s4Scales?.count ?? 0) s4 scales for a \(rows)×\(cols) matrix")
        let groups = (cols + groupSize - 1) / groupSize
        let w = dense.pointer

        // Pass 1: masks and the value bytes of each row.
        var masks = [UInt64](repeating: 0, count: rows * groups)
        var offsets = [UInt32](repeating: 0, count: rows + 1)
        var total = 0
        for o in 0..<rows {
            for g in 0..<groups {
                var m: UInt64 = 0
                for j in 0..<min(groupSize, cols - g * groupSize) where w[o * cols + g * groupSize + j] != 0 {
                    m |= UInt64(1) << UInt64(j)
                }
                masks[o * groups + g] = m
                total += kind.valueBytes(count: m.nonzeroBitCount)
            }
            precondition(total <= Int(UInt32.max), "sparse encode: \(total) value bytes do not fit the format's 32-bit offsets")
            offsets[o + 1] = UInt32(total)
        }

        // One buffer: masks | row offsets | scales | values + padding (each section aligned).
        let maskBytes = rows * groups * 8
        let offsetBytes = (rows + 1) * 4
        let scaleBytes = kind == .f16 ? 0 : rows * groups * 2
        let scaleStart = (maskBytes + offsetBytes + 63) & ~63
        let valueStart = (scaleStart + scaleBytes + 63) & ~63
        let valueBufferBytes = total + valuePadding
        let storage = OwnedStorage(bytes: valueStart + valueBufferBytes)
        let maskPointer = storage.base.bindMemory(to: UInt64.self, capacity: rows * groups)
        let offsetPointer = (storage.base + maskBytes).bindMemory(to: UInt32.self, capacity: rows + 1)
        let scalePointer = kind == .f16 ? nil : (storage.base + scaleStart).bindMemory(to: UInt16.self, capacity: rows * groups)
        let valuePointer = (storage.base + valueStart).bindMemory(to: UInt8.self, capacity: valueBufferBytes)
        maskPointer.update(from: masks, count: rows * groups)
        offsetPointer.update(from: offsets, count: rows + 1)

        // Pass 2: the values (the padding stays zero), rows split over the worker pool: each row writes
        // its own scales and its own value bytes from its offset on (the s4 scale search is not cheap).
        WorkerPool.shared.parallelFor(rows, minimumChunk: max(1, 4096 / cols)) { range in
            var stored = [Float](repeating: 0, count: groupSize)
            var weights = [Float](repeating: 0, count: groupSize)
            for o in range {
                var cursor = Int(offsets[o])
                for g in 0..<groups {
                    let m = masks[o * groups + g]
                    var n = 0
                    for j in 0..<groupSize where m & (UInt64(1) << UInt64(j)) != 0 {
                        stored[n] = w[o * cols + g * groupSize + j]
                        if let importances { weights[n] = importances[g * groupSize + j] }
                        n += 1
                    }
                    switch kind {
                    case .s8:
                        let scale = s8Scale(stored[0..<n])
                        scalePointer![o * groups + g] = scale.bitPattern
                        for k in 0..<n { valuePointer[cursor + k] = UInt8(bitPattern: s8Quantize(stored[k], scale: Float(scale))) }
                    case .s4:
                        if let s4Scales {
                            let scale = s4Scales[o * groups + g]
                            let inverse: Float = Float(Float16(bitPattern: scale)) == 0 ? 0 : 1 / Float(Float16(bitPattern: scale))
                            scalePointer![o * groups + g] = n == 0 ? 0 : scale
                            for k in 0..<n {
                                let nibble = ck_sparse_s4_nibble(stored[k] * inverse)
                                valuePointer[cursor + k / 2] |= k % 2 == 0 ? nibble : nibble << 4
                            }
                        } else {
                            scalePointer![o * groups + g] = importances == nil
                                ? ck_sparse_s4_encode_group(stored, Int32(n), valuePointer + cursor)
                                : ck_sparse_s4_encode_group_weighted(stored, weights, Int32(n), valuePointer + cursor)
                        }
                    case .f16:
                        for k in 0..<n {
                            let bits = Float16(stored[k]).bitPattern
                            valuePointer[cursor + 2 * k] = UInt8(truncatingIfNeeded: bits)
                            valuePointer[cursor + 2 * k + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                        }
                    }
                    cursor += kind.valueBytes(count: n)
                }
            }
        }
        return SparseMatrix(rows: rows, cols: cols, kind: kind, masks: maskPointer, rowOffsets: offsetPointer,
                            values: valuePointer, valueBufferByteCount: valueBufferBytes, scales: scalePointer,
                            owner: storage)
    }

    // MARK: - Quantisation rules (one group's stored values)

    /// Largest finite binary16: scales are clamped to it rather than becoming infinite.
    static let largestScale = Float(Float16.greatestFiniteMagnitude)

    /// s8: max|w| / 127, rounded to f16 (0 for an empty group).
    static func s8Scale(_ values: ArraySlice<Float>) -> Float16 {
        var largest: Float = 0
        for v in values where !v.isNaN { largest = max(largest, abs(v)) }
        return Float16(min(largest / 127, largestScale))
    }

    /// s8: round(w / scale) in −127…127, ties away from zero.
    static func s8Quantize(_ w: Float, scale: Float) -> Int8 {
        guard scale != 0, !w.isNaN else { return 0 }
        return Int8(max(-127, min(127, (w / scale).rounded(.toNearestOrAwayFromZero))))
    }

    /// s4: the 16 levels a nibble stands for (docs/sparse-format.md, version 2; the C kernels'
    /// `ck_sparse_s4_levels`): llama.cpp's IQ4_NL levels halved and rounded, non-uniform and denser near
    /// 0. Measured on the demo job's merged weights against a uniform grid and against levels without
    /// a small one (docs/sparse-format.md, "Why these levels"). |level| ≤ 64 keeps the AVX2 dot's
    /// 16-bit sums from overflowing.
    public static let s4Levels: [Int8] = [-64, -52, -42, -32, -24, -18, -11, -5, 0, 6, 12, 19, 26, 34, 44, 56]
    /// s4: the nibble of r = w / scale — the nearest level, ties to the lower one; NaN gives nibble 8
    /// (level 0). The rule is the C encoder's (`ck_sparse_s4_encode_group`, which also searches the scale).
    public static func s4Nibble(_ r: Float) -> UInt8 { ck_sparse_s4_nibble(r) }

    // MARK: - Reference decoding

    /// W [rows, cols] as Float32: unstored weights 0, s8 scale · q, s4 scale · s4Levels[nibble], f16 widened.
    public func decode() -> Tensor {
        let out = Tensor(zeros: [rows, cols])
        let groups = self.groups
        for o in 0..<rows {
            var cursor = Int(rowOffsets[o])
            for g in 0..<groups {
                let m = masks[o * groups + g]
                let scale = scales.map { Float(Float16(bitPattern: $0[o * groups + g])) } ?? 0
                var k = 0
                for j in 0..<Self.groupSize where m & (UInt64(1) << UInt64(j)) != 0 {
                    let value: Float
                    switch kind {
                    case .s8:
                        value = scale * Float(Int8(bitPattern: values[cursor + k]))
                    case .s4:
                        let byte = values[cursor + k / 2]
                        value = scale * Float(Self.s4Levels[Int(k % 2 == 0 ? byte & 15 : byte >> 4)])
                    case .f16:
                        let bits = UInt16(values[cursor + 2 * k]) | UInt16(values[cursor + 2 * k + 1]) << 8
                        value = Float(Float16(bitPattern: bits))
                    }
                    out.pointer[o * cols + g * Self.groupSize + j] = value
                    k += 1
                }
                cursor += kind.valueBytes(count: k)
            }
        }
        return out
    }
}
