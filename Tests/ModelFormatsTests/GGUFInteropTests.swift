import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Agreement with the reference GGUF implementation, gguf-py (the `gguf` PyPI
/// package pinned in scripts/requirements-test.txt), in both directions.
@Suite struct GGUFInteropTests {
    static let fixtureFormatVersion = 1

    // MARK: - gguf-py wrote it; losad reads it

    @Test func aFileTheReferenceWriterWroteReadsBackExactly() throws {
        let fixtures = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/gguf")
        let path = fixtures.appendingPathComponent("reference.gguf-fixture").path
        try #require(FileManager.default.fileExists(atPath: path),
                     "the fixture is missing: regenerate it with scripts/fixtures/gguf_make_fixture.py (and note that .gitignore ignores *.gguf)")
        let expected = try jsonObject(Data(contentsOf: fixtures.appendingPathComponent("reference.expected.json")))
        #expect(expected["format_version"] as? Int == Self.fixtureFormatVersion,
                "regenerate the fixture with scripts/fixtures/gguf_make_fixture.py")

        let file = try GGUFFile(path: path)
        #expect(file.version == UInt32(expected["gguf_version"] as? Int ?? -1))
        #expect(file.alignment == expected["alignment"] as? Int)
        let metadata = try #require(expected["metadata"] as? [[String: Any]])
        let want = GGUFMetadata(try metadata.map { (key: $0["key"] as? String ?? "?", value: try Self.value($0)) })
        #expect(file.metadata.keys == want.keys)
        for (key, value) in want.entries {
            #expect(file.metadata[key] == value, "\(key)")
        }

        let tensors = try #require(expected["tensors"] as? [[String: Any]])
        #expect(file.tensors.map(\.name) == tensors.map { $0["name"] as? String ?? "?" })
        for tensor in tensors {
            let name = tensor["name"] as? String ?? "?"
            let info = try #require(file.tensorInfo(named: name))
            #expect(info.type.description == tensor["type"] as? String, "\(name)")
            #expect(info.shape == tensor["shape"] as? [Int], "\(name)")
            #expect(info.offset % file.alignment == 0, "\(name)")
            let values = try #require(tensor["values"] as? [Double]).map { Float($0) }
            #expect(try file.tensor(named: name).scalars == values, "\(name)")
        }
    }

    // MARK: - losad wrote it; gguf-py reads it

    @Test(.enabled(if: TestReferences.python != nil, "set LOSAD_TEST_PYTHON to the python of scripts/python-env.sh"))
    func theReferenceReaderReadsWhatLosadWrites() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("losad.gguf")
        var random = TestRandom(seed: 7)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in random.uniform(-3, 3) } }
        let f32 = Tensor(shape: [5, 7], values: values(35))
        let f16 = Tensor(shape: [4, 8], values: values(32))
        let bf16 = Tensor(shape: [3, 16], values: values(48) + [])
        let special = Tensor(shape: [8], values: [0, -0.0, 1, -2.5, 65504, 0x1p-24, 3.14159, -1e-3])

        var writer = GGUFWriter(metadata: GGUFMetadata(everyValueType.filter { entry in
            // gguf-py flattens nested arrays and cannot type an empty one.
            !["test.array.nested", "test.array.empty"].contains(entry.0)
        }.map { (key: $0.0, value: $0.1) }))
        writer.setAlignment(64)
        writer.metadata["losa.sparsity"] = .float32(0.5)
        writer.metadata["losa.method"] = .string("wanda")
        writer.metadata["losa.job_id"] = .string("job-7")
        writer.addTensor(named: "token_embd.weight", f32, as: .f32)
        writer.addTensor(named: "blk.0.attn_q.weight", f16, as: .f16)
        writer.addTensor(named: "blk.0.ffn_up.weight", bf16, as: .bf16)
        writer.addTensor(named: "special.f16", special, as: .f16)
        writer.addTensor(named: "special.bf16", special, as: .bf16)
        // Pruned weights: every other value an exact zero, which both block codecs must keep.
        let sparse = Tensor(shape: [4, 64], values: values(256).enumerated().map { $0.offset % 2 == 0 ? 0 : $0.element })
        writer.addTensor(named: "sparse.q8_0", sparse, as: .q8_0)
        writer.addTensor(named: "sparse.q4_0", sparse, as: .q4_0)
        try writer.write(to: path)

        let file = try GGUFFile(path: path)
        let report = try jsonObject(TestReferences.runScript("gguf_check.py", [path]))
        #expect(report["version"] as? Int == 3)
        #expect(report["alignment"] as? Int == 64)
        #expect(report["data_offset"] as? Int == file.dataOffset)

        let metadata = try #require(report["metadata"] as? [[String: Any]])
        #expect(metadata.map { $0["key"] as? String ?? "?" } == writer.metadata.keys)
        for entry in metadata {
            let key = entry["key"] as? String ?? "?"
            #expect(try Self.value(entry) == writer.metadata[key], "\(key)")
        }

        let tensors = try #require(report["tensors"] as? [[String: Any]])
        #expect(tensors.map { $0["name"] as? String ?? "?" } == file.tensors.map(\.name))
        for tensor in tensors {
            let name = tensor["name"] as? String ?? "?"
            let info = try #require(file.tensorInfo(named: name))
            #expect(tensor["type"] as? String == info.type.description, "\(name)")
            #expect(tensor["shape"] as? [Int] == info.shape, "\(name)")
            #expect(tensor["offset"] as? Int == info.fileOffset, "\(name)")
            let theirs = try #require(tensor["values"] as? [Double]).map { Float($0) }
            if name.hasPrefix("sparse.") {
                #expect(zip(theirs, sparse.scalars).allSatisfy { $1 != 0 || $0 == 0 }, "\(name): gguf-py decodes every zero as zero")
                #expect(zip(theirs, sparse.scalars).contains { $1 != 0 && $0 != 0 }, "\(name) is not all zeros")
            }
            let ours = try file.tensor(named: name).scalars
            #expect(theirs.map(\.bitPattern) == ours.map(\.bitPattern), "\(name): both readers decode the same bits")
        }
        #expect(try file.tensor(named: "token_embd.weight").scalars == f32.scalars)
    }

    // MARK: - A real checkpoint, as gguf-py reads it

    @Test(.enabled(if: TestReferences.demoModel != nil && TestReferences.referenceDirectory != nil,
                   "set LOSAD_DEMO_MODEL and LOSAD_REFERENCE_DIR (scripts/prepare-test-references.sh prints them)"))
    func theDemoModelReadsAsTheReferenceReaderReadsIt() throws {
        let model = try #require(TestReferences.demoModel)
        let stem = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let reference = URL(fileURLWithPath: try #require(TestReferences.referenceDirectory))
        let index = try jsonObject(Data(contentsOf: reference.appendingPathComponent(stem + ".json")))
        #expect(index["format_version"] as? Int == 1)

        let file = try GGUFFile(path: model)
        #expect(file.metadata.keys == index["metadata_keys"] as? [String])
        let tensors = try #require(index["tensors"] as? [[String: Any]])
        #expect(file.tensors.map(\.name) == tensors.map { $0["name"] as? String ?? "?" })
        // Values as gguf-py dequantised them, bit for bit: every tensor of the first block and the
        // first tensor of each type elsewhere (the whole model takes too long in a debug build).
        let dump = try MappedFile(path: reference.appendingPathComponent(stem + ".f32").path)
        var compared = 0
        var typesSeen: Set<GGMLType> = []
        var unconverted: Set<String> = []
        for want in tensors {
            let name = want["name"] as? String ?? "?"
            let info = try #require(file.tensorInfo(named: name))
            #expect(info.type.description == want["type"] as? String, "\(name)")
            #expect(info.dimensions == want["ggml_shape"] as? [Int] && info.shape == want["shape"] as? [Int], "\(name)")
            let offset = try #require(want["offset"] as? Int), count = try #require(want["count"] as? Int)
            #expect(count == info.elementCount, "\(name)")
            guard typesSeen.insert(info.type).inserted || name.hasPrefix("blk.0.") else { continue }
            let values: Tensor
            do {
                values = try file.tensor(info)
            } catch let error as ModelFormatError where error.isUnsupported {
                unconverted.insert(info.type.description)
                continue
            }
            let expected = UnsafeRawBufferPointer(rebasing: dump.bytes[(offset * 4)..<((offset + count) * 4)])
            let same = values.withUnsafeBufferPointer { memcmp($0.baseAddress!, expected.baseAddress!, count * 4) == 0 }
            #expect(same, "\(name) (\(info.type)) differs from gguf-py's values")
            compared += 1
        }
        #expect(compared > 0)
        #expect(unconverted.isEmpty, "types losad cannot convert yet: \(unconverted.sorted())")
    }

    // MARK: - Helpers

    /// A metadata value from its JSON form: {"type", "value"}, arrays {"type": "array", "element_type", "value": [...]},
    /// whose elements are either typed objects or bare scalars of the element type; 64-bit integers are strings.
    static func value(_ json: [String: Any]) throws -> GGUFValue {
        let type = try #require(json["type"] as? String)
        if type == "array" {
            let elementTypeName = try #require(json["element_type"] as? String)
            let elementType = try #require(valueType(named: elementTypeName), "\(elementTypeName)")
            let elements = try #require(json["value"] as? [Any], "\(json["key"] ?? "?")")
            return .array(elementType: elementType, try elements.map { element in
                if let typed = element as? [String: Any] { return try value(typed) }
                return try value(["type": elementTypeName, "value": element])
            })
        }
        let raw = json["value"] as Any
        func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            if let text = raw as? String { return try #require(T(text), "\(text)") }
            return try #require((raw as? Int).flatMap { T(exactly: $0) }, "\(raw)")
        }
        switch type {
        case "uint8": return .uint8(try integer(UInt8.self))
        case "int8": return .int8(try integer(Int8.self))
        case "uint16": return .uint16(try integer(UInt16.self))
        case "int16": return .int16(try integer(Int16.self))
        case "uint32": return .uint32(try integer(UInt32.self))
        case "int32": return .int32(try integer(Int32.self))
        case "uint64": return .uint64(try integer(UInt64.self))
        case "int64": return .int64(try integer(Int64.self))
        case "float32": return .float32(Float(try #require(raw as? Double)))
        case "float64": return .float64(try #require(raw as? Double))
        case "bool": return .bool(try #require(raw as? Bool))
        case "string": return .string(try #require(raw as? String))
        default: throw ModelFormatError.invalid(file: "expected JSON", field: type, reason: "unknown type")
        }
    }

    /// The value type gguf-py calls `name` (`GGUFValueType.UINT8.name.lower()` is "uint8").
    static func valueType(named name: String) -> GGUFValueType? {
        let names: [String: GGUFValueType] = [
            "uint8": .uint8, "int8": .int8, "uint16": .uint16, "int16": .int16, "uint32": .uint32, "int32": .int32,
            "float32": .float32, "bool": .bool, "string": .string, "array": .array, "uint64": .uint64,
            "int64": .int64, "float64": .float64,
        ]
        return names[name]
    }
}
