/// Q4_K: a 256-value super-block of eight 32-value groups, 4-bit codes, each
/// group with a 6-bit scale and a 6-bit min under binary16 d and dmin.
///
/// Spec: ggml `block_q4_K` (ggml-common.h) and `dequantize_row_q4_K`
/// (ggml-quants.c); scales and mins unpack as in KQuantScales.swift. Each 64
/// values read 32 code bytes: low nibbles for group 2c, high nibbles for group
/// 2c+1; value = (d * sc) * q - (dmin * m), rounded after each operation.
enum Q4_K: BlockDecoder {
    static let type = GGMLType.q4_K
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("dmin", 2), ("scales", 12), ("qs", 128)]

    static let dOffset = 0
    static let dminOffset = 2
    static let scalesOffset = 4
    static let qsOffset = 16

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            let dmin = loadHalf(block, dminOffset)
            let out = y + i * n
            for c in 0..<4 {
                let (d1, min1) = kQuantStepAndOffset(block + scalesOffset, 2 * c, d: d, dmin: dmin)
                let (d2, min2) = kQuantStepAndOffset(block + scalesOffset, 2 * c + 1, d: d, dmin: dmin)
                for l in 0..<32 {
                    let byte = loadByte(block, qsOffset + 32 * c + l)
                    out[64 * c + l] = d1 * Float(byte & 0x0F) - min1
                    out[64 * c + 32 + l] = d2 * Float(byte >> 4) - min2
                }
            }
        }
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            let dmin = loadHalf(block, dminOffset)
            let out = y + i * n
            for c in 0..<4 {
                let (d1, min1) = kQuantStepAndOffset(block + scalesOffset, 2 * c, d: d, dmin: dmin)
                let (d2, min2) = kQuantStepAndOffset(block + scalesOffset, 2 * c + 1, d: d, dmin: dmin)
                for h in 0..<2 {
                    let qs = loadBytes16(block, qsOffset + 32 * c + 16 * h)
                    store(floats(qs & 0x0F) * d1 - min1, out + 64 * c + 16 * h)
                    store(floats(qs &>> 4) * d2 - min2, out + 64 * c + 32 + 16 * h)
                }
            }
        }
    }
}
