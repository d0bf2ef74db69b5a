// SentencePiece BPE by piece score, as llama.cpp encodes a GGUF "llama"
// vocabulary (llm_tokenizer_spm_session, after SentencePiece's bpe_model.cc):
// the text starts as one symbol per UTF-8 character; the adjacent pair whose
// concatenation is a token with the highest score is merged, leftmost first on
// ties; a symbol left that is not a token becomes its `<0xXX>` byte tokens.

/// A pair that may merge: highest score first, then the left symbol's position.
struct ScoredCandidate: Comparable {
    var score: Float
    var left: Int
    var right: Int
    /// Bytes of the merged symbol; a stale candidate no longer adds up to it.
    var size: Int

    static func < (a: Self, b: Self) -> Bool { a.score > b.score || (a.score == b.score && a.left < b.left) }
}

struct ScoredBPE: Sendable {
    /// Token for each byte value: `<0xXX>`, else the one-byte token, else -1.
    let byteTokens: [Int32]
    /// Used for a byte that has no token; without it such a byte is dropped.
    let unknown: Int32?

    /// Appends the tokens of `text` (already escaped: spaces as `▁`).
    func encode(_ text: ArraySlice<UInt8>, vocabulary: TokenVocabulary, workspace: inout BPEWorkspace, into output: inout [Int32]) {
        loadCharacters(text, &workspace)
        let count = workspace.starts.count
        guard count > 0 else { return }
        workspace.scoredQueue.removeAll()
        for left in 0..<(count - 1) { enqueue(left, left + 1, text, vocabulary, &workspace) }
        while let candidate = workspace.scoredQueue.pop() {
            let left = candidate.left, right = candidate.right
            guard workspace.lengths[left] > 0, workspace.lengths[right] > 0, workspace.next[left] == right,
                  workspace.lengths[left] + workspace.lengths[right] == candidate.size else { continue }
            workspace.lengths[left] += workspace.lengths[right]
            workspace.lengths[right] = 0
            let after = workspace.next[right]
            workspace.next[left] = after
            if after < count { workspace.previous[after] = left }
            let before = workspace.previous[left]
            if before >= 0 { enqueue(before, left, text, vocabulary, &workspace) }
            if after < count { enqueue(left, after, text, vocabulary, &workspace) }
        }
        var index = 0
        while index < count {
            let start = workspace.starts[index]
            emit(text[start..<(start + workspace.lengths[index])], vocabulary, into: &output)
            index = workspace.next[index]
        }
    }

    private func loadCharacters(_ text: ArraySlice<UInt8>, _ workspace: inout BPEWorkspace) {
        workspace.starts.removeAll(keepingCapacity: true)
        workspace.lengths.removeAll(keepingCapacity: true)
        workspace.next.removeAll(keepingCapacity: true)
        workspace.previous.removeAll(keepingCapacity: true)
        var offset = text.startIndex
        while offset < text.endIndex {
            let length = min(utf8Length(text[offset]), text.endIndex - offset)
            workspace.previous.append(workspace.starts.count - 1)
            workspace.next.append(workspace.starts.count + 1)
            workspace.starts.append(offset)
            workspace.lengths.append(length)
            offset += length
        }
    }

    private func enqueue(_ left: Int, _ right: Int, _ text: ArraySlice<UInt8>, _ vocabulary: TokenVocabulary,
                         _ workspace: inout BPEWorkspace) {
        let start = workspace.starts[left]
        let size = workspace.lengths[left] + workspace.lengths[right]
        guard let id = vocabulary.id(of: text[start..<(start + size)]) else { return }
        workspace.scoredQueue.push(ScoredCandidate(score: vocabulary.scores[Int(id)], left: left, right: right, size: size))
    }

    private func emit(_ symbol: ArraySlice<UInt8>, _ vocabulary: TokenVocabulary, into output: inout [Int32]) {
        if let id = vocabulary.id(of: symbol) {
            output.append(id)
            return
        }
        for byte in symbol {
            let id = byteTokens[Int(byte)]
            if id >= 0 {
                output.append(id)
            } else if let unknown {
                output.append(unknown)
            }
        }
    }

    /// Reference encode: rescans every adjacent pair after each merge (quadratic).
    func encodeNaively(_ text: ArraySlice<UInt8>, vocabulary: TokenVocabulary) -> [Int32] {
        var symbols: [ArraySlice<UInt8>] = []
        var offset = text.startIndex
        while offset < text.endIndex {
            let length = min(utf8Length(text[offset]), text.endIndex - offset)
            symbols.append(text[offset..<(offset + length)])
            offset += length
        }
        while symbols.count > 1 {
            var best: (score: Float, index: Int)?
            for index in 0..<(symbols.count - 1) {
                let joined = text[symbols[index].startIndex..<symbols[index + 1].endIndex]
                guard let id = vocabulary.id(of: joined) else { continue }
                let score = vocabulary.scores[Int(id)]
                if best == nil || score > best!.score { best = (score, index) }
            }
            guard let best else { break }
            symbols[best.index] = text[symbols[best.index].startIndex..<symbols[best.index + 1].endIndex]
            symbols.remove(at: best.index + 1)
        }
        var output: [Int32] = []
        for symbol in symbols { emit(symbol, vocabulary, into: &output) }
        return output
    }
}
