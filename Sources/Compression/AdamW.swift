#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") with the semantics of
/// PyTorch's `torch.optim.AdamW` (single-tensor path, amsgrad off), over one flat parameter arena:
///
///     t ← t + 1
///     p ← p·(1 − lr·λ)                                  (decoupled weight decay)
///     m ← m + (1 − β₁)·(g − m)                          (torch's lerp_)
///     v ← v·β₂ + (1 − β₂)·g·g
///     p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// in Float with the scalars formed in Double and rounded once, in the order PyTorch applies them and
/// with the fused multiply-adds its CPU kernels use (lerp_, addcmul_), so a step agrees with PyTorch's
/// bit for bit except where PyTorch's CPU square root (Intel MKL's vector math, not correctly
/// rounded: 1 ulp off for ~20% of inputs) differs from the IEEE one used here. **[ours]** An optional update mask (one byte per
/// element, 1 = update) freezes the other elements entirely — not decayed, not moved, moments kept —
/// so inactive LoRA rank components (`SparseLoRA.fillUpdateMask`) wait unchanged until a later rank
/// allocation activates them again. The step count t is shared by all elements, as PyTorch's is by
/// all elements of one tensor.
///
/// Shapes: N parameters; parameters, gradients, mask [N]; moments [2, N] (m, then v) in one arena.
public final class AdamW {
    /// The hyperparameters besides the learning rate (which a schedule sets per step); PyTorch's defaults.
    public struct Settings: Sendable, Equatable, Codable {
        public var beta1: Double
        public var beta2: Double
        public var epsilon: Double
        /// λ, the decoupled weight decay.
        public var weightDecay: Double

        public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
            precondition(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
                         "AdamW: betas \(beta1), \(beta2) must be in [0, 1)")
            precondition(epsilon >= 0 && epsilon.isFinite && weightDecay >= 0 && weightDecay.isFinite,
                         "AdamW: epsilon \(epsilon) and weight decay \(weightDecay) must be finite and non-negative")
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }
    }

    /// Why a saved state cannot be restored.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The bytes are not an AdamW state, or not one of this format version.
        case notAState(reason: String)
        /// The state belongs to an arena of another size.
        case parameterCountMismatch(saved: Int, expected: Int)
        /// The state was made with other hyperparameters, so continuing would not be the same run.
        case settingsMismatch(saved: Settings, expected: Settings)
        /// A moment is NaN, infinite, or (second moment) negative.
        case invalidMoment(index: Int, value: Float)

        public var description: String {
            switch self {
            case .notAState(let reason):
                return "AdamW state: \(reason)"
            case .parameterCountMismatch(let saved, let expected):
                return "AdamW state: saved for \(saved) parameters, this optimizer has \(expected); the adapters' configuration changed"
            case .settingsMismatch(let saved, let expected):
                return "AdamW state: saved with betas \(saved.beta1)/\(saved.beta2), eps \(saved.epsilon), weight decay \(saved.weightDecay); this optimizer has \(expected.beta1)/\(expected.beta2), \(expected.epsilon), \(expected.weightDecay)"
            case .invalidMoment(let index, let value):
                return "AdamW state: moment \(index) is \(value); the checkpoint is damaged"
            }
        }
    }

    public let settings: Settings
    /// N, the arena's element count.
    public let parameterCount: Int
    /// Steps taken (t); the next `update` is step `step + 1`.
    public private(set) var step = 0
    /// m then v, [2, N], zero before the first step.
    public let moments: TensorStorage

    /// An optimizer for an arena of `parameterCount` elements, moments zero.
    public init(parameterCount: Int, settings: Settings = Settings()) {
        precondition(parameterCount >= 0, "AdamW: \(parameterCount) parameters")
        self.parameterCount = parameterCount
        self.settings = settings
        moments = TensorStorage(count: 2 * parameterCount)
    }

    /// m [N], the first-moment running average.
    public var firstMoment: Tensor { Tensor(shape: [parameterCount], storage: moments, offset: 0) }
    /// v [N], the second-moment running average.
    public var secondMoment: Tensor { Tensor(shape: [parameterCount], storage: moments, offset: parameterCount) }

    // MARK: - Step

    /// One step at `learningRate` over `parameters` with `gradients` (both N elements, one layout);
    /// elements whose `mask` byte is 0 are left exactly as they are. The gradients are only read.
    public func update(parameters: TensorStorage, gradients: TensorStorage, learningRate: Double, mask: [UInt8]? = nil) {
        let n = parameterCount
        precondition(parameters.count == n && gradients.count == n,
                     "AdamW: \(parameters.count) parameters and \(gradients.count) gradients for an optimizer of \(n)")
        precondition(mask == nil || mask!.count == n, "AdamW: a mask of \(mask!.count) bytes for \(n) parameters")
        precondition(learningRate >= 0 && learningRate.isFinite, "AdamW: learning rate \(learningRate)")
        step += 1
        let t = Double(step), s = settings
        // The scalars as PyTorch forms them: Python floats, rounded to Float where they meet the tensors.
        let decay = Float(1 - learningRate * s.weightDecay)
        let lerpWeight = Float(1 - s.beta1)
        let beta2 = Float(s.beta2), oneMinusBeta2 = Float(1 - s.beta2)
        let stepSize = learningRate / (1 - pow(s.beta1, t))
        let negativeStepSize = Float(-stepSize)
        let biasCorrection2Root = Float(pow(1 - pow(s.beta2, t), 0.5))
        let epsilon = Float(s.epsilon)

        let p = parameters.base, g = gradients.base, m = moments.base, v = moments.base + n
        func run(_ mask: UnsafePointer<UInt8>?) {
            WorkerPool.shared.parallelFor(n, minimumChunk: 1 << 14) { range in
                for i in range where mask == nil || mask![i] != 0 {
                    let gradient = g[i]
                    let parameter = p[i] * decay
                    // torch's lerp_ for a weight below 0.5: m + w·(g − m), fused as its vector kernel does.
                    let first = m[i].addingProduct(lerpWeight, gradient - m[i])
                    // torch's mul_(β₂).addcmul_(g, g, value: 1 − β₂): its CPU kernel fuses the add.
                    let second = (v[i] * beta2).addingProduct(oneMinusBeta2 * gradient, gradient)
                    let denominator = second.squareRoot() / biasCorrection2Root + epsilon
                    m[i] = first
                    v[i] = second
                    p[i] = parameter + negativeStepSize * first / denominator
                }
            }
        }
        if let mask { mask.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
    }

    // MARK: - State

    static let magic: [UInt8] = Array("LOSAADMW".utf8)
    static let formatVersion: UInt32 = 1
    static let headerSize = 8 + 4 + 4 + 8 + 8 + 4 * 8

    /// The whole state as bytes (little-endian): "LOSAADMW", format version u32, 0 u32, step u64,
    /// N u64, β₁ β₂ ε λ f64, then m and v as N f32 each. `restore(from:)` continues bit for bit.
    public func serializedState() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(AdamW.headerSize + 8 * parameterCount)
        writeState { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// `serializedState`'s bytes handed to `write` a piece at a time (the header, then the moments in chunks), so
    /// that saving a checkpoint never holds a second copy of the moments (0.3 GB for a 7B model's adapters).
    public func writeState(_ write: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var header = AdamW.magic
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { header.append(contentsOf: $0) } }
        append(AdamW.formatVersion)
        append(UInt32(0))
        append(UInt64(step))
        append(UInt64(parameterCount))
        for value in [settings.beta1, settings.beta2, settings.epsilon, settings.weightDecay] { append(value.bitPattern) }
        try header.withUnsafeBytes { try write($0) }
        var chunk = [UInt32](repeating: 0, count: 1 << 16)
        var first = 0
        while first < 2 * parameterCount {
            let count = min(chunk.count, 2 * parameterCount - first)
            for i in 0..<count { chunk[i] = moments.base[first + i].bitPattern.littleEndian }
            try chunk.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(count * 4)])) }
            first += count
        }
    }

    /// Replaces step and moments with a state `serializedState` wrote, after checking all of it.
    public func restore(from bytes: [UInt8]) throws(Failure) {
        guard bytes.count >= AdamW.headerSize, Array(bytes[0..<8]) == AdamW.magic else {
            throw .notAState(reason: "\(bytes.count) bytes without the LOSAADMW header")
        }
        func integer<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
            var value = T.zero
            for k in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + k]) << (8 * k) }
            return value
        }
        let version = integer(UInt32.self, at: 8)
        guard version == AdamW.formatVersion else {
            throw .notAState(reason: "format version \(version), this build reads \(AdamW.formatVersion)")
        }
        let savedStep = integer(UInt64.self, at: 16), savedCount = integer(UInt64.self, at: 24)
        guard savedCount == UInt64(parameterCount) else {
            throw .parameterCountMismatch(saved: savedCount > UInt64(Int.max) ? Int.max : Int(savedCount), expected: parameterCount)
        }
        guard bytes.count == AdamW.headerSize + 8 * parameterCount else {
            throw .notAState(reason: "\(bytes.count) bytes for \(parameterCount) parameters, expected \(AdamW.headerSize + 8 * parameterCount)")
        }
        guard savedStep <= 1 << 53 else { throw .notAState(reason: "step \(savedStep) is not a step count") }
        let values = (0..<4).map { Double(bitPattern: integer(UInt64.self, at: 32 + 8 * $0)) }
        let saved = Settings(unchecked: values)
        guard saved == settings else { throw .settingsMismatch(saved: saved, expected: settings) }
        var restored = [Float](repeating: 0, count: 2 * parameterCount)
        for i in restored.indices {
            let value = Float(bitPattern: integer(UInt32.self, at: AdamW.headerSize + 4 * i))
            guard value.isFinite, i < parameterCount || value >= 0 else { throw .invalidMoment(index: i, value: value) }
            restored[i] = value
        }
        try restore(step: Int(savedStep), moments: restored)
    }

    /// Replaces step and moments from tensors (a checkpoint that stores them as m [N] and v [N]).
    public func restore(step: Int, firstMoment: Tensor, secondMoment: Tensor) throws(Failure) {
        guard firstMoment.count == parameterCount, secondMoment.count == parameterCount else {
            throw .parameterCountMismatch(saved: max(firstMoment.count, secondMoment.count), expected: parameterCount)
        }
        guard step >= 0 else { throw .notAState(reason: "step \(step) is negative") }
        try restore(step: step, moments: firstMoment.scalars + secondMoment.scalars)
    }

    private func restore(step: Int, moments values: [Float]) throws(Failure) {
        for (i, value) in values.enumerated() where !value.isFinite || (i >= parameterCount && value < 0) {
            throw .invalidMoment(index: i, value: value)
        }
        for (i, value) in values.enumerated() { moments.base[i] = value }
        self.step = step
    }
}

extension AdamW.Settings {
    /// Settings read back from a state, compared but not validated (a damaged state is reported as a mismatch).
    fileprivate init(unchecked values: [Double]) {
        self = .init()
        beta1 = values[0]
        beta2 = values[1]
        epsilon = values[2]
        weightDecay = values[3]
    }
}
