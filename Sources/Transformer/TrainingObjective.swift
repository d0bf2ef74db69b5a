import Kernels

/// What adapter training minimises: a weighted sum of next-token cross-entropy, distillation from the dense
/// teacher's next-token distribution (τ²·KL at temperature τ), and the teacher's hidden states (normalised
/// squared error of every block's output, averaged over blocks; SquareHead, arXiv 2310.06927).
///
///     loss = crossEntropyWeight · ce + distillationWeight · τ²·KL(p_teacher^τ ‖ p_student^τ)
///          + hiddenStateWeight · (1/L) Σ_l ‖x_l − x_l^teacher‖² / ‖x_l^teacher‖²
public struct TrainingObjective: Sendable, Equatable, Codable {
    public var crossEntropyWeight: Double
    public var distillationWeight: Double
    public var hiddenStateWeight: Double
    /// τ of the distillation term.
    public var temperature: Double

    public init(crossEntropyWeight: Double = 1, distillationWeight: Double = 0, hiddenStateWeight: Double = 0,
                temperature: Double = 1) {
        precondition([crossEntropyWeight, distillationWeight, hiddenStateWeight].allSatisfy { $0 >= 0 && $0.isFinite }
                     && temperature > 0 && temperature.isFinite,
                     "training objective: weights \(crossEntropyWeight), \(distillationWeight), \(hiddenStateWeight) must be ≥ 0, temperature \(temperature) > 0")
        self.crossEntropyWeight = crossEntropyWeight
        self.distillationWeight = distillationWeight
        self.hiddenStateWeight = hiddenStateWeight
        self.temperature = temperature
    }

    /// Next-token cross-entropy alone (LOSA.md step 7).
    public static let crossEntropy = TrainingObjective()

    /// Whether a term needs the teacher's forward pass.
    public var needsTeacher: Bool { distillationWeight > 0 || hiddenStateWeight > 0 }
}

/// The loss of one step split by term, each term unweighted, and the weighted total that was differentiated.
/// Terms the objective does not include are nil (the teacher was not run).
public struct TrainingLoss: Sendable, Equatable, Codable {
    public var total: Double
    public var crossEntropy: Double
    public var distillation: Double?
    public var hiddenState: Double?

    public init(total: Double, crossEntropy: Double, distillation: Double? = nil, hiddenState: Double? = nil) {
        self.total = total
        self.crossEntropy = crossEntropy
        self.distillation = distillation
        self.hiddenState = hiddenState
    }

    /// The termwise sum (for averaging over micro-batches and steps).
    public static func + (a: TrainingLoss, b: TrainingLoss) -> TrainingLoss {
        func add(_ x: Double?, _ y: Double?) -> Double? { x == nil && y == nil ? nil : (x ?? 0) + (y ?? 0) }
        return TrainingLoss(total: a.total + b.total, crossEntropy: a.crossEntropy + b.crossEntropy,
                            distillation: add(a.distillation, b.distillation), hiddenState: add(a.hiddenState, b.hiddenState))
    }

    /// Every term divided by `divisor`.
    public func divided(by divisor: Double) -> TrainingLoss {
        TrainingLoss(total: total / divisor, crossEntropy: crossEntropy / divisor,
                     distillation: distillation.map { $0 / divisor }, hiddenState: hiddenState.map { $0 / divisor })
    }

    public static let zero = TrainingLoss(total: 0, crossEntropy: 0)
}

// MARK: - The objective in the decoder's backward (`Decoder.adapterGradients`)

extension Decoder {
    /// The loss head: the objective's terms on the final hidden states [N, C] (targets [N]), dHidden += their
    /// weighted gradient. Without a teacher, exactly `chunkedCrossEntropy`; with one, the fused cross-entropy
    /// and distillation of `chunkedDistillation` (one chunk of student logits serves both).
    func objectiveHead(hidden: Tensor, targets: [Int32], objective: TrainingObjective, teacher: DistillationTeacher?,
                       teacherHidden: Tensor?, dHidden: Tensor, workspace w: LoRATrainingWorkspace) -> TrainingLoss {
        let head = weights.output.tensor
        guard let teacher, let teacherHidden else {
            let before = objective.crossEntropyWeight == 1 ? nil : dHidden.copy()
            let ce = chunkedCrossEntropy(hidden: hidden, weight: head, targets: targets, chunkRows: w.chunkRows,
                                         dHidden: dHidden, scratch: w("logits"), softcap: finalLogitSoftcap)
            if let before {
                // dHidden = before + weight · (dHidden − before)
                let weight = Float(objective.crossEntropyWeight)
                for i in 0..<dHidden.count { dHidden.pointer[i] = before.pointer[i] + weight * (dHidden.pointer[i] - before.pointer[i]) }
            }
            return TrainingLoss(total: objective.crossEntropyWeight * ce, crossEntropy: ce)
        }
        let losses = chunkedDistillation(student: hidden, teacher: teacherHidden, weight: head, targets: targets,
                                         chunkRows: min(w.chunkRows, teacher.workspace.chunkRows),
                                         temperature: Float(objective.temperature), ceWeight: objective.crossEntropyWeight,
                                         klWeight: objective.distillationWeight, dStudent: dHidden,
                                         studentScratch: w("logits"), teacherScratch: teacher.logitScratch,
                                         softcap: finalLogitSoftcap)
        return TrainingLoss(total: objective.crossEntropyWeight * losses.crossEntropy + objective.distillationWeight * losses.distillation,
                            crossEntropy: losses.crossEntropy, distillation: losses.distillation,
                            hiddenState: objective.hiddenStateWeight > 0 ? 0 : nil)
    }

    /// The hidden-state term of layer l's output x_{l+1} [N, C] against the teacher's: its share of the mean over
    /// layers into `loss`, and its weighted gradient into dX (the gradient at x_{l+1}).
    func addHiddenStateTerm(layer l: Int, student: Tensor, teacher: Tensor, objective: TrainingObjective,
                            dX: Tensor, loss: inout TrainingLoss) {
        let layers = Double(config.layerCount)
        let term = normalisedSquaredError(student: student, teacher: teacher,
                                          gradientScale: Float(objective.hiddenStateWeight / layers), dStudent: dX)
        loss.hiddenState = (loss.hiddenState ?? 0) + term / layers
        loss.total += objective.hiddenStateWeight * term / layers
    }
}
