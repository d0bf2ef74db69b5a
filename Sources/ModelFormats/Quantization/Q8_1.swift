/// Q8_1: Q8_0 plus a stored sum, 32 signed bytes with a binary16 step and a
/// binary16 `s = d * sum(qs)`.
///
/// Spec: ggml `block_q8_1` (ggml-common.h). ggml uses Q8_1 only as the
/// activation side of dot products and has no CPU `dequantize_row_q8_1`; the
/// value of element j is qs[j] * d (as in Q8_0), and `s` is redundant.
enum Q8_1: BlockDecoder {
    static let type = GGMLType.q8_1
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("s", 2), ("qs", 32)]

    static let dOffset = 0
    static let qsOffset = 4

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            for j in 0..<n {
                y[i * n + j] = Float(Int8(bitPattern: loadByte(block, qsOffset + j))) * d
            }
        }
    }
}
