import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Agreement with the reference `safetensors` library (PyPI, pinned in
/// scripts/requirements-test.txt), in both directions.
@Suite struct SafetensorsInteropTests {
    static let fixtureFormatVersion = 1

    // MARK: - The reference library wrote it; losad reads it

    @Test func aFileTheReferenceLibraryWroteReadsBackExactly() throws {
        let fixtures = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures")
        let expected = try jsonObject(Data(contentsOf: fixtures.appendingPathComponent("safetensors_reference.expected.json")))
        #expect(expected["format_version"] as? Int == Self.fixtureFormatVersion,
                "regenerate the fixture with scripts/fixtures/safetensors_make_fixture.py")

        let file = try SafetensorsFile(path: fixtures.appendingPathComponent("safetensors_reference.safetensors").path)
        #expect(file.metadata == expected["metadata"] as? [String: String])
        #expect(file.tensorNames == expected["offset_order"] as? [String])
        let tensors = try #require(expected["tensors"] as? [String: [String: Any]])
        #expect(Set(tensors.keys) == Set(file.tensorNames))
        for (name, want) in tensors {
            try Self.compare(name: name, want: want, in: file)
        }
        #expect(modelFormatError { _ = try file.tensor(named: "model.rope.inv_freq_f64") }?.field == "tensor 'model.rope.inv_freq_f64' dtype")
    }

    /// Checks dtype, shape, stored bytes and (for convertible dtypes) every value's Float32 bits.
    static func compare(name: String, want: [String: Any], in file: SafetensorsFile,
                        sourceLocation: SourceLocation = #_sourceLocation) throws {
        let info = try #require(file.info(named: name), sourceLocation: sourceLocation)
        #expect(info.dtype.rawValue == want["dtype"] as? String, "\(name)", sourceLocation: sourceLocation)
        #expect(info.shape == want["shape"] as? [Int], "\(name)", sourceLocation: sourceLocation)
        #expect(try file.rawBytes(named: name) == hexBytes(want["raw_hex"] as? String ?? "?"), "\(name)", sourceLocation: sourceLocation)
        if let bits = want["float32_bits"] as? [UInt32] {
            let tensor = try file.tensor(named: name)
            #expect(safetensorsBits(tensor) == bits, "\(name)", sourceLocation: sourceLocation)
        } else {
            #expect(!info.dtype.convertsToFloat32, "\(name)", sourceLocation: sourceLocation)
        }
    }

    // MARK: - losad wrote it; the reference library reads it

    @Test(.enabled(if: TestReferences.python != nil, "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh"))
    func theReferenceLibraryReadsWhatLosadWrites() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("losad.safetensors")
        let special: [Float] = [0, -0.0, 1, -2.5, .infinity, -.infinity, .nan, 0x1p-24, 0x1p-133, 65504, 3.14159, -1e-3]
        var random = TestRandom(seed: 3)
        let wide = Tensor(shape: [5, 7], values: (0..<35).map { _ in random.uniform(-5, 5) })
        let metadata = ["format": "pt", "losad": "interop ✓", "quote": "\"\\\n"]
        try SafetensorsWriter.write([
            .init(name: "special.f32", tensor: Tensor(shape: [3, 4], values: special), dtype: .f32),
            .init(name: "special.f16", tensor: Tensor(shape: [12], values: special), dtype: .f16),
            .init(name: "special.bf16", tensor: Tensor(shape: [2, 6], values: special), dtype: .bf16),
            .init(name: "wide.f16", tensor: wide, dtype: .f16),
            .init(name: "wide.bf16", tensor: wide, dtype: .bf16),
            .init(name: "scalar", tensor: Tensor(shape: [], values: [42]), dtype: .f32),
            .init(name: "empty", tensor: Tensor(zeros: [0, 3]), dtype: .bf16),
        ], metadata: metadata, to: path)

        let report = try Self.runCheck(path)
        let files = try #require(report["files"] as? [String: [String: Any]])
        let described = try #require(files["losad.safetensors"])
        #expect(described["metadata"] as? [String: String] == metadata)
        let file = try SafetensorsFile(path: path)
        #expect(described["offset_order"] as? [String] == file.tensorNames)
        try Self.compareReport(report, with: [file])
    }

    @Test(.enabled(if: TestReferences.python != nil, "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh"))
    func theReferenceLibraryReadsLosadsShards() throws {
        let directory = try TemporaryDirectory()
        try SafetensorsWriter.writeSharded(SafetensorsCheckpointTests.entries(), metadata: ["format": "pt"],
                                           toDirectory: directory.path, maxShardBytes: 104)
        let report = try Self.runCheck(directory.path)
        let index = try #require(report["index"] as? [String: Any])
        #expect((index["metadata"] as? [String: Any])?["total_size"] as? Int == 212)
        let checkpoint = try SafetensorsCheckpoint(path: directory.path)
        let reportedFiles = (report["files"] as? [String: Any]).map { Set($0.keys) } ?? []
        #expect(reportedFiles == Set(checkpoint.files.map { URL(fileURLWithPath: $0.path).lastPathComponent }))
        try Self.compareReport(report, with: checkpoint.files)
    }

    /// Every tensor the reference library reported must match what losad reads from the same files.
    static func compareReport(_ report: [String: Any], with files: [SafetensorsFile],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let tensors = try #require(report["tensors"] as? [String: [String: Any]], sourceLocation: sourceLocation)
        #expect(Set(tensors.keys) == Set(files.flatMap(\.tensorNames)), sourceLocation: sourceLocation)
        for (name, want) in tensors {
            let file = try #require(files.first { $0.contains(name) }, sourceLocation: sourceLocation)
            try compare(name: name, want: want, in: file, sourceLocation: sourceLocation)
        }
    }

    /// Runs scripts/fixtures/safetensors_check.py on `path` and decodes its JSON report.
    static func runCheck(_ path: String) throws -> [String: Any] {
        try jsonObject(TestReferences.runScript("safetensors_check.py", [path]))
    }

    static func hexBytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map {
            UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16) ?? 0
        }
    }
}
