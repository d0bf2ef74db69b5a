#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// Writes Float32 tensors as safetensors files that the `safetensors` library
/// loads: one file, or Hugging Face style shards with an index.
///
/// Layout follows huggingface/safetensors (README "Format", and `prepare` in
/// safetensors/src/tensor.rs): compact JSON header padded with spaces to a
/// multiple of 8 bytes, then each tensor's little-endian bytes back to back.
/// Like the reference writer, wider dtypes come first, so every value is
/// aligned to its size in the file (the format allows no padding between
/// tensors, and misaligned F32 data breaks zero-copy loaders such as
/// PyTorch's); within a width the caller's order is kept. Tensor data is
/// converted and written a chunk at a time, and every file appears
/// atomically (see `AtomicOutputFile`).
public enum SafetensorsWriter {
    /// One tensor to write: its name, shape, stored dtype and its values.
    public struct Entry {
        public let name: String
        public let shape: [Int]
        /// F32, F16 or BF16; any dtype for an entry copied from a file.
        public let dtype: SafetensorsDType
        let values: () throws -> Tensor
        /// The file whose stored bytes of `name` are written unchanged, for a copied entry.
        let copiedFrom: SafetensorsFile?

        /// An entry for a tensor already in memory, stored as `dtype`.
        public init(name: String, tensor: Tensor, dtype: SafetensorsDType = .f32) {
            self.name = name
            self.shape = tensor.shape
            self.dtype = dtype
            self.values = { tensor }
            self.copiedFrom = nil
        }

        /// An entry that copies tensor `name` of `file` byte for byte, in its
        /// stored dtype and shape (any dtype, converted or not).
        public init(copying name: String, from file: SafetensorsFile) throws {
            guard let info = file.info(named: name) else {
                throw ModelFormatError.invalid(file: file.path, field: "tensor '\(name)'", reason: "the file has no tensor of that name")
            }
            self.name = name
            self.shape = info.shape
            self.dtype = info.dtype
            self.values = { try file.tensor(named: name) }
            self.copiedFrom = file
        }

        /// An entry whose values are produced only when the writer reaches it, so
        /// a model can be written without holding all of its tensors in memory.
        /// The produced tensor must have `shape`.
        public init(name: String, shape: [Int], dtype: SafetensorsDType, values: @escaping () throws -> Tensor) {
            self.name = name
            self.shape = shape
            self.dtype = dtype
            self.values = values
            self.copiedFrom = nil
        }
    }

    /// The file name of shard `index` (0-based) of `count`, as Hugging Face names them.
    public static func shardFileName(index: Int, count: Int) -> String {
        "model-\(paddedNumber(index + 1))-of-\(paddedNumber(count)).safetensors"
    }

    /// Name of the index file of a sharded checkpoint.
    public static let indexFileName = "model.safetensors.index.json"

    // MARK: - One file

    /// Writes `entries` (wider dtypes first: F32, then F16 and BF16, each in the given order),
    /// with `metadata` as `__metadata__`, to `path`. Without `overwrite` an
    /// existing file is an error and is left untouched.
    public static func write(_ entries: [Entry], metadata: [String: String] = [:], to path: String,
                             overwrite: Bool = false) throws {
        let entries = alignedOrder(entries)
        let layout = try Layout(entries, metadata: metadata, file: path)
        try AtomicOutputFile.write(to: path, replacingExisting: overwrite) { output in
            try output.write(UInt64(layout.header.count))
            try output.write(layout.header)
            for (entry, byteCount) in zip(entries, layout.byteCounts) {
                if let source = entry.copiedFrom {
                    try source.withRawBytes(of: entry.name) { bytes in
                        // A validated file's bytes always match its header; checked so a mismatch cannot misplace data.
                        guard bytes.count == byteCount else {
                            throw ModelFormatError.invalid(file: source.path, field: "tensor '\(entry.name)'",
                                                           reason: "\(bytes.count) stored bytes where the header implies \(byteCount)")
                        }
                        try output.write(bytes)
                    }
                    continue
                }
                let tensor = try entry.values()
                guard tensor.shape == entry.shape else {
                    throw ModelFormatError.invalid(file: path, field: "tensor '\(entry.name)'",
                                                   reason: "its values have shape \(tensor.shape) but the entry declared \(entry.shape)")
                }
                try output.write(tensor, as: entry.dtype)
            }
            precondition(output.position == 8 + layout.header.count + layout.dataSize,
                         "wrote \(output.position) bytes, planned \(8 + layout.header.count + layout.dataSize)")
        }
    }

    // MARK: - Shards

    /// Writes `entries` into `directory` as shards of at most `maxShardBytes` of
    /// tensor data, split in the given order (a larger tensor gets a shard of
    /// its own, and each shard is laid out as `write` lays out a file), named
    /// `model-00001-of-0000N.safetensors`, plus `model.safetensors.index.json`
    /// with `metadata.total_size` and `weight_map`. Always writes an index, even
    /// for one shard. Shards are written first and the index last; on error the
    /// shards this call wrote are removed. Without `overwrite`, any existing
    /// target file is an error and nothing is written.
    @discardableResult
    public static func writeSharded(_ entries: [Entry], metadata: [String: String] = [:], toDirectory directory: String,
                                    maxShardBytes: Int, overwrite: Bool = false) throws -> SafetensorsShardedOutput {
        let indexPath = "\(directory)/\(indexFileName)"
        guard maxShardBytes > 0 else {
            throw ModelFormatError.invalid(file: indexPath, field: "maximum shard size", reason: "\(maxShardBytes) bytes; it must be positive")
        }
        // Validate every entry together (names must be unique across shards).
        let whole = try Layout(entries, metadata: metadata, file: indexPath)
        let shards = planShards(byteCounts: whole.byteCounts, maxShardBytes: maxShardBytes)
        let names = shards.indices.map { shardFileName(index: $0, count: shards.count) }
        if !overwrite {
            for name in names + [indexFileName] {
                try AtomicOutputFile.refuseExisting("\(directory)/\(name)")
            }
        }

        var weightMap: [String: String] = [:]
        var written: [String] = []
        do {
            for (shard, name) in zip(shards, names) {
                let path = "\(directory)/\(name)"
                try write(Array(entries[shard]), metadata: metadata, to: path, overwrite: overwrite)
                written.append(path)
                for entry in entries[shard] { weightMap[entry.name] = name }
            }
            let index = indexJSON(totalSize: whole.dataSize, weightMap: weightMap)
            try AtomicOutputFile.write(to: indexPath, replacingExisting: overwrite) { try $0.write(Array(index.utf8)) }
        } catch {
            for path in written { unlink(path) }
            throw error
        }
        return SafetensorsShardedOutput(shardFiles: names, indexFile: indexFileName, totalSize: whole.dataSize, weightMap: weightMap)
    }

    /// `entries` with wider dtypes first, otherwise in their given order (a stable sort).
    static func alignedOrder(_ entries: [Entry]) -> [Entry] {
        entries.enumerated()
            .sorted { ($1.element.dtype.bitsPerElement, $0.offset) < ($0.element.dtype.bitsPerElement, $1.offset) }
            .map(\.element)
    }

    /// Splits tensors, in order, into runs of at most `maxShardBytes`; a tensor
    /// larger than that gets a run of its own. Always at least one run.
    static func planShards(byteCounts: [Int], maxShardBytes: Int) -> [Range<Int>] {
        var shards: [Range<Int>] = []
        var start = 0
        var size = 0
        for (index, bytes) in byteCounts.enumerated() {
            if index > start && bytes > maxShardBytes - size {
                shards.append(start..<index)
                start = index
                size = 0
            }
            size += bytes
        }
        shards.append(start..<byteCounts.count)
        return shards
    }

    /// The index as `huggingface_hub` writes it: two-space indent, keys sorted.
    static func indexJSON(totalSize: Int, weightMap: [String: String]) -> String {
        let names = weightMap.keys.sorted(by: SafetensorsJSON.codePointOrder)
        let lines = names.map { "    \(SafetensorsJSON.quoted($0)): \(SafetensorsJSON.quoted(weightMap[$0]!))" }
        let map = lines.isEmpty ? "{}" : "{\n" + lines.joined(separator: ",\n") + "\n  }"
        return "{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": \(map)\n}\n"
    }

    private static func paddedNumber(_ value: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    // MARK: - Header

    /// The validated header of a file to write and the size of its data.
    struct Layout {
        let header: [UInt8]
        let byteCounts: [Int]
        let dataSize: Int

        init(_ entries: [Entry], metadata: [String: String], file: String) throws {
            var seen: Set<String> = []
            var byteCounts: [Int] = []
            var offset = 0
            var json = "{"
            var separator = ""
            if !metadata.isEmpty {
                let members = metadata.keys.sorted(by: SafetensorsJSON.codePointOrder).map {
                    SafetensorsJSON.quoted($0) + ":" + SafetensorsJSON.quoted(metadata[$0]!)
                }
                json += "\"__metadata__\":{" + members.joined(separator: ",") + "}"
                separator = ","
            }
            for entry in entries {
                let field = "tensor '\(entry.name)'"
                guard entry.name != "__metadata__" else {
                    throw ModelFormatError.invalid(file: file, field: field, reason: "the name is reserved for the header's metadata")
                }
                guard seen.insert(entry.name).inserted else {
                    throw ModelFormatError.invalid(file: file, field: field, reason: "the name appears twice")
                }
                guard entry.dtype.isWritable || entry.copiedFrom != nil else {
                    throw ModelFormatError.unsupported(file: file, field: "\(field) dtype",
                                                       reason: "losad writes F32, F16 and BF16 tensors, not \(entry.dtype)")
                }
                var elements = 1
                for dimension in entry.shape {
                    let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                    guard dimension >= 0, !overflow else {
                        throw ModelFormatError.invalid(file: file, field: "\(field) shape", reason: "\(entry.shape) is not a valid shape")
                    }
                    elements = product
                }
                guard let bytes = entry.dtype.byteCount(elements: elements) else {
                    throw ModelFormatError.invalid(file: file, field: "\(field) shape", reason: "the byte size of \(entry.shape) overflows")
                }
                let (end, overflow) = offset.addingReportingOverflow(bytes)
                guard !overflow else {
                    throw ModelFormatError.invalid(file: file, field: field, reason: "the data buffer size overflows")
                }
                json += separator
                separator = ","
                let shape = entry.shape.map(String.init).joined(separator: ",")
                json += SafetensorsJSON.quoted(entry.name)
                    + ":{\"dtype\":\"\(entry.dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}"
                byteCounts.append(bytes)
                offset = end
            }
            json += "}"
            var header = Array(json.utf8)
            // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
            header += Array(repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
            guard header.count <= SafetensorsFile.maximumHeaderLength else {
                throw ModelFormatError.invalid(file: file, field: "header",
                                               reason: "\(header.count) bytes is more than the \(SafetensorsFile.maximumHeaderLength) readers accept; "
                                                   + "write fewer tensors per file")
            }
            self.header = header
            self.byteCounts = byteCounts
            self.dataSize = offset
        }
    }
}

// MARK: - Tensor data

private extension AtomicOutputFile {
    /// Writes `tensor`'s values as `dtype` (F32, F16 or BF16), little-endian,
    /// converting a chunk at a time.
    func write(_ tensor: Tensor, as dtype: SafetensorsDType) throws {
        let source = tensor.pointer
        let total = tensor.count
        switch dtype {
        case .f32:
            #if _endian(little)
            try write(UnsafeRawBufferPointer(start: source, count: total * 4))
            #else
            for i in 0..<total { try write(source[i].bitPattern) }
            #endif
        case .f16, .bf16:
            let chunk = 8192
            try withUnsafeTemporaryAllocation(of: UInt16.self, capacity: chunk) { scratch in
                var done = 0
                while done < total {
                    let n = min(chunk, total - done)
                    if dtype == .f16 {
                        convertFloat32ToFloat16(source + done, scratch.baseAddress!, count: n)
                    } else {
                        convertFloat32ToBFloat16(source + done, scratch.baseAddress!, count: n)
                    }
                    #if !_endian(little)
                    for i in 0..<n { scratch[i] = scratch[i].littleEndian }
                    #endif
                    try write(UnsafeRawBufferPointer(start: scratch.baseAddress!, count: n * 2))
                    done += n
                }
            }
        default:
            preconditionFailure("\(dtype) is not a writable dtype")
        }
    }
}

/// What `SafetensorsWriter.writeSharded` wrote.
public struct SafetensorsShardedOutput: Sendable, Equatable {
    /// Shard file names, in order.
    public let shardFiles: [String]
    /// The index file's name (`model.safetensors.index.json`).
    public let indexFile: String
    /// Bytes of tensor data over all shards (the index's `metadata.total_size`).
    public let totalSize: Int
    /// Tensor name → shard file name.
    public let weightMap: [String: String]
}
