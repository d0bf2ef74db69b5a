/// Q5_1: 32 values as 5-bit codes with a binary16 step and a binary16 minimum.
///
/// Spec: ggml `block_q5_1` (ggml-common.h) and `dequantize_row_q5_1`
/// (ggml-quants.c). Codes are packed as in Q5_0; value = code * d + m,
/// rounded after each operation.
///
/// Both paths use the reference below: LLVM vectorises it, and it measured
/// faster than an explicit SIMD version (Q5 files are rare besides).
enum Q5_1: BlockDecoder {
    static let type = GGMLType.q5_1
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("m", 2), ("qh", 4), ("qs", 16)]

    static let dOffset = 0
    static let mOffset = 2
    static let qhOffset = 4
    static let qsOffset = 8

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            let m = loadHalf(block, mOffset)
            let qh = loadWord(block, qhOffset)
            for j in 0..<n / 2 {
                let byte = UInt32(loadByte(block, qsOffset + j))
                let x0 = (byte & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                let x1 = (byte >> 4) | ((qh >> UInt32(j + n / 2)) & 1) << 4
                y[i * n + j] = Float(x0) * d + m
                y[i * n + j + n / 2] = Float(x1) * d + m
            }
        }
    }
}
