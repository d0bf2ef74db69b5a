import Foundation
import Testing
@testable import ModelFormats

/// Fixtures and files the tokenizer tests read (scripts/fixtures/tokenizer_make_fixtures.py makes them).
enum TokenizerFixtures {
    static let formatVersion = 1

    static var directory: URL {
        get throws { try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/tokenizer") }
    }

    static func url(_ name: String) throws -> URL { try directory.appendingPathComponent(name) }

    static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }

    /// The demo model (SmolLM2-135M-Instruct, GGUF): `LOSAD_DEMO_MODEL`, else where scripts/fetch-demo-model.sh puts it.
    static let demoModelPath: String = TestReferences.demoModel
        ?? TestReferences.repositoryRoot.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    static var demoModelExists: Bool { FileManager.default.fileExists(atPath: demoModelPath) }

    /// The demo model's tokenizer as tokenizer.json; written (not committed) by the fixture script.
    static let smolLM2TokenizerJSONPath = TestReferences.repositoryRoot.appendingPathComponent(".cache/tokenizer/smollm2.tokenizer.json").path

    /// One string and the ids the reference gives it.
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let idsWithSpecial: [Int32]?
        /// Pre-tokenizer pieces of `text` (byte-level GGUF variants only).
        let pieces: [String]?

        enum CodingKeys: String, CodingKey {
            case text, ids, idsWithSpecial = "ids_with_special", pieces
        }

        /// The ids with `addSpecialTokens`; fixtures leave them out when they equal `ids`.
        var expectedWithSpecial: [Int32] { idsWithSpecial ?? ids }
    }

    /// A JSON fixture's top level, checked for the format version.
    static func document(_ name: String) throws -> [String: Any] {
        let object = try #require(try JSONSerialization.jsonObject(with: data(name)) as? [String: Any], "\(name) is not a JSON object")
        #expect(object["format_version"] as? Int == formatVersion, "\(name) has another format version; rerun the fixture script")
        return object
    }

    static func cases(_ value: Any?) throws -> [Case] {
        let array = try #require(value as? [Any])
        return try JSONDecoder().decode([Case].self, from: JSONSerialization.data(withJSONObject: array))
    }

    /// A `*.gguf.json` fixture (GGUF metadata written as typed JSON) as GGUF values.
    static func ggufMetadata(_ name: String) throws -> [String: GGUFValue] {
        let entries = try #require(try document(name)["metadata"] as? [[String: Any]])
        return try Dictionary(uniqueKeysWithValues: entries.map { entry in
            let key = try #require(entry["key"] as? String)
            return (key, try ggufValue(type: try #require(entry["type"] as? String), elementType: entry["element_type"] as? String,
                                       entry["value"] as Any))
        })
    }

    static func ggufValue(type: String, elementType: String?, _ value: Any) throws -> GGUFValue {
        switch type {
        case "string": return .string(try #require(value as? String))
        case "bool": return .bool(try #require(value as? Bool))
        case "uint32": return .uint32(UInt32(try #require(value as? Int)))
        case "int32": return .int32(Int32(try #require(value as? Int)))
        case "float32": return .float32(Float(try #require(value as? Double)))
        case "array":
            let element = try #require(elementType)
            let elements = try #require(value as? [Any]).map { try ggufValue(type: element, elementType: nil, $0) }
            return .array(elementType: try #require(GGUFValueType(name: element)), elements)
        default:
            Issue.record("unknown GGUF value type \(type) in a fixture")
            return .string("")
        }
    }

    /// A tokenizer.json variant whose model vocab and merges live in another fixture file.
    static func tokenizerJSON(_ variant: [String: Any], modelFrom baseName: String) throws -> Data {
        let base = try #require(try JSONSerialization.jsonObject(with: data(baseName)) as? [String: Any])
        let baseModel = try #require(base["model"] as? [String: Any])
        var document = variant
        var model = try #require(document["model"] as? [String: Any])
        model["vocab"] = baseModel["vocab"]
        model["merges"] = baseModel["merges"]
        document["model"] = model
        return try JSONSerialization.data(withJSONObject: document)
    }
}

extension GGUFValueType {
    init?(name: String) {
        switch name {
        case "string": self = .string
        case "bool": self = .bool
        case "uint32": self = .uint32
        case "int32": self = .int32
        case "float32": self = .float32
        default: return nil
        }
    }
}

/// The GGUF metadata of a real file, through the module's reader.
enum GGUFMetadataForTests {
    static func read(path: String) throws -> [String: GGUFValue] {
        try GGUFFile(path: path).metadata.dictionary
    }
}
