import Foundation
import Testing
@testable import losad

/// The `losad` executable as users run it: exit codes, output, errors.
@Suite struct CommandTests {
    static let demoModel = ProcessInfo.processInfo.environment["LOSAD_DEMO_MODEL"].flatMap { $0.isEmpty ? nil : $0 }

    /// The built `losad` in the same build folder as this test binary.
    static var executable: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("losad")
    }

    struct Result { var status: Int32; var output: String; var error: String }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                      error: String(decoding: err, as: UTF8.self))
    }

    @Test func versionNamesTheKernelOpenBLASActuallyRuns() throws {
        let result = try Self.run(["version", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(report["version"] as? String == Losad.version)
        let core = try #require(report["openblasCore"] as? String)
        #expect(!core.isEmpty && core != "unknown")
        #expect((report["openblasThreads"] as? Int ?? 0) >= 1)
        #expect((report["openblasCoreChoice"] as? String)?.contains(core) == true)
    }

    @Test func aCoreTypeTheUserSetWins() throws {
        let result = try Self.run(["version", "--json"], environment: ["OPENBLAS_CORETYPE": "Haswell"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(report["openblasCore"] as? String == "Haswell")
        #expect((report["openblasCoreChoice"] as? String)?.contains("set by the user") == true)
    }

    @Test(.enabled(if: demoModel != nil, "set LOSAD_DEMO_MODEL (scripts/prepare-test-references.sh prints it)"))
    func inspectDescribesTheDemoModel() throws {
        let model = try #require(Self.demoModel)
        let result = try Self.run(["inspect", model, "--json"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(report["architecture"] as? String == "llama" && report["format"] as? String == "gguf")
        #expect(report["parameterCount"] as? Int == 134_515_008)
        #expect(report["tensorCount"] as? Int == 272)
        let types = try #require(report["tensorTypes"] as? [[String: Any]])
        #expect(Dictionary(uniqueKeysWithValues: types.map { ($0["type"] as? String ?? "?", $0["tensors"] as? Int ?? 0) })
                == ["Q4_1": 210, "F32": 61, "Q8_0": 1])
        let tokenizer = try #require(report["tokenizer"] as? [String: Any])
        #expect(tokenizer["algorithm"] as? String == "byteLevelBPE" && tokenizer["vocabularySize"] as? Int == 49152)
        #expect(report["fileSize"] as? Int == (try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int))

        let text = try Self.run(["inspect", model])
        #expect(text.status == 0 && text.output.contains("134,515,008") && text.output.contains("Q4_1 ×210"))
    }

    @Test func inspectRefusesABrokenFileWithASentenceAndExitCodeOne() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("broken-\(UUID().uuidString).gguf").path
        try Data("GGUF\u{3}\0\0\0".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["inspect", path])
        #expect(result.status == 1)
        #expect(result.error.hasPrefix("losad inspect: \(path):") && result.error.contains("truncated"), "\(result.error)")
        let missing = try Self.run(["inspect", path + ".nope"])
        #expect(missing.status == 1 && missing.error.contains("no such file or folder"))
    }
}
