import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The default corpus, for jobs that name none: the English reference text every Python
/// installation ships in `pydoc_data/topics.py` (the Python Language Reference sections behind
/// `help('topic')`, under the PSF licence), a dictionary literal of topic → text read by
/// `PythonStringDictionary` without running Python.
///
/// Topics are split into training (calibration and fine-tuning) and held-out evaluation text by a
/// hash of the topic's name, so a topic keeps its side when Python versions add or drop others.
public enum PydocTopics {
    /// One topic and its text.
    public struct Topic: Sendable, Equatable {
        public let name: String
        public let text: String
    }

    /// Held-out topics: those whose name's FNV-1a hash is 0 modulo this (about one in five).
    public static let evaluationModulus: UInt64 = 5

    // MARK: - Finding the file

    /// The topics.py files present, in the order they are preferred: /usr/lib/python3.X, then
    /// /usr/local/lib/python3.X (highest X first in each), then lib/python3.X beside every directory
    /// of PATH that holds a `python3` (…/bin/python3 → …/lib/python3.X).
    public static func candidates(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var roots = ["/usr/lib", "/usr/local/lib"]
        for directory in (environment["PATH"] ?? "").split(separator: ":").map(String.init) where !directory.isEmpty {
            let python = (directory as NSString).appendingPathComponent("python3")
            guard FileManager.default.isExecutableFile(atPath: python) else { continue }
            roots.append(((directory as NSString).deletingLastPathComponent as NSString).appendingPathComponent("lib"))
            // A symlinked python3 (/bin/python3 → python3.11) names its installation through its target.
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: python) {
                let resolved = target.hasPrefix("/") ? target : (directory as NSString).appendingPathComponent(target)
                let binary = ((resolved as NSString).standardizingPath as NSString).deletingLastPathComponent
                roots.append(((binary as NSString).deletingLastPathComponent as NSString).appendingPathComponent("lib"))
            }
        }
        var seen = Set<String>()
        var found: [String] = []
        for root in roots {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            let versions = names.compactMap { name -> (Int, String)? in
                guard name.hasPrefix("python3."), let minor = Int(name.dropFirst("python3.".count)) else { return nil }
                return (minor, name)
            }.sorted { $0.0 > $1.0 }
            for (_, name) in versions {
                let path = ((root as NSString).appendingPathComponent(name) as NSString).appendingPathComponent("pydoc_data/topics.py")
                // /lib is often a link to /usr/lib: the same file found twice is listed once.
                let canonical = realpath(path, nil).map { resolved in defer { free(resolved) }; return String(cString: resolved) } ?? path
                guard FileManager.default.fileExists(atPath: path), seen.insert(canonical).inserted else { continue }
                found.append(path)
            }
        }
        return found
    }

    /// The preferred topics.py, or an error naming the places searched.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws(CorpusError) -> String {
        guard let path = candidates(environment: environment).first else {
            throw .defaultCorpusNotFound(searched: ["/usr/lib/python3.*/pydoc_data/topics.py", "/usr/local/lib/python3.*/pydoc_data/topics.py",
                                                    "lib/python3.*/pydoc_data/topics.py beside each python3 on PATH"])
        }
        return path
    }

    // MARK: - Reading

    /// The topics of a topics.py file, in the file's order.
    public static func topics(at path: String) throws(CorpusError) -> [Topic] {
        try topics(in: try TextCorpus.contents(of: path, limit: PythonStringDictionary.maximumBytes), file: path)
    }

    /// The topics of topics.py source bytes; `file` names it in errors.
    public static func topics(in source: [UInt8], file: String) throws(CorpusError) -> [Topic] {
        let (name, entries) = try PythonStringDictionary.parse(source, file: file)
        guard name == "topics" else {
            throw .pythonSyntax(path: file, line: 1, reason: "the dictionary is named \(String(reflecting: name)), not 'topics'")
        }
        return entries.map { Topic(name: $0.key, text: $0.value) }
    }

    // MARK: - Splitting

    /// Whether a topic belongs to the held-out evaluation text.
    public static func isEvaluationTopic(_ name: String) -> Bool {
        fnv1a64(Array(name.utf8)) % evaluationModulus == 0
    }

    /// The default corpus from `path` (or the located topics.py): training and evaluation parts,
    /// each the topics' texts in byte order of their names, disjoint by topic, neither empty.
    public static func defaultCorpus(at path: String? = nil,
                                     environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(CorpusError) -> (training: TextCorpus, evaluation: TextCorpus) {
        let file: String
        if let path { file = path } else { file = try locate(environment: environment) }
        let all = try topics(at: file).filter { !$0.text.isEmpty }.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        guard all.count >= 2 else { throw .tooFewDocuments(source: file, documents: all.count, needed: 2) }
        var evaluation = all.filter { isEvaluationTopic($0.name) }
        var training = all.filter { !isEvaluationTopic($0.name) }
        if evaluation.isEmpty || training.isEmpty {
            // A tiny or unusual file where the hash put everything on one side: every fifth topic instead.
            evaluation = all.enumerated().filter { $0.offset % 5 == 4 || all.count < 5 && $0.offset == all.count - 1 }.map(\.element)
            training = all.enumerated().filter { !($0.offset % 5 == 4 || all.count < 5 && $0.offset == all.count - 1) }.map(\.element)
        }
        return (TextCorpus(documents: training.map(\.text), source: "\(file) (training topics)"),
                TextCorpus(documents: evaluation.map(\.text), source: "\(file) (evaluation topics)"))
    }

    /// FNV-1a, 64 bits (Fowler, Noll & Vo): a hash that is the same on every machine and version.
    public static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }
}
