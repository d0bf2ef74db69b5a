import Foundation
import Testing
@testable import Compression

@Suite struct PydocTopicsTests {
    static func parse(_ text: String) throws(CorpusError) -> [PydocTopics.Topic] {
        try PydocTopics.topics(in: Array(text.utf8), file: "topics.py")
    }

    /// Every construct the reader handles, in one file, read as Python's ast.literal_eval reads it.
    @Test func literalsReadAsPythonReadsThem() throws {
        let fixture = try MathFixtures.document("pydoc-topics.json")
        let literals = try #require(fixture["literals"] as? [String: Any])
        let expected = try #require(literals["entries"] as? [[String]])
        let topics = try PydocTopics.topics(at: try MathFixtures.url(try #require(literals["file"] as? String)).path)
        #expect(topics.map(\.name) == expected.map { $0[0] })
        for (topic, entry) in zip(topics, expected) { #expect(topic.text == entry[1], "topic \(topic.name)") }
        #expect(topics.count == 12)
    }

    /// The installations the fixture script saw (Python 2.7 and 3.6 to 3.13 on the machine that made
    /// it): where the same file is present here, every topic's name, length and hash match Python's.
    @Test func installedTopicFilesReadAsPythonReadsThem() throws {
        let fixture = try MathFixtures.document("pydoc-topics.json")
        var compared = 0
        for installation in try #require(fixture["installations"] as? [[String: Any]]) {
            let path = try #require(installation["path"] as? String)
            guard let data = FileManager.default.contents(atPath: path),
                  String(PydocTopics.fnv1a64(Array(data))) == installation["fnv1a64"] as? String else { continue }
            let expected = try #require(installation["topics"] as? [[Any]])
            let topics = try PydocTopics.topics(at: path)
            #expect(topics.map(\.name) == expected.map { $0[0] as? String ?? "" }, "\(path)")
            for (topic, entry) in zip(topics, expected) {
                #expect(topic.text.utf8.count == entry[1] as? Int && String(PydocTopics.fnv1a64(Array(topic.text.utf8))) == entry[2] as? String,
                        "\(path): topic \(topic.name)")
            }
            compared += 1
        }
        if compared == 0 { print("PydocTopicsTests: none of the recorded topics.py files is present; only the literal fixture was compared") }
    }

    @Test func syntaxErrorsNameTheFileAndLine() {
        let cases: [(String, Int, String)] = [
            ("topics = {'a': 'unterminated\n}", 1, "a newline inside a single-quoted string literal"),
            ("topics = {'a':\n '''never closed}", 2, "a string literal is not closed before the end of the file"),
            ("topics = {'a': b'bytes'}", 1, "a bytes literal where a string was expected"),
            ("topics = {'a': '\\N{EM DASH}'}", 1, "the named escape \\N{…} is not supported"),
            ("topics = {'a' 'b'}", 1, "expected ':'"),
            // Adjacent literals concatenate, so a missing comma shows at the colon after them.
            ("topics = {'a': 'b'\n\n 'c': 'd'}", 3, "expected ',' or '}' after the entry \"a\""),
            ("topics = {'a': 'b',\n 'c': 'd'} extra", 2, "unexpected text after the dictionary"),
            ("topics = {'a': 'b' 5}", 1, "expected ',' or '}' after the entry \"a\""),
            ("topics = {'a': '\\xZ1'}", 1, "the escape \\x needs 2 hexadecimal digits"),
            ("topics = {'a': '\\ud800'}", 1, "the escape for U+D800 is not a Unicode scalar (a surrogate or beyond U+10FFFF)"),
            ("= {}", 1, "expected a name at the start"),
        ]
        for (text, line, reason) in cases {
            #expect(throws: CorpusError.pythonSyntax(path: "topics.py", line: line, reason: reason), "\(text)") { try Self.parse(text) }
        }
        #expect(throws: CorpusError.pythonSyntax(path: "topics.py", line: 1, reason: "the dictionary is named \"other\", not 'topics'")) {
            try Self.parse("other = {}")
        }
        #expect(throws: CorpusError.notUTF8(path: "bad.py", line: 2)) {
            try PydocTopics.topics(in: Array("topics = {\n'a': '".utf8) + [0xFF, 0x27, 0x7D], file: "bad.py")
        }
    }

    @Test func splitIsByTopicDeterministicAndNeverEmpty() throws {
        let folder = try CorpusTestFolder()
        // Three topics: whatever the hash says, both parts get at least one.
        let small = try folder.write("topics.py", "topics = {'b': 'bee', 'a': 'ay', 'c': 'sea'}\n")
        let (training, evaluation) = try PydocTopics.defaultCorpus(at: small)
        #expect(!training.documents.isEmpty && !evaluation.documents.isEmpty)
        #expect(Set(training.documents).isDisjoint(with: evaluation.documents))
        #expect(training.documents.count + evaluation.documents.count == 3)
        let one = try folder.write("one.py", "topics = {'a': 'ay'}")
        #expect(throws: CorpusError.tooFewDocuments(source: one, documents: 1, needed: 2)) { try PydocTopics.defaultCorpus(at: one) }
        // FNV-1a of "" and "a" (the published test vectors).
        #expect(PydocTopics.fnv1a64([]) == 0xCBF2_9CE4_8422_2325 && PydocTopics.fnv1a64(Array("a".utf8)) == 0xAF63_DC4C_8601_EC8C)
    }

    /// The default corpus from this machine's Python, when it has one: about a fifth of the topics held
    /// out, the parts disjoint, and the same answer every time.
    @Test func defaultCorpusFromTheInstalledPython() throws {
        guard let path = PydocTopics.candidates().first else {
            print("PydocTopicsTests: no pydoc_data/topics.py on this machine")
            return
        }
        let topics = try PydocTopics.topics(at: path)
        #expect(topics.count > 50)
        let (training, evaluation) = try PydocTopics.defaultCorpus(at: path)
        let held = topics.filter { PydocTopics.isEvaluationTopic($0.name) && !$0.text.isEmpty }
        #expect(evaluation.documents.count == held.count)
        #expect(training.documents.count + evaluation.documents.count == topics.filter { !$0.text.isEmpty }.count)
        #expect(Double(held.count) / Double(topics.count) > 0.1 && Double(held.count) / Double(topics.count) < 0.35)
        let evaluationCharacters = evaluation.documents.reduce(0) { $0 + $1.utf8.count }
        #expect(evaluationCharacters > 50_000)
        #expect(Set(training.documents).isDisjoint(with: evaluation.documents))
        let again = try PydocTopics.defaultCorpus()
        #expect(again.training == training && again.evaluation == evaluation)
    }

    @Test func pythonOnThePathIsFoundBesideItsInstallation() throws {
        let folder = try CorpusTestFolder()
        try FileManager.default.createDirectory(atPath: folder.file("bin"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder.file("lib/python3.99/pydoc_data"), withIntermediateDirectories: true)
        let python = try folder.write("bin/python3", "#!/bin/sh\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python)
        let topics = try folder.write("lib/python3.99/pydoc_data/topics.py", "topics = {'a': 'x', 'b': 'y'}")
        let found = PydocTopics.candidates(environment: ["PATH": "/nonexistent:" + folder.file("bin")])
        #expect(found.contains(topics))
        #expect(!PydocTopics.candidates(environment: [:]).contains(topics))
        #expect(CorpusError.defaultCorpusNotFound(searched: ["/a", "/b"]).description.contains("/a, /b"))
    }
}
