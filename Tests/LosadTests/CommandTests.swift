import Foundation
import Testing
import ModelFormats
import Transformer
@testable import losad

/// The `losad` executable as users run it: exit codes, output, errors.
@Suite struct CommandTests {
    static let demoModel = ProcessInfo.processInfo.environment["LOSAD_DEMO_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
    static let referenceDirectory = ProcessInfo.processInfo.environment["LOSAD_REFERENCE_DIR"].flatMap { $0.isEmpty ? nil : $0 }

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

    @Test func theKernelInUseIsLoggedToStandardErrorAtInfoLevel() throws {
        let result = try Self.run(["version", "--json"], environment: ["LOSAD_LOG_LEVEL": "info"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let core = try #require(report["openblasCore"] as? String)
        #expect(result.error.contains("OpenBLAS runs its \(core) kernels on"), "\(result.error)")
        let quiet = try Self.run(["version", "--json"])
        #expect(!quiet.error.contains("OpenBLAS runs"), "the default level keeps standard error quiet")
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

    static var tinyPhi3: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TransformerTests/Fixtures/tiny-phi3").path
    }

    /// A model losad does not run is still listed, with the key that stops it (tiny phi3 asking for the
    /// 128k models' longrope).
    @Test func inspectListsAModelLosadCannotRunAndSaysWhy() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("longrope-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.tinyPhi3), to: folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("config.json")
        let text = try String(contentsOf: config, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "\"rope_type\": \"default\"", with: "\"rope_type\": \"longrope\"").utf8).write(to: config)
        let result = try Self.run(["inspect", folder.path, "--json"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(report["runnable"] as? Bool == false)
        #expect((report["reason"] as? String)?.contains("key 'rope_parameters.rope_type'") == true, "\(report["reason"] ?? "")")
        let listing = try #require(report["listing"] as? [String: Any])
        let tensors = try #require(listing["tensors"] as? [[String: Any]])
        #expect(tensors.contains { $0["name"] as? String == "model.layers.0.self_attn.qkv_proj.weight" && $0["shape"] as? [Int] == [64, 32] })
        #expect((listing["metadata"] as? [String: String])?["model_type"] == "phi3")

        let plain = try Self.run(["inspect", folder.path])
        #expect(plain.status == 0 && plain.output.contains("runs in losad: no") && plain.output.contains("longrope"))
    }

    /// Phi-3 runs: its fused tensors are listed as stored, and the block line says they are split.
    @Test func inspectSaysPhi3RunsWithItsFusedTensorsSplit() throws {
        let result = try Self.run(["inspect", Self.tinyPhi3, "--tensors"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("runs in losad: yes") && result.output.contains("architecture:  phi3")
                && result.output.contains("fused q/k/v and gate/up (split on load)"), "\(result.output)")
        #expect(result.output.contains("model.layers.1.mlp.gate_up_proj.weight"))
        let json = try Self.run(["inspect", Self.tinyPhi3, "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        // 2 · (qkv 64·32 + o 32·32 + gate_up 96·32 + down 32·48 + 2 norms 32) + embeddings and head 2 · 288·32 + final norm 32.
        #expect(report["tensorCount"] as? Int == 15 && report["parameterCount"] as? Int == 2 * (2048 + 1024 + 3072 + 1536 + 64) + 18_432 + 32)
    }

    /// The GGUF twin of the tiny gemma2 fixture (scripts/prepare-test-references.sh rebuilds it; GGUF files are not committed).
    @Test(.enabled(if: referenceDirectory != nil, "set LOSAD_REFERENCE_DIR (scripts/prepare-test-references.sh prints it)"))
    func inspectSaysARunnableFamilyRunsAndWhatItsBlockAdds() throws {
        let path = try #require(Self.referenceDirectory) + "/families/tiny-gemma2.gguf"
        let result = try Self.run(["inspect", path, "--tensors"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("runs in losad: yes") && result.output.contains("score cap 3.0")
                && result.output.contains("sliding window 4 on 2 of 3 layers"), "\(result.output)")
        #expect(result.output.contains("blk.0.post_ffw_norm.weight") && result.output.contains("gemma2.attn_logit_softcapping"))
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

// MARK: - eval and generate

extension CommandTests {
    /// The tiny LLaMA fixture folder of the Transformer tests.
    static var tinyLLaMA: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TransformerTests/Fixtures/tiny-llama").path
    }

    static func temporaryText(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("eval-\(UUID().uuidString).txt").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func evalReportsThePerplexityTheDecoderComputesOnTheSameTokens() throws {
        let text = String(repeating: "the quick brown fox jumps over the lazy dog, and then it sleeps. ", count: 8)
        let path = try Self.temporaryText(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["eval", Self.tinyLLaMA, "--text", path, "--ctx", "16", "--json"])
        #expect(result.status == 0, "\(result.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let perplexity = try #require(report["perplexity"] as? Double)

        let checkpoint = try Checkpoint.open(Self.tinyLLaMA)
        let tokens = checkpoint.tokenizer.encode(text, addSpecialTokens: false)
        let expected = try Decoder(checkpoint: checkpoint).perplexity(of: tokens, windowLength: 16)
        #expect(perplexity.isFinite && abs(perplexity - expected.perplexity) <= 1e-9 * expected.perplexity)
        #expect(report["tokens"] as? Int == tokens.count && report["windows"] as? Int == tokens.count / 16)
        #expect(report["predictedTokens"] as? Int == expected.predictedTokens)
        #expect((report["tokensPerSecond"] as? Double ?? 0) > 0 && report["seconds"] is Double && report["meanNLL"] is Double)

        let plain = try Self.run(["eval", Self.tinyLLaMA, "--text", path, "--ctx", "16"])
        #expect(plain.status == 0 && plain.output.contains("perplexity:"))
    }

    @Test func evalRefusesAMissingFileAndATextShorterThanOneWindowWithASentence() throws {
        let missing = try Self.run(["eval", Self.tinyLLaMA, "--text", "/nonexistent/eval.txt"])
        #expect(missing.status == 1)
        #expect(missing.error.hasPrefix("losad eval: cannot read the text file /nonexistent/eval.txt"), "\(missing.error)")

        let path = try Self.temporaryText("a few words")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let short = try Self.run(["eval", Self.tinyLLaMA, "--text", path, "--ctx", "512"])
        #expect(short.status == 1)
        #expect(short.error.hasPrefix("losad eval: ") && short.error.contains("do not fill one window of 512"), "\(short.error)")
    }

    @Test func generateIsDeterministicAtTemperatureZeroAndPerSeedWhenSampling() throws {
        let greedy = try Self.run(["generate", Self.tinyLLaMA, "--prompt", "the quick", "--max-tokens", "8"])
        #expect(greedy.status == 0, "\(greedy.error)")
        let again = try Self.run(["generate", Self.tinyLLaMA, "--prompt", "the quick", "--max-tokens", "8"])
        #expect(again.output == greedy.output)
        let arguments = ["generate", Self.tinyLLaMA, "--prompt", "the quick", "--max-tokens", "8",
                         "--temperature", "1.2", "--top-p", "0.9", "--seed", "3"]
        let sampled = try Self.run(arguments)
        let resampled = try Self.run(arguments)
        #expect(sampled.status == 0 && resampled.output == sampled.output)

        let invalid = try Self.run(["generate", Self.tinyLLaMA, "--prompt", "x", "--top-p", "0"])
        #expect(invalid.status != 0 && invalid.error.contains("--top-p"))
    }

    @Test(.enabled(if: demoModel != nil, "set LOSAD_DEMO_MODEL (scripts/prepare-test-references.sh prints it)"))
    func generateContinuesTheDemoPromptWithParis() throws {
        let model = try #require(Self.demoModel)
        let result = try Self.run(["generate", model, "--prompt", "The capital of France is", "--max-tokens", "3"])
        #expect(result.status == 0 && result.output.hasPrefix(" Paris"), "\(result.output) \(result.error)")
    }
}
