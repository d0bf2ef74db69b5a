import Foundation
import Testing
@testable import ModelFormats

/// The demo model's own tokenizer (SmolLM2-135M-Instruct: GGUF "gpt2" vocabulary,
/// pre-tokenizer "smollm") against ids from Hugging Face tokenizers (smollm2_ids.json).
@Suite struct TokenizerSmolLM2Tests {
    /// Read once: the metadata holds 49,152 tokens and 48,900 merges.
    static let fromGGUF = Result { () throws -> Tokenizer in
        let metadata = try GGUFMetadataForTests.read(path: TokenizerFixtures.demoModelPath)
        return try Tokenizer(ggufMetadata: metadata, file: TokenizerFixtures.demoModelPath)
    }

    static func referenceCases() throws -> [TokenizerFixtures.Case] {
        let document = try TokenizerFixtures.document("smollm2_ids.json")
        #expect(document["pre"] as? String == "smollm")
        return try TokenizerFixtures.cases(document["cases"])
    }

    @Test(.enabled(if: TokenizerFixtures.demoModelExists))
    func theDemoModelsGGUFTokenizerGivesTheReferenceIDs() throws {
        let tokenizer = try Self.fromGGUF.get()
        let cases = try Self.referenceCases()
        #expect(cases.count >= 25)
        for reference in cases {
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(String(reflecting: reference.text))")
            #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial,
                    "\(String(reflecting: reference.text))")
        }
    }

    @Test(.enabled(if: TokenizerFixtures.demoModelExists))
    func decodingWhatTheDemoModelEncodedGivesTheTextBack() throws {
        let tokenizer = try Self.fromGGUF.get()
        for reference in try Self.referenceCases() {
            #expect(tokenizer.decode(reference.ids) == reference.text, "\(String(reflecting: reference.text))")
        }
        let chat = "<|im_start|>user\nhi<|im_end|>\n"
        #expect(tokenizer.decode(tokenizer.encode(chat, addSpecialTokens: false), skipSpecialTokens: true) == "user\nhi\n")
    }

    @Test(.enabled(if: TokenizerFixtures.demoModelExists))
    func theDemoModelsMetadataNamesItsSpecialTokensAndAddsNoBOS() throws {
        let tokenizer = try Self.fromGGUF.get()
        #expect(tokenizer.algorithm == .byteLevelBPE)
        #expect(tokenizer.vocabularySize == 49152)
        #expect(tokenizer.bosTokenID == 1 && tokenizer.eosTokenID == 2)
        #expect(tokenizer.unknownTokenID == 0 && tokenizer.paddingTokenID == 2)
        #expect(tokenizer.prefixTokenIDs.isEmpty && tokenizer.suffixTokenIDs.isEmpty)
        #expect(tokenizer.tokenText(for: 1) == "<|im_start|>" && tokenizer.tokenKind(for: 1) == .control)
        #expect(tokenizer.tokenID(for: "Ġthe") != nil)
    }

    @Test(.enabled(if: TokenizerFixtures.demoModelExists))
    func theFastMergeAgreesWithTheNaiveMergeOnTheDemoVocabulary() throws {
        let tokenizer = try Self.fromGGUF.get()
        guard case .ranked(let bpe) = tokenizer.pipeline.model else {
            Issue.record("the demo model should merge by rank")
            return
        }
        var generator = TestRandom(seed: 7)
        var workspace = BPEWorkspace()
        let alphabet = Array("etaoinshrdlu ETAOIN,.'0123456789é日\n".utf8)
        for _ in 0..<300 {
            let length = generator.below(40) + 1
            let word = (0..<length).map { _ in alphabet[generator.below(alphabet.count)] }
            bpe.startSymbols(word[...], vocabulary: tokenizer.vocabulary, into: &workspace.ids)
            let naive = bpe.mergeNaively(workspace.ids)
            var fast: [Int32] = []
            bpe.encode(word[...], vocabulary: tokenizer.vocabulary, workspace: &workspace, into: &fast)
            #expect(fast == naive, "\(word)")
        }
    }

    /// The tokenizer.json the fixture script derives from the GGUF metadata (not committed: 2.5 MB).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: TokenizerFixtures.smolLM2TokenizerJSONPath)))
    func theDemoModelsTokenizerJSONGivesTheSameIDs() throws {
        let tokenizer = try Tokenizer(tokenizerJSONAt: TokenizerFixtures.smolLM2TokenizerJSONPath)
        #expect(tokenizer.algorithm == .byteLevelBPE && tokenizer.vocabularySize == 49152)
        for reference in try Self.referenceCases() {
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(String(reflecting: reference.text))")
            #expect(tokenizer.decode(reference.ids) == reference.text)
        }
    }
}
