import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// The demo model (SmolLM2-135M, Q4_1 GGUF) at 50 %: the sizes issue 12 asks of the sparse file.
@Suite(.enabled(if: TestReferences.demoModel != nil, "set LOSAD_DEMO_MODEL (scripts/prepare-test-references.sh prints it)"))
struct SparseModelFileDemoTests {
    /// Every projection with every other weight set to zero: exactly 50 %. The file's size depends
    /// only on the density, so the cheapest exact pattern stands in for a pruning method here.
    static func halved(_ tensor: Tensor) -> Tensor {
        let result = tensor.copy()
        result.withUnsafeMutableBufferPointer { values in
            for index in stride(from: 0, to: values.count, by: 2) { values[index] = 0 }
        }
        return result
    }

    @Test func theDemoModelsSparseFilesAreSmallerThanTheDenseFilesTheIssueMeasured() throws {
        let model = try #require(TestReferences.demoModel)
        let source = try Checkpoint.open(model)
        var weights: [TensorRole: Tensor] = [:]
        for layer in 0..<source.config.layerCount {
            for tensor in TensorRole.LayerTensor.projections {
                weights[.layer(layer, tensor)] = Self.halved(try source.tensor(.layer(layer, tensor)))
            }
        }
        let roles = Set(weights.keys)
        let folder = try TemporaryDirectory()
        // The baseline: today's interoperable export of the same weights (projections as Q8_0).
        let dense = try source.export(replacing: weights, as: .q8_0, to: folder.file("dense.gguf"))
        var sizes: [SparseValueKind: Int] = [:]
        for kind in [SparseValueKind.s8, .s4] {
            let path = folder.file("sparse-\(kind).gguf")
            let result = try SparseModelWriter(source: source, valueKind: kind).write(weights: weights, sparse: roles, to: path)
            sizes[kind] = result.bytesWritten
            let opened = try Checkpoint.open(path)
            #expect(opened.config == source.config && opened.sparseMatrices().count == roles.count)
            for matrix in opened.sparseFile!.sparseTensors { #expect(abs(matrix.density - 0.5) < 0.01, "\(matrix.name)") }
            print("demo model, 50 %, \(kind): \(result.bytesWritten) bytes (sparse \(result.sparseBytes), dense \(result.denseBytes))")
            try FileManager.default.removeItem(atPath: path)
        }
        print("demo model: source \(source.fileSize) bytes, dense Q8_0 export \(dense.bytesWritten) bytes")
        // Issue 12: the 4-bit file ≤ 0.78 × the Q4_1 input, the 8-bit one ≤ 0.72 × the dense Q8_0 export.
        #expect(Double(sizes[.s4]!) <= 0.78 * Double(source.fileSize), "s4: \(sizes[.s4]!) of \(source.fileSize)")
        #expect(Double(sizes[.s8]!) <= 0.72 * Double(dense.bytesWritten), "s8: \(sizes[.s8]!) of \(dense.bytesWritten)")
    }
}
