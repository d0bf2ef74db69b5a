/// The 6-bit group scales and mins that Q4_K and Q5_K pack into 12 bytes
/// under binary16 d and dmin.
///
/// Spec: ggml `get_scale_min_k4` (ggml-quants.c), used by
/// `dequantize_row_q4_K` and `dequantize_row_q5_K`.

/// Group j's 6-bit scale and min from the 12 packed bytes (ggml's
/// get_scale_min_k4): groups 0–3 keep theirs in the low six bits of bytes j
/// and j + 4; groups 4–7 take four bits from byte j + 4 and the top two bits
/// of bytes j - 4 and j.
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

/// Group j's step d * sc and offset dmin * m, each rounded once as ggml
/// rounds them; its values are step * q - offset.
@inline(__always)
func kQuantStepAndOffset(_ scales: UnsafeRawPointer, _ j: Int, d: Float, dmin: Float) -> (step: Float, offset: Float) {
    let (scale, min) = kQuantScaleAndMin(scales, j)
    return (d * Float(scale), dmin * Float(min))
}
