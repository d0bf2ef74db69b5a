import Kernels

/// Converts `count` elements stored as `type` to Float32.
///
/// `source` must hold exactly `type.byteCount(elements: count)` bytes. Each
/// quantised type's reference decoder lives in its own file; this is the one
/// dispatch point readers use.
public func dequantize(_ type: GGMLType, from source: UnsafeRawBufferPointer, count: Int,
                       into destination: UnsafeMutablePointer<Float>) throws {
    guard let needed = type.byteCount(elements: count), needed == source.count else {
        throw QuantizationError.sizeMismatch(type: type, elements: count, bytes: source.count)
    }
    guard count > 0, let base = source.baseAddress else { return }
    switch type {
    case .f32:
        UnsafeMutableRawPointer(destination).copyMemory(from: base, byteCount: needed)
    case .f16:
        convertFloat16ToFloat32(base.assumingMemoryBound(to: UInt16.self), destination, count: count)
    case .bf16:
        convertBFloat16ToFloat32(base.assumingMemoryBound(to: UInt16.self), destination, count: count)
    default:
        throw QuantizationError.unsupportedType(type)
    }
}

/// Encodes `count` Float32 values as `type` into `destination`, which must
/// hold exactly `type.byteCount(elements: count)` bytes.
public func quantize(_ type: GGMLType, from source: UnsafePointer<Float>, count: Int,
                     into destination: UnsafeMutableRawBufferPointer) throws {
    guard let needed = type.byteCount(elements: count), needed == destination.count else {
        throw QuantizationError.sizeMismatch(type: type, elements: count, bytes: destination.count)
    }
    guard count > 0, let base = destination.baseAddress else { return }
    switch type {
    case .f32:
        base.copyMemory(from: source, byteCount: needed)
    case .f16:
        convertFloat32ToFloat16(source, base.assumingMemoryBound(to: UInt16.self), count: count)
    case .bf16:
        convertFloat32ToBFloat16(source, base.assumingMemoryBound(to: UInt16.self), count: count)
    default:
        throw QuantizationError.unsupportedType(type)
    }
}

/// Errors of the block codecs.
public enum QuantizationError: Error, Sendable, Equatable, CustomStringConvertible {
    case unsupportedType(GGMLType)
    case sizeMismatch(type: GGMLType, elements: Int, bytes: Int)

    public var description: String {
        switch self {
        case .unsupportedType(let type):
            return "tensor type \(type) cannot be converted by losad"
        case .sizeMismatch(let type, let elements, let bytes):
            return "\(elements) elements of \(type) do not fit \(bytes) bytes (blocks of \(type.blockSize) elements, \(type.bytesPerBlock) bytes)"
        }
    }
}
