import Kernels

/// A token stream cut into non-overlapping windows of T tokens, from the start; the tail after the
/// last full window is not used (as perplexity evaluation cuts it, shared/docs/LOSA.md "Evaluation").
///
/// Shapes: N stream tokens; T window length; W = ⌊N / T⌋ windows, window i = tokens[i·T ..< (i+1)·T].
public struct TokenWindows: Sendable, Equatable {
    /// The stream.
    public let tokens: [Int32]
    /// T, tokens per window.
    public let length: Int

    /// The windows of `tokens` of `length` tokens each.
    public init(tokens: [Int32], length: Int) {
        precondition(length >= 1, "token windows: window length \(length)")
        self.tokens = tokens
        self.length = length
    }

    /// W, the number of full windows.
    public var count: Int { tokens.count / length }

    /// Window `index` [T].
    public subscript(index: Int) -> ArraySlice<Int32> {
        precondition(index >= 0 && index < count, "token windows: window \(index) of \(count)")
        return tokens[(index * length)..<((index + 1) * length)]
    }

    /// Windows by index, each as its own array [count][T].
    public func windows(_ indices: [Int]) -> [[Int32]] { indices.map { Array(self[$0]) } }

    /// `count` window indices drawn reproducibly from `seed`: distinct while `count` ≤ W (a uniform
    /// sample without replacement, in random order); beyond W, each further run of W indices is a new
    /// shuffle of all windows (epochs).
    public func sampleIndices(count wanted: Int, seed: UInt64) -> [Int] {
        precondition(wanted >= 0, "token windows: \(wanted) samples")
        let available = count
        guard wanted > 0, available > 0 else { return [] }
        var generator = RandomGenerator(seed: seed)
        var result: [Int] = []
        result.reserveCapacity(wanted)
        var permutation = Array(0..<available)
        while result.count < wanted {
            // Partial Fisher–Yates: the first k entries become a uniform k-subset in uniform order.
            let k = min(available, wanted - result.count)
            for i in 0..<k {
                let j = i + TokenWindows.index(below: available - i, using: &generator)
                permutation.swapAt(i, j)
            }
            result.append(contentsOf: permutation[0..<k])
        }
        return result
    }

    /// `count` windows drawn as `sampleIndices(count:seed:)` draws them.
    public func sample(count wanted: Int, seed: UInt64) -> [[Int32]] {
        windows(sampleIndices(count: wanted, seed: seed))
    }

    /// A uniform integer in 0..<bound (Lemire's multiply-and-reject), defined here rather than by the
    /// standard library's `random(in:using:)` so that draws stay the same on every Swift version.
    static func index(below bound: Int, using generator: inout RandomGenerator) -> Int {
        precondition(bound > 0, "random index below \(bound)")
        let range = UInt64(bound)
        var product = generator.next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold { product = generator.next().multipliedFullWidth(by: range) }
        }
        return Int(product.high)
    }

    // MARK: - Training and evaluation

    /// Splits a stream in two contiguous parts that never overlap: training text first, the last
    /// ⌈N·`evaluationFraction`⌉ tokens for evaluation. Each part is then windowed at its own length.
    public static func split(_ tokens: [Int32], evaluationFraction: Double) -> (training: [Int32], evaluation: [Int32]) {
        precondition(evaluationFraction >= 0 && evaluationFraction <= 1, "token split: evaluation fraction \(evaluationFraction)")
        let evaluationCount = Int((Double(tokens.count) * evaluationFraction).rounded(.up))
        let boundary = tokens.count - min(evaluationCount, tokens.count)
        return (Array(tokens[..<boundary]), Array(tokens[boundary...]))
    }

    /// Splits a stream into training windows of `trainingLength` and evaluation windows of
    /// `evaluationLength`, the evaluation part being the stream's last `evaluationFraction`; each part
    /// must hold at least one window.
    public static func split(_ tokens: [Int32], evaluationFraction: Double, trainingLength: Int, evaluationLength: Int,
                             source: String) throws(CorpusError) -> (training: TokenWindows, evaluation: TokenWindows) {
        let (training, evaluation) = split(tokens, evaluationFraction: evaluationFraction)
        let parts = (TokenWindows(tokens: training, length: trainingLength), TokenWindows(tokens: evaluation, length: evaluationLength))
        guard parts.0.count >= 1 else {
            let needed = Int((Double(trainingLength) / max(1e-9, 1 - evaluationFraction)).rounded(.up))
            throw .tooFewTokens(source: source, tokens: tokens.count, needed: needed,
                                purpose: "one training window of \(trainingLength) after holding out \(evaluationFraction) for evaluation")
        }
        guard parts.1.count >= 1 else {
            let needed = Int((Double(evaluationLength) / max(1e-9, evaluationFraction)).rounded(.up))
            throw .tooFewTokens(source: source, tokens: tokens.count, needed: needed,
                                purpose: "one evaluation window of \(evaluationLength) in its last \(evaluationFraction)")
        }
        return parts
    }
}
