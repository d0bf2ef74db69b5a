/// Q5_K: a 256-value super-block of eight 32-value groups, 5-bit codes (4 low
/// bits in qs, the fifth in qh), each group with a 6-bit scale and a 6-bit min
/// under binary16 d and dmin.
///
/// Spec: ggml `block_q5_K` (ggml-common.h) and `dequantize_row_q5_K`
/// (ggml-quants.c). Packed as Q4_K; group g's fifth bits are bit g of
/// qh[0..<32]; value = (d * sc) * q - (dmin * m).
enum Q5_K: BlockDecoder {
    static let type = GGMLType.q5_K
    static let fields: [(name: String, bytes: Int)] = [("d", 2), ("dmin", 2), ("scales", 12), ("qh", 32), ("qs", 128)]

    static let dOffset = 0
    static let dminOffset = 2
    static let scalesOffset = 4
    static let qhOffset = 16
    static let qsOffset = 48

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
                let u1: UInt8 = 1 << UInt8(2 * c), u2: UInt8 = 2 << UInt8(2 * c)
                for l in 0..<32 {
                    let byte = loadByte(block, qsOffset + 32 * c + l)
                    let high = loadByte(block, qhOffset + l)
                    let q1 = Int32(byte & 0x0F) + (high & u1 != 0 ? 16 : 0)
                    let q2 = Int32(byte >> 4) + (high & u2 != 0 ? 16 : 0)
                    out[64 * c + l] = d1 * Float(q1) - min1
                    out[64 * c + 32 + l] = d2 * Float(q2) - min2
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
                    let qh = loadBytes16(block, qhOffset + 16 * h) &>> UInt8(2 * c)
                    let q1 = (qs & 0x0F) | (qh & 1) &<< 4
                    let q2 = (qs &>> 4) | (qh & 2) &<< 3
                    store(floats(q1) * d1 - min1, out + 64 * c + 16 * h)
                    store(floats(q2) * d2 - min2, out + 64 * c + 32 + 16 * h)
                }
            }
        }
    }
}
