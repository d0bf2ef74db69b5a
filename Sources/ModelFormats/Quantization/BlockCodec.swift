/// The shape every block codec shares, and the few helpers their decoders use.
///
/// Spec: ggml's `ggml-common.h` (block structs) and `ggml-quants.c`
/// (`dequantize_row_*`, `quantize_row_*_ref`). A block's stride and element
/// count always come from `GGMLType.blockLayout`, the one table of sizes; each
/// codec names only the byte offsets of the fields inside its block, and a test
/// checks that those fields fill the block exactly.
///
/// Bit-exactness: ggml evaluates each value as a short chain of Float32
/// operations (Q4_1 `q*d + m`; K-quants `(d*sc)*q - dmin*m`; Q6_K
/// `(d*sc)*q`). With a binary16 step and small integer codes every product in
/// these chains is exact in Float32, so each value is one correctly rounded
/// result whatever the evaluation order or fusion. We still write ggml's
/// operations in ggml's order (Swift never fuses `a * b + c` on its own), and
/// the SIMD paths evaluate the same chain for many lanes at once.

/// Decodes the blocks of one ggml type to Float32.
protocol BlockDecoder {
    /// The type these blocks belong to; its `blockLayout` gives their size.
    static var type: GGMLType { get }

    /// Field name and byte count of each block field, in `ggml-common.h` order.
    static var fields: [(name: String, bytes: Int)] { get }

    /// The plain, one-element-at-a-time decoder that mirrors ggml's `dequantize_row_*`.
    static func decodeReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>)

    /// Decodes `count` blocks bit for bit like `decodeReference`, as fast as it can.
    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>)
}

extension BlockDecoder {
    /// Types without a fast path decode with the reference.
    static func decode(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        decodeReference(blocks, count: count, into: y)
    }
}

/// Encodes Float32 values into the blocks of one ggml type.
protocol BlockEncoder {
    static var type: GGMLType { get }

    /// Encodes `count` blocks (`count * type.blockSize` values) exactly as ggml's `quantize_row_*_ref`.
    static func encodeReference(_ x: UnsafePointer<Float>, count: Int, into blocks: UnsafeMutableRawPointer)
}

// MARK: - Field access

/// The little-endian binary16 at `offset`, widened to Float32 (exact; GGML_FP16_TO_FP32).
@inline(__always)
func loadHalf(_ block: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
}

/// Stores `value` at `offset` as little-endian binary16, rounding to nearest even (GGML_FP32_TO_FP16).
@inline(__always)
func storeHalf(_ value: Float, _ block: UnsafeMutableRawPointer, _ offset: Int) {
    block.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
}

/// The byte at `offset`.
@inline(__always)
func loadByte(_ block: UnsafeRawPointer, _ offset: Int) -> UInt8 {
    block.load(fromByteOffset: offset, as: UInt8.self)
}

/// The little-endian 32-bit word at `offset`.
@inline(__always)
func loadWord(_ block: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: block.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

// MARK: - SIMD helpers for the fast paths

// The lane-by-lane loops below are what LLVM turns into single widen and
// convert instructions; the standard library's generic SIMD conversion
// initialisers stay out-of-line calls in release builds (measured 3-4x slower).

/// Sixteen small unsigned integers (codes, nibbles) as exact Float32 values.
@inline(__always)
func floats(_ codes: SIMD16<UInt8>) -> SIMD16<Float> {
    var result = SIMD16<Float>()
    for i in 0..<16 { result[i] = Float(codes[i]) }
    return result
}

/// Sixteen signed bytes as exact Float32 values.
@inline(__always)
func floats(_ codes: SIMD16<Int8>) -> SIMD16<Float> {
    var result = SIMD16<Float>()
    for i in 0..<16 { result[i] = Float(codes[i]) }
    return result
}

/// Sixteen bytes reinterpreted as signed.
@inline(__always)
func signed(_ bytes: SIMD16<UInt8>) -> SIMD16<Int8> {
    unsafeBitCast(bytes, to: SIMD16<Int8>.self)
}

/// Stores sixteen floats at `y` (no alignment needed).
@inline(__always)
func store(_ values: SIMD16<Float>, _ y: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(y).storeBytes(of: values, as: SIMD16<Float>.self)
}

/// Sixteen bytes of a block starting at `offset`.
@inline(__always)
func loadBytes16(_ block: UnsafeRawPointer, _ offset: Int) -> SIMD16<UInt8> {
    block.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
}
