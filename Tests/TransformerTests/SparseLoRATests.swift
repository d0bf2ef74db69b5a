import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

/// The tiny LLaMA fixture with half of every projection's entries zeroed, and adapters with a nonzero B.
struct SparseLoRAFixture {
    let decoder: Decoder
    let adapters: SparseLoRA
    let workspace: LoRATrainingWorkspace
    let tokens: [[Int32]]
    let targets: [[Int32]]

    init(model: String = "tiny-llama", dropout: Float = 0, randomB: Bool = true, batch: Int = 2, tokenCount: Int = 10,
         policy: LoRATrainingWorkspace.ActivationPolicy = .store, masked: Bool = true) throws {
        let checkpoint = try Checkpoint.open(try TransformerFixtures.modelPath(model))
        // Own copies: merge writes into the weights, and the loaded tensors may be mapped from the file.
        let tensors = try checkpoint.loadWeights().mapValues { $0.copy() }
        let weights = try DecoderWeights(config: checkpoint.config, tensors: tensors)
        var generator = RandomGenerator(seed: 7)
        for layer in weights.layers {
            for projection in SparseLoRA.Projection.allCases {
                let w = SparseLoRA.weight(layer, projection).pointer
                for i in 0..<SparseLoRA.weight(layer, projection).count where generator.nextFloat() < 0.5 { w[i] = 0 }
            }
        }
        decoder = Decoder(weights: weights)
        adapters = SparseLoRA(config: weights.config, settings: .init(maximumRank: 16, scaling: 2, dropout: dropout, masked: masked),
                              seed: 11)
        if randomB {
            for l in 0..<weights.config.layerCount {
                for projection in SparseLoRA.Projection.allCases {
                    generator.fillNormal(adapters.b(l, projection), standardDeviation: 0.05)
                }
            }
        }
        adapters.dropoutSeed = 3
        workspace = LoRATrainingWorkspace(weights: weights, batch: batch, tokens: tokenCount, chunkRows: 7, policy: policy)
        let v = weights.config.vocabSize
        let stream = (0..<batch).map { _ in (0...tokenCount).map { _ in Int32(generator.next() % UInt64(v)) } }
        tokens = stream.map { Array($0.dropLast()) }
        targets = stream.map { Array($0.dropFirst()) }
    }

    /// The loss alone (no gradients), for finite differences.
    func loss() -> Double {
        let hidden = try! decoder.adaptedForward(tokens, adapters: adapters, workspace: workspace)
        return chunkedCrossEntropy(hidden: hidden, weight: decoder.weights.output.tensor, targets: targets.flatMap { $0 }, chunkRows: 7,
                                   softcap: decoder.finalLogitSoftcap)
    }

    func gradients() -> [Float] {
        adapters.zeroGradients()
        _ = try! decoder.adapterGradients(tokens: tokens, targets: targets, adapters: adapters, workspace: workspace)
        return Array(UnsafeBufferPointer(start: adapters.gradients.base, count: adapters.gradients.count))
    }
}

@Suite struct SparseLoRATests {
    /// Central differences of the Float32 loss with ε = 3e-2 on entries of size ~0.1, compared as
    /// |fd − g| ≤ 1e-2 · |g| + 1e-4. The FD error here is Float32 rounding of the loss divided by 2ε, not
    /// truncation: it grows as ε shrinks (tiny-qwen2, whose logits reach ±28: max |fd − g| 4e-4 at
    /// ε = 3e-3, 1.2e-4 at 1e-2, 4.4e-5 at 3e-2). Measured at ε = 3e-2 (84 entries per case):
    /// tiny-llama max |fd − g| 3.1e-6 / 2.4e-6 (dropout 0 / 0.1), max relative 1.1e-3 / 1.2e-3 for
    /// |g| > 1e-3, largest |g| 4e-2; tiny-qwen2 4.4e-5 / 4.0e-5, relative 1.8e-2 / 2.0e-2, largest |g| 0.42.
    /// An unmasked dΔ fails 332 of 336 entries. Dropout masks are seeded per step, so the FD also holds
    /// with dropout on.
    /// tiny-qwen2 adds q/k/v biases (constants to the adapters) and a tied head.
    /// The last case is dense (unmasked) LoRA, the baseline's adapters. The family cases run through
    /// what each adds (10 tokens against windows of 4): qwen3's q/k norms, mistral's sliding window,
    /// gemma2's post-norms, GeGLU, score and final-logit caps and alternating windows, gemma3's q/k
    /// norms and per-layer rope. Measured: tiny-gemma2 max |fd − g| 1.1e-4 (126 entries), tiny-gemma3 1.3e-4 (294)
    /// at ε = 1e-2; tiny-qwen3 6.7e-5, tiny-llama3 5.2e-5, tiny-mistral 2.8e-6 at 3e-2. tiny-phi3 (its fused
    /// tensors split on load, so its adapters are the seven projections' as for LLaMA) 2.0e-6 at 3e-2.
    @Test(arguments: [("tiny-llama", Float(0), true), ("tiny-llama", 0.1, true), ("tiny-qwen2", 0, true),
                      ("tiny-qwen2", 0.1, true), ("tiny-llama", 0.1, false), ("tiny-llama3", 0, true),
                      ("tiny-mistral", 0, true), ("tiny-qwen3", 0.1, true), ("tiny-gemma2", 0, true),
                      ("tiny-gemma3", 0.1, true), ("tiny-phi3", 0, true)])
    func adapterGradientsAgreeWithFiniteDifferencesOfTheLoss(model: String, dropout: Float, masked: Bool) throws {
        let fixture = try SparseLoRAFixture(model: model, dropout: dropout, masked: masked)
        let layers = fixture.decoder.config.layerCount
        fixture.adapters.ranks = (0..<layers).map { $0 % 2 == 0 ? 12 : 16 }
        let gradients = fixture.gradients()
        let adapters = fixture.adapters
        var worstRelative = 0.0, worstAbsolute = 0.0, largest = 0.0, checked = 0
        // Gemma's deeper stacks with caps, GeGLU and q/k norms curve more: at ε = 3e-2 the truncation error
        // reached 9.9e-4 on tiny-gemma3 (|g| 0.07), at 1e-2 it is 1.3e-4 (÷8 for ε ÷3: truncation, not a wrong gradient).
        let epsilon: Float = model.hasPrefix("tiny-gemma") ? 1e-2 : 3e-2
        forEachAdapterFiniteDifference(adapters, gradients: gradients, epsilon: epsilon, loss: fixture.loss) { entry, fd, g in
            let error = abs(fd - g)
            largest = max(largest, abs(g))
            worstAbsolute = max(worstAbsolute, error)
            if abs(g) > 1e-3 { worstRelative = max(worstRelative, error / abs(g)) }
            #expect(error <= 1e-2 * abs(g) + 1e-4, "\(entry): fd \(fd), backward \(g)")
            checked += 1
        }
        print("sparse LoRA FD (\(model), dropout \(dropout), masked \(masked)): \(checked) entries, max |fd − g| \(worstAbsolute), max relative (|g| > 1e-3) \(worstRelative), largest |g| \(largest)")
    }

    @Test func deltaAndItsGradientAreExactlyZeroAtPrunedPositions() throws {
        let fixture = try SparseLoRAFixture(dropout: 0.1)
        let adapters = fixture.adapters, layer = fixture.decoder.weights.layers[1]
        var generator = RandomGenerator(seed: 5)
        for projection in SparseLoRA.Projection.allCases {
            let (out, input) = SparseLoRA.shape(of: projection, config: adapters.config)
            let w = SparseLoRA.weight(layer, projection)
            let delta = Tensor(zeros: [out, input]), dDelta = Tensor(zeros: [out, input])
            adapters.delta(1, projection, weight: w, into: delta)
            let x = Tensor(zeros: [6, input]), dY = Tensor(zeros: [6, out]), dX = Tensor(zeros: [6, input])
            generator.fillNormal(x)
            generator.fillNormal(dY)
            AdaptedProjection.backward(dY, x: x, weight: w, dX: dX, adapters: adapters, layer: 1, projection: projection,
                                       delta: Tensor(zeros: [out * input]), dDelta: dDelta, xDrop: Tensor(zeros: [6, input]))
            var pruned = 0, nonzeroDelta = 0, nonzeroGradient = 0
            for i in 0..<w.count {
                if w.pointer[i] == 0 {
                    pruned += 1
                    #expect(delta.pointer[i] == 0 && dDelta.pointer[i] == 0)
                } else {
                    if delta.pointer[i] != 0 { nonzeroDelta += 1 }
                    if dDelta.pointer[i] != 0 { nonzeroGradient += 1 }
                }
            }
            #expect(pruned > w.count / 3 && nonzeroDelta > 0 && nonzeroGradient > 0)
        }
    }

    /// Dense LoRA's ΔW reaches pruned positions (so training is unconstrained), but its merge re-masks.
    @Test func denseLoRAMergeReMasks() throws {
        let fixture = try SparseLoRAFixture(masked: false)
        let adapters = fixture.adapters, weights = fixture.decoder.weights
        adapters.ranks = [8, 8]
        let w = SparseLoRA.weight(weights.layers[0], .gate)
        let delta = Tensor(zeros: [w.count])
        adapters.delta(0, .gate, weight: w, into: delta)
        #expect((0..<w.count).contains { w.pointer[$0] == 0 && delta.pointer[$0] != 0 })
        let zerosBefore = (0..<w.count).filter { w.pointer[$0] == 0 }
        adapters.merge(into: weights, scratch: Tensor(zeros: [adapters.largestDeltaCount]))
        #expect(zerosBefore == (0..<w.count).filter { w.pointer[$0] == 0 })
    }

    @Test func mergedWeightsKeepTheZerosOfTheBaseAndUnmergeRestoresIt() throws {
        let fixture = try SparseLoRAFixture()
        let weights = fixture.decoder.weights, adapters = fixture.adapters
        let base = weights.layers.map { layer in SparseLoRA.Projection.allCases.map { SparseLoRA.weight(layer, $0).copy() } }
        let scratch = Tensor(zeros: [adapters.largestDeltaCount])
        adapters.merge(into: weights, scratch: scratch)
        var changed = 0
        for (l, layer) in weights.layers.enumerated() {
            for projection in SparseLoRA.Projection.allCases {
                let merged = SparseLoRA.weight(layer, projection), original = base[l][projection.rawValue]
                for i in 0..<merged.count {
                    #expect((merged.pointer[i] == 0) == (original.pointer[i] == 0))
                    if merged.pointer[i] != original.pointer[i] { changed += 1 }
                }
            }
        }
        #expect(changed > 0)
        // The merged model computes what the adapted one does (eval mode, no dropout).
        adapters.unmerge(from: weights, scratch: scratch)
        adapters.training = false
        let adapted = try fixture.decoder.adaptedForward(fixture.tokens, adapters: adapters, workspace: fixture.workspace).copy()
        adapters.merge(into: weights, scratch: scratch)
        let merged = try fixture.decoder.adaptedForward(fixture.tokens, adapters: nil, workspace: fixture.workspace)
        #expect(maximumRelativeError(merged, adapted) < 1e-5)
        adapters.unmerge(from: weights, scratch: scratch)

        var worst: Float = 0
        for (l, layer) in weights.layers.enumerated() {
            for projection in SparseLoRA.Projection.allCases {
                let restored = SparseLoRA.weight(layer, projection), original = base[l][projection.rawValue]
                for i in 0..<restored.count {
                    if original.pointer[i] == 0 { #expect(restored.pointer[i] == 0) }
                    worst = max(worst, abs(restored.pointer[i] - original.pointer[i]) / max(abs(original.pointer[i]), 1e-3))
                }
            }
        }
        #expect(worst < 1e-5, "merge then unmerge moved a weight by \(worst) relative")
    }

    @Test(arguments: [true, false])
    func withBZeroTheAdaptedForwardEqualsThePlainForwardBitForBit(training: Bool) throws {
        let fixture = try SparseLoRAFixture(dropout: 0.1, randomB: false)
        fixture.adapters.training = training
        let plain = fixture.decoder.forward(fixture.tokens, workspace: fixture.decoder.makeWorkspace(batch: 2, tokens: 10))
        let adapted = try fixture.decoder.adaptedForward(fixture.tokens, adapters: fixture.adapters, workspace: fixture.workspace)
        #expect(plain.scalars == adapted.scalars)
    }

    /// Storing every layer's intermediates and recomputing them run the same operations on the same
    /// inputs, so the gradients must agree bit for bit (with dropout: the masks are regenerated from the seed).
    @Test(arguments: ["tiny-llama", "tiny-qwen2"])
    func storedAndRecomputedActivationsGiveIdenticalGradients(model: String) throws {
        let stored = try SparseLoRAFixture(model: model, dropout: 0.1, policy: .store)
        let recomputed = try SparseLoRAFixture(model: model, dropout: 0.1, policy: .recompute)
        stored.adapters.ranks = [12, 16]
        recomputed.adapters.ranks = [12, 16]
        let a = stored.gradients(), b = recomputed.gradients()
        #expect(a.contains { $0 != 0 })
        #expect(a == b)
        #expect(stored.workspace.floatCount > recomputed.workspace.floatCount)
    }

    @Test func gradientsAccumulateOverBackwardCalls() throws {
        let fixture = try SparseLoRAFixture(dropout: 0.1)
        let once = fixture.gradients()
        _ = try fixture.decoder.adapterGradients(tokens: fixture.tokens, targets: fixture.targets,
                                             adapters: fixture.adapters, workspace: fixture.workspace)
        let twice = Array(UnsafeBufferPointer(start: fixture.adapters.gradients.base, count: fixture.adapters.gradients.count))
        let scale = once.map(abs).max()!
        #expect(scale > 0)
        #expect(zip(once, twice).allSatisfy { abs($1 - 2 * $0) <= 1e-6 * scale })
    }

    @Test func aBatchRunAsPassesOfOneWindowGivesTheSameGradientsWithDropout() throws {
        let whole = try SparseLoRAFixture(dropout: 0.1, batch: 2)
        let batched = whole.gradients()
        // The same adapters and windows, one window per pass (each pass's gradient is the mean over its tokens).
        let one = LoRATrainingWorkspace(weights: whole.decoder.weights, batch: 1, tokens: 10, chunkRows: 7, policy: .store)
        whole.adapters.zeroGradients()
        for window in 0..<2 {
            whole.adapters.dropoutRowOffset = window * 10
            _ = try whole.decoder.adapterGradients(tokens: [whole.tokens[window]], targets: [whole.targets[window]],
                                                   adapters: whole.adapters, workspace: one)
        }
        whole.adapters.dropoutRowOffset = 0
        let split = Array(UnsafeBufferPointer(start: whole.adapters.gradients.base, count: whole.adapters.gradients.count)).map { $0 / 2 }
        let scale = batched.map(abs).max()!
        #expect(scale > 0)
        let worst = zip(batched, split).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5 * scale, "largest difference \(worst) against gradients up to \(scale)")
    }

    @Test func onlyTheActiveRankSliceReceivesGradients() throws {
        let fixture = try SparseLoRAFixture(dropout: 0.1)
        let adapters = fixture.adapters
        for rank in [4, 8] {
            adapters.ranks = [rank, 16]
            _ = fixture.gradients()
            for projection in SparseLoRA.Projection.allCases {
                let (out, input) = SparseLoRA.shape(of: projection, config: adapters.config)
                let dA = adapters.gradientA(0, projection).pointer, dB = adapters.gradientB(0, projection).pointer
                for k in 0..<16 {
                    let rowA = (0..<input).map { dA[k * input + $0] }, columnB = (0..<out).map { dB[$0 * 16 + k] }
                    if k < rank {
                        #expect(rowA.contains { $0 != 0 } && columnB.contains { $0 != 0 }, "\(projection) rank component \(k)")
                    } else {
                        #expect(rowA.allSatisfy { $0 == 0 } && columnB.allSatisfy { $0 == 0 }, "\(projection) rank component \(k)")
                    }
                }
                // Layer 1 keeps its full rank.
                let dB1 = adapters.gradientB(1, projection).pointer
                #expect((0..<out).contains { dB1[$0 * 16 + 15] != 0 })
            }
        }
    }
}

@Suite struct InterruptionTests {
    /// A stop asked for in the middle of a step abandons it at the next layer boundary.
    @Test func aStopCheckInterruptsTheStepBetweenLayers() throws {
        let fixture = try SparseLoRAFixture(dropout: 0.1)
        var asked = 0
        #expect(throws: TransformerError.interrupted) {
            _ = try fixture.decoder.adapterGradients(tokens: fixture.tokens, targets: fixture.targets, adapters: fixture.adapters,
                                                     workspace: fixture.workspace, stopIf: { asked += 1; return asked > 3 })
        }
        // Two layers forward, then the first check of backward: the fourth question stops it.
        #expect(asked == 4)
        #expect(throws: TransformerError.interrupted) {
            _ = try fixture.decoder.perplexity(of: fixture.tokens.flatMap { $0 }, windowLength: 5, stopIf: { true })
        }
    }
}

/// The adapter entries the finite-difference checks probe — three of A and three of B per layer and projection,
/// inside the active ranks (rank 0…r−1 rows of A, columns of B) — with the central difference of `loss` at ±ε
/// and the backward's gradient: `check(entry, fd, g)`.
func forEachAdapterFiniteDifference(_ adapters: SparseLoRA, gradients: [Float], epsilon: Float, loss: () -> Double,
                                    check: (_ entry: String, _ fd: Double, _ g: Double) -> Void) {
    for l in 0..<adapters.config.layerCount {
        for projection in SparseLoRA.Projection.allCases {
            for isB in [false, true] {
                let parameter = isB ? adapters.b(l, projection) : adapters.a(l, projection)
                let (out, input) = SparseLoRA.shape(of: projection, config: adapters.config)
                let r = adapters.ranks[l], maximumRank = adapters.settings.maximumRank
                for k in 0..<3 {
                    let index = isB ? ((k * 7 + l) % out) * maximumRank + (k * 5 + projection.rawValue) % r
                                    : ((k * 5 + projection.rawValue) % r) * input + (k * 11 + l) % input
                    let offset = parameter.offset + index
                    let saved = adapters.parameters.base[offset]
                    adapters.parameters.base[offset] = saved + epsilon
                    let plus = loss()
                    adapters.parameters.base[offset] = saved - epsilon
                    let minus = loss()
                    adapters.parameters.base[offset] = saved
                    check("layer \(l) \(projection) \(isB ? "B" : "A")[\(index)]", (plus - minus) / (2 * Double(epsilon)),
                          Double(gradients[offset]))
                }
            }
        }
    }
}
