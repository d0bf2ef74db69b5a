/// Q4_0: 32 values as 4-bit codes around 8, sharing one binary16 step.
///
/// Spec: ggml `block_q4_0` (ggml-common.h), `dequantize_row_q4_0` and
/// `quantize_row_q4_0_ref` (ggml-quants.c). Element j (j < 16) is the low
/// nibble of qs[j], element j + 16 its high nibble; value = (code - 8) * d.
enum Q4_0: BlockDecoder, BlockEncoder {
    static let type = GGMLType.q4_0
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("qs", 16)]

    static let dOffset = 0
    static let qsOffset = 2

    // MARK: - Decoding

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            for j in 0..<n / 2 {
                let byte = loadByte(block, qsOffset + j)
                let x0 = Int32(byte & 0x0F) - 8
                let x1 = Int32(byte >> 4) - 8
                y[i * n + j] = Float(x0) * d
                y[i * n + j + n / 2] = Float(x1) * d
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize  // n = 32: two 16-lane halves
        let eight = SIMD16<Int8>(repeating: 8)
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let out = y + i * n
            let d = loadHalf(block, dOffset)
            let qs = loadBytes16(block, qsOffset)
            let lo = signed(qs & 0x0F) &- eight
            let hi = signed(qs &>> 4) &- eight
            store(floats(lo) * d, out)
            store(floats(hi) * d, out + 16)
        }
    }

    // MARK: - Encoding

    /// ggml's reference: max is the value of largest magnitude (the first one
    /// on ties), d = max / -8, code = min(15, trunc(x/d + 8.5)).
    ///
    /// Zeros: an exact zero (either sign) gives x * (1/d) = ±0, and
    /// trunc(±0 + 8.5) = 8, the code that decodes to (8 - 8) * d = 0 — ggml's
    /// rounding already keeps zeros, so nothing here departs from it. (The
    /// zero decodes as -0.0 when d < 0, i.e. when the block's largest-magnitude
    /// value is positive: ggml's decoder computes 0 * d. When 1/d overflows,
    /// d is far below binary16's range and stores as 0, so every value decodes
    /// to zero; only a block whose step overflows binary16, |max| ≥ 524 160,
    /// decodes zeros to NaN, as in ggml.)
    static func encodeReference(_ x: UnsafePointer<Float>, count: Int, into blocks: UnsafeMutableRawPointer) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let v = x + i * n
            let block = blocks + i * blockBytes
            var amax: Float = 0
            var max: Float = 0
            for j in 0..<n where amax < abs(v[j]) {
                amax = abs(v[j])
                max = v[j]
            }
            let d = max / -8
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, block, dOffset)
            for j in 0..<n / 2 {
                let c0 = code(v[j] * id)
                let c1 = code(v[j + n / 2] * id)
                block.storeBytes(of: c0 | (c1 << 4), toByteOffset: qsOffset + j, as: UInt8.self)
            }
        }
    }

    /// MIN(15, (int8_t)(scaled + 8.5f)): truncation toward zero. C leaves NaN
    /// undefined (x86 gives 0, as numpy does); we return 0 instead of trapping.
    @inline(__always)
    static func code(_ scaled: Float) -> UInt8 {
        let t = (scaled + 8.5).rounded(.towardZero)
        guard t == t else { return 0 }
        return UInt8(Swift.max(0, Swift.min(15, t)))
    }
}
