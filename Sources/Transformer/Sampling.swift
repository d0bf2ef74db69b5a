import Foundation
import Kernels

/// Chooses the next token from one row of logits [V]: greedy (argmax) at
/// temperature 0, else nucleus sampling (Holtzman et al. 2019, "The Curious Case
/// of Neural Text Degeneration"): p = softmax(logits / temperature), keep the
/// most probable tokens whose cumulative probability first reaches `topP`,
/// renormalise, draw one with the seeded generator.
///
/// Ties are broken towards the lower token id, so top-p small enough to keep one
/// token picks exactly the greedy choice.
public struct TokenSampler: Sendable {
    /// 0 for greedy decoding; otherwise the softmax temperature.
    public let temperature: Float
    /// The nucleus: the smallest set of most probable tokens whose probability reaches this (0 < topP ≤ 1).
    public let topP: Float
    /// The generator every draw consumes; the same seed gives the same draws.
    public private(set) var generator: RandomGenerator

    /// A sampler with `temperature` (0: greedy) and nucleus `topP`, drawing from `seed`.
    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        precondition(temperature >= 0 && temperature.isFinite, "sampling: temperature \(temperature) must be finite and ≥ 0")
        precondition(topP > 0 && topP <= 1, "sampling: top-p \(topP) must be in (0, 1]")
        self.temperature = temperature
        self.topP = topP
        generator = RandomGenerator(seed: seed)
    }

    /// The index of the first largest logit.   logits [V]
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        precondition(!logits.isEmpty, "sampling: empty logits")
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    /// The next token for `logits` [V].
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        guard temperature > 0 else { return Self.argmax(logits) }
        let maximum = Double(logits[Int(Self.argmax(logits))]), t = Double(temperature)
        // Unnormalised probabilities in Double; the nucleus is found on the sorted order.
        let weights = logits.map { exp((Double($0) - maximum) / t) }
        let total = weights.reduce(0, +)
        var order = Array(0..<weights.count)
        order.sort { weights[$0] != weights[$1] ? weights[$0] > weights[$1] : $0 < $1 }
        var kept = 0, cumulative = 0.0
        let target = Double(topP) * total
        while kept < order.count {
            cumulative += weights[order[kept]]
            kept += 1
            if cumulative >= target { break }
        }
        var u = generator.nextDouble() * cumulative
        for i in 0..<kept {
            u -= weights[order[i]]
            if u < 0 { return Int32(order[i]) }
        }
        return Int32(order[kept - 1])
    }

    /// The next token for the logits tensor [V].
    public mutating func sample(_ logits: Tensor) -> Int32 {
        logits.withUnsafeBufferPointer { sample($0) }
    }
}
