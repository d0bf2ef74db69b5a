/// Q5_0: 32 values as 5-bit codes around 16, sharing one binary16 step.
///
/// Spec: ggml `block_q5_0` (ggml-common.h) and `dequantize_row_q5_0`
/// (ggml-quants.c). The low four bits of element j (j < 16) are the low nibble
/// of qs[j], those of element j + 16 its high nibble; bit e of the
/// little-endian word qh is the fifth bit of element e. value = (code - 16) * d.
///
/// Both paths use the reference below: LLVM vectorises it, and it measured
/// faster than an explicit SIMD version (Q5 files are rare besides).
enum Q5_0: BlockDecoder {
    static let type = GGMLType.q5_0
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("qh", 4), ("qs", 16)]

    static let dOffset = 0
    static let qhOffset = 2
    static let qsOffset = 6

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            let qh = loadWord(block, qhOffset)
            for j in 0..<n / 2 {
                let byte = UInt32(loadByte(block, qsOffset + j))
                let x0 = Int32(bitPattern: (byte & 0x0F) | ((qh >> UInt32(j)) & 1) << 4) - 16
                let x1 = Int32(bitPattern: (byte >> 4) | ((qh >> UInt32(j + n / 2)) & 1) << 4) - 16
                y[i * n + j] = Float(x0) * d
                y[i * n + j + n / 2] = Float(x1) * d
            }
        }
    }
}
