import Foundation
@testable import Kernels
import ModelFormats
import Testing
@testable import Transformer

/// The sparse-LoRA fixture (half of every projection zeroed, random B) with its dense model as the teacher.
struct DistillationFixture {
    let student: SparseLoRAFixture
    let teacher: DistillationTeacher

    init(model: String = "tiny-llama", dropout: Float = 0) throws {
        student = try SparseLoRAFixture(model: model, dropout: dropout)
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath(model))
        let dense = try DecoderWeights(config: checkpoint.config, tensors: checkpoint.loadWeights().mapValues { $0.copy() })
        teacher = DistillationTeacher(weights: dense, batch: student.tokens.count, tokens: student.tokens[0].count, chunkRows: 7)
    }

    /// The objective's value by forward passes only (no gradients), term by term as `TrainingObjective` defines it.
    func loss(_ objective: TrainingObjective) -> TrainingLoss {
        let s = student, n = s.tokens.count * s.tokens[0].count, layers = s.decoder.config.layerCount
        let taught = try! teacher.forward(s.tokens, stopIf: { false })
        let hidden = try! s.decoder.adaptedForward(s.tokens, adapters: s.adapters, workspace: s.workspace)
        let head = chunkedDistillation(student: hidden, teacher: taught.hidden, weight: s.decoder.weights.output.tensor,
                                       targets: s.targets.flatMap { $0 }, chunkRows: 7, temperature: Float(objective.temperature),
                                       ceWeight: objective.crossEntropyWeight, klWeight: objective.distillationWeight,
                                       softcap: s.decoder.finalLogitSoftcap)
        let hiddenTerm = (0..<layers).map { l in
            normalisedSquaredError(student: s.workspace.layerInputs[l + 1].slice(0..<n), teacher: taught.blockOutputs[l])
        }.reduce(0, +) / Double(layers)
        return TrainingLoss(total: objective.crossEntropyWeight * head.crossEntropy + objective.distillationWeight * head.distillation
                                   + objective.hiddenStateWeight * hiddenTerm,
                            crossEntropy: head.crossEntropy, distillation: head.distillation, hiddenState: hiddenTerm)
    }

    func gradients(_ objective: TrainingObjective) -> (TrainingLoss, [Float]) {
        let s = student
        s.adapters.zeroGradients()
        let loss = try! s.decoder.adapterGradients(tokens: s.tokens, targets: s.targets, adapters: s.adapters, workspace: s.workspace,
                                                   objective: objective, teacher: teacher)
        return (loss, Array(UnsafeBufferPointer(start: s.adapters.gradients.base, count: s.adapters.gradients.count)))
    }
}

@Suite struct DistillationTests {
    // MARK: - The fused loss row against its Double reference

    /// Random logits of spread ±8 over V = 67 (not a multiple of the 16 lanes), several temperatures and weights:
    /// losses within 1e-5 relative and every gradient entry within 1e-6 of the Double reference.
    @Test(arguments: [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.5, 0.0, 1.0), (4.0, 0.3, 2.0)])
    func fusedRowMatchesTheDoubleReference(temperature: Double, ceWeight: Double, klWeight: Double) {
        var generator = RandomGenerator(seed: 5)
        let v = 67
        for target in [0, 31, 66] {
            let student = (0..<v).map { _ in (generator.nextFloat() - 0.5) * 16 }
            let teacher = (0..<v).map { _ in (generator.nextFloat() - 0.5) * 16 }
            let (ce, kl, reference) = distillationRowReference(student: student, teacher: teacher, target: target,
                                                                temperature: temperature, ceScale: ceWeight, klScale: klWeight)
            var s = student, t = teacher
            let (fastCE, fastKL) = s.withUnsafeMutableBufferPointer { s in
                t.withUnsafeMutableBufferPointer { t in
                    distillationRow(student: s.baseAddress!, teacher: t.baseAddress!, target: target, columns: v,
                                    temperature: Float(temperature), ceScale: ceWeight, klScale: klWeight, gradient: true)
                }
            }
            #expect(abs(fastCE - ce) <= 1e-5 * abs(ce) + 1e-6, "ce \(fastCE) vs \(ce)")
            #expect(abs(fastKL - kl) <= 1e-5 * abs(kl) + 1e-6, "kl \(fastKL) vs \(kl)")
            #expect(kl > 0, "two different distributions have a positive KL")
            let worst = zip(s, reference).map { abs(Double($0) - $1) }.max()!
            #expect(worst <= 1e-6, "gradient off by \(worst) (τ \(temperature), target \(target))")
        }
    }

    /// A final logit cap (Gemma 2): both models' logits capped before the losses, the gradient through the cap's
    /// derivative — against the Double reference on capped logits, chained by hand, with logits spread far past the cap.
    @Test func cappedLogitsMatchTheDoubleReferenceThroughTheCap() {
        var generator = RandomGenerator(seed: 17)
        let n = 5, c = 12, v = 37, cap: Float = 10
        let student = Tensor(zeros: [n, c]), teacher = Tensor(zeros: [n, c]), weight = Tensor(zeros: [v, c])
        generator.fillNormal(student, standardDeviation: 3)
        generator.fillNormal(teacher, standardDeviation: 3)
        generator.fillNormal(weight, standardDeviation: 3)
        let targets: [Int32] = [3, -1, 36, 0, 20]
        let dStudent = Tensor(zeros: [n, c])
        let fast = chunkedDistillation(student: student, teacher: teacher, weight: weight, targets: targets, chunkRows: 2,
                                       temperature: 2, ceWeight: 0.7, klWeight: 1.3, dStudent: dStudent, softcap: cap)
        var ce = 0.0, kl = 0.0, largest = 0.0
        var expected = [Double](repeating: 0, count: n * c)
        for row in 0..<n where targets[row] >= 0 {
            func cappedLogits(_ h: Tensor) -> [Float] {
                (0..<v).map { o in
                    let x = (0..<c).reduce(0.0) { $0 + Double(h.pointer[row * c + $1]) * Double(weight.pointer[o * c + $1]) }
                    largest = max(largest, abs(x))
                    return Float(Double(cap) * tanh(x / Double(cap)))
                }
            }
            let s = cappedLogits(student), t = cappedLogits(teacher)
            let (rowCE, rowKL, gradient) = distillationRowReference(student: s, teacher: t, target: Int(targets[row]),
                                                                    temperature: 2, ceScale: 0.7 / 4, klScale: 1.3 / 4)
            ce += rowCE / 4
            kl += rowKL / 4
            for o in 0..<v {
                let chained = gradient[o] * (1 - Double(s[o] / cap) * Double(s[o] / cap))
                for j in 0..<c { expected[row * c + j] += chained * Double(weight.pointer[o * c + j]) }
            }
        }
        #expect(largest > 3 * Double(cap), "logits \(largest) reach well past the cap")
        #expect(abs(fast.crossEntropy - ce) <= 1e-5 * ce && abs(fast.distillation - kl) <= 1e-5 * kl + 1e-7, "\(fast) vs \(ce), \(kl)")
        let worst = (0..<(n * c)).map { abs(Double(dStudent.pointer[$0]) - expected[$0]) }.max()!
        let scale = expected.map(abs).max()!
        #expect(worst <= 1e-5 * scale, "dStudent off by \(worst) of \(scale)")
    }

    /// Without distillation weight the fused head is the cross-entropy head: the same loss, the same dHidden.
    @Test func fusedHeadWithoutDistillationIsTheCrossEntropyHead() throws {
        let f = try DistillationFixture()
        let s = f.student, n = s.tokens.count * s.tokens[0].count
        let taught = try f.teacher.forward(s.tokens, stopIf: { false })
        let hidden = try s.decoder.adaptedForward(s.tokens, adapters: s.adapters, workspace: s.workspace)
        let head = s.decoder.weights.output.tensor, targets = s.targets.flatMap { $0 }
        let dPlain = Tensor(zeros: [n, s.decoder.config.hiddenSize]), dFused = Tensor(zeros: [n, s.decoder.config.hiddenSize])
        let ce = chunkedCrossEntropy(hidden: hidden, weight: head, targets: targets, chunkRows: 7, dHidden: dPlain)
        let fused = chunkedDistillation(student: hidden, teacher: taught.hidden, weight: head, targets: targets, chunkRows: 7,
                                        temperature: 1, ceWeight: 1, klWeight: 0, dStudent: dFused)
        #expect(abs(fused.crossEntropy - ce) <= 1e-6 * ce)
        let worst = (0..<dPlain.count).map { abs(dPlain.pointer[$0] - dFused.pointer[$0]) }.max()!
        #expect(worst <= 1e-6, "dHidden differs by \(worst)")
    }

    /// A teacher identical to the student (B = 0, the dense weights) gives zero distillation and zero hidden-state loss.
    @Test func aStudentEqualToItsTeacherHasNoDistillationLoss() throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath("tiny-llama"))
        let dense = try DecoderWeights(config: checkpoint.config, tensors: checkpoint.loadWeights().mapValues { $0.copy() })
        let student = try SparseLoRAFixture(randomB: false)
        let same = Decoder(weights: dense)
        let workspace = LoRATrainingWorkspace(weights: dense, batch: 2, tokens: 10, chunkRows: 7)
        let teacher = DistillationTeacher(weights: dense, batch: 2, tokens: 10, chunkRows: 7)
        student.adapters.zeroGradients()
        let loss = try same.adapterGradients(tokens: student.tokens, targets: student.targets, adapters: student.adapters,
                                             workspace: workspace,
                                             objective: .init(crossEntropyWeight: 0, distillationWeight: 1, hiddenStateWeight: 1, temperature: 2),
                                             teacher: teacher)
        #expect(abs(loss.distillation!) <= 1e-6 && loss.hiddenState! <= 1e-10, "\(loss)")
        #expect(loss.crossEntropy > 1, "the cross-entropy is still reported: \(loss.crossEntropy)")
    }

    /// A teacher that keeps no block outputs (the objective has no hidden-state term) runs the same blocks in place on
    /// one buffer: the same final hidden states, bit for bit, with one block boundary instead of L + 1.
    @Test func aTeacherWithoutBlockOutputsComputesTheSameHiddenStates() throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath("tiny-gemma3"))
        let dense = try DecoderWeights(checkpoint: checkpoint)
        let tokens: [[Int32]] = [[1, 5, 9, 2, 7, 3, 11, 4], [8, 6, 2, 9, 1, 12, 3, 5]]
        let full = DistillationTeacher(weights: dense, batch: 2, tokens: 8, chunkRows: 7)
        let lean = DistillationTeacher(weights: dense, batch: 2, tokens: 8, chunkRows: 7, keepsBlockOutputs: false)
        let a = try full.forward(tokens, stopIf: { false }), b = try lean.forward(tokens, stopIf: { false })
        #expect(a.blockOutputs.count == dense.config.layerCount && b.blockOutputs.isEmpty)
        #expect(a.hidden.scalars == b.hidden.scalars)
        #expect(lean.workspace.layerInputs.shape[0] == 1 && full.workspace.layerInputs.shape[0] == dense.config.layerCount + 1)
        #expect(DistillationTeacher.workspaceFloats(config: dense.config, batch: 2, tokens: 8, chunkRows: 7, keepsBlockOutputs: false)
                == lean.workspace.floatCount)
    }

    // MARK: - Gradients by finite differences

    /// Central differences of the objective with ε = 3e-2 on 84 adapter entries (as SparseLoRATests), each term alone
    /// and all together, against the backward's gradients: |fd − g| ≤ 1e-2 · |g| + 1e-4. The loss the backward
    /// returns must equal the forward-only loss term by term.
    @Test(arguments: [(0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 0.0, 2.0), (0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 1.0, 2.0)])
    func distillationGradientsAgreeWithFiniteDifferences(ce: Double, kd: Double, hidden: Double, temperature: Double) throws {
        // tiny-gemma2 caps its final logits: the cap's derivative on both terms.
        for model in ["tiny-llama", "tiny-qwen2", "tiny-gemma2"] {
            let fixture = try DistillationFixture(model: model, dropout: 0.1)
            let objective = TrainingObjective(crossEntropyWeight: ce, distillationWeight: kd, hiddenStateWeight: hidden,
                                              temperature: temperature)
            let adapters = fixture.student.adapters
            adapters.ranks = Array([12, 16, 8].prefix(fixture.student.decoder.config.layerCount))
            let (returned, gradients) = fixture.gradients(objective)
            let forward = fixture.loss(objective)
            #expect(abs(returned.total - forward.total) <= 1e-5 * abs(forward.total) + 1e-7, "\(returned) vs \(forward)")
            #expect(abs(returned.crossEntropy - forward.crossEntropy) <= 1e-5 * forward.crossEntropy)
            if kd > 0 { #expect(abs(returned.distillation! - forward.distillation!) <= 1e-5 * forward.distillation! + 1e-7) }
            if hidden > 0 { #expect(abs(returned.hiddenState! - forward.hiddenState!) <= 1e-5 * forward.hiddenState! + 1e-7) }
            var worstAbsolute = 0.0, largest = 0.0, checked = 0
            let epsilon: Float = 3e-2
            forEachAdapterFiniteDifference(adapters, gradients: gradients, epsilon: epsilon,
                                           loss: { fixture.loss(objective).total }) { entry, fd, g in
                largest = max(largest, abs(g))
                worstAbsolute = max(worstAbsolute, abs(fd - g))
                #expect(abs(fd - g) <= 1e-2 * abs(g) + 1e-4, "\(model) \(entry): fd \(fd), backward \(g)")
                checked += 1
            }
            #expect(largest > 1e-3, "the objective moves the adapters")
            print("distillation FD (\(model), \(objective)): \(checked) entries, max |fd − g| \(worstAbsolute), largest |g| \(largest)")
        }
    }
}
