/// Why a text corpus cannot be read or cut; every case names the file or folder and the numbers.
public enum CorpusError: Error, Equatable, CustomStringConvertible {
    /// The file or folder cannot be opened or read.
    case unreadable(path: String, reason: String)
    /// The file is larger than a corpus file may be.
    case tooLarge(path: String, bytes: Int, limit: Int)
    /// The file's bytes are not UTF-8; `line` is the line of the first invalid byte.
    case notUTF8(path: String, line: Int)
    /// A JSONL line is not a JSON object.
    case invalidJSONLine(path: String, line: Int, reason: String)
    /// A JSONL object has no "text" string.
    case missingText(path: String, line: Int, found: String)
    /// A folder holds no .txt file.
    case noTextFiles(folder: String)
    /// The corpus holds no text at all.
    case empty(path: String)
    /// A corpus has too few documents to be split.
    case tooFewDocuments(source: String, documents: Int, needed: Int)
    /// The token stream is too short for what was asked of it.
    case tooFewTokens(source: String, tokens: Int, needed: Int, purpose: String)
    /// No pydoc_data/topics.py was found in any of the places searched.
    case defaultCorpusNotFound(searched: [String])
    /// topics.py is not the dictionary literal of strings it should be.
    case pythonSyntax(path: String, line: Int, reason: String)

    /// The file or folder the error is about.
    public var path: String {
        switch self {
        case .unreadable(let path, _), .tooLarge(let path, _, _), .notUTF8(let path, _),
             .invalidJSONLine(let path, _, _), .missingText(let path, _, _), .empty(let path),
             .pythonSyntax(let path, _, _):
            return path
        case .noTextFiles(let folder): return folder
        case .tooFewTokens(let source, _, _, _), .tooFewDocuments(let source, _, _): return source
        case .defaultCorpusNotFound(let searched): return searched.first ?? ""
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "cannot read the corpus \(path) (\(reason)); check the path and its permissions"
        case .tooLarge(let path, let bytes, let limit):
            return "the corpus file \(path) has \(bytes) bytes, more than the \(limit) a corpus file may have; use a smaller sample or a folder of files"
        case .notUTF8(let path, let line):
            return "the corpus file \(path) is not UTF-8 (line \(line)); convert it to UTF-8"
        case .invalidJSONLine(let path, let line, let reason):
            return "\(path), line \(line): not a JSON object (\(reason)); each line of a .jsonl corpus must be one object with a \"text\" string"
        case .missingText(let path, let line, let found):
            return "\(path), line \(line): the object has no \"text\" string (\(found)); each line of a .jsonl corpus must be one object with a \"text\" string"
        case .noTextFiles(let folder):
            return "the corpus folder \(folder) holds no .txt file"
        case .empty(let path):
            return "the corpus \(path) holds no text"
        case .tooFewDocuments(let source, let documents, let needed):
            return "the corpus \(source) has \(documents) documents, at least \(needed) are needed to hold some out for evaluation"
        case .tooFewTokens(let source, let tokens, let needed, let purpose):
            return "the corpus \(source) has \(tokens) tokens, \(purpose) needs at least \(needed); use more text or shorter windows"
        case .defaultCorpusNotFound(let searched):
            return "no default corpus: pydoc_data/topics.py (shipped with every Python installation) was not found in \(searched.joined(separator: ", ")); install python3 or name a corpus"
        case .pythonSyntax(let path, let line, let reason):
            return "\(path), line \(line): \(reason); expected the pydoc topics dictionary literal (topics = {'name': 'text', …})"
        }
    }
}
