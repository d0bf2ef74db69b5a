/// Q4_K: a 256-value super-block of eight 32-value groups, 4-bit codes, each
/// group with a 6-bit scale and a 6-bit min under binary16 d and dmin.
///
/// Spec: ggml `block_q4_K` (ggml-common.h), `get_scale_min_k4` and
/// `dequantize_row_q4_K` (ggml-quants.c). Each 64 values read 32 code bytes:
/// low nibbles for group 2c, high nibbles for group 2c+1;
/// value = (d * sc) * q - (dmin * m), rounded after each operation.
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
                let (sc1, m1) = kQuantScaleAndMin(block + scalesOffset, 2 * c)
                let (sc2, m2) = kQuantScaleAndMin(block + scalesOffset, 2 * c + 1)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let d2 = d * Float(sc2), min2 = dmin * Float(m2)
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
                let (sc1, m1) = kQuantScaleAndMin(block + scalesOffset, 2 * c)
                let (sc2, m2) = kQuantScaleAndMin(block + scalesOffset, 2 * c + 1)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let d2 = d * Float(sc2), min2 = dmin * Float(m2)
                for h in 0..<2 {
                    let qs = loadBytes16(block, qsOffset + 32 * c + 16 * h)
                    store(floats(qs & 0x0F) * d1 - min1, out + 64 * c + 16 * h)
                    store(floats(qs &>> 4) * d2 - min2, out + 64 * c + 32 + 16 * h)
                }
            }
        }
    }
}

/// Group j's 6-bit scale and min from the 12 packed bytes of Q4_K and Q5_K
/// (ggml's get_scale_min_k4): groups 0–3 keep theirs in the low six bits of
/// bytes j and j + 4; groups 4–7 take four bits from byte j + 4 and the top
/// two bits of bytes j - 4 and j.
@inline(__always)
func kQuantScaleAndMin(_ scales: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
    if j < 4 {
        return (loadByte(scales, j) & 63, loadByte(scales, j + 4) & 63)
    }
    let packed = loadByte(scales, j + 4)
    let scale = (packed & 0x0F) | (loadByte(scales, j - 4) >> 6) << 4
    let min = (packed >> 4) | (loadByte(scales, j) >> 6) << 4
    return (scale, min)
}
