import Testing
@testable import Kernels

/// Sizes around the vector width, plus one that the worker pool splits (above 2 × 131 072).
private let sizes = [0, 1, 15, 16, 17, 33, 1000, 300_007]

@Suite struct ElementWiseTests {
    @Test("add and multiply equal the correctly rounded double-precision result exactly, in place too")
    func forwardIsExact() {
        var numbers = TestRandom(seed: 1)
        for n in sizes {
            let a = numbers.tensor([n]), b = numbers.tensor([n])
            let sum = add(a, b), product = multiply(a, b)
            var wrongSums = 0, wrongProducts = 0
            for i in 0..<n {
                // Both are exact in Double, so rounding once to Float is the correctly rounded answer.
                if sum.pointer[i] != Float(Double(a.pointer[i]) + Double(b.pointer[i])) { wrongSums += 1 }
                if product.pointer[i] != Float(Double(a.pointer[i]) * Double(b.pointer[i])) { wrongProducts += 1 }
            }
            #expect(wrongSums == 0 && wrongProducts == 0, "n = \(n)")

            let inPlace = a.copy()
            add(inPlace, b, into: inPlace)
            #expect(inPlace.scalars == sum.scalars, "in-place add, n = \(n)")
            multiply(a, b, into: inPlace)
            #expect(inPlace.scalars == product.scalars, "multiply into another output, n = \(n)")
        }
    }

    @Test("add backward accumulates dOut into both gradients, and twice when they are one buffer")
    func addBackwardAccumulates() {
        var numbers = TestRandom(seed: 2)
        for n in sizes {
            let a = numbers.tensor([n]), b = numbers.tensor([n]), dOut = numbers.tensor([n])
            let dA = numbers.tensor([n]), dB = numbers.tensor([n])
            let dA0 = dA.scalars, dB0 = dB.scalars
            addBackward(dOut, dA: dA, dB: dB)
            var worst = 0.0
            for i in 0..<n {
                // L = Σ dOut · (a + b); differentiate the naive forward numerically.
                let (x, y, g) = (Double(a.pointer[i]), Double(b.pointer[i]), Double(dOut.pointer[i]))
                let wantA = Double(dA0[i]) + centralDifference(at: x) { g * ($0 + y) }
                let wantB = Double(dB0[i]) + centralDifference(at: y) { g * (x + $0) }
                worst = max(worst, relativeError(dA.pointer[i], wantA))
                worst = max(worst, relativeError(dB.pointer[i], wantB))
            }
            #expect(worst <= 1e-6, "n = \(n): worst error \(worst)")

            // out = x + x: one buffer receives both contributions.
            let dX = numbers.tensor([n])
            let dX0 = dX.scalars
            addBackward(dOut, dA: dX, dB: dX)
            var mismatches = 0
            for i in 0..<n where dX.pointer[i] != (dX0[i] + dOut.pointer[i]) + dOut.pointer[i] { mismatches += 1 }
            #expect(mismatches == 0, "n = \(n)")
        }
    }

    @Test("multiply backward matches finite differences and accumulates, also for a ⊙ a")
    func multiplyBackwardMatchesFiniteDifferences() {
        var numbers = TestRandom(seed: 3)
        for n in sizes {
            let a = numbers.tensor([n]), b = numbers.tensor([n]), dOut = numbers.tensor([n])
            let dA = numbers.tensor([n]), dB = numbers.tensor([n])
            let dA0 = dA.scalars, dB0 = dB.scalars
            multiplyBackward(dOut, a: a, b: b, dA: dA, dB: dB)
            var worst = 0.0
            for i in 0..<n {
                let (x, y, g) = (Double(a.pointer[i]), Double(b.pointer[i]), Double(dOut.pointer[i]))
                let wantA = Double(dA0[i]) + centralDifference(at: x) { g * $0 * y }
                let wantB = Double(dB0[i]) + centralDifference(at: y) { g * x * $0 }
                worst = max(worst, relativeError(dA.pointer[i], wantA))
                worst = max(worst, relativeError(dB.pointer[i], wantB))
            }
            #expect(worst <= 1e-6, "n = \(n): worst error \(worst)")

            // out = a ⊙ a: d/da = 2 · dOut · a, delivered through one buffer.
            let dSquare = numbers.tensor([n])
            let dSquare0 = dSquare.scalars
            multiplyBackward(dOut, a: a, b: a, dA: dSquare, dB: dSquare)
            worst = 0
            for i in 0..<n {
                let (x, g) = (Double(a.pointer[i]), Double(dOut.pointer[i]))
                let want = Double(dSquare0[i]) + centralDifference(at: x) { g * $0 * $0 }
                worst = max(worst, relativeError(dSquare.pointer[i], want))
            }
            #expect(worst <= 1e-6, "a ⊙ a, n = \(n): worst error \(worst)")
        }
    }

    @Test("scaled accumulate adds alpha · x to y within one float rounding of double precision")
    func scaledAccumulateRounding() {
        var numbers = TestRandom(seed: 4)
        for n in sizes {
            for alpha: Float in [1, -0.37, 2.5] {
                let x = numbers.tensor([n]), y = numbers.tensor([n])
                let y0 = y.scalars
                scaledAccumulate(x, alpha: alpha, into: y)
                var worst = 0.0
                for i in 0..<n {
                    let want = Double(y0[i]) + Double(alpha) * Double(x.pointer[i])
                    let scale = abs(Double(y0[i])) + abs(Double(alpha) * Double(x.pointer[i]))
                    // Two float roundings (product, sum), each at most half an ulp of the operands' scale.
                    worst = max(worst, abs(Double(y.pointer[i]) - want) / max(scale, 1e-30))
                }
                #expect(worst <= 1.2e-7, "n = \(n), alpha = \(alpha): worst error \(worst)")
            }
        }
    }

    @Test("scaled accumulate backward gives dX += alpha · dY and the alpha gradient Σ dY · x")
    func scaledAccumulateBackwardGradients() {
        var numbers = TestRandom(seed: 5)
        for n in sizes {
            let alpha: Float = -0.75
            let x = numbers.tensor([n]), y = numbers.tensor([n]), dY = numbers.tensor([n]), dX = numbers.tensor([n])
            let dX0 = dX.scalars
            let dAlpha = scaledAccumulateBackward(dY, x: x, alpha: alpha, dX: dX)
            var worst = 0.0
            for i in 0..<n {
                // L = Σ dY · (y + alpha · x)
                let g = Double(dY.pointer[i]), yi = Double(y.pointer[i])
                let want = Double(dX0[i]) + centralDifference(at: Double(x.pointer[i])) { g * (yi + Double(alpha) * $0) }
                worst = max(worst, relativeError(dX.pointer[i], want))
            }
            #expect(worst <= 1e-6, "n = \(n): worst dX error \(worst)")

            let loss = { (a: Double) -> Double in
                var total = 0.0
                for i in 0..<n { total += Double(dY.pointer[i]) * (Double(y.pointer[i]) + a * Double(x.pointer[i])) }
                return total
            }
            let wantAlpha = centralDifference(at: Double(alpha), loss)
            // The float products round independently, so their error grows like the root of Σ (dY·x)².
            var sumOfSquares = 0.0
            for i in 0..<n { sumOfSquares += (Double(dY.pointer[i]) * Double(x.pointer[i])) * (Double(dY.pointer[i]) * Double(x.pointer[i])) }
            let allowance = 1e-6 * (sumOfSquares.squareRoot() + abs(wantAlpha))
            #expect(abs(Double(dAlpha) - wantAlpha) <= allowance, "n = \(n): dAlpha \(dAlpha), want \(wantAlpha)")

            let untouched = dX.scalars
            #expect(scaledAccumulateBackward(dY, x: nil, alpha: alpha, dX: nil) == 0)
            #expect(dX.scalars == untouched)
        }
    }

    @Test("the parallel dot product does not depend on how the pool splits the work")
    func dotProductIsDeterministic() {
        var numbers = TestRandom(seed: 6)
        let block = ParallelGrain.streaming
        let n = 2 * block + block / 2 + 123
        let a = numbers.tensor([n]), b = numbers.tensor([n])
        var exact = 0.0
        for i in 0..<n { exact += Double(a.pointer[i]) * Double(b.pointer[i]) }
        let parallel = dotProduct(a.pointer, b.pointer, count: n)
        // The same fixed blocks, summed serially, must give the same bits.
        var serial = 0.0
        var start = 0
        while start < n {
            serial += serialDotProduct(a.pointer + start, b.pointer + start, count: min(block, n - start))
            start += block
        }
        #expect(parallel == serial)
        #expect(abs(parallel - exact) <= 1e-6 * Double(n).squareRoot(), "dot \(parallel), want \(exact)")
    }
}
