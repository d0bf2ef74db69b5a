// Byte-pair encoding by merge rank: Sennrich et al. 2016 as GPT-2 applies it
// (openai/gpt-2 encoder.py), Hugging Face tokenizers' `BPE` model
// (models/bpe/word.rs) and llama.cpp's BPE vocabularies (llm_tokenizer_bpe_session).
// A word starts as one symbol per byte (byte-level) or per character; the
// adjacent pair with the lowest merge rank is merged, leftmost first on ties,
// until no adjacent pair has a merge.

/// Scratch memory for merging words; one per encode call, reused for every word.
struct BPEWorkspace {
    var ids: [Int32] = []
    var next: [Int] = []
    var previous: [Int] = []
    var rankedQueue = MinHeap<RankedCandidate>()
    var scoredQueue = MinHeap<ScoredCandidate>()
    var starts: [Int] = []
    var lengths: [Int] = []
    var bytes: [UInt8] = []
}

/// A pair that may merge: ordered by rank, then by the left symbol's position.
struct RankedCandidate: Comparable {
    var rank: Int32
    var left: Int
    var leftID: Int32
    var rightID: Int32

    static func < (a: Self, b: Self) -> Bool { a.rank < b.rank || (a.rank == b.rank && a.left < b.left) }
}

/// The merge table and how a word becomes its first symbols.
struct RankedBPE: Sendable {
    /// How a word's bytes become the symbols merging starts from.
    enum Symbols: Sendable {
        /// Byte-level BPE: each byte is the token of its GPT-2 alphabet character (-1: not in the vocabulary).
        case bytes(tokenForByte: [Int32])
        /// Each UTF-8 character is its token; else its `<0xXX>` byte tokens when `byteTokens` is set
        /// and has them all; else `unknown` (runs fused into one when `fuseUnknown`); else it is dropped.
        case characters(byteTokens: [Int32]?, unknown: Int32?, fuseUnknown: Bool)
    }

    let symbols: Symbols
    /// `left << 32 | right` → `rank << 32 | merged`.
    let merges: [UInt64: UInt64]
    /// A word that is a token as a whole is that token, whatever the merges say (Llama 3).
    let ignoreMerges: Bool

    /// `pairs[rank]` is (left, right, merged). A repeated pair keeps its first rank, as llama.cpp does.
    init(symbols: Symbols, pairs: [(left: Int32, right: Int32, merged: Int32)], ignoreMerges: Bool) {
        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(pairs.count)
        for (rank, pair) in pairs.enumerated() {
            let key = Self.key(pair.left, pair.right)
            if merges[key] == nil { merges[key] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: pair.merged)) }
        }
        self.symbols = symbols
        self.merges = merges
        self.ignoreMerges = ignoreMerges
    }

    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the tokens of one pre-tokenized word.
    func encode(_ word: ArraySlice<UInt8>, vocabulary: TokenVocabulary, workspace: inout BPEWorkspace, into output: inout [Int32]) {
        if ignoreMerges, let whole = wholeWordToken(word, vocabulary: vocabulary, workspace: &workspace) {
            output.append(whole)
            return
        }
        startSymbols(word, vocabulary: vocabulary, into: &workspace.ids)
        merge(&workspace)
        var index = 0
        while index < workspace.ids.count {
            output.append(workspace.ids[index])
            index = workspace.next[index]
        }
    }

    private func wholeWordToken(_ word: ArraySlice<UInt8>, vocabulary: TokenVocabulary, workspace: inout BPEWorkspace) -> Int32? {
        switch symbols {
        case .characters:
            return vocabulary.id(of: word)
        case .bytes:
            workspace.bytes.removeAll(keepingCapacity: true)
            for byte in word { workspace.bytes.append(contentsOf: ByteLevelAlphabet.utf8ForByte[Int(byte)]) }
            return vocabulary.id(of: workspace.bytes[...])
        }
    }

    /// The symbols merging starts from.
    func startSymbols(_ word: ArraySlice<UInt8>, vocabulary: TokenVocabulary, into ids: inout [Int32]) {
        ids.removeAll(keepingCapacity: true)
        switch symbols {
        case .bytes(let tokenForByte):
            for byte in word {
                let id = tokenForByte[Int(byte)]
                if id >= 0 { ids.append(id) }
            }
        case .characters(let byteTokens, let unknown, let fuseUnknown):
            var index = word.startIndex
            var previousWasUnknown = false
            while index < word.endIndex {
                let length = min(utf8Length(word[index]), word.endIndex - index)
                let character = word[index..<(index + length)]
                index += length
                if let id = vocabulary.id(of: character) {
                    ids.append(id)
                    previousWasUnknown = false
                } else if let byteTokens, character.allSatisfy({ byteTokens[Int($0)] >= 0 }) {
                    for byte in character { ids.append(byteTokens[Int(byte)]) }
                    previousWasUnknown = false
                } else if let unknown {
                    if !(fuseUnknown && previousWasUnknown) { ids.append(unknown) }
                    previousWasUnknown = true
                }
            }
        }
    }

    /// Merges `workspace.ids` in place; the result is the chain from index 0 through `workspace.next`.
    func merge(_ workspace: inout BPEWorkspace) {
        let count = workspace.ids.count
        workspace.next.removeAll(keepingCapacity: true)
        workspace.previous.removeAll(keepingCapacity: true)
        for index in 0..<count {
            workspace.next.append(index + 1)
            workspace.previous.append(index - 1)
        }
        guard count > 1 else { return }
        workspace.rankedQueue.removeAll()
        for left in 0..<(count - 1) { enqueue(left, left + 1, &workspace) }
        while let candidate = workspace.rankedQueue.pop() {
            let left = candidate.left
            guard workspace.ids[left] == candidate.leftID else { continue }  // merged away or changed
            let right = workspace.next[left]
            guard right < count, workspace.ids[right] == candidate.rightID,
                  let merge = merges[Self.key(candidate.leftID, candidate.rightID)] else { continue }
            workspace.ids[left] = Int32(bitPattern: UInt32(truncatingIfNeeded: merge))
            workspace.ids[right] = -1
            let after = workspace.next[right]
            workspace.next[left] = after
            if after < count { workspace.previous[after] = left }
            let before = workspace.previous[left]
            if before >= 0 { enqueue(before, left, &workspace) }
            if after < count { enqueue(left, after, &workspace) }
        }
    }

    private func enqueue(_ left: Int, _ right: Int, _ workspace: inout BPEWorkspace) {
        let leftID = workspace.ids[left], rightID = workspace.ids[right]
        guard let merge = merges[Self.key(leftID, rightID)] else { return }
        workspace.rankedQueue.push(RankedCandidate(rank: Int32(truncatingIfNeeded: merge >> 32), left: left,
                                                   leftID: leftID, rightID: rightID))
    }

    /// Reference merge: rescans the whole word for the best pair after every merge (quadratic).
    func mergeNaively(_ start: [Int32]) -> [Int32] {
        var ids = start
        while ids.count > 1 {
            var best: (rank: UInt64, index: Int, merged: Int32)?
            for index in 0..<(ids.count - 1) {
                guard let merge = merges[Self.key(ids[index], ids[index + 1])] else { continue }
                if best == nil || merge >> 32 < best!.rank {
                    best = (merge >> 32, index, Int32(bitPattern: UInt32(truncatingIfNeeded: merge)))
                }
            }
            guard let best else { break }
            ids[best.index] = best.merged
            ids.remove(at: best.index + 1)
        }
        return ids
    }
}

/// Bytes in the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
@inline(__always)
func utf8Length(_ lead: UInt8) -> Int {
    lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
}
