import Foundation
import Testing
@testable import ModelFormats

/// The folder counterpart of AtomicOutputFile, at the moment of the rename:
/// a destination that appears while the folder is being written is never
/// replaced (not even an empty one, which rename(2) would replace), and a
/// replacement swaps the whole folder.
@Suite struct AtomicOutputFolderTests {
    @Test func aFolderThatAppearsWhileWritingIsNotReplaced() throws {
        let parent = try TemporaryDirectory()
        let destination = parent.file("out")
        let folder = try AtomicOutputFolder(destination: destination, replacingExisting: false)
        try writeFile(folder.temporaryPath + "/a.txt", Data("new".utf8))
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: false)
        #expect(modelFormatError { try folder.commit() }
                == .io(file: destination, operation: "write",
                       reason: "the folder appeared while it was being written (losad replaces an output only when asked)"))
        folder.discard()
        #expect(parent.contents == ["out"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination).isEmpty)
    }

    @Test func aReplacementSwapsTheWholeFolderAndRemovesTheOldOne() throws {
        let parent = try TemporaryDirectory()
        let destination = parent.file("out")
        try FileManager.default.createDirectory(atPath: destination + "/sub", withIntermediateDirectories: true)
        try writeFile(destination + "/sub/old.txt", Data("old".utf8))
        // A link in the old folder must be removed, not followed.
        let outside = try TemporaryDirectory()
        try writeFile(outside.file("keep.txt"), Data("keep".utf8))
        try FileManager.default.createSymbolicLink(atPath: destination + "/link", withDestinationPath: outside.path)

        let written = try AtomicOutputFolder.write(to: destination, replacingExisting: true) { path in
            try writeFile(path + "/new.txt", Data("new".utf8))
            return path
        }
        #expect(parent.contents == ["out"], "neither the temporary nor the old folder is left")
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination) == ["new.txt"])
        #expect(!FileManager.default.fileExists(atPath: written))
        #expect(outside.contents == ["keep.txt"])
    }

    @Test func anErrorInTheBodyRemovesTheTemporaryFolder() throws {
        let parent = try TemporaryDirectory()
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try AtomicOutputFolder.write(to: parent.file("out"), replacingExisting: false) { path in
                try FileManager.default.createDirectory(atPath: path + "/deep/er", withIntermediateDirectories: true)
                try writeFile(path + "/deep/er/file", Data("x".utf8))
                throw Stop()
            }
        }
        #expect(parent.contents.isEmpty)
    }
}
