/// Q8_K: 256 signed bytes under one Float32 step, with per-16 sums.
///
/// Spec: ggml `block_q8_K` (ggml-common.h) and `dequantize_row_q8_K`
/// (ggml-quants.c): value j = d * qs[j]; `bsums` is redundant. ggml uses Q8_K
/// for dot-product activations; files rarely hold it.
enum Q8_K: BlockDecoder {
    static let type = GGMLType.q8_K
    static let fields: [(name: String, bytes: Int)] = [("d", 4), ("qs", 256), ("bsums", 32)]

    static let dOffset = 0
    static let qsOffset = 4

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = Float(bitPattern: loadWord(block, dOffset))
            for j in 0..<n {
                y[i * n + j] = d * Float(Int8(bitPattern: loadByte(block, qsOffset + j)))
            }
        }
    }
}
