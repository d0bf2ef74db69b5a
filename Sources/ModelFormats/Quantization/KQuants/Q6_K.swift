/// Q6_K: a 256-value super-block of sixteen 16-value groups, 6-bit codes
/// around 32 (4 low bits in ql, 2 high bits in qh), each group with a signed
/// 8-bit scale under one binary16 d.
///
/// Spec: ggml `block_q6_K` (ggml-common.h) and `dequantize_row_q6_K`
/// (ggml-quants.c). Each 128-value half reads ql[64] and qh[32]: element l of
/// quarter k (k = 0...3) takes nibble k/2 of ql[l + 32*(k%2)] and bits 2k, 2k+1
/// of qh[l]; value = (d * scale) * (code - 32), group = element / 16.
enum Q6_K: BlockDecoder {
    static let type = GGMLType.q6_K
    static let fields: [(name: String, bytes: Int)] = [("ql", 128), ("qh", 64), ("scales", 16), ("d", 2)]

    static let qlOffset = 0
    static let qhOffset = 128
    static let scalesOffset = 192
    static let dOffset = 208

    @inline(__always)
    static func groupScale(_ block: UnsafeRawPointer, _ g: Int) -> Float {
        Float(Int8(bitPattern: loadByte(block, scalesOffset + g)))
    }

    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            for half in 0..<2 {
                let ql = qlOffset + 64 * half, qh = qhOffset + 32 * half
                let out = y + i * n + 128 * half
                for l in 0..<32 {
                    let high = loadByte(block, qh + l)
                    for k in 0..<4 {
                        let low = loadByte(block, ql + l + 32 * (k % 2))
                        let nibble = k < 2 ? low & 0x0F : low >> 4
                        let code = Int32(nibble | ((high >> UInt8(2 * k)) & 3) << 4) - 32
                        let e = 32 * k + l
                        out[e] = d * groupScale(block, 8 * half + e / 16) * Float(code)
                    }
                }
            }
        }
    }

    /// Sixteen 6-bit codes minus 32, as Float32.
    @inline(__always)
    static func sixBit(_ codes: SIMD16<UInt8>) -> SIMD16<Float> {
        floats(signed(codes) &- SIMD16<Int8>(repeating: 32))
    }

    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        let blockBytes = type.bytesPerBlock, n = type.blockSize
        for i in 0..<count {
            let block = blocks + i * blockBytes
            let d = loadHalf(block, dOffset)
            for half in 0..<2 {
                let ql = qlOffset + 64 * half, qh = qhOffset + 32 * half
                let out = y + i * n + 128 * half
                for h in 0..<2 {  // elements l = 16h..<16h+16 of each quarter
                    let low0 = loadBytes16(block, ql + 16 * h)
                    let low1 = loadBytes16(block, ql + 32 + 16 * h)
                    let high = loadBytes16(block, qh + 16 * h)
                    let group = 8 * half + h  // quarter k uses group + 2k
                    let codes0 = (low0 & 0x0F) | (high & 0x03) &<< 4
                    let codes1 = (low1 & 0x0F) | (high & 0x0C) &<< 2
                    let codes2 = (low0 &>> 4) | (high & 0x30)
                    let codes3 = (low1 &>> 4) | (high & 0xC0) &>> 2
                    store(sixBit(codes0) * (d * groupScale(block, group)), out + 16 * h)
                    store(sixBit(codes1) * (d * groupScale(block, group + 2)), out + 32 + 16 * h)
                    store(sixBit(codes2) * (d * groupScale(block, group + 4)), out + 64 + 16 * h)
                    store(sixBit(codes3) * (d * groupScale(block, group + 6)), out + 96 + 16 * h)
                }
            }
        }
    }
}
