import Foundation
import Testing
@testable import Daemon

// Expected digests: FIPS 180-4 examples (NIST CSRC "SHA256.pdf") and, for the longer inputs,
// Python's hashlib (python3 -c "import hashlib; print(hashlib.sha256(...).hexdigest())").
@Suite("SHA256")
struct SHA256Tests {
    func hex(_ bytes: [UInt8]) -> String { SHA256.hex(SHA256.hash(bytes)) }

    @Test("FIPS 180-4 examples")
    func fipsVectors() {
        #expect(hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("updates in pieces of any size give the one-shot digest (hashlib: f3a25aa9…)")
    func pieces() {
        let message = [UInt8]((0..<768).map { UInt8($0 % 256) })
        for pieceSize in [1, 3, 55, 56, 63, 64, 65, 127, 500] {
            var hasher = SHA256()
            var offset = 0
            while offset < message.count {
                hasher.update(Array(message[offset..<min(offset + pieceSize, message.count)]))
                offset += pieceSize
            }
            #expect(SHA256.hex(hasher.finalize()) == "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363", "pieces of \(pieceSize)")
        }
    }

    @Test("a file is hashed in chunks (1,000,003 bytes, not a multiple of the chunk) as hashlib does")
    func file() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)").path
        let bytes = (0..<1_000_003).map { UInt8(($0 * 31 + 7) % 251) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try ContentHash.file(path) == "a79aaccf39831e39ad9382f03c515510dcde695830c65a91620160cbe434b410")
        #expect(throws: InboxError.stopped(path: path)) { try ContentHash.file(path, shouldStop: { true }) }
        #expect(throws: InboxError.self) { try ContentHash.file(path + ".missing") }
    }

    @Test("a folder hashes as name, NUL, little-endian size and bytes of each file in name order")
    func folder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("shaf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"a":1}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        try Data((0..<2560).map { UInt8($0 % 256) }).write(to: folder.appendingPathComponent("model.safetensors"))
        // hashlib over b"config.json\0" + pack("<Q", 7) + b'{"a":1}' + b"model.safetensors\0" + pack("<Q", 2560) + bytes
        #expect(try ContentHash.folder(folder.path, files: ["model.safetensors", "config.json"])
                == "8bce595cefab6d8c3bbf546f3958800bd58440e5c38de31b4f457a3b6b8cad98")
    }
}
