/// Q3_K: a 256-value super-block of sixteen 16-value groups, 3-bit codes
/// (2 low bits in qs, the third in hmask), each group with a signed 6-bit scale
/// under one binary16 d.
///
/// Spec: ggml `block_q3_K` (ggml-common.h) and `dequantize_row_q3_K`
/// (ggml-quants.c). Value = (d * (scale - 32)) * (low2 - (highBitSet ? 0 : 4)).
enum Q3_K: BlockDecoder {
    static let type = GGMLType.q3_K
    static let fields: [(name: String, bytes: Int)] = [("hmask", 32), ("qs", 64), ("scales", 12), ("d", 2)]

    static let hmaskOffset = 0
    static let qsOffset = 32
    static let scalesOffset = 96
    static let dOffset = 108

    /// The sixteen 6-bit group scales, unpacked from 12 bytes: group g's low
    /// nibble is byte g (g < 8) or the high nibble of byte g - 8, its top two
    /// bits are bits 2*(g/4) of byte 8 + g%4.
    @inline(__always)
    static func groupScale(_ block: UnsafeRawPointer, _ g: Int) -> Int32 {
        let low = g < 8 ? loadByte(block, scalesOffset + g) & 0x0F : loadByte(block, scalesOffset + g - 8) >> 4
        let high = (loadByte(block, scalesOffset + 8 + g % 4) >> UInt8(2 * (g / 4))) & 3
        return Int32(low | high << 4) - 32
    }

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            var out = y + i * n
            var group = 0
            var mask: UInt8 = 1
            for half in 0..<2 {
                let q = qsOffset + 32 * half
                for shift in stride(from: 0, to: 8, by: 2) {
                    for part in 0..<2 {
                        let dl = d * Float(groupScale(block, group))
                        for l in 0..<16 {
                            let low = Int32((loadByte(block, q + 16 * part + l) >> UInt8(shift)) & 3)
                            let high = loadByte(block, hmaskOffset + 16 * part + l) & mask != 0
                            out[l] = dl * Float(low - (high ? 0 : 4))
                        }
                        out += 16
                        group += 1
                    }
                    mask <<= 1
                }
            }
        }
    }
}
