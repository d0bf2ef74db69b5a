import Foundation
import ModelFormats
import Testing
@testable import Compression

/// A byte-level tokenizer without merges: every UTF-8 byte is its own token (id = byte value), and
/// `<|endoftext|>` (id 256) is the end-of-sequence token when `withEndOfSequence`.
func byteTokenizer(withEndOfSequence: Bool = true) throws -> Tokenizer {
    // GPT-2's byte alphabet: printable bytes stand for themselves, the others for U+0100 upwards.
    var vocab: [String: Int] = [:]
    var next = 0
    for byte in 0..<256 {
        let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
        let scalar = Unicode.Scalar(printable ? UInt32(byte) : UInt32(256 + next))!
        if !printable { next += 1 }
        vocab[String(Character(scalar))] = byte
    }
    var document: [String: Any] = [
        "model": ["type": "BPE", "vocab": vocab, "merges": [String]()],
        "added_tokens": [["id": 256, "content": "<|endoftext|>", "special": true]],
        "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
        "decoder": ["type": "ByteLevel"],
    ]
    if withEndOfSequence {
        document["post_processor"] = ["type": "TemplateProcessing",
                                      "single": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "<|endoftext|>", "type_id": 0]]],
                                      "special_tokens": ["<|endoftext|>": ["id": "<|endoftext|>", "ids": [256], "tokens": ["<|endoftext|>"]]]]
    }
    return try Tokenizer(tokenizerJSON: try JSONSerialization.data(withJSONObject: document), file: "byte-tokenizer.json")
}

@Suite struct TextCorpusTests {
    @Test func plainTextIsOneDocumentWithoutItsByteOrderMark() throws {
        let folder = try CorpusTestFolder()
        let path = try folder.write("text.txt", bytes: [0xEF, 0xBB, 0xBF] + Array("first line\nsecond – line\n".utf8))
        let corpus = try TextCorpus(contentsOf: path)
        #expect(corpus.documents == ["first line\nsecond – line\n"])
        #expect(corpus.source == path)
    }

    @Test func jsonLinesGiveOneDocumentPerLineAndSkipBlankLines() throws {
        let folder = try CorpusTestFolder()
        let path = try folder.write("data.jsonl", "{\"text\": \"alpha\", \"id\": 1}\r\n\n   \n{\"text\": \"beta\\n\\u00e9\"}\n{\"text\": \"\"}\n")
        let corpus = try TextCorpus(contentsOf: path)
        #expect(corpus.documents == ["alpha", "beta\né"])
    }

    @Test func jsonLineErrorsNameTheFileAndLine() throws {
        let folder = try CorpusTestFolder()
        let cases: [(String, CorpusError)] = [
            ("{\"text\": \"ok\"}\n{\"text\": oops}\n", .invalidJSONLine(path: folder.file("bad.jsonl"), line: 2, reason: "not valid JSON: \"{\\\"text\\\": oops}\"")),
            ("{\"text\": \"ok\"}\n\n[1, 2]\n", .invalidJSONLine(path: folder.file("bad.jsonl"), line: 3, reason: "a JSON array, not an object")),
            ("{\"body\": \"x\", \"title\": \"y\"}\n", .missingText(path: folder.file("bad.jsonl"), line: 1, found: "keys: body, title")),
            ("{\"text\": 5}\n", .missingText(path: folder.file("bad.jsonl"), line: 1, found: "\"text\" is a JSON number or boolean")),
            ("\n\n", .empty(path: folder.file("bad.jsonl"))),
        ]
        for (text, expected) in cases {
            let path = try folder.write("bad.jsonl", text)
            #expect(throws: expected) { try TextCorpus.jsonLines(at: path) }
        }
        let path = try folder.write("bad.jsonl", "{\"text\": 1}\n")
        do {
            _ = try TextCorpus(contentsOf: path)
            Issue.record("no error")
        } catch {
            #expect(error.description.contains(path) && error.description.contains("line 1"))
        }
    }

    @Test func folderFilesAreReadInByteOrderOfTheirNames() throws {
        let folder = try CorpusTestFolder()
        try folder.write("b.txt", "bee")
        try folder.write("a.txt", "ay")
        try folder.write("B.txt", "capital bee")
        try folder.write("10.txt", "ten")
        try folder.write(".hidden.txt", "hidden")
        try folder.write("notes.md", "markdown")
        try folder.write("empty.txt", "")
        let corpus = try TextCorpus(contentsOf: folder.path)
        #expect(corpus.documents == ["ten", "capital bee", "ay", "bee"])
        let empty = try CorpusTestFolder()
        try empty.write("notes.md", "markdown")
        #expect(throws: CorpusError.noTextFiles(folder: empty.path)) { try TextCorpus(contentsOf: empty.path) }
    }

    @Test func unreadableInputIsReportedWithItsPath() throws {
        let folder = try CorpusTestFolder()
        #expect(throws: CorpusError.unreadable(path: folder.file("missing.txt"), reason: "no such file or folder")) {
            try TextCorpus(contentsOf: folder.file("missing.txt"))
        }
        let latin1 = try folder.write("latin1.txt", bytes: Array("line one\nline two\ncaf".utf8) + [0xE9, 0x0A])
        #expect(throws: CorpusError.notUTF8(path: latin1, line: 3)) { try TextCorpus(contentsOf: latin1) }
        let big = try folder.write("big.txt", String(repeating: "x", count: 100))
        #expect(throws: CorpusError.tooLarge(path: big, bytes: 100, limit: 50)) { try TextCorpus.contents(of: big, limit: 50) }
        let blank = try folder.write("blank.txt", "")
        #expect(throws: CorpusError.empty(path: blank)) { try TextCorpus(contentsOf: blank) }
        #expect(CorpusError.notUTF8(path: latin1, line: 3).description.contains(latin1))
    }

    @Test func documentsAreJoinedByTheEndOfSequenceTokenOrASeparator() throws {
        let corpus = TextCorpus(documents: ["ab", "", "c"], source: "test")
        #expect(corpus.documents == ["ab", "c"])
        #expect(corpus.tokens(using: try byteTokenizer()) == [97, 98, 256, 99])
        // Without an end-of-sequence token, a blank line.
        #expect(corpus.tokens(using: try byteTokenizer(withEndOfSequence: false)) == [97, 98, 10, 10, 99])
        #expect(corpus.tokens(using: try byteTokenizer(), separator: .token(7)) == [97, 98, 7, 99])
        #expect(corpus.tokens(using: try byteTokenizer(), separator: .text(" | ")) == [97, 98, 32, 124, 32, 99])
    }
}

@Suite struct TokenWindowsTests {
    @Test func windowsAreConsecutiveAndTheTailIsDropped() {
        let windows = TokenWindows(tokens: (0..<23).map(Int32.init), length: 5)
        #expect(windows.count == 4)
        #expect(Array(windows[0]) == [0, 1, 2, 3, 4])
        #expect(Array(windows[3]) == [15, 16, 17, 18, 19])
        #expect(windows.windows([2, 0]) == [[10, 11, 12, 13, 14], [0, 1, 2, 3, 4]])
        #expect(TokenWindows(tokens: [1, 2], length: 5).count == 0)
    }

    @Test func samplingIsReproducibleDistinctAndCyclesThroughEpochs() {
        let windows = TokenWindows(tokens: (0..<100).map(Int32.init), length: 10)
        let first = windows.sampleIndices(count: 6, seed: 42)
        #expect(first == windows.sampleIndices(count: 6, seed: 42))
        #expect(first != windows.sampleIndices(count: 6, seed: 43))
        #expect(Set(first).count == 6 && first.allSatisfy { (0..<10).contains($0) })
        // The draws are pinned: they come from xoshiro256** and our own bounded integers, not the
        // standard library's, so no Swift version may change them. The values were recomputed
        // independently by a Python transcription of SplitMix64 seeding, xoshiro256** and Lemire's
        // method over a partial Fisher–Yates shuffle.
        #expect(first == [0, 4, 7, 9, 3, 8], "draws changed")
        let epochs = windows.sampleIndices(count: 25, seed: 1)
        #expect(epochs.count == 25)
        #expect(Set(epochs[0..<10]).count == 10 && Set(epochs[10..<20]).count == 10 && Set(epochs[20...]).count == 5)
        #expect(windows.sample(count: 2, seed: 42) == windows.windows(Array(first.prefix(2))))
        #expect(TokenWindows(tokens: [], length: 4).sampleIndices(count: 3, seed: 0).isEmpty)
    }

    /// Each window is first equally often over 6 000 seeds (W = 6): expected 1 000 each, and a bias of
    /// even 15% would put one count outside 1 000 ± 150 (about 5 standard deviations).
    @Test func samplingIsUniform() {
        let windows = TokenWindows(tokens: (0..<12).map(Int32.init), length: 2)
        var counts = [Int](repeating: 0, count: 6)
        for seed in 0..<6000 { counts[windows.sampleIndices(count: 1, seed: UInt64(seed))[0]] += 1 }
        #expect(counts.allSatisfy { abs($0 - 1000) < 150 }, "counts \(counts)")
    }

    @Test func trainingAndEvaluationPartsNeverOverlap() throws {
        let tokens = (0..<1000).map(Int32.init)
        let (training, evaluation) = TokenWindows.split(tokens, evaluationFraction: 0.1)
        #expect(training == Array(tokens[0..<900]) && evaluation == Array(tokens[900...]))
        let (odd, held) = TokenWindows.split(Array(tokens[0..<11]), evaluationFraction: 0.25)
        #expect(odd.count == 8 && held.count == 3)
        let parts = try TokenWindows.split(tokens, evaluationFraction: 0.2, trainingLength: 64, evaluationLength: 128, source: "t")
        #expect(parts.training.count == 12 && parts.evaluation.count == 1)
        #expect(parts.training.tokens.last! < parts.evaluation.tokens.first!)
        #expect(throws: CorpusError.self) {
            try TokenWindows.split(tokens, evaluationFraction: 0.1, trainingLength: 64, evaluationLength: 128, source: "t")
        }
        #expect(throws: CorpusError.self) {
            try TokenWindows.split(Array(tokens[0..<100]), evaluationFraction: 0.5, trainingLength: 64, evaluationLength: 8, source: "t")
        }
    }
}
