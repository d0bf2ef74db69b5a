import Foundation
import Testing
@testable import ModelFormats

/// A tiny SentencePiece BPE with byte fallback (spm_tiny.model, trained by the fixture script),
/// read from tokenizer.json and from GGUF metadata, against sentencepiece's own ids.
@Suite struct TokenizerSentencePieceTests {
    static func document() throws -> [String: Any] { try TokenizerFixtures.document("spm_tiny_cases.json") }

    static func fromTokenizerJSON() throws -> Tokenizer {
        try Tokenizer(tokenizerJSONAt: try TokenizerFixtures.url("spm_tiny.tokenizer.json").path)
    }

    static func fromGGUF() throws -> Tokenizer {
        try Tokenizer(ggufMetadata: try TokenizerFixtures.ggufMetadata("spm_tiny.gguf.json"), file: "spm_tiny.gguf.json")
    }

    @Test func theTokenizerJSONEncodesAsSentencePieceDoes() throws {
        let tokenizer = try Self.fromTokenizerJSON()
        #expect(tokenizer.algorithm == .sentencePieceBPE)
        let cases = try TokenizerFixtures.cases(try Self.document()["cases"])
        #expect(cases.count >= 20)
        for reference in cases {
            let text = String(reflecting: reference.text)
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(text)")
            #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial, "\(text)")
        }
    }

    @Test func theGGUFMetadataEncodesAsSentencePieceDoes() throws {
        let tokenizer = try Self.fromGGUF()
        #expect(tokenizer.algorithm == .sentencePieceBPE)
        #expect(tokenizer.bosTokenID == 1 && tokenizer.eosTokenID == 2 && tokenizer.unknownTokenID == 0)
        #expect(tokenizer.prefixTokenIDs == [1] && tokenizer.suffixTokenIDs.isEmpty)
        for reference in try TokenizerFixtures.cases(try Self.document()["cases"]) {
            let text = String(reflecting: reference.text)
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(text)")
            #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial, "\(text)")
        }
    }

    /// tokenizers and llama.cpp both cut control tokens out of the text and give every
    /// text stretch between them its own `▁` prefix; sentencepiece never parses them.
    @Test func controlTokensInTheTextAreMatchedWholeByBothReaders() throws {
        let cases = try TokenizerFixtures.cases(try Self.document()["special_cases"])
        for tokenizer in [try Self.fromTokenizerJSON(), try Self.fromGGUF()] {
            for reference in cases {
                let text = String(reflecting: reference.text)
                #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(text)")
                #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial, "\(text)")
            }
        }
    }

    @Test func aMetaspacePreTokenizerEncodesAsTokenizersDoes() throws {
        let variant = try #require(try Self.document()["metaspace_variant"] as? [String: Any])
        let data = try TokenizerFixtures.tokenizerJSON(try #require(variant["tokenizer"] as? [String: Any]),
                                                       modelFrom: "spm_tiny.tokenizer.json")
        let tokenizer = try Tokenizer(tokenizerJSON: data, file: "spm_tiny metaspace")
        for reference in try TokenizerFixtures.cases(variant["cases"]) {
            let text = String(reflecting: reference.text)
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(text)")
            #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial, "\(text)")
        }
    }

    @Test func decodingSentencePieceIDsGivesTheTextBack() throws {
        let cases = try TokenizerFixtures.cases(try Self.document()["cases"])
        for tokenizer in [try Self.fromTokenizerJSON(), try Self.fromGGUF()] {
            for reference in cases {
                #expect(tokenizer.decode(reference.ids) == reference.text, "\(String(reflecting: reference.text))")
                #expect(tokenizer.decode(reference.expectedWithSpecial, skipSpecialTokens: true) == reference.text)
            }
        }
    }

    @Test func theFastScoredMergeAgreesWithTheNaiveMerge() throws {
        let tokenizer = try Self.fromGGUF()
        guard case .scored(let bpe) = tokenizer.pipeline.model else {
            Issue.record("a GGUF llama vocabulary should merge by score")
            return
        }
        var random = TestRandom(seed: 3)
        var workspace = BPEWorkspace()
        let alphabet = Array("▁the▁quick▁brown▁fox,.'ing▁ed▁s1234é日".unicodeScalars)
        for _ in 0..<500 {
            let length = random.below(50) + 1
            let text = String(String.UnicodeScalarView((0..<length).map { _ in alphabet[random.below(alphabet.count)] }))
            let bytes = Array(text.utf8)[...]
            var fast: [Int32] = []
            bpe.encode(bytes, vocabulary: tokenizer.vocabulary, workspace: &workspace, into: &fast)
            #expect(fast == bpe.encodeNaively(bytes, vocabulary: tokenizer.vocabulary), "\(text)")
        }
    }
}
