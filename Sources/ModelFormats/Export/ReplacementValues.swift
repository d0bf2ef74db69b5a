import Kernels

/// The Float32 values an export writes in place of a source tensor: a tensor given whole, or values made only when
/// the writer needs them (`ProducedValues`).
public protocol ReplacementValues {
    /// Row-major, the source entry's.
    var shape: [Int] { get }
    /// The values (made anew on every call for produced ones).
    func values() throws -> Tensor
    /// Whether `values()` makes them: the writers then make them once to check what the file can store, before
    /// anything is written, and again to write them, holding one such tensor at a time.
    var isProduced: Bool { get }
}

extension Tensor: ReplacementValues {
    public func values() -> Tensor { self }
    public var isProduced: Bool { false }
}

/// Values made on demand: a model kept compactly in memory (a compression job's `PrunedProjection`s) is exported one
/// projection at a time, never as a whole Float32 copy.
public struct ProducedValues: ReplacementValues, @unchecked Sendable {
    public let shape: [Int]
    private let make: () throws -> Tensor

    public init(shape: [Int], make: @escaping () throws -> Tensor) {
        self.shape = shape
        self.make = make
    }

    public func values() throws -> Tensor {
        let tensor = try make()
        precondition(tensor.shape == shape, "produced values: \(tensor.shape) made for \(shape)")
        return tensor
    }

    public var isProduced: Bool { true }
}
