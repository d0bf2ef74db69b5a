import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Sources, sparse files and file surgery for the sparse model file tests.
enum SparseFileFixtures {
    /// A source checkpoint and what keeps its files alive.
    struct Source {
        let label: String
        let folder: TemporaryDirectory
        let checkpoint: Checkpoint
    }

    /// The tiny LLaMA as a Hugging Face folder (transformers wrote it; F32, cols 32 and 48).
    static func huggingFaceSource() throws -> Source {
        let folder = try ExportFixtures.huggingFaceFolder()
        return Source(label: "huggingface", folder: folder, checkpoint: try Checkpoint.open(folder.path))
    }

    /// A GGUF as llama.cpp's quantiser leaves one (Q4_1 embedding, Q8_0 head, Q4_0/F16 projections).
    static func ggufSource() throws -> Source {
        let folder = try TemporaryDirectory()
        try ExportFixtures.writeGGUF(to: folder.file("source.gguf"))
        return Source(label: "gguf", folder: folder, checkpoint: try Checkpoint.open(folder.file("source.gguf")))
    }

    /// What a job hands the writer: every projection pruned (half of each row, row 0 empty).
    static func prunedWeights(of source: Checkpoint) throws -> [TensorRole: Tensor] {
        try ExportFixtures.sparseProjections(of: source)
    }

    /// Writes `source` with its projections pruned and stored sparse as `kind` at `path`.
    @discardableResult
    static func writeSparse(_ source: Checkpoint, kind: SparseValueKind, to path: String,
                            extra: [TensorRole: Tensor] = [:]) throws -> (result: SparseModelWriteResult, weights: [TensorRole: Tensor]) {
        var weights = try prunedWeights(of: source)
        for (role, tensor) in extra { weights[role] = tensor }
        let writer = SparseModelWriter(source: source, valueKind: kind, metadata: GGUFMetadata([("losa.sparsity", .float32(0.5))]))
        let result = try writer.write(weights: weights, sparse: Set(ExportFixtures.projections), to: path)
        return (result, weights)
    }

    // MARK: - Surgery

    /// What to do with one tensor when a file is rewritten.
    enum TensorEdit {
        case keep
        case drop
        /// New type, row-major shape and bytes under the same name.
        case replace(GGMLType, shape: [Int], bytes: [UInt8])
    }

    /// Copies the GGUF file `source` to `path` with its metadata and tensors edited.
    static func rewrite(_ source: String, to path: String, metadata edit: (inout GGUFMetadata) -> Void = { _ in },
                        tensors: (GGUFTensorInfo, [UInt8]) -> TensorEdit = { _, _ in .keep }) throws {
        let file = try GGUFFile(path: source)
        var metadata = file.metadata
        edit(&metadata)
        var writer = GGUFWriter(metadata: metadata)
        for info in file.tensors {
            switch tensors(info, Array(file.rawBytes(of: info))) {
            case .keep: writer.addTensor(copying: info, from: file)
            case .drop: break
            case .replace(let type, let shape, let bytes): writer.addTensor(named: info.name, shape: shape, type: type, bytes: bytes)
            }
        }
        try writer.write(to: path, replacingExisting: true)
    }

    // MARK: - The independent implementation

    /// Runs scripts/sparse_format.py (the numpy + gguf reader and writer written from the doc).
    static func runSparseFormat(_ arguments: [String]) throws -> Data {
        // runScript runs scripts/fixtures/<script>; this script is one level up, beside the other tools.
        try TestReferences.runScript("../sparse_format.py", arguments)
    }

    /// Runs scripts/sparse_format.py expecting it to fail: its exit status and standard error.
    static func runSparseFormatFailing(_ arguments: [String]) throws -> (status: Int32, message: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(TestReferences.python))
        process.arguments = [TestReferences.repositoryRoot.appendingPathComponent("scripts/sparse_format.py").path] + arguments
        let scratch = try TemporaryDirectory()
        let errorPath = scratch.file("stderr.txt")
        try #require(FileManager.default.createFile(atPath: errorPath, contents: nil))
        let errorHandle = try #require(FileHandle(forWritingAtPath: errorPath))
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errorHandle
        try process.run()
        process.waitUntilExit()
        try errorHandle.close()
        return (process.terminationStatus, (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
    }

    /// The reference decode of `path`: its JSON index and the float32 values by tensor name.
    static func referenceDecode(_ path: String, scratch: TemporaryDirectory) throws -> (index: [String: Any], values: [String: [Float]]) {
        let out = scratch.file("reference.f32")
        let index = try jsonObject(runSparseFormat(["decode", path, out]))
        let dump = try MappedFile(path: out)
        let floats = dump.bytes.bindMemory(to: Float.self)
        var values: [String: [Float]] = [:]
        for entry in try #require(index["tensors"] as? [[String: Any]]) {
            let name = try #require(entry["name"] as? String)
            let offset = try #require(entry["offset"] as? Int), count = try #require(entry["count"] as? Int)
            values[name] = Array(floats[offset..<(offset + count)])
        }
        return (index, values)
    }
}

/// Bit-for-bit equality of two float arrays (so that -0 and NaN payloads count), with the first difference.
func bitwiseDifference(_ a: [Float], _ b: [Float]) -> String? {
    guard a.count == b.count else { return "\(a.count) values against \(b.count)" }
    for index in a.indices where a[index].bitPattern != b[index].bitPattern {
        return "element \(index): \(a[index]) against \(b[index])"
    }
    return nil
}
