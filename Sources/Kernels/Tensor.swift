#if canImport(Glibc)
import Glibc
#endif

/// A block of Float32 values, owned (64-byte aligned, zeroed) or borrowed from
/// an owner that keeps it alive (a memory-mapped file, for example).
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int
    private let owner: AnyObject?

    /// Allocates `count` zeroed values.
    public init(count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes for a tensor")
        }
        memset(raw, 0, bytes)
        self.base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.owner = nil
    }

    /// Wraps memory that `owner` keeps valid for as long as this storage lives.
    public init(borrowing base: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.base = base
        self.count = count
        self.owner = owner
    }

    deinit {
        if owner == nil { free(base) }
    }
}

/// A row-major Float32 array with a shape: a view of a `TensorStorage`.
///
/// Tensors have reference semantics for their values, like NumPy arrays:
/// `tensor[i]`, `slice`, and `reshaped` return views that share storage, and
/// writes through one view are seen by all. `copy()` makes an independent tensor.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage
    /// Index of this view's first element in `storage`.
    public let offset: Int
    /// Number of elements (product of `shape`).
    public let count: Int

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        let count = Tensor.elementCount(shape)
        self.init(shape: shape, storage: TensorStorage(count: count), offset: 0)
    }

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        if value != 0 { pointer.update(repeating: value, count: count) }
    }

    /// A tensor holding `values` (row-major); `values.count` must equal the shape's product.
    public init(shape: [Int], values: [Float]) {
        precondition(values.count == Tensor.elementCount(shape),
                     "\(values.count) values for shape \(shape)")
        self.init(zeros: shape)
        guard count > 0 else { return }
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// A view of `storage` starting at `offset`.
    public init(shape: [Int], storage: TensorStorage, offset: Int = 0) {
        let count = Tensor.elementCount(shape)
        precondition(offset >= 0 && offset + count <= storage.count,
                     "view [\(offset), \(offset + count)) outside storage of \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.count = count
    }

    static func elementCount(_ shape: [Int]) -> Int {
        var product = 1
        for dimension in shape {
            precondition(dimension >= 0, "negative dimension in shape \(shape)")
            let (next, overflow) = product.multipliedReportingOverflow(by: dimension)
            precondition(!overflow, "shape \(shape) overflows")
            product = next
        }
        return product
    }

    public var rank: Int { shape.count }
    /// Length of the last dimension (1 for a scalar).
    public var rowLength: Int { shape.last ?? 1 }
    /// Product of all dimensions but the last: the number of rows of the 2-D view.
    public var rowCount: Int { rowLength == 0 ? 0 : count / rowLength }

    /// The first element of this view.
    public var pointer: UnsafeMutablePointer<Float> { storage.base + offset }

    /// The `index`-th entry along the first dimension, as a view of rank − 1.
    public subscript(index: Int) -> Tensor {
        precondition(rank >= 1 && index >= 0 && index < shape[0],
                     "index \(index) out of range for shape \(shape)")
        let inner = Array(shape.dropFirst())
        return Tensor(shape: inner, storage: storage, offset: offset + index * Tensor.elementCount(inner))
    }

    /// Entries `range` along the first dimension, as a view of the same rank.
    public func slice(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0],
                     "slice \(range) out of range for shape \(shape)")
        var newShape = shape
        newShape[0] = range.count
        let stride = count / max(shape[0], 1)
        return Tensor(shape: newShape, storage: storage, offset: offset + range.lowerBound * stride)
    }

    /// The same values under another shape with the same element count (a view).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(Tensor.elementCount(newShape) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, storage: storage, offset: offset)
    }

    /// An independent copy with its own storage.
    public func copy() -> Tensor {
        let result = Tensor(zeros: shape)
        result.pointer.update(from: pointer, count: count)
        return result
    }

    /// The values, row-major.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Calls `body` with the view's values.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with the view's values for writing (shared with every other view).
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: pointer, count: count))
    }

    /// Sets every value to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies `source`'s values into this view; the element counts must match.
    public func assign(_ source: Tensor) {
        precondition(source.count == count, "assign \(source.shape) into \(shape)")
        pointer.update(from: source.pointer, count: count)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(\(shape): [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
