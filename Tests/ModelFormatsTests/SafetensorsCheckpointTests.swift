import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Sharded writing, folder discovery and index validation.
@Suite struct SafetensorsCheckpointTests {
    /// Five tensors of 40, 40, 24, 100 and 8 bytes: three shards of at most 104 bytes.
    static func entries() -> [SafetensorsWriter.Entry] {
        [
            .init(name: "model.embed_tokens.weight", tensor: Tensor(shape: [2, 5], values: (0..<10).map(Float.init))),
            .init(name: "model.layers.0.q_proj.weight", tensor: Tensor(shape: [5, 2], repeating: 0.5), dtype: .f32),
            .init(name: "model.layers.0.k_proj.weight", tensor: Tensor(shape: [3, 4], repeating: -1.5), dtype: .f16),
            .init(name: "lm_head.weight", tensor: Tensor(shape: [50], values: (0..<50).map { Float($0) / 8 }), dtype: .bf16),
            .init(name: "model.norm.weight", tensor: Tensor(shape: [2], values: [1, 2])),
        ]
    }

    @Test func shardsAreSplitNamedAndIndexedLikeHuggingFace() throws {
        let directory = try TemporaryDirectory()
        let output = try SafetensorsWriter.writeSharded(Self.entries(), metadata: ["format": "pt"],
                                                        toDirectory: directory.path, maxShardBytes: 104)
        #expect(output.shardFiles == ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors"])
        #expect(output.totalSize == 40 + 40 + 24 + 100 + 8)
        #expect(directory.contents == output.shardFiles + ["model.safetensors.index.json"])
        #expect(output.weightMap["lm_head.weight"] == "model-00002-of-00003.safetensors")
        #expect(output.weightMap["model.norm.weight"] == "model-00003-of-00003.safetensors")

        let index = try String(contentsOfFile: directory.file("model.safetensors.index.json"), encoding: .utf8)
        #expect(index.hasPrefix("{\n  \"metadata\": {\n    \"total_size\": 212\n  },\n  \"weight_map\": {\n    \"lm_head.weight\": "))
        let decoded = try JSONSerialization.jsonObject(with: Data(index.utf8)) as? [String: Any]
        #expect(decoded?["weight_map"] as? [String: String] == output.weightMap)
    }

    @Test func aShardedCheckpointReadsBackThroughItsIndex() throws {
        let directory = try TemporaryDirectory()
        try SafetensorsWriter.writeSharded(Self.entries(), metadata: ["format": "pt"], toDirectory: directory.path, maxShardBytes: 104)

        for opened in [directory.path, directory.file("model.safetensors.index.json")] {
            let checkpoint = try SafetensorsCheckpoint(path: opened)
            #expect(checkpoint.files.count == 3)
            #expect(checkpoint.indexPath == directory.file("model.safetensors.index.json"))
            #expect(checkpoint.declaredTotalSize == 212)
            #expect(checkpoint.tensorNames == Self.entries().map(\.name))
            #expect(checkpoint.files.allSatisfy { $0.metadata == ["format": "pt"] })
            for entry in Self.entries() {
                let expected = try entry.values()
                let read = try checkpoint.tensor(named: entry.name)
                #expect(read.shape == expected.shape)
                #expect(read.scalars == expected.scalars, "\(entry.name)")
                #expect(checkpoint.info(named: entry.name)?.dtype == entry.dtype)
            }
            #expect(modelFormatError { _ = try checkpoint.tensor(named: "nope") }
                == .invalid(file: directory.file("model.safetensors.index.json"), field: "tensor 'nope'",
                            reason: "the checkpoint has no tensor of that name"))
        }
    }

    @Test func shardPlansKeepOrderAndGiveOversizedTensorsTheirOwnShard() {
        #expect(SafetensorsWriter.planShards(byteCounts: [40, 40, 24, 100, 8], maxShardBytes: 104) == [0..<3, 3..<4, 4..<5])
        #expect(SafetensorsWriter.planShards(byteCounts: [40, 40, 24, 100, 8], maxShardBytes: 100) == [0..<2, 2..<3, 3..<4, 4..<5])
        #expect(SafetensorsWriter.planShards(byteCounts: [50, 50, 50], maxShardBytes: 100) == [0..<2, 2..<3])
        #expect(SafetensorsWriter.planShards(byteCounts: [500, 1, 1], maxShardBytes: 100) == [0..<1, 1..<3])
        #expect(SafetensorsWriter.planShards(byteCounts: [1, 500, 1], maxShardBytes: 100) == [0..<1, 1..<2, 2..<3])
        #expect(SafetensorsWriter.planShards(byteCounts: [0, 0, 100, 0], maxShardBytes: 100) == [0..<4])
        #expect(SafetensorsWriter.planShards(byteCounts: [], maxShardBytes: 100) == [0..<0])
        #expect(SafetensorsWriter.shardFileName(index: 0, count: 123_456) == "model-00001-of-123456.safetensors")
    }

    @Test func aFolderWithOneWeightsFileOpensAsASingleFileCheckpoint() throws {
        let directory = try TemporaryDirectory()
        try SafetensorsWriter.write([.init(name: "x", tensor: Tensor(shape: [1], values: [3]))], to: directory.file("weights.safetensors"))
        // A half-written temporary file beside it is not picked up.
        try writeFile(directory.file(".model.safetensors.1234.tmp"), Data([1, 2, 3]))
        try writeFile(directory.file(".hidden.safetensors"), Data([1, 2, 3]))
        let checkpoint = try SafetensorsCheckpoint(path: directory.path)
        #expect(checkpoint.indexPath == nil)
        #expect(checkpoint.files.map(\.path) == [directory.file("weights.safetensors")])
        #expect(try checkpoint.tensor(named: "x").scalars == [3])

        // model.safetensors wins over other files; a file path opens that file.
        try SafetensorsWriter.write([.init(name: "y", tensor: Tensor(shape: [1], values: [4]))], to: directory.file("model.safetensors"))
        #expect(try SafetensorsCheckpoint(path: directory.path).tensorNames == ["y"])
        #expect(try SafetensorsCheckpoint(path: directory.file("weights.safetensors")).tensorNames == ["x"])
    }

    @Test func aFolderWithoutAnIndexMustHoldExactlyOneWeightsFile() throws {
        let directory = try TemporaryDirectory()
        #expect(modelFormatError { _ = try SafetensorsCheckpoint(path: directory.path) }
            == .invalid(file: directory.path, field: "safetensors files", reason: "the folder has no .safetensors file"))
        for name in ["a.safetensors", "b.safetensors"] {
            try SafetensorsWriter.write([], to: directory.file(name))
        }
        let error = modelFormatError { _ = try SafetensorsCheckpoint(path: directory.path) }
        guard case .invalid(_, "safetensors files", let reason) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(reason.contains("a.safetensors, b.safetensors"))
        #expect(modelFormatError { _ = try SafetensorsCheckpoint(path: directory.file("absent")) }?.field == "open the checkpoint")
    }

    // MARK: - Index validation

    /// A folder with shards s1 (tensors a, b) and s2 (tensor c), and an index written from `weightMap`.
    func folder(weightMap: String, extra: String = "") throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        let one = Tensor(shape: [1], values: [1])
        try SafetensorsWriter.write([.init(name: "a", tensor: one), .init(name: "b", tensor: one)], to: directory.file("s1.safetensors"))
        try SafetensorsWriter.write([.init(name: "c", tensor: one)], to: directory.file("s2.safetensors"))
        let index = #"{"metadata":{"total_size":12}\#(extra),"weight_map":\#(weightMap)}"#
        try writeFile(directory.file("model.safetensors.index.json"), Data(index.utf8))
        return directory
    }

    func indexRefusal(_ directory: TemporaryDirectory, sourceLocation: SourceLocation = #_sourceLocation) -> ModelFormatError? {
        modelFormatError(sourceLocation: sourceLocation) { _ = try SafetensorsCheckpoint(path: directory.path) }
    }

    @Test func aConsistentIndexOpens() throws {
        let directory = try folder(weightMap: #"{"c":"s2.safetensors","a":"s1.safetensors","b":"s1.safetensors"}"#)
        let checkpoint = try SafetensorsCheckpoint(path: directory.path)
        #expect(checkpoint.tensorNames == ["a", "b", "c"])
        #expect(checkpoint.file(containing: "c")?.path == directory.file("s2.safetensors"))
    }

    @Test func aMissingShardIsNamed() throws {
        let directory = try folder(weightMap: #"{"a":"s1.safetensors","b":"s1.safetensors","c":"s3.safetensors"}"#)
        #expect(indexRefusal(directory) == .invalid(file: directory.file("model.safetensors.index.json"),
                                                    field: "weight_map shard 's3.safetensors'",
                                                    reason: "no such file in \(directory.path) (tensor 'c' is mapped to it)"))
    }

    @Test(arguments: ["../s1.safetensors", "/etc/passwd", "sub/s1.safetensors", "..", "", "s1\\\\x.safetensors"])
    func aShardNameThatLeavesTheFolderIsRefused(_ shard: String) throws {
        let directory = try folder(weightMap: #"{"a":"s1.safetensors","b":"s1.safetensors","c":"\#(shard)"}"#)
        let error = indexRefusal(directory)
        guard case .invalid(let file, "weight_map['c']", let reason) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(file == directory.file("model.safetensors.index.json"))
        #expect(reason.contains("is not a plain file name"))
    }

    @Test func aTensorMissingFromItsShardIsRefused() throws {
        let directory = try folder(weightMap: #"{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors","d":"s2.safetensors"}"#)
        #expect(indexRefusal(directory) == .invalid(file: directory.file("model.safetensors.index.json"), field: "weight_map['d']",
                                                    reason: "shard 's2.safetensors' has no tensor of that name"))
        let misplaced = try folder(weightMap: #"{"a":"s1.safetensors","b":"s1.safetensors","c":"s1.safetensors"}"#)
        #expect(indexRefusal(misplaced)?.field == "weight_map['c']")
    }

    @Test func aTensorTheIndexDoesNotListIsRefused() throws {
        let directory = try folder(weightMap: #"{"a":"s1.safetensors","c":"s2.safetensors"}"#)
        #expect(indexRefusal(directory) == .invalid(file: directory.file("s1.safetensors"), field: "tensor 'b'",
                                                    reason: "the index's weight_map does not list it; the index and the shards disagree"))
    }

    @Test func aTensorInTwoShardsIsRefused() throws {
        let directory = try folder(weightMap: #"{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"}"#)
        let one = Tensor(shape: [1], values: [1])
        try SafetensorsWriter.write([.init(name: "c", tensor: one), .init(name: "a", tensor: one)],
                                    to: directory.file("s2.safetensors"), overwrite: true)
        #expect(indexRefusal(directory) == .invalid(file: directory.file("s2.safetensors"), field: "tensor 'a'",
                                                    reason: "it is also in shard 's1.safetensors', where the index maps it; a tensor may appear only once"))
    }

    @Test func aTensorListedTwiceInTheIndexIsRefused() throws {
        let directory = try folder(weightMap: #"{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors","a":"s2.safetensors"}"#)
        let error = indexRefusal(directory)
        guard case .invalid(_, "index", let reason) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(reason.contains("key 'a' appears twice"))
    }

    @Test(arguments: [(#"[]"#, "weight_map"), (#"{"a":1}"#, "weight_map['a']")])
    func aWeightMapOfTheWrongShapeIsRefused(_ weightMap: String, _ field: String) throws {
        let directory = try folder(weightMap: weightMap)
        #expect(indexRefusal(directory)?.field == field)
    }

    @Test func anIndexWithoutAWeightMapOrNotJSONIsRefused() throws {
        let directory = try TemporaryDirectory()
        let index = directory.file("model.safetensors.index.json")
        try writeFile(index, Data(#"{"metadata":{}}"#.utf8))
        #expect(indexRefusal(directory) == .invalid(file: index, field: "weight_map", reason: "is missing"))
        try writeFile(index, Data("{\"weight_map\":".utf8))
        #expect(indexRefusal(directory)?.field == "index")
        try writeFile(index, Data([0x7B, 0xFF, 0x7D]))
        #expect(indexRefusal(directory) == .invalid(file: index, field: "index", reason: "not valid UTF-8"))
    }

    // MARK: - Sharded writes are all or nothing

    @Test func aShardedWriteRefusesToReplaceExistingFilesAndWritesNothing() throws {
        let directory = try TemporaryDirectory()
        try writeFile(directory.file("model.safetensors.index.json"), Data("{}".utf8))
        let error = modelFormatError {
            try SafetensorsWriter.writeSharded(Self.entries(), toDirectory: directory.path, maxShardBytes: 104)
        }
        #expect(error?.file == directory.file("model.safetensors.index.json"))
        #expect(directory.contents == ["model.safetensors.index.json"])

        try SafetensorsWriter.writeSharded(Self.entries(), toDirectory: directory.path, maxShardBytes: 104, overwrite: true)
        #expect(try SafetensorsCheckpoint(path: directory.path).tensorNames.count == 5)
    }

    @Test func aFailedShardedWriteRemovesTheShardsItWrote() throws {
        struct Interrupted: Error {}
        let directory = try TemporaryDirectory()
        var entries = Self.entries()
        entries.append(.init(name: "late", shape: [2], dtype: .f32) { throw Interrupted() })
        #expect(throws: Interrupted.self) {
            try SafetensorsWriter.writeSharded(entries, toDirectory: directory.path, maxShardBytes: 104)
        }
        #expect(directory.contents.isEmpty)
        #expect(modelFormatError { try SafetensorsWriter.writeSharded(entries, toDirectory: directory.path, maxShardBytes: 0) }
            == .invalid(file: directory.file("model.safetensors.index.json"), field: "maximum shard size", reason: "0 bytes; it must be positive"))
    }

    @Test func oneShardStillGetsAnIndex() throws {
        let directory = try TemporaryDirectory()
        let output = try SafetensorsWriter.writeSharded(Self.entries(), toDirectory: directory.path, maxShardBytes: 1 << 30)
        #expect(output.shardFiles == ["model-00001-of-00001.safetensors"])
        #expect(directory.contents == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"])
        // Within the one file, F32 tensors come before the 16-bit ones.
        #expect(try SafetensorsCheckpoint(path: directory.path).tensorNames
            == ["model.embed_tokens.weight", "model.layers.0.q_proj.weight", "model.norm.weight",
                "model.layers.0.k_proj.weight", "lm_head.weight"])
    }
}
