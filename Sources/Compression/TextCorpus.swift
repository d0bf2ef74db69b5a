import Foundation
import ModelFormats

/// Text for calibration, fine-tuning and evaluation: documents read from a plain-text file (one
/// document), a JSONL file (one object per line with a "text" string, as Hugging Face datasets
/// export them) or a folder of .txt files (one document each, in byte order of their names), and
/// tokenized once into one stream with the documents separated by the tokenizer's end-of-sequence token.
public struct TextCorpus: Sendable, Equatable {
    /// The documents, in order; none empty.
    public let documents: [String]
    /// Where they came from (a path, or a description of a built-in corpus), for messages.
    public let source: String

    /// The largest corpus file read (a file is held in memory whole, and its tokens beside it).
    public static let maximumFileBytes = 1 << 30

    /// A corpus of `documents` (empty ones dropped) from `source`.
    public init(documents: [String], source: String) {
        self.documents = documents.filter { !$0.isEmpty }
        self.source = source
    }

    /// How documents are joined into one token stream.
    public enum DocumentSeparator: Sendable, Equatable {
        /// The tokenizer's end-of-sequence token between documents, or a blank line of text when it has none.
        case endOfSequence
        /// This token between documents.
        case token(Int32)
        /// This text between documents, tokenized with them.
        case text(String)
    }

    // MARK: - Reading

    /// The corpus at `path`: every .txt file of a folder, the "text" of every line of a .jsonl file,
    /// or the whole of any other file as one document.
    public init(contentsOf path: String) throws(CorpusError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadable(path: path, reason: "no such file or folder")
        }
        if isDirectory.boolValue {
            self = try TextCorpus.folder(at: path)
        } else if path.lowercased().hasSuffix(".jsonl") {
            self = try TextCorpus.jsonLines(at: path)
        } else {
            self = try TextCorpus.plainText(at: path)
        }
    }

    /// The whole UTF-8 file as one document.
    public static func plainText(at path: String) throws(CorpusError) -> TextCorpus {
        let corpus = TextCorpus(documents: [try text(of: try contents(of: path), path: path)], source: path)
        guard !corpus.documents.isEmpty else { throw .empty(path: path) }
        return corpus
    }

    /// One document per line of a JSONL file: the line's object's "text" string. Blank lines are skipped.
    public static func jsonLines(at path: String) throws(CorpusError) -> TextCorpus {
        let bytes = try contents(of: path)
        var documents: [String] = []
        var lineNumber = 0
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == 0x0D { line = line.dropLast() }
            guard line.contains(where: { ![0x20, 0x09, 0x0D].contains($0) }) else { continue }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(line))
            } catch {
                guard String(validating: line, as: UTF8.self) != nil else { throw .notUTF8(path: path, line: lineNumber) }
                throw .invalidJSONLine(path: path, line: lineNumber, reason: "not valid JSON: \(preview(line))")
            }
            guard let dictionary = object as? [String: Any] else {
                throw .invalidJSONLine(path: path, line: lineNumber, reason: "a JSON \(jsonKind(object)), not an object")
            }
            guard let text = dictionary["text"] as? String else {
                let found = dictionary["text"].map { "\"text\" is a JSON \(jsonKind($0))" }
                    ?? "keys: \(dictionary.keys.sorted().prefix(8).joined(separator: ", "))"
                throw .missingText(path: path, line: lineNumber, found: found)
            }
            documents.append(text)
        }
        let corpus = TextCorpus(documents: documents, source: path)
        guard !corpus.documents.isEmpty else { throw .empty(path: path) }
        return corpus
    }

    /// One document per .txt file directly inside `folder` (hidden files skipped), sorted by the
    /// bytes of their names so every machine reads them in the same order.
    public static func folder(at folder: String) throws(CorpusError) -> TextCorpus {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
            throw .unreadable(path: folder, reason: "cannot list the folder")
        }
        let files = names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".txt") }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard !files.isEmpty else { throw .noTextFiles(folder: folder) }
        var documents: [String] = []
        for name in files {
            let path = (folder as NSString).appendingPathComponent(name)
            documents.append(try text(of: try contents(of: path), path: path))
        }
        let corpus = TextCorpus(documents: documents, source: folder)
        guard !corpus.documents.isEmpty else { throw .empty(path: folder) }
        return corpus
    }

    // MARK: - Tokens

    /// The documents as one token stream: each tokenized without special tokens, joined by `separator`.
    public func tokens(using tokenizer: Tokenizer, separator: DocumentSeparator = .endOfSequence) -> [Int32] {
        var separatorIDs: [Int32]
        switch separator {
        case .endOfSequence:
            separatorIDs = tokenizer.eosTokenID.map { [$0] } ?? []
            if separatorIDs.isEmpty { return tokenizer.encode(documents.joined(separator: "\n\n"), addSpecialTokens: false) }
        case .token(let id):
            separatorIDs = [id]
        case .text(let text):
            return tokenizer.encode(documents.joined(separator: text), addSpecialTokens: false)
        }
        var stream: [Int32] = []
        for (index, document) in documents.enumerated() {
            if index > 0 { stream.append(contentsOf: separatorIDs) }
            stream.append(contentsOf: tokenizer.encode(document, addSpecialTokens: false))
        }
        return stream
    }

    // MARK: - Files

    /// The bytes of a file no larger than `maximumFileBytes`.
    static func contents(of path: String, limit: Int = maximumFileBytes) throws(CorpusError) -> [UInt8] {
        let attributes: [FileAttributeKey: Any]
        do { attributes = try FileManager.default.attributesOfItem(atPath: path) } catch {
            throw .unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot read its attributes" : "no such file")
        }
        if let size = (attributes[.size] as? NSNumber)?.intValue, size > limit {
            throw .tooLarge(path: path, bytes: size, limit: limit)
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .unreadable(path: path, reason: "cannot open it") }
        defer { try? handle.close() }
        let data: Data?
        do { data = try handle.read(upToCount: limit + 1) } catch {
            throw .unreadable(path: path, reason: "read failed")
        }
        let bytes = [UInt8](data ?? Data())
        guard bytes.count <= limit else { throw .tooLarge(path: path, bytes: bytes.count, limit: limit) }
        return bytes
    }

    /// The UTF-8 text of a file's bytes, without a leading byte-order mark.
    static func text(of bytes: [UInt8], path: String) throws(CorpusError) -> String {
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? bytes[3...] : bytes[...]
        guard let text = String(validating: body, as: UTF8.self) else {
            throw .notUTF8(path: path, line: firstInvalidLine(body))
        }
        return text
    }

    /// The 1-based line of the first byte that is not valid UTF-8.
    static func firstInvalidLine(_ bytes: ArraySlice<UInt8>) -> Int {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var line = 1
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): if scalar == "\n" { line += 1 }
            case .emptyInput, .error: return line
            }
        }
    }

    static func preview(_ line: ArraySlice<UInt8>) -> String {
        let text = String(decoding: line.prefix(60), as: UTF8.self)
        return String(reflecting: text) + (line.count > 60 ? "…" : "")
    }

    static func jsonKind(_ value: Any) -> String {
        switch value {
        case is String: return "string"
        case is [Any]: return "array"
        case is [String: Any]: return "object"
        case is NSNull: return "null"
        case is NSNumber: return "number or boolean"
        default: return "value"
        }
    }
}
