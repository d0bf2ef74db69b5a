import Foundation
import Testing
@testable import Kernels

/// Evaluates `VectorMath.exp` on `inputs` 16 at a time (lane i of the vectors holds input i mod 16).
private func vectorExp(_ inputs: [Float]) -> [Float] {
    precondition(inputs.count % 16 == 0)
    var out = [Float](repeating: 0, count: inputs.count)
    inputs.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { y in
            var i = 0
            while i < inputs.count {
                VectorMath.store(VectorMath.exp(VectorMath.load(x.baseAddress! + i)), to: y.baseAddress! + i)
                i += 16
            }
        }
    }
    return out
}

/// The largest relative error of float `exp` results against double-precision `exp` over
/// results in Float's normal range; fails the test on any other result outside its allowance.
private func checkExp(inputs: [Float], results: [Float]) -> Double {
    let smallestNormal = Double(Float.leastNormalMagnitude)
    var worst = 0.0
    var failures: [String] = []
    for (x, y) in zip(inputs, results) {
        let exact = Foundation.exp(Double(x))
        let good: Bool
        if x.isNaN {
            good = y.isNaN
        } else if Float(exact).isInfinite {
            good = y == .infinity
        } else if exact >= smallestNormal {
            let error = abs(Double(y) - exact) / exact
            good = error.isFinite
            worst = max(worst, error)
        } else {
            // Subnormal results hold fewer bits: allow one step of the subnormal grid.
            good = abs(Double(y) - exact) <= Double(Float.leastNonzeroMagnitude)
        }
        if !good && failures.count < 10 { failures.append("exp(\(x)) = \(y), want \(exact)") }
    }
    #expect(failures.isEmpty, "\(failures)")
    return worst
}

@Suite struct VectorMathTests {
    /// Max relative error measured exhaustively over all 2^32 inputs (VectorMath.swift): 8.16e-8.
    static let expRelativeTolerance = 1.0e-7

    @Test("exp matches double precision within 1e-7 relative on a dense sweep from underflow to overflow")
    func expDenseSweep() {
        // 2^20 evenly spaced inputs from where results underflow to where they overflow.
        let count = 1 << 20
        let inputs = (0..<count).map { Float(-105 + 195 * Double($0) / Double(count)) }
        let worst = checkExp(inputs: inputs, results: vectorExp(inputs))
        #expect(worst <= Self.expRelativeTolerance, "max relative error \(worst)")
        #expect(worst > 0, "a sweep with no rounding error at all means the reference is not being compared")
    }

    @Test("exp is right for every kind of float in a strided sweep of all bit patterns")
    func expBitPatternSweep() {
        // A prime stride through all 2^32 patterns visits NaNs, infinities, subnormals, huge and tiny values.
        let stride: UInt64 = 4099
        var inputs: [Float] = []
        var bits: UInt64 = 0
        while bits < 1 << 32 {
            inputs.append(Float(bitPattern: UInt32(bits)))
            bits += stride
        }
        inputs.append(contentsOf: repeatElement(0, count: (16 - inputs.count % 16) % 16))
        let worst = checkExp(inputs: inputs, results: vectorExp(inputs))
        #expect(worst <= Self.expRelativeTolerance, "max relative error \(worst)")
    }

    @Test("exp gives exact results at special values and 2ⁿ at n·ln2")
    func expSpecialValues() {
        let largestFinite = Float(bitPattern: 0x42B1_7217)  // 88.72283: e^x just below Float.greatestFiniteMagnitude
        let cases: [(Float, Float)] = [
            (0, 1), (-0.0, 1), (.infinity, .infinity), (-.infinity, 0),
            (.greatestFiniteMagnitude, .infinity), (-.greatestFiniteMagnitude, 0),
            (.leastNonzeroMagnitude, 1), (-.leastNonzeroMagnitude, 1),
            (largestFinite.nextUp, .infinity), (89, .infinity), (-104, 0), (-200, 0),
        ]
        let inputs = cases.map(\.0) + [Float](repeating: 0, count: 16 - cases.count)
        let results = vectorExp(inputs)
        for (index, (x, expected)) in cases.enumerated() {
            #expect(results[index] == expected, "vector exp(\(x)) = \(results[index]), want \(expected)")
            #expect(VectorMath.exp(x) == expected, "scalar exp(\(x)) = \(VectorMath.exp(x)), want \(expected)")
        }
        #expect(VectorMath.exp(largestFinite).isFinite)
        #expect(VectorMath.exp(Float.nan).isNaN)
        let nans = VectorMath.exp(SIMD16<Float>(repeating: .nan))
        let everyLaneNaN = (0..<16).allSatisfy { nans[$0].isNaN }
        #expect(everyLaneNaN)
        // e^(n·ln2) for integer n is 2ⁿ to within the polynomial's error, through the subnormal range.
        for n in -149...127 {
            let x = Float(Double(n) * M_LN2)
            let exact = Foundation.exp(Double(x))
            #expect(abs(Double(VectorMath.exp(x)) - exact) <= max(exact * Self.expRelativeTolerance, Double(Float.leastNonzeroMagnitude)),
                    "exp(\(n)·ln2) = \(VectorMath.exp(x))")
        }
    }

    @Test("the scalar exp gives the same bits as the vector lanes")
    func scalarMatchesVector() {
        var inputs: [Float] = []
        var bits: UInt64 = 12_345
        while bits < 1 << 32 {
            inputs.append(Float(bitPattern: UInt32(bits)))
            bits += 65_521
        }
        inputs.append(contentsOf: repeatElement(1, count: (16 - inputs.count % 16) % 16))
        let vector = vectorExp(inputs)
        var mismatches = 0
        for (x, y) in zip(inputs, vector) {
            let scalar = VectorMath.exp(x)
            if !(scalar.bitPattern == y.bitPattern || (scalar.isNaN && y.isNaN)) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("sigmoid and its complement match double precision within 2.5e-7 relative and saturate to exactly 0 and 1")
    func sigmoid() {
        let count = 1 << 16
        let inputs = (0..<count).map { Float(-90 + 180 * Double($0) / Double(count)) }
        var worst = 0.0, worstComplement = 0.0
        var failures: [String] = []
        var i = 0
        while i < count {
            let x = SIMD16<Float>(inputs[i..<i + 16])
            let y = VectorMath.sigmoid(x)
            let (pairSigmoid, complement) = VectorMath.sigmoidAndComplement(x)
            let mirrored = VectorMath.sigmoid(-x)
            for lane in 0..<16 {
                let exact = 1 / (1 + Foundation.exp(-Double(x[lane])))
                let exactComplement = 1 / (1 + Foundation.exp(Double(x[lane])))
                let scalarPair = VectorMath.sigmoidAndComplement(x[lane])
                if VectorMath.sigmoid(x[lane]).bitPattern != y[lane].bitPattern
                    || scalarPair.complement.bitPattern != complement[lane].bitPattern {
                    failures.append("scalar and vector σ(\(x[lane])) differ")
                }
                if pairSigmoid[lane].bitPattern != y[lane].bitPattern || complement[lane].bitPattern != mirrored[lane].bitPattern {
                    failures.append("sigmoidAndComplement(\(x[lane])) is not (σ(x), σ(−x))")
                }
                for (got, want) in [(y[lane], exact), (complement[lane], exactComplement)]
                where want < Double(Float.leastNormalMagnitude) && abs(Double(got) - want) > Double(Float.leastNonzeroMagnitude) * 2 {
                    failures.append("σ near \(x[lane]) = \(got), want \(want)")
                }
                if exact >= Double(Float.leastNormalMagnitude) { worst = max(worst, abs(Double(y[lane]) - exact) / exact) }
                if exactComplement >= Double(Float.leastNormalMagnitude) {
                    worstComplement = max(worstComplement, abs(Double(complement[lane]) - exactComplement) / exactComplement)
                }
            }
            i += 16
        }
        #expect(failures.isEmpty, "\(failures.prefix(10))")
        // exp's error plus roundings in the sum, the reciprocal and (for the small one) the product.
        #expect(worst <= 2.5e-7, "max relative error of σ \(worst)")
        #expect(worstComplement <= 2.5e-7, "max relative error of 1 − σ \(worstComplement)")
        #expect(VectorMath.sigmoid(Float.infinity) == 1)
        #expect(VectorMath.sigmoid(-Float.infinity) == 0)
        #expect(VectorMath.sigmoid(Float(0)) == 0.5)
        #expect(VectorMath.sigmoid(Float(200)) == 1)
        #expect(VectorMath.sigmoid(Float(-200)) == 0)
        #expect(VectorMath.sigmoid(Float.nan).isNaN)
    }
}
