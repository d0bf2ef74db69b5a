/// Q4_1: 32 values as 4-bit codes with a binary16 step and a binary16 minimum.
///
/// Spec: ggml `block_q4_1` (ggml-common.h) and `dequantize_row_q4_1`
/// (ggml-quants.c). Element j (j < 16) is the low nibble of qs[j], element
/// j + 16 its high nibble; value = code * d + m, rounded after each operation.
enum Q4_1: BlockDecoder {
    static let type = GGMLType.q4_1
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("m", 2), ("qs", 16)]

    static let dOffset = 0
    static let mOffset = 2
    static let qsOffset = 4

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            let m = loadHalf(block, mOffset)
            for j in 0..<n / 2 {
                let byte = loadByte(block, qsOffset + j)
                y[i * n + j] = Float(byte & 0x0F) * d + m
                y[i * n + j + n / 2] = Float(byte >> 4) * d + m
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize  // n = 32: two 16-lane halves
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let out = y + i * n
            let d = loadHalf(block, dOffset)
            let m = loadHalf(block, mOffset)
            let qs = loadBytes16(block, qsOffset)
            store(floats(qs & 0x0F) * d + m, out)
            store(floats(qs &>> 4) * d + m, out + 16)
        }
    }
}
