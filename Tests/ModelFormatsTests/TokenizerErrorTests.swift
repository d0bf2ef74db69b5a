import Foundation
import Testing
@testable import ModelFormats

/// Malformed or unsupported tokenizers are refused with an error naming the field;
/// no input string makes a tokenizer crash.
@Suite struct TokenizerErrorTests {
    static let file = "bad.gguf"

    /// The tiny byte-level vocabulary's metadata, to break one key at a time.
    static func byteLevelMetadata() throws -> [String: GGUFValue] {
        var metadata = try TokenizerFixtures.ggufMetadata("bpe_tiny.gguf.json")
        metadata["tokenizer.ggml.pre"] = .string("gpt-2")
        return metadata
    }

    static func expectError(_ metadata: [String: GGUFValue], field: String, unsupported: Bool = false,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Tokenizer(ggufMetadata: metadata, file: file)
            Issue.record("expected an error naming \(field)", sourceLocation: sourceLocation)
        } catch let error as ModelFormatError {
            switch error {
            case .invalid(let errorFile, let errorField, _) where !unsupported,
                 .unsupported(let errorFile, let errorField, _) where unsupported:
                #expect(errorFile == file && errorField == field, "\(error)", sourceLocation: sourceLocation)
            default:
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    static func strings(_ values: [String]) -> GGUFValue { .array(elementType: .string, values.map(GGUFValue.string)) }

    // MARK: - GGUF metadata

    @Test func vocabulariesOtherThanGPT2AndLlamaAreRefusedByName() throws {
        for model in ["bert", "rwkv", "t5", "no_vocab"] {
            var metadata = try Self.byteLevelMetadata()
            metadata["tokenizer.ggml.model"] = .string(model)
            Self.expectError(metadata, field: "tokenizer.ggml.model", unsupported: true)
        }
        var metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.model"] = nil
        Self.expectError(metadata, field: "tokenizer.ggml.model")
    }

    @Test func anUnknownPreTokenizerIsRefusedByName() throws {
        var metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.pre"] = .string("tekken-2099")
        Self.expectError(metadata, field: "tokenizer.ggml.pre", unsupported: true)
        do {
            _ = try Tokenizer(ggufMetadata: metadata, file: Self.file)
        } catch {
            #expect("\(error)".contains("tekken-2099"))
        }
    }

    @Test func aMergeNamingAnUnknownTokenIsRefused() throws {
        var metadata = try Self.byteLevelMetadata()
        let mergeValues = try #require(metadata["tokenizer.ggml.merges"]?.arrayValue)
        var merges = mergeValues.compactMap { $0.stringValue }
        merges[3] = "Ġ zzzz-not-a-token"
        metadata["tokenizer.ggml.merges"] = Self.strings(merges)
        Self.expectError(metadata, field: "tokenizer.ggml.merges[3]")
        merges[3] = "nospace"
        metadata["tokenizer.ggml.merges"] = Self.strings(merges)
        Self.expectError(metadata, field: "tokenizer.ggml.merges[3]")
        metadata["tokenizer.ggml.merges"] = nil
        Self.expectError(metadata, field: "tokenizer.ggml.merges")
    }

    @Test func perTokenArraysMustHaveOneEntryPerToken() throws {
        var metadata = try Self.byteLevelMetadata()
        var types = try #require(metadata["tokenizer.ggml.token_type"]?.arrayValue)
        types.removeLast()
        metadata["tokenizer.ggml.token_type"] = .array(elementType: .int32, types)
        Self.expectError(metadata, field: "tokenizer.ggml.token_type")

        var scored = try TokenizerFixtures.ggufMetadata("spm_tiny.gguf.json")
        scored["tokenizer.ggml.scores"] = .array(elementType: .float32, [.float32(0)])
        Self.expectError(scored, field: "tokenizer.ggml.scores")
    }

    @Test func missingOrMistypedKeysAreNamed() throws {
        var metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.tokens"] = nil
        Self.expectError(metadata, field: "tokenizer.ggml.tokens")
        metadata["tokenizer.ggml.tokens"] = .array(elementType: .int32, [.int32(1)])
        Self.expectError(metadata, field: "tokenizer.ggml.tokens")
        metadata["tokenizer.ggml.tokens"] = Self.strings([])
        Self.expectError(metadata, field: "tokenizer.ggml.tokens")

        metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.pre"] = .uint32(3)
        Self.expectError(metadata, field: "tokenizer.ggml.pre")
        metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.add_bos_token"] = .string("yes")
        Self.expectError(metadata, field: "tokenizer.ggml.add_bos_token")
    }

    @Test func specialTokenIDsMustBeInsideTheVocabulary() throws {
        var metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.eos_token_id"] = .uint32(1_000_000)
        Self.expectError(metadata, field: "tokenizer.ggml.eos_token_id")
        metadata = try Self.byteLevelMetadata()
        metadata["tokenizer.ggml.bos_token_id"] = nil
        metadata["tokenizer.ggml.add_bos_token"] = .bool(true)
        Self.expectError(metadata, field: "tokenizer.ggml.add_bos_token")
    }

    @Test func twoTokensWithTheSameTextAreRefused() throws {
        var metadata = try Self.byteLevelMetadata()
        let tokenValues = try #require(metadata["tokenizer.ggml.tokens"]?.arrayValue)
        var tokens = tokenValues.compactMap { $0.stringValue }
        tokens[300] = tokens[299]
        metadata["tokenizer.ggml.tokens"] = Self.strings(tokens)
        Self.expectError(metadata, field: "tokenizer.ggml.tokens")
    }

    // MARK: - tokenizer.json

    static func expectJSONError(_ json: String, field: String, unsupported: Bool = false,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try Tokenizer(tokenizerJSON: Data(json.utf8), file: "tokenizer.json")
            Issue.record("expected an error naming \(field)", sourceLocation: sourceLocation)
        } catch let error as ModelFormatError {
            switch error {
            case .invalid(_, let errorField, _) where !unsupported, .unsupported(_, let errorField, _) where unsupported:
                #expect(errorField == field, "\(error)", sourceLocation: sourceLocation)
            default:
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    static let smallModel = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#

    @Test func tokenizerJSONModelsOtherThanBPEAreRefused() {
        Self.expectJSONError(#"{"model": {"type": "WordPiece", "vocab": {"a": 0}}}"#, field: "model.type", unsupported: true)
        Self.expectJSONError(#"{"model": {"type": "Unigram", "vocab": [["a", -1.0]]}}"#, field: "model.type", unsupported: true)
    }

    @Test func tokenizerJSONComponentsLosadDoesNotReproduceAreRefusedByPath() {
        Self.expectJSONError(#"{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}]}, \#(Self.smallModel)}"#,
                             field: "pre_tokenizer.pretokenizers[0].pattern", unsupported: true)
        Self.expectJSONError(#"{"normalizer": {"type": "Lowercase"}, \#(Self.smallModel)}"#, field: "normalizer.type", unsupported: true)
        Self.expectJSONError(#"{"decoder": {"type": "WordPiece"}, \#(Self.smallModel)}"#, field: "decoder.type", unsupported: true)
        Self.expectJSONError(#"{"added_tokens": [{"id": 2, "content": "ab", "single_word": true}], \#(Self.smallModel)}"#,
                             field: "added_tokens[0].single_word", unsupported: true)
    }

    @Test func tokenizerJSONMergesAndIDsAreChecked() {
        Self.expectJSONError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "c"]]}}"#, field: "model.merges[0]")
        Self.expectJSONError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}"#, field: "model.merges[0]")
        Self.expectJSONError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 7}, "merges": []}}"#, field: "model.vocab")
        Self.expectJSONError(#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}"#, field: "model.vocab.a")
        Self.expectJSONError(#"{"model": "#, field: "document")
    }

    // MARK: - Inputs

    /// Strings that are hard on scanners and merges: control bytes, very long runs, every plane.
    static func awkwardStrings() -> [String] {
        var random = TestRandom(seed: 11)
        var strings = [
            String(repeating: "\u{0}", count: 1000),
            String(repeating: " ", count: 100_000),
            String(repeating: "a", count: 100_000),
            String(repeating: "\n\t ", count: 10_000),
            String(repeating: "😀", count: 5_000),
            String(repeating: "9", count: 10_000),
            String(repeating: "<|im_start|", count: 1000),
            "\u{FEFF}\u{200B}\u{FFFD}\u{E000}\u{10FFFF}\u{0378}\u{1F600}\u{0301}\u{0301}",
            "\r\r\n\n\r", "''''", "'S'LL'Re", "▁▁ ▁", "<0x41><0xZZ>",
        ]
        for _ in 0..<200 {
            let length = random.below(64)
            var scalars = String.UnicodeScalarView()
            for _ in 0..<length {
                let plane = random.next() % 4
                let value = plane == 0 ? UInt32(random.next() % 0x80)
                    : plane == 1 ? UInt32(random.next() % 0x3000) : UInt32(random.next() % 0x110000)
                if let scalar = Unicode.Scalar(value) { scalars.append(scalar) }
            }
            strings.append(String(scalars))
        }
        return strings
    }

    @Test func noInputMakesATokenizerCrashAndByteLevelAlwaysRoundTrips() throws {
        let byteLevel = try ["gpt-2", "llama-bpe", "qwen2", "smollm", "default"].map { pre -> Tokenizer in
            var metadata = try Self.byteLevelMetadata()
            metadata["tokenizer.ggml.pre"] = .string(pre)
            return try Tokenizer(ggufMetadata: metadata, file: "bpe_tiny")
        }
        let sentencePiece = [
            try Tokenizer(ggufMetadata: try TokenizerFixtures.ggufMetadata("spm_tiny.gguf.json"), file: "spm_tiny"),
            try Tokenizer(tokenizerJSONAt: try TokenizerFixtures.url("spm_tiny.tokenizer.json").path),
        ]
        for text in Self.awkwardStrings() {
            for tokenizer in byteLevel {
                let ids = tokenizer.encode(text, addSpecialTokens: true)
                #expect(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize })
                #expect(tokenizer.decode(ids, skipSpecialTokens: true) == text, "\(text.prefix(40).debugDescription)")
            }
            for tokenizer in sentencePiece {
                let ids = tokenizer.encode(text, addSpecialTokens: false)
                #expect(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize })
                _ = tokenizer.decode(ids)
            }
        }
    }

    @Test func decodingSkipsIDsOutsideTheVocabulary() throws {
        let tokenizer = try Tokenizer(ggufMetadata: try Self.byteLevelMetadata(), file: "bpe_tiny")
        let hello = tokenizer.encode("hello", addSpecialTokens: false)
        #expect(tokenizer.decode([-1, Int32.max] + hello + [Int32(tokenizer.vocabularySize)]) == "hello")
        #expect(tokenizer.tokenText(for: -5) == nil && tokenizer.tokenKind(for: Int32.max) == nil)
    }
}
