import Foundation
import Kernels
import Testing
@testable import ModelFormats

/// Damaged sparse model files: each is refused with a typed error whose sentence names the tensor
/// (or metadata key) and the field, never a crash, a hang or a huge allocation.
@Suite struct SparseModelFileMalformedTests {
    /// The matrix the surgery works on: 32 × 32, one group per row, row 0 empty.
    static let matrix = "model.layers.0.self_attn.q_proj.weight"
    static func part(_ part: SparseModelFormat.Part) -> String { matrix + part.suffix }

    /// A valid s8 file of the tiny model, and a scratch folder for its damaged copies.
    struct Files {
        let source: SparseFileFixtures.Source
        let scratch: TemporaryDirectory
        let good: String
        var bad: String { scratch.file("bad.gguf") }

        init(kind: SparseValueKind = .s8, gguf: Bool = false) throws {
            source = gguf ? try SparseFileFixtures.ggufSource() : try SparseFileFixtures.huggingFaceSource()
            scratch = try TemporaryDirectory()
            good = scratch.file("good.gguf")
            try SparseFileFixtures.writeSparse(source.checkpoint, kind: kind, to: good)
        }

        /// The error opening `bad` gives, checked to name the file; nil (with an issue) when it opens.
        func refusal(sourceLocation: SourceLocation = #_sourceLocation) -> ModelFormatError? {
            let error = modelFormatError(sourceLocation: sourceLocation) { _ = try Checkpoint.open(bad) }
            #expect(error?.file.hasPrefix(bad) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
            return error
        }
    }

    /// `good` with row 2's end offset moved by one byte.
    static func corruptOffsets(_ good: String, to bad: String) throws {
        try SparseFileFixtures.rewrite(good, to: bad, tensors: { info, bytes in
            guard info.name == part(.offsets) else { return .keep }
            var offsets = bytes
            offsets[3 * 4] &+= 1
            return .replace(info.type, shape: info.shape, bytes: offsets)
        })
    }

    @Test func theSurgeryStartsFromAFileThatOpens() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad)
        #expect(try Checkpoint.open(files.bad).sparseMatrices().count == ExportFixtures.projections.count)
    }

    // MARK: - Truncated

    @Test func aFileCutShortAnywhereIsRefusedAndACutInTheDataNamesTheTensor() throws {
        let files = try Files()
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: files.good)))
        let file = try GGUFFile(path: files.good)
        // Past the last tensor's data only padding follows, which a reader does not need.
        let dataEnd = file.tensors.map { $0.fileOffset + $0.byteCount }.max()!
        #expect(dataEnd <= bytes.count)
        for length in stride(from: 0, to: dataEnd, by: max(1, dataEnd / 150)) + [dataEnd - 1] {
            try Data(bytes[..<length]).write(to: URL(fileURLWithPath: files.bad))
            let error = files.refusal()
            if length > file.dataOffset, let error {
                // A cut inside a tensor's bytes is truncation of its data; one in the padding before a
                // tensor leaves that tensor's offset past the end.
                let named = error.isTruncated ? error.field.hasSuffix("' data") : error.isInvalid && error.field.hasSuffix("' offset")
                #expect(error.field.hasPrefix("tensor '") && named, "cut at \(length): \(error)")
            }
        }
    }

    // MARK: - Offsets, masks and values that disagree

    @Test func anOffsetThatDisagreesWithTheMaskIsRefusedNamingTheRow() throws {
        let files = try Files()
        try Self.corruptOffsets(files.good, to: files.bad)
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.offsets))' element 3")
        #expect(error?.description.contains("the masks of row 2 store") == true, "\(String(describing: error))")
    }

    @Test func aFirstOffsetOtherThanZeroIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.offsets) else { return .keep }
            return .replace(info.type, shape: info.shape, bytes: [7] + bytes.dropFirst())
        })
        #expect(files.refusal()?.field == "tensor '\(Self.part(.offsets))' element 0")
    }

    @Test func aMaskBitMoreThanTheValuesHoldIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.mask) else { return .keep }
            var masks = bytes
            masks[5 * 8] ^= 0x01  // row 5, column 0: one value more or fewer than the offsets say
            return .replace(info.type, shape: info.shape, bytes: masks)
        })
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.offsets))' element 6")
        #expect(error?.description.contains("the masks of row 5 store") == true, "\(String(describing: error))")
    }

    @Test func aValueStreamShorterThanTheOffsetsSayIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.values) else { return .keep }
            return .replace(.i8, shape: [bytes.count - 1], bytes: Array(bytes.dropLast()))
        })
        // The offsets would have the kernels read the last padding byte past the tensor's data.
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.values))'", "\(String(describing: error))")
        #expect(error?.description.contains("needs 64 bytes of padding after it") == true, "\(String(describing: error))")
    }

    @Test func aValueStreamLongerThanTheOffsetsSayIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.values) else { return .keep }
            return .replace(.i8, shape: [bytes.count + 1], bytes: bytes + [0])
        })
        // Safe for the kernels, but the file says the tensor is the stream and its padding exactly.
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.offsets))' element 32", "\(String(describing: error))")
        #expect(error?.description.contains("the value stream holds") == true)
    }

    @Test func nonzeroPaddingIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.values) else { return .keep }
            var values = bytes
            values[values.count - 1] = 1
            return .replace(.i8, shape: info.shape, bytes: values)
        })
        let error = files.refusal()
        #expect(error?.field.hasPrefix("tensor '\(Self.part(.values))' element") == true, "\(String(describing: error))")
        #expect(error?.description.contains("padding byte 63 is 1") == true)
    }

    @Test func maskBitsPastTheLastColumnAreRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.mask) else { return .keep }
            var masks = bytes
            masks[2 * 8 + 7] |= 0x80  // row 2, column 63 of a 32-column matrix
            return .replace(info.type, shape: info.shape, bytes: masks)
        })
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.mask))' row 2 group 0")
        #expect(error?.description.contains("bits past column 32 are set") == true, "\(String(describing: error))")
    }

    @Test func aScaleThatIsNotFiniteIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.scales) else { return .keep }
            var scales = bytes
            scales[2 * 4] = 0x00
            scales[2 * 4 + 1] = 0x7C  // +inf
            return .replace(info.type, shape: info.shape, bytes: scales)
        })
        #expect(files.refusal()?.field == "tensor '\(Self.part(.scales))' row 4 group 0")
    }

    @Test func aScaleOnAGroupThatStoresNothingIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.scales) else { return .keep }
            var scales = bytes
            scales[1] = 0x3C  // row 0 (empty): 1.0
            return .replace(info.type, shape: info.shape, bytes: scales)
        })
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.scales))' row 0 group 0")
        #expect(error?.description.contains("stores no values but its scale is 1.0") == true, "\(String(describing: error))")
    }

    // MARK: - Shapes

    @Test func absurdColumnCountsAreRefusedBeforeAnythingIsAllocated() throws {
        let files = try Files()
        for (columns, expected) in [(UInt32(4_000_000_000), "metadata key"), (0, "metadata key"), (1_000_000, "tensor '\(Self.part(.mask))' shape")] {
            try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { metadata in
                guard case .array(let type, var values)? = metadata["losa.sparse.columns"] else { return }
                let index = Self.tableIndex(metadata)
                values[index] = .uint32(columns)
                metadata["losa.sparse.columns"] = .array(elementType: type, values)
            })
            let error = files.refusal()
            #expect(error?.field.hasPrefix(expected) == true, "\(columns) columns: \(String(describing: error))")
            #expect(error?.description.contains(Self.matrix) == true || error?.field.contains(Self.matrix) == true)
        }
    }

    @Test func aMatrixWithNoRowsIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, _ in
            guard info.name == Self.part(.mask) else { return .keep }
            return .replace(.i64, shape: [0, 1], bytes: [])
        })
        #expect(files.refusal()?.field == "tensor '\(Self.part(.mask))' shape")
    }

    @Test func aSparseShapeTheConfigDoesNotImplyIsRefusedByTheCheckpoint() throws {
        let files = try Files(gguf: true)
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { $0["llama.feed_forward_length"] = .uint32(64) })
        let error = files.refusal()
        #expect(error?.field.hasPrefix("tensor 'blk.") == true && error?.description.contains("where the config implies") == true,
                "\(String(describing: error))")
    }

    // MARK: - Types, parts and versions

    @Test func aMaskStoredAsAnotherTypeIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, bytes in
            guard info.name == Self.part(.mask) else { return .keep }
            return .replace(.i32, shape: [info.shape[0], info.shape[1] * 2], bytes: bytes)
        })
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.mask))' type")
        #expect(error?.description.contains("I32; a sparse matrix's mask is I64") == true)
    }

    @Test func missingScalesOfAQuantisedMatrixAreRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, tensors: { info, _ in info.name == Self.part(.scales) ? .drop : .keep })
        let error = files.refusal()
        #expect(error?.field == "tensor '\(Self.part(.scales))'")
        #expect(error?.description.contains("missing") == true)
    }

    @Test func scalesBesideAnF16MatrixAreRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { metadata in
            guard case .array(let type, var values)? = metadata["losa.sparse.kinds"] else { return }
            values[Self.tableIndex(metadata)] = .string("f16")
            metadata["losa.sparse.kinds"] = .array(elementType: type, values)
        })
        #expect(files.refusal()?.description.contains("an f16 sparse matrix has no scales") == true)
    }

    @Test func anUnknownValueKindIsRefusedAsUnsupported() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { metadata in
            guard case .array(let type, var values)? = metadata["losa.sparse.kinds"] else { return }
            values[Self.tableIndex(metadata)] = .string("s2")
            metadata["losa.sparse.kinds"] = .array(elementType: type, values)
        })
        let error = files.refusal()
        #expect(error?.isUnsupported == true && error?.description.contains("'s2' (of '\(Self.matrix)')") == true)
    }

    @Test func otherVersionsAreRefusedAsUnsupportedNamingTheKey() throws {
        let files = try Files()
        #expect(SparseModelFormat.version == 2)
        for version: UInt32 in [1, 3] {
            try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { $0["losa.sparse.version"] = .uint32(version) })
            let error = files.refusal()
            #expect(error?.isUnsupported == true && error?.field.hasSuffix("'losa.sparse.version'") == true)
            #expect(error?.description.contains("version \(version); this losad reads sparse model files of version 2 only") == true,
                    "\(error.map { "\($0)" } ?? "accepted")")
        }
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { $0["losa.sparse.version"] = .string("2") })
        #expect(files.refusal()?.description.contains("where a uint32 is expected") == true)
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { $0["losa.sparse.version"] = nil })
        #expect(files.refusal()?.description.contains("missing") == true)
    }

    @Test func tableArraysOfDifferentLengthsAreRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { metadata in
            guard case .array(let type, let values)? = metadata["losa.sparse.kinds"] else { return }
            metadata["losa.sparse.kinds"] = .array(elementType: type, Array(values.dropLast()))
        })
        #expect(files.refusal()?.field.hasSuffix("'losa.sparse.kinds'") == true)
    }

    @Test func aHuggingFaceFileWithoutItsConfigIsRefused() throws {
        let files = try Files()
        try SparseFileFixtures.rewrite(files.good, to: files.bad, metadata: { $0["losa.sparse.huggingface.config_json"] = nil })
        #expect(files.refusal()?.field == "metadata key 'losa.sparse.huggingface.config_json'")
    }

    /// The position of `matrix` in `losa.sparse.tensors`.
    static func tableIndex(_ metadata: GGUFMetadata) -> Int {
        metadata["losa.sparse.tensors"]?.arrayValue?.firstIndex(of: .string(matrix)) ?? -1
    }
}
