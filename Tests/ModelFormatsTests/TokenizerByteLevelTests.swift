import Foundation
import Testing
@testable import ModelFormats

/// A tiny byte-level BPE (bpe_tiny.*, trained by the fixture script) under each llama.cpp
/// pre-tokenizer type and each tokenizer.json pre-tokenizer shape, against Hugging Face tokenizers.
@Suite struct TokenizerByteLevelTests {
    static let llamaCppPreTokenizers = ["gpt-2", "llama-bpe", "qwen2", "smollm", "default"]
    static let tokenizerJSONVariants = ["gpt2", "gpt2-prefix-space", "llama3", "qwen2", "smollm", "digit-runs"]

    static func variant(_ list: String, _ key: String, _ name: String) throws -> [String: Any] {
        let variants = try #require(try TokenizerFixtures.document("bpe_tiny_cases.json")[list] as? [[String: Any]])
        return try #require(variants.first { $0[key] as? String == name }, "no \(list) entry \(name)")
    }

    static func ggufTokenizer(pre: String) throws -> Tokenizer {
        var metadata = try TokenizerFixtures.ggufMetadata("bpe_tiny.gguf.json")
        metadata["tokenizer.ggml.pre"] = .string(pre)
        return try Tokenizer(ggufMetadata: metadata, file: "bpe_tiny.gguf.json")
    }

    static func jsonTokenizer(_ name: String) throws -> (Tokenizer, [TokenizerFixtures.Case]) {
        let variant = try variant("json_variants", "name", name)
        let document = try #require(variant["tokenizer"] as? [String: Any])
        let data = try TokenizerFixtures.tokenizerJSON(document, modelFrom: "bpe_tiny.tokenizer.json")
        return (try Tokenizer(tokenizerJSON: data, file: "bpe_tiny \(name)"), try TokenizerFixtures.cases(variant["cases"]))
    }

    @Test(arguments: llamaCppPreTokenizers)
    func eachLlamaCppPreTokenizerSplitsAndEncodesAsTheReference(pre: String) throws {
        let tokenizer = try Self.ggufTokenizer(pre: pre)
        let cases = try TokenizerFixtures.cases(try Self.variant("gguf_variants", "pre", pre)["cases"])
        #expect(cases.count >= 25)
        for reference in cases {
            let text = String(reflecting: reference.text)
            if let pieces = reference.pieces {
                #expect(tokenizer.pipeline.pieces(of: reference.text) == pieces, "\(pre) pieces of \(text)")
            }
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(pre) \(text)")
            #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial, "\(pre) \(text)")
        }
    }

    @Test(arguments: tokenizerJSONVariants)
    func eachTokenizerJSONPreTokenizerEncodesAsTheReference(name: String) throws {
        let (tokenizer, cases) = try Self.jsonTokenizer(name)
        #expect(tokenizer.algorithm == .byteLevelBPE)
        for reference in cases {
            let text = String(reflecting: reference.text)
            #expect(tokenizer.encode(reference.text, addSpecialTokens: false) == reference.ids, "\(name) \(text)")
            #expect(tokenizer.encode(reference.text, addSpecialTokens: true) == reference.expectedWithSpecial, "\(name) \(text)")
        }
    }

    @Test func llamaBPEAddsBOSByDefaultAndTheMetadataCanTurnItOff() throws {
        let bos = try #require(try TokenizerFixtures.document("bpe_tiny_cases.json")["bos_token_id"] as? Int)
        let llama3 = try Self.ggufTokenizer(pre: "llama-bpe")
        #expect(llama3.prefixTokenIDs == [Int32(bos)])
        #expect(try Self.ggufTokenizer(pre: "gpt-2").prefixTokenIDs.isEmpty)
        var metadata = try TokenizerFixtures.ggufMetadata("bpe_tiny.gguf.json")
        metadata["tokenizer.ggml.pre"] = .string("llama-bpe")
        metadata["tokenizer.ggml.add_bos_token"] = .bool(false)
        metadata["tokenizer.ggml.add_eos_token"] = .bool(true)
        let configured = try Tokenizer(ggufMetadata: metadata, file: "bpe_tiny.gguf.json")
        #expect(configured.encode("hi", addSpecialTokens: true) == configured.encode("hi", addSpecialTokens: false) + [Int32(bos)])
    }

    @Test(arguments: llamaCppPreTokenizers)
    func decodingGivesBackEveryTestString(pre: String) throws {
        let tokenizer = try Self.ggufTokenizer(pre: pre)
        for reference in try TokenizerFixtures.cases(try Self.variant("gguf_variants", "pre", pre)["cases"]) {
            #expect(tokenizer.decode(tokenizer.encode(reference.text, addSpecialTokens: false)) == reference.text,
                    "\(String(reflecting: reference.text))")
        }
    }

    @Test func aTokenThatAbsorbsWhitespaceTakesTheSpacesBeforeIt() throws {
        // "<mask>" has lstrip in the gpt2 variant, as RoBERTa's does.
        let (tokenizer, _) = try Self.jsonTokenizer("gpt2")
        let mask = try #require(tokenizer.tokenID(for: "<mask>"))
        let ids = tokenizer.encode("a  \t<mask> b", addSpecialTokens: false)
        #expect(ids == tokenizer.encode("a", addSpecialTokens: false) + [mask] + tokenizer.encode(" b", addSpecialTokens: false))
    }

    @Test func theFastMergeAgreesWithTheNaiveMerge() throws {
        let tokenizer = try Self.ggufTokenizer(pre: "gpt-2")
        guard case .ranked(let bpe) = tokenizer.pipeline.model else {
            Issue.record("a byte-level vocabulary should merge by rank")
            return
        }
        var random = TestRandom(seed: 1)
        var workspace = BPEWorkspace()
        let alphabet = Array("the quick brown fox tokenizer ing ed s, . 1234 é".utf8)
        for _ in 0..<500 {
            let length = random.below(60) + 1
            let word = (0..<length).map { _ in alphabet[random.below(alphabet.count)] }
            bpe.startSymbols(word[...], vocabulary: tokenizer.vocabulary, into: &workspace.ids)
            let naive = bpe.mergeNaively(workspace.ids)
            var fast: [Int32] = []
            bpe.encode(word[...], vocabulary: tokenizer.vocabulary, workspace: &workspace, into: &fast)
            #expect(fast == naive, "\(word)")
        }
    }

    @Test func everyLlamaCppPreTokenizerNameMapsToScannersLosadHas() {
        for (name, pre) in GGUFPreTokenizer.named {
            for regex in pre.regexes { #expect(SplitRule.knownPatterns[regex] != nil, "\(name): \(regex)") }
        }
    }

    @Test func theGPT2AlphabetMapsEveryByteToItsOwnCharacterAndBack() {
        let scalars = ByteLevelAlphabet.scalarForByte
        #expect(Set(scalars).count == 256)
        #expect(scalars[0x20] == 0x120 && scalars[0x0A] == 0x10A && scalars[0x41] == 0x41)  // Ġ, Ċ, A
        for byte in 0..<256 { #expect(ByteLevelAlphabet.byte(for: scalars[byte]) == UInt8(byte)) }
        #expect(ByteLevelAlphabet.byte(for: 0x20) == nil)
    }
}
