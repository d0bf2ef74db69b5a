import Testing
@testable import ModelFormats

@Suite struct ByteCursorTests {
    @Test func aReadPastTheEndNamesTheFieldAndTheNumbers() throws {
        let bytes: [UInt8] = [1, 0, 0, 0, 2, 0]
        try bytes.withUnsafeBytes { raw in
            var cursor = ByteCursor(bytes: raw, file: "x.gguf")
            let version = try cursor.read(UInt32.self, field: "version")
            #expect(version == 1)
            #expect(throws: ModelFormatError.truncated(file: "x.gguf", field: "tensor count", offset: 4, needed: 8, available: 2)) {
                _ = try cursor.read(UInt64.self, field: "tensor count")
            }
            #expect(cursor.offset == 4)
        }
    }

    @Test func invalidUTF8IsRefusedNotReplaced() {
        let bytes: [UInt8] = [0x61, 0xFF, 0x62]
        bytes.withUnsafeBytes { raw in
            var cursor = ByteCursor(bytes: raw, file: "x.gguf")
            #expect(throws: ModelFormatError.invalid(file: "x.gguf", field: "key 0", reason: "not valid UTF-8")) {
                _ = try cursor.readUTF8(3, field: "key 0")
            }
        }
    }

    @Test func everyGGMLTypeHasAWholeBlockLayout() {
        for type in GGMLType.allCases {
            #expect(type.blockSize >= 1 && type.bytesPerBlock >= 1, "\(type)")
            #expect(type.byteCount(elements: type.blockSize * 3) == type.bytesPerBlock * 3)
        }
        #expect(GGMLType.q4_K.byteCount(elements: 100) == nil)
        #expect(GGMLType.f32.byteCount(elements: Int.max) == nil)
    }
}
