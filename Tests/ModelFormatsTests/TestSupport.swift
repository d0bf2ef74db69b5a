import Foundation
import Testing
@testable import ModelFormats

// What the GGUF, Safetensors, quantisation and tokenizer tests share: seeded
// test data, scratch folders, byte helpers, typed-error helpers and the
// reference data scripts/prepare-test-references.sh prepares.

// MARK: - Test data

/// SplitMix64 (Steele, Lea & Flood, 2014): small, seeded and the same everywhere, so every run sees the same data.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1), on a grid of 2⁻²⁴.
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform between `lower` and `upper`, on a grid of 2⁻²⁴ of the range.
    mutating func uniform(_ lower: Float, _ upper: Float) -> Float { lower + (upper - lower) * unit() }

    /// An index in 0..<bound.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

// MARK: - Files

/// A fresh folder under the system's temporary directory, removed when released.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("losad-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Names in the folder, hidden ones included, sorted.
    var contents: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Writes `data` to `path`, replacing what is there.
func writeFile(_ path: String, _ data: Data) throws {
    try data.write(to: URL(fileURLWithPath: path))
}

/// The little-endian bytes of `values`.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

// MARK: - Typed errors

/// The ModelFormatError `body` throws, or nil (recording an issue) when it succeeds or throws anything else.
func modelFormatError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> ModelFormatError? {
    do {
        try body()
        Issue.record("expected a ModelFormatError, but it succeeded", sourceLocation: sourceLocation)
    } catch let error as ModelFormatError {
        return error
    } catch {
        Issue.record("expected a ModelFormatError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension ModelFormatError {
    /// The field the error names (the operation, for an I/O error).
    var field: String {
        switch self {
        case .truncated(_, let field, _, _, _), .invalid(_, let field, _), .unsupported(_, let field, _): return field
        case .io(_, let operation, _): return operation
        }
    }

    var isTruncated: Bool { if case .truncated = self { return true } else { return false } }
    var isInvalid: Bool { if case .invalid = self { return true } else { return false } }
    var isUnsupported: Bool { if case .unsupported = self { return true } else { return false } }
}

// MARK: - Reference data

/// What the suite compares against that is not committed: scripts/prepare-test-references.sh
/// prepares it and prints these variables; a test that needs one is skipped without it.
enum TestReferences {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The python of the test venv (`bash scripts/python-env.sh` prints it).
    static let python = setting("LOSAD_TEST_PYTHON")
    /// The demo model, a GGUF file (scripts/fetch-demo-model.sh).
    static let demoModel = setting("LOSAD_DEMO_MODEL")
    /// gguf-py's dump of the demo model (scripts/fixtures/gguf_dump_reference.py).
    static let referenceDirectory = setting("LOSAD_REFERENCE_DIR")

    static func setting(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Runs scripts/fixtures/`script` on `arguments` with the test python and
    /// returns its standard output; a non-zero exit fails with its standard error.
    static func runScript(_ script: String, _ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(python))
        process.arguments = [repositoryRoot.appendingPathComponent("scripts/fixtures/\(script)").path] + arguments
        // Standard error goes to a file, so a chatty script cannot fill a pipe nobody reads yet.
        let scratch = try TemporaryDirectory()
        let errorPath = scratch.file("stderr.txt")
        try #require(FileManager.default.createFile(atPath: errorPath, contents: nil))
        let errorHandle = try #require(FileHandle(forWritingAtPath: errorPath))
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorHandle
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try errorHandle.close()
        let messages = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        try #require(process.terminationStatus == 0, "\(script) failed: \(messages)")
        return data
    }
}

/// `data` as a JSON object, or a test failure.
func jsonObject(_ data: Data) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}
