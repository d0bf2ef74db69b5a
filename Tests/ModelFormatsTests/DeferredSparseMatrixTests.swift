import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// The sparse writer's matrices: encoded at their first part, let go after their last, and held to the sizes the
/// file's header was planned with.
@Suite struct DeferredSparseMatrixTests {
    /// A 3×80 matrix (two column groups, the second partial) with every other weight zero.
    static func pruned() -> Tensor {
        Tensor(shape: [3, 80], values: (0..<240).map { $0 % 2 == 0 ? 0 : Float($0 % 13 - 6) * 0.01 })
    }

    @Test(arguments: [SparseValueKind.s8, .f16])
    func theMatrixIsEncodedOnceAtItsFirstPartAndReleasedAfterItsLast(kind: SparseValueKind) throws {
        let values = Self.pruned()
        let reference = SparseMatrix.encode(values, kind: kind)
        let encodings = CallCounter()
        let matrix = DeferredSparseMatrix(name: "w", file: "out.gguf", kind: kind, rows: 3, cols: 80,
                                          valueBytes: reference.valueByteCount, storedCount: reference.storedCount) {
            encodings.increment()
            return SparseMatrix.encode(values, kind: kind)
        }
        #expect(encodings.count == 0 && !matrix.holdsEncoding)
        #expect(matrix.storedByteCount == reference.storedByteCount && matrix.density == reference.density)
        let parts = SparseModelFormat.Part.allCases.filter { $0.isPresent(for: kind) }
        var bytes: [SparseModelFormat.Part: [UInt8]] = [:]
        for (index, part) in parts.enumerated() {
            try matrix.write(part) { bytes[part, default: []] += Array($0) }
            #expect(encodings.count == 1)
            #expect(matrix.holdsEncoding == (index < parts.count - 1), "\(part)")
        }
        #expect(bytes[.values] == Array(UnsafeRawBufferPointer(start: reference.values,
                                                                count: reference.valueByteCount + SparseModelFormat.valuePadding)))
        #expect(bytes[.offsets] == SparseModelWriter.littleEndian(reference.rowOffsets, count: 4))
        #expect(bytes[.mask]?.count == 3 * 2 * 8)
        #expect(parts.map { bytes[$0]!.count }.reduce(0, +) == reference.storedByteCount)
    }

    @Test func anEncodingOfAnotherSizeThanPlannedIsATypedErrorNamingTheTensor() throws {
        let values = Self.pruned()
        let reference = SparseMatrix.encode(values, kind: .s8)
        let matrix = DeferredSparseMatrix(name: "blk.0.ffn_up.weight", file: "out.gguf", kind: .s8, rows: 3, cols: 80,
                                          valueBytes: reference.valueByteCount + 1, storedCount: reference.storedCount) {
            SparseMatrix.encode(values, kind: .s8)
        }
        let error = try #require(throws: ModelFormatError.self) { try matrix.write(.mask) { _ in } }
        #expect(error.file == "out.gguf" && error.field == "sparse tensor 'blk.0.ffn_up.weight'")
    }
}

/// Counts calls from a `@Sendable` closure.
private final class CallCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var calls = 0
    var count: Int { lock.withLock { calls } }
    func increment() { lock.withLock { calls += 1 } }
}
