#if canImport(Glibc)
import Glibc
#endif

/// The files of a Hugging Face folder an export carries over unchanged —
/// config.json, tokenizer files, generation config, README and every other
/// non-weight file, in subfolders too — and the ones it leaves out.
///
/// Left out (and listed in `skipped`): weights in any format (a `.safetensors`
/// file the checkpoint does not use, `.bin`, `.pt`, `.pth`, `.ckpt`, `.h5`,
/// `.msgpack`, `.onnx`, `.gguf` and their indexes), which would be stale
/// dense copies next to the sparse ones; hidden entries (`.git`,
/// `.cache`, half-written temporaries); anything that is not a regular file
/// or a folder (a FIFO would block the copy). Symbolic links are followed, as
/// a folder from the Hugging Face cache is made of links to its blobs.
struct HuggingFaceFolderCopy {
    /// The source folder.
    let folder: String
    /// Files to copy, relative to `folder`, sorted.
    private(set) var files: [String] = []
    /// Subfolders to create, relative to `folder`, parents first.
    private(set) var folders: [String] = []
    /// Entries left out, relative to `folder`, sorted.
    private(set) var skipped: [String] = []

    /// Name endings of weight files in the formats Hugging Face repositories carry.
    static let weightSuffixes = [
        ".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth", ".pth.index.json",
        ".ckpt", ".h5", ".h5.index.json", ".msgpack", ".msgpack.index.json", ".onnx", ".onnx_data", ".gguf",
    ]

    /// Links can form loops; real model folders are one or two levels deep.
    static let maximumDepth = 8

    /// Lists what to copy from `folder`, leaving out the top-level names in
    /// `excluding` (the weight files the export writes itself) without listing them.
    init(folder: String, excluding: Set<String>) throws {
        self.folder = folder
        try scan(relative: "", depth: 0, excluding: excluding)
        files.sort()
        skipped.sort()
    }

    private mutating func scan(relative: String, depth: Int, excluding: Set<String>) throws {
        let directory = relative.isEmpty ? folder : folder + "/" + relative
        for name in try Self.listDirectory(directory).sorted() {
            let path = relative.isEmpty ? name : relative + "/" + name
            if depth == 0 && excluding.contains(name) { continue }
            if name.hasPrefix(".") {
                skipped.append(path)
                continue
            }
            var status = stat()
            guard stat(directory + "/" + name, &status) == 0 else {
                skipped.append(path)  // a dangling link
                continue
            }
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                guard depth + 1 < Self.maximumDepth else {
                    throw ModelFormatError.unsupported(file: folder, field: "subfolder '\(path)'",
                                                       reason: "nested \(depth + 1) deep; an export copies folders at most \(Self.maximumDepth - 1) deep (a link loop?)")
                }
                folders.append(path)
                try scan(relative: path, depth: depth + 1, excluding: excluding)
            case S_IFREG where !Self.weightSuffixes.contains(where: { name.hasSuffix($0) }):
                files.append(path)
            default:
                skipped.append(path)
            }
        }
    }

    /// Creates the subfolders and copies the files into `destination`, each
    /// fsynced; returns the bytes copied.
    func copy(into destination: String) throws -> Int {
        for relative in folders {
            guard mkdir(destination + "/" + relative, 0o755) == 0 else {
                let code = errno
                throw ModelFormatError.io(file: destination + "/" + relative, operation: "create the folder",
                                          reason: String(cString: strerror(code)))
            }
        }
        var bytes = 0
        for relative in files {
            bytes += try Self.copyFile(from: folder + "/" + relative, to: destination + "/" + relative)
        }
        return bytes
    }

    /// Streams `source` into a new file at `target` (never replacing one) through a fixed buffer.
    static func copyFile(from source: String, to target: String) throws -> Int {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            let code = errno
            throw ModelFormatError.io(file: source, operation: "open it to copy", reason: String(cString: strerror(code)))
        }
        defer { close(input) }
        var copied = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        try AtomicOutputFile.write(to: target, replacingExisting: false) { output in
            while true {
                let count = read(input, buffer.baseAddress, buffer.count)
                if count < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw ModelFormatError.io(file: source, operation: "read it to copy", reason: String(cString: strerror(code)))
                }
                if count == 0 { break }
                try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                copied += count
            }
        }
        return copied
    }

    private static func listDirectory(_ directory: String) throws -> [String] {
        guard let stream = opendir(directory) else {
            let code = errno
            throw ModelFormatError.io(file: directory, operation: "list the folder", reason: String(cString: strerror(code)))
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
}
