import Kernels

// The reference encoder, decoder and layout check of one sparse matrix, written from
// docs/sparse-format.md ("The encoding of one matrix") for the model file's reader and writer.
//
// Kernels' SparseMatrix is getting its own encoder, decoder and validate() (another branch);
// until it lands, these three functions are the only places the model file encodes, decodes or
// checks a matrix, so switching to Kernels' versions is a change here and nowhere else. They are
// plain loops on purpose: the reference every faster path is held to.

/// A sparse matrix that owns its four arrays (what `SparseCodec.encode` returns and the writer stores).
///
/// Shapes: masks [rows, groups]; rowOffsets [rows + 1]; values [rowOffsets[rows] + 64] bytes;
/// scales [rows, groups] f16 bits (absent for `.f16`).
public final class SparseEncodedMatrix: @unchecked Sendable {
    // @unchecked: the buffers are written once by the encoder, then only read.
    public let rows: Int
    public let cols: Int
    public let kind: SparseValueKind
    let masks: UnsafeMutableBufferPointer<UInt64>
    let rowOffsets: UnsafeMutableBufferPointer<UInt32>
    let values: UnsafeMutableBufferPointer<UInt8>
    let scales: UnsafeMutableBufferPointer<UInt16>?

    init(rows: Int, cols: Int, kind: SparseValueKind, valueBytes: Int) {
        let groups = SparseModelFormat.groups(columns: cols)
        self.rows = rows
        self.cols = cols
        self.kind = kind
        masks = .allocate(capacity: rows * groups)
        masks.initialize(repeating: 0)
        rowOffsets = .allocate(capacity: rows + 1)
        rowOffsets.initialize(repeating: 0)
        values = .allocate(capacity: valueBytes + SparseModelFormat.valuePadding)
        values.initialize(repeating: 0)
        if kind == .f16 {
            scales = nil
        } else {
            let buffer = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: rows * groups)
            buffer.initialize(repeating: 0)
            scales = buffer
        }
    }

    deinit {
        masks.deallocate()
        rowOffsets.deallocate()
        values.deallocate()
        scales?.deallocate()
    }

    /// A view for the kernels, borrowing this object's arrays.
    public var matrix: SparseMatrix {
        SparseMatrix(rows: rows, cols: cols, kind: kind, masks: UnsafePointer(masks.baseAddress!),
                     rowOffsets: UnsafePointer(rowOffsets.baseAddress!), values: UnsafePointer(values.baseAddress!),
                     scales: scales.map { UnsafePointer($0.baseAddress!) }, owner: self)
    }

    /// Stored values (set mask bits).
    public var storedCount: Int { masks.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// The little-endian bytes of `part` as the model file stores it (values with their padding).
    func bytes(of part: SparseModelFormat.Part) -> [UInt8] {
        switch part {
        case .mask: return littleEndian(masks)
        case .offsets: return littleEndian(rowOffsets)
        case .values: return Array(values)
        case .scales: return scales.map(littleEndian) ?? []
        }
    }

    private func littleEndian<T: FixedWidthInteger>(_ buffer: UnsafeMutableBufferPointer<T>) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: buffer.count * MemoryLayout<T>.size)
        bytes.withUnsafeMutableBytes { raw in
            for (index, value) in buffer.enumerated() {
                raw.storeBytes(of: value.littleEndian, toByteOffset: index * MemoryLayout<T>.size, as: T.self)
            }
        }
        return bytes
    }
}

/// Why a matrix cannot be encoded, or where a stored one breaks the layout.
public struct SparseCodecProblem: Error, Sendable, Equatable {
    /// The part at fault (nil: the weights handed to the encoder).
    public let part: SparseModelFormat.Part?
    /// The element of the part (or the weight, row-major) at fault, if one.
    public let index: Int?
    public let reason: String
}

/// The reference codec of one sparse matrix (docs/sparse-format.md, "The encoding of one matrix").
public enum SparseCodec {
    /// The largest magnitude `kind` can store: its binary16 scale (or value) must stay finite.
    public static func largestMagnitude(_ kind: SparseValueKind) -> Float {
        let half: Float = 65504
        switch kind {
        case .s8: return half * 127
        case .s4: return half * 8
        case .f16: return half
        }
    }

    // MARK: - Encoding

    /// Encodes W [rows, cols] (row-major Float32): a weight is stored exactly when it is not zero.
    ///
    /// Quantisation as the spec says: s8 `scale = f16(max|w| / 127)`, `q = round(w / scale)`;
    /// s4 `scale = f16(m / −8)` with m the first stored value of largest magnitude,
    /// `nibble = min(15, round(w / scale) + 8)`; f16 `f16(w)`. A scale that rounds to 0 stores q 0.
    public static func encode(_ w: Tensor, kind: SparseValueKind) throws(SparseCodecProblem) -> SparseEncodedMatrix {
        guard w.shape.count == 2, w.shape[0] > 0, w.shape[1] > 0 else {
            throw SparseCodecProblem(part: nil, index: nil, reason: "a sparse matrix is 2-D with rows and columns; the shape is \(w.shape)")
        }
        let rows = w.shape[0], cols = w.shape[1], groups = SparseModelFormat.groups(columns: cols)
        let limit = largestMagnitude(kind)
        let weights = UnsafeBufferPointer(start: w.pointer, count: rows * cols)

        // Pass 1: masks and row offsets (and the range check, before anything is quantised).
        var offsets = [Int](repeating: 0, count: rows + 1)
        var maskWords = [UInt64](repeating: 0, count: rows * groups)
        for o in 0..<rows {
            var rowBytes = 0
            for g in 0..<groups {
                var word: UInt64 = 0
                for j in 0..<min(SparseModelFormat.groupSize, cols - g * SparseModelFormat.groupSize) {
                    let index = o * cols + g * SparseModelFormat.groupSize + j
                    let value = weights[index]
                    guard abs(value) <= limit else {
                        let why = value.isFinite ? "\(value) is beyond what \(kind) stores (magnitudes up to \(limit))" : "\(value) is not finite"
                        throw SparseCodecProblem(part: nil, index: index, reason: why)
                    }
                    if value != 0 { word |= 1 << UInt64(j) }
                }
                maskWords[o * groups + g] = word
                rowBytes += kind.valueBytes(count: word.nonzeroBitCount)
            }
            offsets[o + 1] = offsets[o] + rowBytes
        }
        guard offsets[rows] <= Int(UInt32.max) else {
            throw SparseCodecProblem(part: .offsets, index: rows,
                                     reason: "\(offsets[rows]) value bytes do not fit the format's uint32 row offsets")
        }

        // Pass 2: scales and values, group by group.
        let encoded = SparseEncodedMatrix(rows: rows, cols: cols, kind: kind, valueBytes: offsets[rows])
        for (index, word) in maskWords.enumerated() { encoded.masks[index] = word }
        for (index, offset) in offsets.enumerated() { encoded.rowOffsets[index] = UInt32(offset) }
        var stored = [Float](repeating: 0, count: SparseModelFormat.groupSize)
        for o in 0..<rows {
            var position = offsets[o]
            for g in 0..<groups {
                var word = maskWords[o * groups + g]
                var n = 0
                while word != 0 {
                    let j = word.trailingZeroBitCount
                    stored[n] = weights[o * cols + g * SparseModelFormat.groupSize + j]
                    n += 1
                    word &= word - 1
                }
                position += encodeGroup(stored[0..<n], kind: kind, into: encoded.values.baseAddress! + position,
                                        scale: encoded.scales.map { $0.baseAddress! + o * groups + g })
            }
        }
        return encoded
    }

    /// Writes one group's `n` stored values at `out`; returns the bytes written.
    private static func encodeGroup(_ values: ArraySlice<Float>, kind: SparseValueKind, into out: UnsafeMutablePointer<UInt8>,
                                    scale scaleOut: UnsafeMutablePointer<UInt16>?) -> Int {
        switch kind {
        case .f16:
            for (k, value) in values.enumerated() {
                let bits = Float16(value).bitPattern
                out[2 * k] = UInt8(truncatingIfNeeded: bits)
                out[2 * k + 1] = UInt8(truncatingIfNeeded: bits >> 8)
            }
            return 2 * values.count
        case .s8:
            let largest = values.reduce(Float(0)) { max($0, abs($1)) }
            let scale = Float16(largest / 127)
            scaleOut?.pointee = scale.bitPattern
            let step = Float(scale)
            for (k, value) in values.enumerated() {
                let q = step == 0 ? 0 : min(127, max(-127, (value / step).rounded()))
                out[k] = UInt8(bitPattern: Int8(q))
            }
            return values.count
        case .s4:
            // The stored value of largest magnitude, sign kept; the first one on a tie (ggml's Q4_0 rule).
            var extreme: Float = 0
            for value in values where abs(value) > abs(extreme) { extreme = value }
            // An empty group's scale is +0 (0 / −8 would store −0).
            let scale = values.isEmpty ? 0 : Float16(extreme / -8)
            scaleOut?.pointee = scale.bitPattern
            let step = Float(scale)
            for (k, value) in values.enumerated() {
                let nibble = step == 0 ? 8 : UInt8(min(15, max(0, (value / step).rounded() + 8)))
                out[k / 2] |= k % 2 == 0 ? nibble : nibble << 4
            }
            return (values.count + 1) / 2
        }
    }

    // MARK: - Decoding

    /// W [rows, cols] as Float32, unstored weights 0: the reference every fast decoder is held to.
    /// `matrix` must have passed `check`.
    public static func decode(_ matrix: SparseMatrix) -> Tensor {
        let rows = matrix.rows, cols = matrix.cols, groups = matrix.groups
        let result = Tensor(zeros: [rows, cols])
        let out = result.pointer
        for o in 0..<rows {
            var position = Int(matrix.rowOffsets[o])
            for g in 0..<groups {
                var word = matrix.masks[o * groups + g]
                let n = word.nonzeroBitCount
                let scale = matrix.scales.map { Float(Float16(bitPattern: $0[o * groups + g])) } ?? 0
                var k = 0
                while word != 0 {
                    let column = g * SparseModelFormat.groupSize + word.trailingZeroBitCount
                    out[o * cols + column] = storedValue(matrix, kind: matrix.kind, at: position, k, scale: scale)
                    k += 1
                    word &= word - 1
                }
                position += matrix.kind.valueBytes(count: n)
            }
        }
        return result
    }

    /// Value `k` of the group whose bytes start at `start`.
    @inline(__always)
    private static func storedValue(_ matrix: SparseMatrix, kind: SparseValueKind, at start: Int, _ k: Int, scale: Float) -> Float {
        switch kind {
        case .s8:
            return scale * Float(Int8(bitPattern: matrix.values[start + k]))
        case .s4:
            let byte = matrix.values[start + k / 2]
            let nibble = k % 2 == 0 ? byte & 0x0F : byte >> 4
            return scale * Float(Int(nibble) - 8)
        case .f16:
            let bits = UInt16(matrix.values[start + 2 * k]) | UInt16(matrix.values[start + 2 * k + 1]) << 8
            return Float(Float16(bitPattern: bits))
        }
    }

    // MARK: - Checking

    /// Checks what a reader must before trusting a stored matrix: `row_offsets[0]` is 0, each row's
    /// offsets span exactly the bytes its masks' stored values take, the last offset is the value
    /// stream's length `valueBytes`, mask bits past `cols` are 0, the padding is zero, and scales
    /// (s8, s4) or values (f16) are finite. The arrays must hold the lengths the shapes imply.
    public static func check(_ matrix: SparseMatrix, valueBytes: Int) throws(SparseCodecProblem) {
        let rows = matrix.rows, cols = matrix.cols, groups = matrix.groups
        let tailBits = cols % SparseModelFormat.groupSize
        let tailMask: UInt64 = tailBits == 0 ? 0 : ~UInt64(0) << UInt64(tailBits)
        guard matrix.rowOffsets[0] == 0 else {
            throw SparseCodecProblem(part: .offsets, index: 0, reason: "the first row offset is \(matrix.rowOffsets[0]); it must be 0")
        }
        for o in 0..<rows {
            var rowBytes = 0
            for g in 0..<groups {
                let word = matrix.masks[o * groups + g]
                if g == groups - 1, word & tailMask != 0 {
                    throw SparseCodecProblem(part: .mask, index: o * groups + g,
                                             reason: "row \(o) sets bits past its \(cols) columns (word \(String(word, radix: 16)))")
                }
                rowBytes += matrix.kind.valueBytes(count: word.nonzeroBitCount)
            }
            let start = Int(matrix.rowOffsets[o]), end = Int(matrix.rowOffsets[o + 1])
            guard end - start == rowBytes else {
                throw SparseCodecProblem(part: .offsets, index: o + 1,
                                         reason: "row \(o) spans value bytes \(start)..<\(end), but its mask stores values taking \(rowBytes) bytes")
            }
        }
        guard Int(matrix.rowOffsets[rows]) == valueBytes else {
            throw SparseCodecProblem(part: .offsets, index: rows,
                                     reason: "the last offset is \(matrix.rowOffsets[rows]), but the value stream holds \(valueBytes) bytes before its padding")
        }
        for index in valueBytes..<(valueBytes + SparseModelFormat.valuePadding) where matrix.values[index] != 0 {
            throw SparseCodecProblem(part: .values, index: index, reason: "padding byte \(index - valueBytes) is \(matrix.values[index]), not 0")
        }
        if let scales = matrix.scales {
            for index in 0..<(rows * groups) where !Float16(bitPattern: scales[index]).isFinite {
                throw SparseCodecProblem(part: .scales, index: index, reason: "the scale is \(Float16(bitPattern: scales[index]))")
            }
        } else {
            for index in stride(from: 0, to: valueBytes - 1, by: 2) {
                let bits = UInt16(matrix.values[index]) | UInt16(matrix.values[index + 1]) << 8
                guard Float16(bitPattern: bits).isFinite else {
                    throw SparseCodecProblem(part: .values, index: index, reason: "the f16 value at byte \(index) is \(Float16(bitPattern: bits))")
                }
            }
        }
    }
}
