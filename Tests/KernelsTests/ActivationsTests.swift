import Foundation
import Testing
@testable import Kernels

/// The naive forwards, in Double.
private func naiveSigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
private func naiveSiLU(_ x: Double) -> Double { x * naiveSigmoid(x) }
private func naiveSwiGLU(_ gate: Double, _ up: Double) -> Double { naiveSiLU(gate) * up }

/// Sizes around the vector width, plus one the worker pool splits (above 2 × 16 384).
private let sizes = [1, 7, 16, 31, 100, 70_003]

@Suite struct ActivationsTests {
    @Test("silu matches x·σ(x) in double precision within 5e-7 relative, in place too")
    func siluForwardMatchesReference() {
        var numbers = TestRandom(seed: 11)
        for n in sizes {
            let x = numbers.tensor([n], -12, 12)
            let y = silu(x)
            var worst = 0.0
            for i in 0..<n {
                worst = max(worst, relativeError(y.pointer[i], naiveSiLU(Double(x.pointer[i])), floor: 1e-30))
            }
            // exp's 8e-8, plus roundings in σ (sum, reciprocal, product) and in x·σ.
            #expect(worst <= 5e-7, "n = \(n): worst relative error \(worst)")

            let inPlace = x.copy()
            silu(inPlace, into: inPlace)
            #expect(inPlace.scalars == y.scalars, "in place, n = \(n)")
        }
    }

    @Test("silu is finite and correct at the extremes of its input")
    func siluExtremes() {
        let inputs: [Float] = [0, -0.0, 1e-30, -1e-30, 88, -88, 100, -100, 1e4, -1e4, 3e38, -3e38]
        let x = Tensor(shape: [inputs.count], values: inputs)
        let y = silu(x)
        for (i, value) in inputs.enumerated() {
            let want = naiveSiLU(Double(value))
            // Far negative σ(x) is subnormal, good to a step or two, and silu scales that by |x|.
            let allowed = max(abs(want) * 5e-7, 2 * abs(Double(value)) * Double(Float.leastNonzeroMagnitude))
            #expect(abs(Double(y.pointer[i]) - want) <= allowed, "silu(\(value)) = \(y.pointer[i]), want \(want)")
        }
    }

    @Test("silu backward matches finite differences of the double-precision forward and accumulates")
    func siluBackwardMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 12)
        for n in sizes {
            let x = numbers.tensor([n], -10, 10), dY = numbers.tensor([n]), dX = numbers.tensor([n])
            let dX0 = dX.scalars
            siluBackward(dY, x: x, dX: dX)
            var worst = 0.0
            for i in 0..<n {
                let g = Double(dY.pointer[i])
                let want = Double(dX0[i]) + g * centralDifference(at: Double(x.pointer[i]), naiveSiLU)
                worst = max(worst, relativeError(dX.pointer[i], want))
            }
            #expect(worst <= 1e-6, "n = \(n): worst error \(worst)")
        }
    }

    @Test("swiglu equals silu(gate) ⊙ up in double precision within 5e-7 relative, written over up in place too")
    func swigluForwardMatchesReference() {
        var numbers = TestRandom(seed: 13)
        for n in sizes {
            let gate = numbers.tensor([n], -12, 12), up = numbers.tensor([n])
            let out = swiglu(gate: gate, up: up)
            var worst = 0.0
            for i in 0..<n {
                let want = naiveSwiGLU(Double(gate.pointer[i]), Double(up.pointer[i]))
                worst = max(worst, relativeError(out.pointer[i], want, floor: 1e-30))
            }
            #expect(worst <= 5e-7, "n = \(n): worst relative error \(worst)")

            let inPlace = up.copy()
            swiglu(gate: gate, up: inPlace, into: inPlace)
            #expect(inPlace.scalars == out.scalars, "in place over up, n = \(n)")
        }
    }

    @Test("swiglu backward matches finite differences in gate and up and accumulates")
    func swigluBackwardMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 14)
        for n in sizes {
            let gate = numbers.tensor([n], -10, 10), up = numbers.tensor([n]), dOut = numbers.tensor([n])
            let dGate = numbers.tensor([n]), dUp = numbers.tensor([n])
            let dGate0 = dGate.scalars, dUp0 = dUp.scalars
            swigluBackward(dOut, gate: gate, up: up, dGate: dGate, dUp: dUp)
            var worstGate = 0.0, worstUp = 0.0
            for i in 0..<n {
                let (g, u, d) = (Double(gate.pointer[i]), Double(up.pointer[i]), Double(dOut.pointer[i]))
                let wantGate = Double(dGate0[i]) + d * centralDifference(at: g) { naiveSwiGLU($0, u) }
                let wantUp = Double(dUp0[i]) + d * centralDifference(at: u) { naiveSwiGLU(g, $0) }
                worstGate = max(worstGate, relativeError(dGate.pointer[i], wantGate))
                worstUp = max(worstUp, relativeError(dUp.pointer[i], wantUp))
            }
            #expect(worstGate <= 1e-6, "n = \(n): worst dGate error \(worstGate)")
            #expect(worstUp <= 1e-6, "n = \(n): worst dUp error \(worstUp)")
        }
    }

    @Test("swiglu backward equals silu backward times up plus silu into dUp")
    func swigluAgreesWithItsParts() {
        // An independent route through the other kernels: out = multiply(silu(gate), up).
        var numbers = TestRandom(seed: 15)
        let n = 1_037
        let gate = numbers.tensor([n], -8, 8), up = numbers.tensor([n]), dOut = numbers.tensor([n])
        let dGate = Tensor(zeros: [n]), dUp = Tensor(zeros: [n])
        swigluBackward(dOut, gate: gate, up: up, dGate: dGate, dUp: dUp)

        let activated = silu(gate)
        let dActivated = Tensor(zeros: [n]), dUpParts = Tensor(zeros: [n]), dGateParts = Tensor(zeros: [n])
        multiplyBackward(dOut, a: activated, b: up, dA: dActivated, dB: dUpParts)
        siluBackward(dActivated, x: gate, dX: dGateParts)
        #expect(multiply(activated, up).scalars == swiglu(gate: gate, up: up).scalars)
        var worst = 0.0
        for i in 0..<n {
            worst = max(worst, relativeError(dGate.pointer[i], Double(dGateParts.pointer[i]), floor: 1e-3))
            worst = max(worst, relativeError(dUp.pointer[i], Double(dUpParts.pointer[i]), floor: 1e-3))
        }
        #expect(worst <= 1e-6, "worst difference \(worst)")
    }
}
