/// Q8_0: 32 values as signed bytes sharing one binary16 step.
///
/// Spec: ggml `block_q8_0` (ggml-common.h), `dequantize_row_q8_0` and
/// `quantize_row_q8_0_ref` (ggml-quants.c). Value j = qs[j] * d.
enum Q8_0: BlockDecoder, BlockEncoder {
    static let type = GGMLType.q8_0
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("qs", 32)]

    // Byte offsets inside a block.
    static let dOffset = 0
    static let qsOffset = 2

    // MARK: - Decoding

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            for j in 0..<n {
                let q = Int8(bitPattern: loadByte(block, qsOffset + j))
                y[i * n + j] = Float(q) * d
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize  // n = 32: two 16-lane halves
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let out = y + i * n
            let d = loadHalf(block, dOffset)
            let q0 = signed(loadBytes16(block, qsOffset))
            let q1 = signed(loadBytes16(block, qsOffset + 16))
            store(floats(q0) * d, out)
            store(floats(q1) * d, out + 16)
        }
    }

    // MARK: - Encoding

    /// ggml's reference: d = max|x| / 127, q = round-half-away(x * (1/d)). An
    /// exact zero encodes to q = 0 and so decodes to +0 (d is never negative).
    /// Only a block whose step overflows binary16 (max|x| ≥ 127 × 65520)
    /// decodes its zeros to NaN, as in ggml.
    static func encodeReference(_ x: UnsafePointer<Float>, count: Int, into blocks: UnsafeMutableRawPointer) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let v = x + i * n
            let block = blocks + i * blockBytes
            var amax: Float = 0
            for j in 0..<n {
                let a = abs(v[j])
                amax = amax > a ? amax : a  // ggml's MAX(amax, fabsf(v)), NaN handling included
            }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(d, block, dOffset)
            for j in 0..<n {
                let q = roundedCode(v[j] * id)
                block.storeBytes(of: UInt8(bitPattern: q), toByteOffset: qsOffset + j, as: UInt8.self)
            }
        }
    }

    /// roundf() to int8, as ggml stores it. C leaves a NaN or out-of-range
    /// conversion undefined; we clamp instead of trapping, and NaN becomes 0.
    @inline(__always)
    static func roundedCode(_ scaled: Float) -> Int8 {
        let r = scaled.rounded(.toNearestOrAwayFromZero)
        guard r == r else { return 0 }
        return Int8(max(-128, min(127, r)))
    }
}
