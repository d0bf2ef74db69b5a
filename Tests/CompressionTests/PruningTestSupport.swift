import Compression
import Foundation
import Kernels
import ModelFormats
import Testing

// What the pruning tests share: seeded weights and inputs, zero counts, and
// the layer reconstruction error the methods are compared by.

enum PruningTestData {
    /// A weight [rows, columns] of normals with standard deviation 1/√columns.
    static func weight(rows: Int, columns: Int, seed: UInt64) -> Tensor {
        var random = RandomGenerator(seed: seed)
        let w = Tensor(zeros: [rows, columns])
        random.fillNormal(w, standardDeviation: 1 / Float(columns).squareRoot())
        return w
    }

    /// Inputs X [rows, columns] with a strongly non-isotropic covariance like real activations:
    /// a rank-`rank` common part, per-column scales exp(N(0, 0.5²)), and a little isotropic noise.
    static func correlatedInputs(rows: Int, columns: Int, rank: Int = 16, seed: UInt64) -> Tensor {
        var random = RandomGenerator(seed: seed)
        let common = Tensor(zeros: [rows, rank]), mixing = Tensor(zeros: [rank, columns])
        random.fillNormal(common)
        random.fillNormal(mixing, standardDeviation: 1 / Float(rank).squareRoot())
        let x = matmul(common, mixing)
        let p = x.pointer
        let scales = (0..<columns).map { _ in exp(0.5 * random.nextNormal()) }
        for row in 0..<rows {
            for j in 0..<columns { p[row * columns + j] = (p[row * columns + j] + 0.1 * random.nextNormal()) * scales[j] }
        }
        return x
    }

    /// Statistics of `x` gathered in batches of `batch` rows.
    static func statistics(_ x: Tensor, hessian: InputStatistics.HessianPrecision? = .float64,
                           batch: Int = 100) throws -> InputStatistics {
        var statistics = try InputStatistics(inputs: x.rowLength, hessian: hessian)
        var start = 0
        while start < x.shape[0] {
            let end = min(start + batch, x.shape[0])
            try statistics.accumulate(x.slice(start..<end))
            start = end
        }
        return statistics
    }

    /// Zeros in each row of a matrix.
    static func zerosPerRow(_ w: Tensor) -> [Int] {
        let columns = w.rowLength
        return (0..<w.rowCount).map { row in (0..<columns).count { w.pointer[row * columns + $0] == 0 } }
    }

    /// Zeros in each group of `size` consecutive inputs, row by row (rows are a multiple of `size` long).
    static func zerosPerGroup(_ w: Tensor, size: Int) -> [Int] {
        precondition(w.rowLength % size == 0)
        return (0..<(w.count / size)).map { group in (0..<size).count { w.pointer[group * size + $0] == 0 } }
    }

    /// ‖X·Wᵀ − X·Ŵᵀ‖², in Double: how much the pruned layer's output moved on the calibration inputs.
    static func reconstructionError(_ x: Tensor, dense: Tensor, pruned: Tensor) -> Double {
        let n = x.shape[0], inputs = x.rowLength, outputs = dense.shape[0]
        let difference = (0..<dense.count).map { Double(dense.pointer[$0]) - Double(pruned.pointer[$0]) }
        var total = 0.0
        for row in 0..<n {
            let line = x.pointer + row * inputs
            for out in 0..<outputs {
                var sum = 0.0
                for j in 0..<inputs { sum += Double(line[j]) * difference[out * inputs + j] }
                total += sum * sum
            }
        }
        return total
    }
}

/// The SparseGPT fixture made by scripts/fixtures/sparsegpt_make_fixture.py with llm-compressor.
enum SparseGPTFixture {
    static let formatVersion = 1

    static var directory: URL {
        get throws { try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures") }
    }

    struct Case {
        let name: String
        let pattern: SparsityPattern
        let sparsity: Double
        let expected: Tensor
        /// The reference's own error estimate, Σ (w − q)² / U_jj² / 2.
        let loss: Double
    }

    struct Contents {
        let weight: Tensor
        let inputs: Tensor
        let deadColumn: Int
        let cases: [Case]
    }

    static func load() throws -> Contents {
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: try directory.appendingPathComponent("sparsegpt.json"))) as? [String: Any])
        #expect(json["format_version"] as? Int == formatVersion, "SparseGPT fixture format; rerun its script")
        let file = try SafetensorsFile(path: try directory.appendingPathComponent("sparsegpt.safetensors").path)
        let cases = try #require(json["cases"] as? [[String: Any]]).map { entry throws -> Case in
            let name = try #require(entry["name"] as? String)
            return Case(name: name,
                        pattern: try SparsityPattern(parsing: try #require(entry["pattern"] as? String)),
                        sparsity: try #require(entry["sparsity"] as? Double),
                        expected: try file.tensor(named: "expected.\(name)"),
                        loss: try #require(entry["loss"] as? Double))
        }
        return Contents(weight: try file.tensor(named: "weight"), inputs: try file.tensor(named: "inputs"),
                        deadColumn: try #require(json["dead_column"] as? Int), cases: cases)
    }
}
