import Foundation
import Testing

/// The committed reference data of the Compression math and corpus tests (scripts/fixtures/
/// layer_similarity_make_fixture.py, adamw_make_fixture.py, pydoc_topics_make_fixture.py make them).
enum MathFixtures {
    static let formatVersion = 1

    static func url(_ name: String) throws -> URL {
        try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures").appendingPathComponent(name)
    }

    /// A JSON fixture's top level, its format version checked.
    static func document(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: try url(name))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(name) is not a JSON object")
        try #require(object["format_version"] as? Int == formatVersion, "\(name) has another format version; rerun its script")
        return object
    }

    static func doubles(_ value: Any?) throws -> [Double] {
        try #require(value as? [Any]).map { try double($0) }
    }

    /// A JSON number as the nearest Double. JSONSerialization returns long decimals as
    /// NSDecimalNumber, whose doubleValue can be an ulp off; its decimal string converts exactly.
    static func double(_ value: Any?) throws -> Double {
        if let decimal = value as? NSDecimalNumber { return try #require(Double(decimal.stringValue)) }
        return try #require((value as? NSNumber)?.doubleValue)
    }

    static func floats(_ value: Any?) throws -> [Float] { try doubles(value).map { Float($0) } }
}

/// SplitMix64 test data: seeded, the same on every machine.
struct MathTestRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// An index in 0..<bound.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// A standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u = max(unit(), 1e-300), v = unit()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }
}

/// A fresh folder under the temporary directory, removed when released.
final class CorpusTestFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("losad-corpus-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
