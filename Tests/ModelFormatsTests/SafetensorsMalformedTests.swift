import Foundation
import Testing
@testable import ModelFormats

/// The malformed-file catalogue: each damaged file is refused with a typed
/// ModelFormatError naming the file and the field, never a crash.
@Suite struct SafetensorsMalformedTests {
    static let name = "bad.safetensors"

    /// A small valid file: metadata and two tensors of different dtypes.
    static let validHeader = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
        + #""b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}}"#
    static let valid = safetensorsBytes(header: validHeader, data: Array(1...14))

    func refusal(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> ModelFormatError? {
        modelFormatError(sourceLocation: sourceLocation) { _ = try SafetensorsFile(path: Self.name, contents: bytes) }
    }

    func refusal(header: String, data: [UInt8] = [], sourceLocation: SourceLocation = #_sourceLocation) -> ModelFormatError? {
        refusal(safetensorsBytes(header: header, data: data), sourceLocation: sourceLocation)
    }

    @Test func theCatalogueStartsFromAValidFile() throws {
        let file = try SafetensorsFile(path: Self.name, contents: Self.valid)
        #expect(file.tensorNames == ["a", "b"])
        #expect(file.metadata == ["k": "v"])
    }

    @Test func aFileCutAtEveryByteIsRefusedAsTruncated() {
        for length in 0..<Self.valid.count {
            let error = refusal(Array(Self.valid[..<length]))
            guard case .truncated(let file, let field, _, _, _) = error else {
                Issue.record("cut at \(length): \(String(describing: error))")
                continue
            }
            #expect(file == Self.name)
            let expected = length < 8 ? "header length" : length < 8 + Self.validHeader.utf8.count ? "header" : nil
            if let expected {
                #expect(field == expected, "cut at \(length)")
            } else {
                #expect(field == "tensor 'a' data" || field == "tensor 'b' data", "cut at \(length)")
            }
        }
    }

    @Test func aHeaderLengthPastTheEndIsTruncation() {
        var bytes = Self.valid
        bytes.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1000).littleEndian) { Array($0) })
        #expect(refusal(bytes) == .truncated(file: Self.name, field: "header", offset: 8, needed: 1000, available: bytes.count - 8))
    }

    @Test(arguments: [UInt64(1) << 60, UInt64.max, 100_000_001])
    func anAbsurdHeaderLengthIsRefusedBeforeAnythingIsRead(_ length: UInt64) {
        let bytes = withUnsafeBytes(of: length.littleEndian) { Array($0) } + Array("{}".utf8)
        let error = refusal(bytes)
        #expect(error?.field == "header length")
        guard case .invalid(let file, _, let reason) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(file == Self.name && reason.contains("\(length)"))
    }

    @Test(arguments: [
        "", " ", #"{"a":"#, #"{"a" 1}"#, "{,}", #"{"a":1,}"#, "// comment\n{}", "{'a':1}", #"{"a":NaN}"#,
        #"{"a":01}"#, #"{"a":1.}"#, #"{"a":-}"#, #"{"a":"\x"}"#, "{\"a\":\"tab\there\"}", "{} x", "{}\0",
        #"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#, #"{"a":tru}"#, #"{"a":[1 2]}"#, "{\"a\":\"unterminated}",
        String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 200),
    ])
    func invalidJSONIsRefusedNamingTheHeader(_ header: String) {
        let error = refusal(header: header)
        guard case .invalid(let file, "header", let reason) = error else {
            Issue.record("\(header.prefix(40)): \(String(describing: error))")
            return
        }
        #expect(file == Self.name)
        #expect(reason.hasPrefix("not valid JSON"), "\(reason)")
    }

    @Test func aDuplicateKeyIsRefusedNamingTheKey() {
        let header = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#
        let error = refusal(header: header, data: [1, 2])
        guard case .invalid(_, "header", let reason) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(reason.contains("key 'a' appears twice"))
    }

    @Test(arguments: [[0xFF] as [UInt8], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82]])
    func aHeaderThatIsNotUTF8IsRefused(_ badBytes: [UInt8]) {
        let header = Array(#"{"__metadata__":{"k":""#.utf8) + badBytes + Array(#""}}"#.utf8)
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        #expect(refusal(bytes) == .invalid(file: Self.name, field: "header", reason: "not valid UTF-8"))
    }

    @Test(arguments: ["[]", #""tensors""#, "1", "null", "true"])
    func aHeaderThatIsNotAnObjectIsRefused(_ header: String) {
        let error = refusal(header: header)
        guard case .invalid(_, "header", let reason) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(reason.hasPrefix("must be a JSON object, found"))
    }

    /// (header, data bytes, field, a fragment of the reason)
    static let wrongTypes: [(String, Int, String, String)] = [
        (#"{"a":"F32"}"#, 0, "tensor 'a'", "must be an object with dtype, shape and data_offsets, found a string"),
        (#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, 4, "tensor 'a' dtype", "is missing"),
        (#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "is missing"),
        (#"{"a":{"dtype":"F32","shape":[1]}}"#, 4, "tensor 'a' data_offsets", "is missing"),
        (#"{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#, 4, "tensor 'a' dtype", "must be a string, found the number 32"),
        (#"{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "must be an array"),
        (#"{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "dimension 0: 1.0 is not a non-negative integer"),
        (#"{"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "dimension 1: -1 is not a non-negative integer"),
        (#"{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "1e0 is not a non-negative integer"),
        (#"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "found a boolean"),
        (#"{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,4]}}"#, 4, "tensor 'a' shape", "is too large"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, 4, "tensor 'a' data_offsets", "must be an array [begin, end]"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, 4, "tensor 'a' data_offsets", "found [0, 4, 8]"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":{"begin":0}}}"#, 4, "tensor 'a' data_offsets", "found an object"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}}"#, 4, "tensor 'a' data_offsets", "end: must be a non-negative integer, found a string"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, 4, "tensor 'a' data_offsets", "begin: -4 is not a non-negative integer"),
        (#"{"__metadata__":5}"#, 0, "__metadata__", "must be an object of strings, found the number 5"),
        (#"{"__metadata__":["a"]}"#, 0, "__metadata__", "found an array"),
        (#"{"__metadata__":{"k":1}}"#, 0, "__metadata__ key 'k'", "must be a string, found the number 1"),
        (#"{"__metadata__":{"k":null}}"#, 0, "__metadata__ key 'k'", "must be a string, found null"),
    ]

    @Test(arguments: 0..<wrongTypes.count)
    func wrongJSONTypesAreRefusedNamingTheTensorAndField(_ index: Int) {
        let (header, dataCount, field, fragment) = Self.wrongTypes[index]
        let error = refusal(header: header, data: Array(repeating: 0, count: dataCount))
        guard case .invalid(let file, let reportedField, let reason) = error else {
            Issue.record("\(header): \(String(describing: error))")
            return
        }
        #expect(file == Self.name)
        #expect(reportedField == field, "\(header)")
        #expect(reason.contains(fragment), "\(header): \(reason)")
    }

    @Test func dataOffsetsPastTheBufferAreTruncation() {
        let header = #"{"a":{"dtype":"U8","shape":[100],"data_offsets":[0,100]}}"#
        #expect(refusal(header: header, data: Array(repeating: 0, count: 10))
            == .truncated(file: Self.name, field: "tensor 'a' data", offset: 8 + header.utf8.count, needed: 100, available: 10))
    }

    @Test func invertedDataOffsetsAreRefused() {
        #expect(refusal(header: #"{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}"#, data: Array(repeating: 0, count: 8))
            == .invalid(file: Self.name, field: "tensor 'a' data_offsets", reason: "begin 8 is after end 0"))
    }

    @Test func overlappingTensorsAreRefused() {
        let header = #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}"#
        #expect(refusal(header: header, data: Array(repeating: 0, count: 12))
            == .invalid(file: Self.name, field: "tensor 'b' data_offsets", reason: "bytes [4, 12) overlap tensor 'a', which ends at 8"))
        // Two names for the same bytes are an overlap too.
        let aliased = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#
        #expect(refusal(header: aliased, data: [1, 2, 3, 4])?.field == "tensor 'b' data_offsets")
    }

    @Test func aHoleInTheDataBufferIsRefused() {
        let header = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}"#
        let error = refusal(header: header, data: Array(repeating: 0, count: 12))
        #expect(error?.field == "tensor 'b' data_offsets")
        guard case .invalid(_, _, let reason) = error else { Issue.record("not refused as invalid: \(String(describing: error))"); return }
        #expect(reason.contains("hole"))
        // A buffer whose start no tensor owns is a hole as well.
        let late = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#
        #expect(refusal(header: late, data: Array(repeating: 0, count: 8))?.field == "tensor 'a' data_offsets")
    }

    @Test func trailingBytesNoTensorOwnsAreRefused() {
        let header = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#
        #expect(refusal(header: header, data: Array(repeating: 0, count: 6))?.field == "data buffer")
        #expect(refusal(header: "{}", data: [0])?.field == "data buffer")
    }

    @Test func aByteCountThatDisagreesWithShapeAndDTypeIsRefused() {
        #expect(refusal(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8))
            == .invalid(file: Self.name, field: "tensor 'a' data_offsets", reason: "[0, 8] holds 8 bytes but shape [3] of F32 needs 12"))
    }

    @Test func overflowingShapesAreRefused() {
        let elements = refusal(header: #"{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}"#, data: [0])
        #expect(elements?.field == "tensor 'a' shape")
        guard case .invalid(_, _, let reason) = elements else { Issue.record("not refused as invalid: \(String(describing: elements))"); return }
        #expect(reason.contains("overflows"))
        let bytes = refusal(header: #"{"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,1]}}"#, data: [0])
        #expect(bytes == .invalid(file: Self.name, field: "tensor 'a' shape",
                                  reason: "the byte size of 2305843009213693952 F32 elements overflows"))
    }

    @Test(arguments: ["F128", "f32", "float32", "F8_E4M3FN", ""])
    func anUnknownDTypeIsRefusedAsUnsupported(_ dtype: String) {
        let error = refusal(header: #"{"a":{"dtype":"\#(dtype)","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        guard case .unsupported(let file, "tensor 'a' dtype", let reason) = error else {
            Issue.record("\(dtype): \(String(describing: error))")
            return
        }
        #expect(file == Self.name)
        #expect(reason.hasPrefix("unknown dtype '\(dtype)'"))
    }

    @Test func subByteTypesMustFillWholeBytes() throws {
        #expect(refusal(header: #"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}"#, data: [0])?.field
            == "tensor 'a' shape")
        let packed = try SafetensorsFile(path: Self.name,
                                         contents: safetensorsBytes(header: #"{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, data: [0x21]))
        #expect(try packed.rawBytes(named: "a") == [0x21])
        #expect(modelFormatError { _ = try packed.tensor(named: "a") }
            == .unsupported(file: Self.name, field: "tensor 'a' dtype",
                            reason: "losad converts F32, F16, BF16, I8 and U8 tensors to Float32, not F4"))
    }

    @Test func whatTheReferenceReaderAcceptsIsAccepted() throws {
        // `null` metadata, unknown members, surrounding whitespace, empty tensors sharing an offset.
        let header = "\n {\"__metadata__\":null,\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"extra\":[1]},"
            + #""a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"c":{"dtype":"F32","shape":[2,0],"data_offsets":[1,1]}}"# + " \t\r\n  "
        let file = try SafetensorsFile(path: Self.name, contents: safetensorsBytes(header: header, data: [9]))
        #expect(file.metadata.isEmpty)
        #expect(file.tensorNames == ["b", "a", "c"])
        #expect(try file.tensor(named: "a").scalars == [9])
    }

    @Test func filesThatCannotBeOpenedAreIOErrors() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.file("missing.safetensors")
        guard case .io(missing, _, _) = modelFormatError({ _ = try SafetensorsFile(path: missing) }) else {
            Issue.record("a missing file is not an I/O error")
            return
        }
        guard case .io(directory.path, _, "not a regular file") = modelFormatError({ _ = try SafetensorsFile(path: directory.path) }) else {
            Issue.record("a folder is not refused as not a regular file")
            return
        }
        let empty = directory.file("empty.safetensors")
        try writeFile(empty, Data())
        #expect(modelFormatError { _ = try SafetensorsFile(path: empty) }
            == .truncated(file: empty, field: "header length", offset: 0, needed: 8, available: 0))
        let cut = directory.file("cut.safetensors")
        try writeFile(cut, Data(Self.valid.prefix(40)))
        #expect(modelFormatError { _ = try SafetensorsFile(path: cut) }?.field == "header")
    }
}
