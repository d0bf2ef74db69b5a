import Kernels

/// Converts `count` elements stored as `type` to Float32.
///
/// `source` must hold exactly `type.byteCount(elements: count)` bytes. Each
/// quantised type's reference decoder lives in its own file; this is the one
/// dispatch point readers use. Results equal ggml's `dequantize_row_*` bit for
/// bit. Large tensors are split over `WorkerPool.shared` by whole blocks.
public func dequantize(_ type: GGMLType, from source: UnsafeRawBufferPointer, count: Int,
                       into destination: UnsafeMutablePointer<Float>) throws {
    try dequantize(type, from: source, count: count, into: destination, path: .fast)
}

/// Encodes `count` Float32 values as `type` into `destination`, which must
/// hold exactly `type.byteCount(elements: count)` bytes. Q8_0 and Q4_0 match
/// ggml's `quantize_row_*_ref` byte for byte (so an exact zero stays zero).
public func quantize(_ type: GGMLType, from source: UnsafePointer<Float>, count: Int,
                     into destination: UnsafeMutableRawBufferPointer) throws {
    guard let needed = type.byteCount(elements: count), needed == destination.count else {
        throw QuantizationError.sizeMismatch(type: type, elements: count, bytes: destination.count)
    }
    guard type.canQuantize else { throw QuantizationError.unsupportedType(type) }
    guard count > 0, let base = destination.baseAddress else { return }
    switch type {
    case .f32:
        base.copyMemory(from: source, byteCount: needed)
    case .f16:
        convertFloat32ToFloat16(source, base.assumingMemoryBound(to: UInt16.self), count: count)
    case .bf16:
        convertFloat32ToBFloat16(source, base.assumingMemoryBound(to: UInt16.self), count: count)
    default:
        guard let encoder = blockEncoder(for: type) else { throw QuantizationError.unsupportedType(type) }
        encodeBlocks(encoder, source, blockCount: count / type.blockSize, into: base)
    }
}

extension GGMLType {
    /// Whether `dequantize` can decode this type (the IQ, TQ and integer types it cannot).
    public var canDequantize: Bool { isPlainFloat || blockDecoder(for: self) != nil }

    /// Whether `quantize` can encode this type.
    public var canQuantize: Bool { isPlainFloat || blockEncoder(for: self) != nil }

    var isPlainFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

/// The block decoder of each quantised type losad reads.
func blockDecoder(for type: GGMLType) -> (any BlockDecoder.Type)? {
    switch type {
    case .q8_0: return Q8_0.self
    case .q8_1: return Q8_1.self
    case .q4_0: return Q4_0.self
    case .q4_1: return Q4_1.self
    case .q5_0: return Q5_0.self
    case .q5_1: return Q5_1.self
    case .q2_K: return Q2_K.self
    case .q3_K: return Q3_K.self
    case .q4_K: return Q4_K.self
    case .q5_K: return Q5_K.self
    case .q6_K: return Q6_K.self
    case .q8_K: return Q8_K.self
    default: return nil
    }
}

/// The block encoder of each quantised type losad writes.
func blockEncoder(for type: GGMLType) -> (any BlockEncoder.Type)? {
    switch type {
    case .q8_0: return Q8_0.self
    case .q4_0: return Q4_0.self
    default: return nil
    }
}

// MARK: - Dispatch

/// Which decoder runs: the SIMD, multi-threaded one, or the plain scalar
/// reference it is held to (tests decode with both and compare bits).
enum DecodePath: Sendable {
    case fast, reference
}

/// `dequantize` with a choice of decoder.
func dequantize(_ type: GGMLType, from source: UnsafeRawBufferPointer, count: Int,
                into destination: UnsafeMutablePointer<Float>, path: DecodePath) throws {
    guard let needed = type.byteCount(elements: count), needed == source.count else {
        throw QuantizationError.sizeMismatch(type: type, elements: count, bytes: source.count)
    }
    guard type.canDequantize else { throw QuantizationError.unsupportedType(type) }
    guard count > 0, let base = source.baseAddress else { return }
    switch type {
    case .f32:
        UnsafeMutableRawPointer(destination).copyMemory(from: base, byteCount: needed)
    case .f16:
        convertFloat16ToFloat32(base.assumingMemoryBound(to: UInt16.self), destination, count: count)
    case .bf16:
        convertBFloat16ToFloat32(base.assumingMemoryBound(to: UInt16.self), destination, count: count)
    default:
        guard let decoder = blockDecoder(for: type) else { throw QuantizationError.unsupportedType(type) }
        decodeBlocks(decoder, base, blockCount: count / type.blockSize, into: destination, path: path)
    }
}

/// Elements below which a tensor is not worth splitting across threads (a
/// chunk of this size takes tens of microseconds, well above the cost of a
/// pool round trip).
let parallelElementGrain = 1 << 16

/// Decodes `blockCount` blocks with `decoder`: the reference on one thread, or
/// the fast path over whole-block chunks of the worker pool. (Called with an
/// opened existential, so one witness call per chunk; the loops inside each
/// decoder are concrete.)
func decodeBlocks<Decoder: BlockDecoder>(_ decoder: Decoder.Type, _ blocks: UnsafeRawPointer, blockCount: Int,
                                         into y: UnsafeMutablePointer<Float>, path: DecodePath) {
    let blockBytes = Decoder.type.bytesPerBlock, n = Decoder.type.blockSize
    switch path {
    case .reference:
        Decoder.decodeReference(blocks, count: blockCount, into: y)
    case .fast:
        WorkerPool.shared.parallelFor(blockCount, minimumChunk: max(1, parallelElementGrain / n)) { range in
            Decoder.decode(blocks + range.lowerBound * blockBytes, count: range.count, into: y + range.lowerBound * n)
        }
    }
}

/// Encodes `blockCount` blocks with `encoder`'s reference, split over the worker pool.
func encodeBlocks<Encoder: BlockEncoder>(_ encoder: Encoder.Type, _ x: UnsafePointer<Float>, blockCount: Int,
                                         into blocks: UnsafeMutableRawPointer) {
    let blockBytes = Encoder.type.bytesPerBlock, n = Encoder.type.blockSize
    WorkerPool.shared.parallelFor(blockCount, minimumChunk: max(1, parallelElementGrain / n)) { range in
        Encoder.encodeReference(x + range.lowerBound * n, count: range.count, into: blocks + range.lowerBound * blockBytes)
    }
}

// MARK: - Errors

/// Errors of the block codecs.
public enum QuantizationError: Error, Sendable, Equatable, CustomStringConvertible {
    case unsupportedType(GGMLType)
    case sizeMismatch(type: GGMLType, elements: Int, bytes: Int)

    public var description: String {
        switch self {
        case .unsupportedType(let type):
            let decodes = GGMLType.allCases.filter(\.canDequantize).map(\.description).joined(separator: ", ")
            let encodes = GGMLType.allCases.filter(\.canQuantize).map(\.description).joined(separator: ", ")
            return "tensor type \(type) cannot be converted by losad (it decodes \(decodes) and encodes \(encodes)); convert the model to one of these types first"
        case .sizeMismatch(let type, let elements, let bytes):
            return "\(elements) elements of \(type) do not fit \(bytes) bytes (blocks of \(type.blockSize) elements, \(type.bytesPerBlock) bytes)"
        }
    }
}
