#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// A model's safetensors weights, one file or Hugging Face shards, with one
/// lookup of tensors by name across all of them.
///
/// Opening a folder follows the Hugging Face layout: when
/// `model.safetensors.index.json` exists its `weight_map` (tensor name → shard
/// file) names the shards; otherwise the folder's `model.safetensors`, or else
/// its only `*.safetensors` file, is the checkpoint. The index is validated
/// before it is trusted: shard names are plain file names inside the folder,
/// every shard exists, every mapped tensor is in its shard, and every tensor
/// of every shard is mapped to that shard (none twice, none left over).
public final class SafetensorsCheckpoint: Sendable {
    /// What was opened: a folder, a `.safetensors` file or an index file.
    public let path: String
    /// The index file, for a sharded checkpoint.
    public let indexPath: String?
    /// The index's `metadata.total_size`, when it gives one (informative only).
    public let declaredTotalSize: Int?
    /// The files, shards in name order.
    public let files: [SafetensorsFile]
    /// Every tensor name: file by file, each in file order.
    public let tensorNames: [String]

    private let fileByTensor: [String: Int]

    /// Opens a folder, a single `.safetensors` file, or a `*.safetensors.index.json`.
    public init(path: String) throws {
        self.path = path
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw ModelFormatError.io(file: path, operation: "open the checkpoint", reason: String(cString: strerror(errno)))
        }
        let indexPath: String?
        let singleFile: String?
        if (status.st_mode & S_IFMT) == S_IFDIR {
            let index = "\(path)/\(SafetensorsWriter.indexFileName)"
            if Self.isFile(index) {
                (indexPath, singleFile) = (index, nil)
            } else {
                (indexPath, singleFile) = (nil, try Self.onlyWeightsFile(in: path))
            }
        } else if path.hasSuffix(".safetensors.index.json") {
            (indexPath, singleFile) = (path, nil)
        } else {
            (indexPath, singleFile) = (nil, path)
        }

        self.indexPath = indexPath
        if let singleFile {
            let file = try SafetensorsFile(path: singleFile)
            self.files = [file]
            self.declaredTotalSize = nil
        } else {
            let index = try Self.readIndex(indexPath!)
            self.files = index.files
            self.declaredTotalSize = index.totalSize
        }
        var names: [String] = []
        var fileByTensor: [String: Int] = [:]
        for (position, file) in files.enumerated() {
            for name in file.tensorNames {
                names.append(name)
                fileByTensor[name] = position
            }
        }
        self.tensorNames = names
        self.fileByTensor = fileByTensor
    }

    /// The file holding `name`, or nil when no file does.
    public func file(containing name: String) -> SafetensorsFile? {
        fileByTensor[name].map { files[$0] }
    }

    /// The entry for `name` in whichever file holds it.
    public func info(named name: String) -> SafetensorsTensorInfo? {
        file(containing: name)?.info(named: name)
    }

    /// Whether some file of the checkpoint holds `name`.
    public func contains(_ name: String) -> Bool { fileByTensor[name] != nil }

    /// The tensor converted to Float32 (see `SafetensorsFile.tensor(named:)`).
    public func tensor(named name: String) throws -> Tensor {
        try requireFile(name).tensor(named: name)
    }

    /// Calls `body` with the tensor's bytes as stored; valid only during the call.
    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try requireFile(name).withRawBytes(of: name, body)
    }

    private func requireFile(_ name: String) throws -> SafetensorsFile {
        guard let file = file(containing: name) else {
            throw ModelFormatError.invalid(file: indexPath ?? path, field: "tensor '\(name)'", reason: "the checkpoint has no tensor of that name")
        }
        return file
    }

    // MARK: - Finding the files

    /// `model.safetensors`, or else the folder's only visible `*.safetensors` file.
    private static func onlyWeightsFile(in directory: String) throws -> String {
        let preferred = "\(directory)/model.safetensors"
        if isFile(preferred) { return preferred }
        // Hidden names are skipped: they include half-written temporary files.
        let candidates = try listDirectory(directory)
            .filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") && isFile("\(directory)/\($0)") }
            .sorted(by: SafetensorsJSON.codePointOrder)
        guard candidates.count == 1 else {
            throw ModelFormatError.invalid(
                file: directory, field: "safetensors files",
                reason: candidates.isEmpty
                    ? "the folder has no .safetensors file"
                    : "the folder has \(candidates.count) (\(candidates.joined(separator: ", "))) and no "
                        + "\(SafetensorsWriter.indexFileName) saying how they fit together")
        }
        return "\(directory)/\(candidates[0])"
    }

    private static func isFile(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
    }

    private static func listDirectory(_ directory: String) throws -> [String] {
        guard let stream = opendir(directory) else {
            throw ModelFormatError.io(file: directory, operation: "list the folder", reason: String(cString: strerror(errno)))
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: - The index

    private static func readIndex(_ indexPath: String) throws -> (files: [SafetensorsFile], totalSize: Int?) {
        let directory = splitPath(indexPath).directory
        let mapped = try MappedFile(path: indexPath)
        guard mapped.count <= SafetensorsFile.maximumHeaderLength else {
            throw ModelFormatError.invalid(file: indexPath, field: "index",
                                           reason: "\(mapped.count) bytes is more than the \(SafetensorsFile.maximumHeaderLength) accepted")
        }
        guard String(validating: mapped.bytes, as: UTF8.self) != nil else {
            throw ModelFormatError.invalid(file: indexPath, field: "index", reason: "not valid UTF-8")
        }
        let root: SafetensorsJSON
        do {
            root = try SafetensorsJSONParser.parse(mapped.bytes)
        } catch {
            throw ModelFormatError.invalid(file: indexPath, field: "index", reason: "not valid JSON: \(error)")
        }
        guard case .object = root else {
            throw ModelFormatError.invalid(file: indexPath, field: "index", reason: "must be a JSON object, found \(root.kindName)")
        }
        guard let weightMapValue = root["weight_map"] else {
            throw ModelFormatError.invalid(file: indexPath, field: "weight_map", reason: "is missing")
        }
        guard case .object(let weightMap) = weightMapValue else {
            throw ModelFormatError.invalid(file: indexPath, field: "weight_map",
                                           reason: "must be an object of tensor name → shard file, found \(weightMapValue.kindName)")
        }
        let totalSize = try? root["metadata"]?["total_size"]?.nonNegativeInteger.get()

        // Validate every shard name before touching the filesystem.
        var shardOfTensor: [String: String] = [:]
        for member in weightMap {
            let field = "weight_map['\(member.key)']"
            guard case .string(let shard) = member.value else {
                throw ModelFormatError.invalid(file: indexPath, field: field, reason: "must be a shard file name, found \(member.value.kindName)")
            }
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), !shard.contains(".."), !shard.contains("\0") else {
                throw ModelFormatError.invalid(file: indexPath, field: field,
                                               reason: "shard '\(shard)' is not a plain file name; shards must lie in the index's folder")
            }
            shardOfTensor[member.key] = shard  // keys are unique: the parser refuses duplicates
        }
        let shardNames = Set(shardOfTensor.values).sorted(by: SafetensorsJSON.codePointOrder)

        var files: [SafetensorsFile] = []
        for shard in shardNames {
            let shardPath = "\(directory)/\(shard)"
            guard isFile(shardPath) else {
                let example = weightMap.first { shardOfTensor[$0.key] == shard }?.key ?? ""
                throw ModelFormatError.invalid(file: indexPath, field: "weight_map shard '\(shard)'",
                                               reason: "no such file in \(directory) (tensor '\(example)' is mapped to it)")
            }
            files.append(try SafetensorsFile(path: shardPath))
        }
        let fileByShard = Dictionary(uniqueKeysWithValues: zip(shardNames, files))
        for member in weightMap {
            let shard = shardOfTensor[member.key]!
            guard fileByShard[shard]!.contains(member.key) else {
                throw ModelFormatError.invalid(file: indexPath, field: "weight_map['\(member.key)']",
                                               reason: "shard '\(shard)' has no tensor of that name")
            }
        }
        for (shard, file) in zip(shardNames, files) {
            for name in file.tensorNames where shardOfTensor[name] != shard {
                throw ModelFormatError.invalid(
                    file: file.path, field: "tensor '\(name)'",
                    reason: shardOfTensor[name].map { "it is also in shard '\($0)', where the index maps it; a tensor may appear only once" }
                        ?? "the index's weight_map does not list it; the index and the shards disagree")
            }
        }
        return (files, totalSize)
    }
}
