/// Conversions between Float32 and the 16-bit formats checkpoints store:
/// IEEE 754 binary16 (Float16) and bfloat16, both as raw bit patterns.
/// Narrowing rounds to nearest, ties to even; NaN stays NaN, infinities stay.

// MARK: - Float16

/// Widens `count` binary16 bit patterns to Float32 (exact).
public func convertFloat16ToFloat32(_ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let bits = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<UInt16>.self)
        let halves = unsafeBitCast(bits, to: SIMD16<Float16>.self)
        UnsafeMutableRawPointer(destination + i).storeBytes(of: SIMD16<Float>(halves), as: SIMD16<Float>.self)
        i += 16
    }
    while i < count {
        destination[i] = Float(Float16(bitPattern: source[i]))
        i += 1
    }
}

/// Narrows `count` Float32 values to binary16 bit patterns (round to nearest even).
public func convertFloat32ToFloat16(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<UInt16>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let values = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<Float>.self)
        let halves = SIMD16<Float16>(values)
        UnsafeMutableRawPointer(destination + i).storeBytes(of: unsafeBitCast(halves, to: SIMD16<UInt16>.self), as: SIMD16<UInt16>.self)
        i += 16
    }
    while i < count {
        destination[i] = Float16(source[i]).bitPattern
        i += 1
    }
}

// MARK: - bfloat16

/// Widens one bfloat16 bit pattern to Float32 (exact: bfloat16 is the top half of a Float32).
@inline(__always)
public func float32(fromBFloat16 bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Narrows one Float32 to bfloat16 bits, rounding to nearest even; NaN becomes a quiet NaN.
@inline(__always)
public func bfloat16(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040) }
    let roundingBias = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
}

/// Widens `count` bfloat16 bit patterns to Float32 (exact).
public func convertBFloat16ToFloat32(_ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let bits = SIMD16<UInt32>(truncatingIfNeeded: UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<UInt16>.self))
        UnsafeMutableRawPointer(destination + i).storeBytes(of: bits &<< 16, as: SIMD16<UInt32>.self)
        i += 16
    }
    while i < count {
        destination[i] = float32(fromBFloat16: source[i])
        i += 1
    }
}

/// Narrows `count` Float32 values to bfloat16 bit patterns (round to nearest even).
public func convertFloat32ToBFloat16(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count { destination[i] = bfloat16(from: source[i]) }
}

// MARK: - Tensor conveniences

extension Tensor {
    /// A tensor from binary16 bit patterns.
    public init(shape: [Int], float16Bits: [UInt16]) {
        precondition(float16Bits.count == Tensor.elementCount(shape), "\(float16Bits.count) values for shape \(shape)")
        self.init(zeros: shape)
        guard count > 0 else { return }
        let destination = pointer
        float16Bits.withUnsafeBufferPointer { convertFloat16ToFloat32($0.baseAddress!, destination, count: $0.count) }
    }

    /// A tensor from bfloat16 bit patterns.
    public init(shape: [Int], bfloat16Bits: [UInt16]) {
        precondition(bfloat16Bits.count == Tensor.elementCount(shape), "\(bfloat16Bits.count) values for shape \(shape)")
        self.init(zeros: shape)
        guard count > 0 else { return }
        let destination = pointer
        bfloat16Bits.withUnsafeBufferPointer { convertBFloat16ToFloat32($0.baseAddress!, destination, count: $0.count) }
    }

    /// The values as binary16 bit patterns.
    public var float16Bits: [UInt16] {
        [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { convertFloat32ToFloat16(pointer, buffer.baseAddress!, count: count) }
            initialized = count
        }
    }

    /// The values as bfloat16 bit patterns.
    public var bfloat16Bits: [UInt16] {
        [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { convertFloat32ToBFloat16(pointer, buffer.baseAddress!, count: count) }
            initialized = count
        }
    }
}
