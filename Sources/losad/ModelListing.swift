import Foundation
import ModelFormats

/// What a model file or folder holds as stored, read without asking whether losad can run it:
/// a GGUF's metadata and tensor table, or a Hugging Face folder's config.json keys and safetensors
/// tensors. `losad inspect` shows it for every model it can parse, beside whether losad runs it.
struct ModelListing: Encodable {
    struct TensorRow: Encodable {
        var name: String
        var type: String
        var shape: [Int]
        var bytes: Int
    }
    var format: String
    /// Metadata (GGUF) or config.json keys, values shortened for display.
    var metadata: [String: String]
    var tensors: [TensorRow]

    /// The listing of `path`; throws when not even the container can be parsed (the caller says why).
    static func read(_ path: String) throws -> ModelListing {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelFormatError.io(file: path, operation: "open", reason: "no such file or folder")
        }
        if isDirectory.boolValue {
            var metadata: [String: String] = [:]
            let configPath = (path as NSString).appendingPathComponent("config.json")
            if let data = FileManager.default.contents(atPath: configPath),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                for (key, value) in object { metadata[key] = shorten("\(value)") }
            }
            let weights = try SafetensorsCheckpoint(path: path)
            let rows = weights.files.flatMap { file in
                file.tensors.map { TensorRow(name: $0.name, type: $0.dtype.description, shape: $0.shape, bytes: $0.byteRange.count) }
            }
            return ModelListing(format: "huggingface", metadata: metadata, tensors: rows)
        }
        let file = try GGUFFile(path: path)
        var metadata: [String: String] = [:]
        for (key, value) in file.metadata.entries { metadata[key] = describe(value) }
        let rows = file.tensors.map { TensorRow(name: $0.name, type: $0.type.description, shape: $0.shape, bytes: $0.byteCount) }
        return ModelListing(format: "gguf", metadata: metadata, tensors: rows)
    }

    /// A GGUF value for display; arrays (token lists: 262 144 strings) by their length and first items.
    static func describe(_ value: GGUFValue) -> String {
        if let array = value.arrayValue {
            let head = array.prefix(3).map(describe).joined(separator: ", ")
            return "[\(array.count) items: \(head)\(array.count > 3 ? ", …" : "")]"
        }
        if let string = value.stringValue { return shorten(string) }
        if let int = value.intValue { return "\(int)" }
        if let double = value.doubleValue { return "\(double)" }
        if let bool = value.boolValue { return "\(bool)" }
        return "\(value.type)"
    }

    static func shorten(_ text: String) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count > 80 ? String(line.prefix(77)) + "…" : line
    }

    /// The metadata as aligned lines, and the tensor table.
    var text: String {
        let width = min(48, metadata.keys.map(\.count).max() ?? 0)
        let keys = metadata.keys.sorted().map { key in
            "  " + key.padding(toLength: max(width, key.count), withPad: " ", startingAt: 0) + "  " + metadata[key]!
        }
        let nameWidth = min(48, tensors.map(\.name.count).max() ?? 0)
        let rows = tensors.map { row in
            "  " + row.name.padding(toLength: max(nameWidth, row.name.count), withPad: " ", startingAt: 0)
                + "  " + row.type.padding(toLength: 6, withPad: " ", startingAt: 0)
                + "  " + "\(row.shape)".padding(toLength: 16, withPad: " ", startingAt: 0)
                + "  " + String(format: "%.2f MB", Double(row.bytes) / 1e6)
        }
        return (["metadata (\(metadata.count) keys):"] + keys + ["tensors (\(tensors.count)):"] + rows).joined(separator: "\n")
    }
}
