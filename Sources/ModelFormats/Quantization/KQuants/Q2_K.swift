/// Q2_K: a 256-value super-block of sixteen 16-value groups, 2-bit codes,
/// each group with a 4-bit scale and a 4-bit min under binary16 d and dmin.
///
/// Spec: ggml `block_q2_K` (ggml-common.h) and `dequantize_row_q2_K`
/// (ggml-quants.c). Each 128-value half reads 32 code bytes four times at
/// shifts 0, 2, 4, 6; group g uses scales[g]: value = (d * (sc & 15)) * q - dmin * (sc >> 4).
enum Q2_K: BlockDecoder {
    static let type = GGMLType.q2_K
    static let fields: [(name: String, bytes: Int)] = [("scales", 16), ("qs", 64), ("d", 2), ("dmin", 2)]

    static let scalesOffset = 0
    static let qsOffset = 16
    static let dOffset = 80
    static let dminOffset = 82

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            let dmin = loadHalf(block, dminOffset)
            var out = y + i * n
            var group = 0
            for half in 0..<2 {
                let q = qsOffset + 32 * half
                for shift in stride(from: 0, to: 8, by: 2) {
                    // Two groups of 16 per shift: code bytes q..<q+16, then q+16..<q+32.
                    for part in 0..<2 {
                        let sc = loadByte(block, scalesOffset + group)
                        let dl = d * Float(sc & 0x0F)
                        let ml = dmin * Float(sc >> 4)
                        for l in 0..<16 {
                            let code = (loadByte(block, q + 16 * part + l) >> UInt8(shift)) & 3
                            out[l] = dl * Float(code) - ml
                        }
                        out += 16
                        group += 1
                    }
                }
            }
        }
    }
}
