import Foundation

/// Where the zeros of a pruned weight [out, in] may fall (shared/docs/LOSA.md, step 4).
///
/// Both patterns work per output row: `unstructured` zeros exactly
/// k = round(s · in) weights of every row (Swift's `rounded()`, halves away
/// from zero), wherever they score lowest; `nOfM` keeps the N best of every
/// group of M consecutive inputs of a row and zeros the other M − N, so its
/// sparsity is fixed at (M − N) / M (2:4 and 4:8 are 50%).
public enum SparsityPattern: Sendable, Hashable, CustomStringConvertible {
    case unstructured
    /// Keep `keep` of every `groupSize` consecutive inputs of a row.
    case nOfM(keep: Int, groupSize: Int)

    /// The largest group size accepted; SparseGPT's column blocks (128) must hold whole groups.
    public static let maximumGroupSize = 128

    /// Parses "unstructured" or "N:M" (such as "2:4" or "4:8").
    public init(parsing text: String) throws(PruningError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed == "unstructured" {
            self = .unstructured
            return
        }
        let parts = trimmed.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let keep = Int(parts[0]), let size = Int(parts[1]) else {
            throw .unknownPattern(text)
        }
        self = try SparsityPattern.group(keep: keep, of: size)
    }

    /// A validated N:M pattern.
    public static func group(keep: Int, of size: Int) throws(PruningError) -> SparsityPattern {
        guard size >= 1, size <= maximumGroupSize, keep >= 1, keep <= size else {
            throw .invalidGroup(keep: keep, groupSize: size)
        }
        return .nOfM(keep: keep, groupSize: size)
    }

    public var description: String {
        switch self {
        case .unstructured: return "unstructured"
        case .nOfM(let keep, let size): return "\(keep):\(size)"
        }
    }

    /// The zeros each row of `inputs` weights receives: round(sparsity · inputs), or (M − N) per group.
    ///
    /// `sparsity` is only read for `unstructured`; an N:M pattern fixes its own.
    public func zerosPerRow(inputs: Int, sparsity: Double) throws(PruningError) -> Int {
        switch self {
        case .unstructured:
            try SparsityPattern.validate(sparsity: sparsity)
            return SparsityPattern.roundedZeros(sparsity, inputs)
        case .nOfM(let keep, let size):
            guard size >= 1, size <= SparsityPattern.maximumGroupSize, keep >= 1, keep <= size else {
                throw .invalidGroup(keep: keep, groupSize: size)
            }
            guard inputs % size == 0 else { throw .rowNotDivisible(inputs: inputs, groupSize: size) }
            return inputs / size * (size - keep)
        }
    }

    /// round(sparsity · count): the zeros among the first `count` inputs of a row.
    static func roundedZeros(_ sparsity: Double, _ count: Int) -> Int {
        Int((sparsity * Double(count)).rounded())
    }

    static func validate(sparsity: Double) throws(PruningError) {
        guard sparsity.isFinite, sparsity >= 0, sparsity <= 1 else { throw .invalidSparsity(sparsity) }
    }
}
