import Foundation

// The stages between the input text and the tokens, in Hugging Face
// tokenizers' terms (normalizer → pre-tokenizer → model), which also describe
// llama.cpp's: its GGUF "gpt2" vocabularies are regex splits + byte-level BPE,
// its "llama" vocabularies are whitespace escaping + SentencePiece BPE.

/// One normalizer step, applied to a whole text segment.
enum NormalizerStep: Sendable, Equatable {
    /// Puts these bytes in front of a non-empty segment.
    case prepend([UInt8])
    /// Replaces every occurrence of the first byte string with the second.
    case replace([UInt8], [UInt8])
    /// Unicode canonical composition.
    case nfc
}

/// When a Metaspace pre-tokenizer puts its replacement character in front of a piece.
enum PrependScheme: String, Sendable {
    case always, first, never
}

/// One pre-tokenizer step, applied to every piece the previous steps left.
enum PreTokenizerStep: Sendable, Equatable {
    case split(SplitRule)
    /// GPT-2's byte-level pre-tokenizer: an optional leading space, then (with `useRegex`) the GPT-2 split.
    /// Mapping bytes to GPT-2's alphabet is left to the model (`RankedBPE.Symbols.bytes`).
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// SentencePiece's whitespace handling: spaces become `replacement`, which is prepended
    /// per `prependScheme`; with `split` a new piece starts at every `replacement`.
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme, split: Bool)
}

/// The model that turns one pre-tokenized piece into tokens.
enum WordModel: Sendable {
    case ranked(RankedBPE)
    case scored(ScoredBPE)
}

/// A pre-tokenizer piece: bytes of `EncodeState.buffer`, and whether it starts the input.
struct Piece {
    var range: Range<Int>
    var atTextStart: Bool
}

/// Everything one encode call allocates, reused for every segment and word.
struct EncodeState {
    var buffer: [UInt8] = []
    var pieces: [Piece] = []
    var nextPieces: [Piece] = []
    var scalarRanges: [Range<Int>] = []
    var scalars = ScalarScratch()
    var workspace = BPEWorkspace()
    /// Words already encoded in this call → their ids in `cachedIDs`.
    var cache: [ArraySlice<UInt8>: Range<Int>] = [:]
    var cachedIDs: [Int32] = []

    /// Words longer than this are not cached (Hugging Face tokenizers uses the same bound).
    static let longestCachedWord = 256
}

struct TextPipeline: Sendable {
    let normalizer: [NormalizerStep]
    let preTokenizer: [PreTokenizerStep]
    let model: WordModel

    /// Appends the tokens of one text segment (the text between added tokens).
    func encode(_ segment: ArraySlice<UInt8>, atTextStart: Bool, vocabulary: TokenVocabulary,
                state: inout EncodeState, into output: inout [Int32]) {
        preTokenize(segment, atTextStart: atTextStart, &state)
        for piece in state.pieces where !piece.range.isEmpty {
            encodeWord(piece.range, vocabulary: vocabulary, state: &state, into: &output)
        }
    }

    /// Normalizes `segment` into `state.buffer` and leaves the pre-tokenizer's pieces in `state.pieces`.
    func preTokenize(_ segment: ArraySlice<UInt8>, atTextStart: Bool, _ state: inout EncodeState) {
        state.buffer.removeAll(keepingCapacity: true)
        state.buffer.append(contentsOf: segment)
        for step in normalizer { normalize(step, &state.buffer) }
        state.pieces.removeAll(keepingCapacity: true)
        guard !state.buffer.isEmpty else { return }
        state.pieces.append(Piece(range: 0..<state.buffer.count, atTextStart: atTextStart))
        for step in preTokenizer {
            state.nextPieces.removeAll(keepingCapacity: true)
            for piece in state.pieces { apply(step, to: piece, &state) }
            swap(&state.pieces, &state.nextPieces)
        }
    }

    /// The pre-tokenizer's pieces of `text` as text (no added-token matching), for tests and diagnostics.
    func pieces(of text: String) -> [String] {
        var state = EncodeState()
        preTokenize(ArraySlice(text.utf8), atTextStart: true, &state)
        return state.pieces.map { String(decoding: state.buffer[$0.range], as: UTF8.self) }
    }

    private func encodeWord(_ range: Range<Int>, vocabulary: TokenVocabulary, state: inout EncodeState,
                            into output: inout [Int32]) {
        switch model {
        case .scored(let bpe):
            bpe.encode(state.buffer[range], vocabulary: vocabulary, workspace: &state.workspace, into: &output)
        case .ranked(let bpe):
            if let cached = state.cache[state.buffer[range]] {
                output.append(contentsOf: state.cachedIDs[cached])
                return
            }
            let start = output.count
            bpe.encode(state.buffer[range], vocabulary: vocabulary, workspace: &state.workspace, into: &output)
            if range.count <= EncodeState.longestCachedWord {
                let cachedStart = state.cachedIDs.count
                state.cachedIDs.append(contentsOf: output[start...])
                // The key gets storage of its own: a slice of `buffer` would keep the buffer shared and copy it on the next write.
                state.cache[ArraySlice(Array(state.buffer[range]))] = cachedStart..<state.cachedIDs.count
            }
        }
    }

    // MARK: - Normalizer

    private func normalize(_ step: NormalizerStep, _ text: inout [UInt8]) {
        switch step {
        case .prepend(let prefix):
            if !text.isEmpty { text.insert(contentsOf: prefix, at: 0) }
        case .replace(let pattern, let replacement):
            text = Self.replacing(pattern, with: replacement, in: text[...])
        case .nfc:
            text = Array(String(decoding: text, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        }
    }

    static func replacing(_ pattern: [UInt8], with replacement: [UInt8], in text: ArraySlice<UInt8>) -> [UInt8] {
        guard let first = pattern.first else { return Array(text) }
        var result: [UInt8] = []
        result.reserveCapacity(text.count)
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == first, text.endIndex - index >= pattern.count,
               text[index..<(index + pattern.count)].elementsEqual(pattern) {
                result.append(contentsOf: replacement)
                index += pattern.count
            } else {
                result.append(text[index])
                index += 1
            }
        }
        return result
    }

    // MARK: - Pre-tokenizer

    private func apply(_ step: PreTokenizerStep, to piece: Piece, _ state: inout EncodeState) {
        switch step {
        case .split(let rule):
            split(piece, by: rule, &state)
        case .byteLevel(let addPrefixSpace, let useRegex):
            var piece = piece
            if addPrefixSpace, state.buffer[piece.range.lowerBound] != 0x20 {
                piece.range = rewrite(piece.range, &state) { [0x20] + $0 }
            }
            if useRegex {
                split(piece, by: .gpt2, &state)
            } else {
                state.nextPieces.append(piece)
            }
        case .metaspace(let replacement, let scheme, let splits):
            var piece = piece
            let prepends = scheme == .always || (scheme == .first && piece.atTextStart)
            piece.range = rewrite(piece.range, &state) { bytes in
                let replaced = Self.replacing([0x20], with: replacement, in: bytes)
                return prepends && !replaced.starts(with: replacement) ? replacement + replaced : replaced
            }
            if splits {
                splitBefore(replacement, piece, &state)
            } else {
                state.nextPieces.append(piece)
            }
        }
    }

    /// Appends the rewritten bytes of `range` to the buffer and returns where they are.
    private func rewrite(_ range: Range<Int>, _ state: inout EncodeState,
                         _ transform: (ArraySlice<UInt8>) -> [UInt8]) -> Range<Int> {
        let rewritten = transform(state.buffer[range])
        let start = state.buffer.count
        state.buffer.append(contentsOf: rewritten)
        return start..<state.buffer.count
    }

    private func split(_ piece: Piece, by rule: SplitRule, _ state: inout EncodeState) {
        let base = piece.range.lowerBound
        state.scalars.load(state.buffer[piece.range])
        state.scalarRanges.removeAll(keepingCapacity: true)
        rule.split(state.scalars, 0..<state.scalars.scalars.count, into: &state.scalarRanges)
        for (index, scalars) in state.scalarRanges.enumerated() {
            let bytes = (base + state.scalars.byteOffsets[scalars.lowerBound])..<(base + state.scalars.byteOffsets[scalars.upperBound])
            state.nextPieces.append(Piece(range: bytes, atTextStart: piece.atTextStart && index == 0))
        }
    }

    /// Hugging Face's split with behaviour MergedWithNext: a new piece starts at every `delimiter`.
    private func splitBefore(_ delimiter: [UInt8], _ piece: Piece, _ state: inout EncodeState) {
        var start = piece.range.lowerBound
        var index = start
        let end = piece.range.upperBound
        while index < end {
            if index > start, state.buffer[index] == delimiter[0], end - index >= delimiter.count,
               state.buffer[index..<(index + delimiter.count)].elementsEqual(delimiter) {
                state.nextPieces.append(Piece(range: start..<index, atTextStart: piece.atTextStart && start == piece.range.lowerBound))
                start = index
            }
            index += 1
        }
        if start < end {
            state.nextPieces.append(Piece(range: start..<end, atTextStart: piece.atTextStart && start == piece.range.lowerBound))
        }
    }
}
