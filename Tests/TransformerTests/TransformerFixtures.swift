import Foundation
import Kernels
import ModelFormats
import Testing
import Transformer

/// The tiny models and transformers' logits for them (scripts/fixtures/transformer_make_fixtures.py makes them).
enum TransformerFixtures {
    static let formatVersion = 1

    static var directory: URL {
        get throws { try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures") }
    }

    /// A fixture model folder (config.json, model.safetensors, tokenizer.json).
    static func modelPath(_ name: String) throws -> String { try directory.appendingPathComponent(name).path }

    /// Where scripts/prepare-test-references.sh puts the tiny families' GGUF twins (llama.cpp's converter's
    /// files, rebuilt by scripts/fixtures/family_gguf_twins.py; GGUF files are not committed); nil without it.
    static let familyGGUFDirectory: String? = ProcessInfo.processInfo.environment["LOSAD_REFERENCE_DIR"]
        .flatMap { $0.isEmpty ? nil : $0 + "/families" }

    /// The GGUF twin of fixture `name` ("tiny-gemma3").
    static func familyGGUF(_ name: String) throws -> String { try #require(familyGGUFDirectory) + "/\(name).gguf" }

    /// What transformers computed for a fixture model.
    struct Expected {
        /// [B][T]
        let tokens: [[Int32]]
        /// [B, T, V], from the model run in float64.
        let logits: Tensor
    }

    static func expected(_ name: String) throws -> Expected {
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: directory.appendingPathComponent("\(name).expected.json"))) as? [String: Any])
        #expect(json["format_version"] as? Int == formatVersion, "fixture format of \(name); rerun the fixture script")
        let tokens = try #require(json["tokens"] as? [[Int]]).map { $0.map(Int32.init) }
        let file = try SafetensorsFile(path: directory.appendingPathComponent("\(name).expected.safetensors").path)
        let logits = try file.tensor(named: "logits")
        #expect(logits.shape == (json["logits_shape"] as? [Int]))
        return Expected(tokens: tokens, logits: logits)
    }

    /// The logits of the model as its GGUF describes it, where that differs from the folder's (`gguf.logits_key`).
    static func expectedGGUFLogits(_ name: String) throws -> Tensor? {
        let json = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: directory.appendingPathComponent("\(name).expected.json"))) as? [String: Any])
        guard let key = (json["gguf"] as? [String: Any])?["logits_key"] as? String else { return nil }
        return try SafetensorsFile(path: directory.appendingPathComponent("\(name).expected.safetensors").path).tensor(named: key)
    }

    /// Another logits tensor of a fixture's expected file (a variant: the same weights under a changed config).
    static func expectedLogits(_ name: String, key: String) throws -> Tensor {
        try SafetensorsFile(path: directory.appendingPathComponent("\(name).expected.safetensors").path).tensor(named: key)
    }

    /// A copy of fixture `name` in a temporary folder with `changes` made to its config.json (the caller removes it).
    static func modelCopy(_ name: String, configChanges changes: [String: Any]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: directory.appendingPathComponent(name), to: folder)
        let configURL = folder.appendingPathComponent("config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        for (key, value) in changes { config[key] = value }
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return folder
    }

    /// The demo model (SmolLM2-135M-Instruct, GGUF): `LOSAD_DEMO_MODEL`, else where scripts/fetch-demo-model.sh puts it.
    static let demoModelPath: String = ProcessInfo.processInfo.environment["LOSAD_DEMO_MODEL"].flatMap { $0.isEmpty ? nil : $0 }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    static var demoModelExists: Bool { FileManager.default.fileExists(atPath: demoModelPath) }
}

/// The largest |a − b| / max(|b|, 1) over two tensors of the same size: relative
/// for logits of magnitude above 1, absolute below (where relative error of a logit near 0 means nothing).
func maximumRelativeError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count, "comparing \(a.shape) with \(b.shape)")
    var worst = 0.0
    for i in 0..<a.count {
        let x = Double(a.pointer[i]), y = Double(b.pointer[i])
        worst = max(worst, abs(x - y) / max(abs(y), 1))
    }
    return worst
}
