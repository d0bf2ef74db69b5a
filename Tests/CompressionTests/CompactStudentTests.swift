@testable import Compression
import Foundation
import Kernels
import ModelFormats
import Testing
import Transformer

/// The model being compressed kept compactly (`PrunedProjection`: the input read in place, a mask, the adapters
/// while merged) against the Float32 copy: whole jobs on the tiny LLaMA fixture.
@Suite struct CompactStudentTests {
    typealias Job = CompressionJobTests

    /// Every projection of the exported model, layer-major, as Float32.
    static func projections(_ path: String) throws -> [[Float]] {
        let decoder = try Decoder(checkpoint: Checkpoint.open(path))
        return decoder.weights.layers.flatMap { layer in
            SparseLoRA.Projection.allCases.map { p in
                let w = SparseLoRA.weight(layer, p)
                return Array(UnsafeBufferPointer(start: w.pointer, count: w.count))
            }
        }
    }

    static func run(_ student: CompressionMemoryPlan.StudentWeights?, settings: CompressionSettings,
                    in directory: URL, checkpoint: Bool = false) throws -> CompressionReport {
        var request = Job.request(directory, settings: settings, checkpoint: checkpoint)
        request.studentWeights = student
        return try CompressionJob(request).run()
    }

    /// Both ways give the same model: the same zeros in every projection, the kept weights equal to float rounding
    /// (the Float32 copy unmerges by subtracting ΔW again, the compact one drops it exactly), the same perplexities.
    @Test(arguments: [WeightReconstruction.leastSquares, .none], [PruningMethod.wanda, .sparseGPT])
    func aCompactStudentGivesTheFloat32StudentsModel(refit: WeightReconstruction, method: PruningMethod) throws {
        var settings = Job.settings(.losa)
        settings.weightReconstruction = refit
        settings.method = method
        let float32 = try Job.temporaryDirectory(), compact = try Job.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: float32)
            try? FileManager.default.removeItem(at: compact)
        }
        let a = try Self.run(.float32, settings: settings, in: float32), b = try Self.run(.compact, settings: settings, in: compact)
        #expect(a.memory?.studentWeights == "float32" && b.memory?.studentWeights == "compact")
        let x = try Self.projections(float32.appendingPathComponent("model").path)
        let y = try Self.projections(compact.appendingPathComponent("model").path)
        var differentZeros = 0, largest: Float = 0, difference: Float = 0
        for (u, v) in zip(x, y) {
            for (p, q) in zip(u, v) {
                if (p == 0) != (q == 0) { differentZeros += 1 }
                largest = max(largest, abs(p))
                difference = max(difference, abs(p - q))
            }
        }
        #expect(differentZeros == 0)
        #expect(difference <= 1e-3 * largest, "largest difference \(difference) of weights up to \(largest)")
        #expect(a.finalSparsity?.zeros == b.finalSparsity?.zeros && b.finalSparsity?.verified == true)
        let pa = try #require(a.evaluations.first), pb = try #require(b.evaluations.first)
        #expect(pa.dense == pb.dense && pa.pruned == pb.pruned)
        #expect(abs(pa.final! - pb.final!) <= 1e-3 * pa.final!, "final \(pa.final!) against \(pb.final!)")
        #expect(abs(pa.sparse! - pb.sparse!) <= 1e-3 * pa.sparse!, "sparse file \(pa.sparse!) against \(pb.sparse!)")
    }

    /// Stopped after an iteration and started again, a compact job gives its uninterrupted run's model bit for bit.
    /// Without the refit its checkpoint holds only the pruned positions (the values are the input's): 1/32 of the
    /// Float32 size and a word per projection; with the refit, the kept values as a Float32 job writes them.
    @Test(arguments: [WeightReconstruction.none, .leastSquares])
    func aCompactJobResumesFromItsCheckpoint(refit: WeightReconstruction) throws {
        var settings = Job.settings(.losa)
        settings.weightReconstruction = refit
        let uninterrupted = try Job.temporaryDirectory(), interrupted = try Job.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: uninterrupted)
            try? FileManager.default.removeItem(at: interrupted)
        }
        _ = try Self.run(.compact, settings: settings, in: uninterrupted, checkpoint: true)
        // Cancel as soon as iteration 2 starts pruning: iteration 1's checkpoint is on disk.
        let stop = StopFlag()
        var request = Job.request(interrupted, settings: settings)
        request.studentWeights = .compact
        let first = CompressionJob(request, cancellation: Cancellation { stop.isSet }) { p in
            if p.iteration == 2 && p.stage == .prune { stop.set() }
        }
        #expect(throws: CompressionError.cancelled) { try first.run() }
        let saved = interrupted.appendingPathComponent(".checkpoint/projections.bin").path
        let savedBytes = try #require(try FileManager.default.attributesOfItem(atPath: saved)[.size] as? Int)
        let config = try Checkpoint.open(Job.tinyModel).config
        let shapes = SparseLoRA.Projection.allCases.map { SparseLoRA.shape(of: $0, config: config) }
        let maskBytes = shapes.reduce(0) { $0 + 8 + ($1.out * $1.in + 63) / 64 * 8 } * config.layerCount
        let float32Bytes = shapes.reduce(0) { $0 + $1.out * $1.in * 4 } * config.layerCount
        if refit == .none {
            #expect(savedBytes == maskBytes)
        } else {
            #expect(Double(savedBytes) > 0.6 * Double(float32Bytes) && Double(savedBytes) < 0.72 * Double(float32Bytes))
        }
        let resumed = try CompressionJob(request).run()
        #expect(resumed.resumedAfterIteration == 1)
        let a = try Data(contentsOf: uninterrupted.appendingPathComponent("model/model.safetensors"))
        let b = try Data(contentsOf: interrupted.appendingPathComponent("model/model.safetensors"))
        #expect(a == b)
    }

    /// Under a limit below every Float32 plan the job keeps the student compactly, and says so; its plan counts the
    /// mask and one layer's expansion instead of the weights.
    @Test func aTightLimitChoosesTheCompactStudent() throws {
        // Without the refit, whose kept values a compact model stores as Float32 too (on a model this small that
        // leaves nothing to save).
        var settings = Job.settings(.losa)
        settings.weightReconstruction = .none
        let checkpoint = try Checkpoint.open(Job.tinyModel)
        let float32 = CompressionJob.candidates(settings: settings).filter { $0.student == .float32 }.map {
            CompressionJob.memoryPlan(checkpoint: checkpoint, settings: settings, activations: $0.activations,
                                      windowsPerPass: $0.windowsPerPass, denseFeatures: $0.dense, student: .float32,
                                      copiedProjectionBytes: 0, limit: nil)
        }
        let smallest = try #require(float32.map(\.totalBytes).min())
        let plan = try CompressionJob.memoryPlan(checkpoint: checkpoint, settings: settings, limit: smallest - 1)
        #expect(plan.studentWeights == .compact && plan.fits && plan.totalBytes < smallest)
        #expect(plan.parts.contains { $0.name == "projection masks" } && !plan.parts.contains { $0.name == "weights (Float32)" })
    }
}
