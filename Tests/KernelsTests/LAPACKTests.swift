import Testing
@testable import Kernels

/// OpenBLAS's LAPACK (xPOTRF, xPOTRI) and Gram updates (xSYRK) against naive Double implementations.
@Suite struct LAPACKTests {
    /// A random symmetric positive definite n×n matrix BᵀB + n·I (row-major), B uniform.
    static func randomSPD(_ n: Int, seed: UInt64) -> [Double] {
        var random = TestRandom(seed: seed)
        let b = (0..<(n * n)).map { _ in Double(random.uniform(-1, 1)) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var sum = 0.0
                for k in 0..<n { sum += b[k * n + i] * b[k * n + j] }
                a[i * n + j] = sum + (i == j ? Double(n) : 0)
            }
        }
        return a
    }

    /// The lower Cholesky factor by the textbook recurrence (Cholesky–Banachiewicz), row-major.
    static func naiveCholesky(_ a: [Double], _ n: Int) -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = a[i * n + j]
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = i == j ? sum.squareRoot() : sum / l[j * n + j]
            }
        }
        return l
    }

    /// The inverse by Gauss–Jordan elimination with partial pivoting.
    static func naiveInverse(_ a: [Double], _ n: Int) -> [Double] {
        var m = a
        var inverse = [Double](repeating: 0, count: n * n)
        for i in 0..<n { inverse[i * n + i] = 1 }
        for column in 0..<n {
            let pivot = (column..<n).max { abs(m[$0 * n + column]) < abs(m[$1 * n + column]) }!
            for k in 0..<n {
                m.swapAt(column * n + k, pivot * n + k)
                inverse.swapAt(column * n + k, pivot * n + k)
            }
            let scale = 1 / m[column * n + column]
            for k in 0..<n {
                m[column * n + k] *= scale
                inverse[column * n + k] *= scale
            }
            for row in 0..<n where row != column {
                let factor = m[row * n + column]
                for k in 0..<n {
                    m[row * n + k] -= factor * m[column * n + k]
                    inverse[row * n + k] -= factor * inverse[column * n + k]
                }
            }
        }
        return inverse
    }

    static func maxDifference(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    @Test(arguments: [1, 7, 64, 131])
    func lowerAndUpperFactorsMatchTheTextbookCholesky(n: Int) throws {
        let a = Self.randomSPD(n, seed: UInt64(n))
        let l = Self.naiveCholesky(a, n)
        var lower = a
        try lower.withUnsafeMutableBufferPointer { try LAPACK.choleskyFactorize($0.baseAddress!, order: n, triangle: .lower) }
        #expect(Self.maxDifference(lower, l) < 1e-10 * Double(n))
        // The upper factor of A = Uᵀ·U is Lᵀ.
        var upper = a
        try upper.withUnsafeMutableBufferPointer { try LAPACK.choleskyFactorize($0.baseAddress!, order: n, triangle: .upper) }
        var transposed = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { transposed[i * n + j] = l[j * n + i] } }
        #expect(Self.maxDifference(upper, transposed) < 1e-10 * Double(n))
    }

    @Test(arguments: [1, 5, 64, 130])
    func inverseFromEitherFactorMatchesGaussJordan(n: Int) throws {
        let a = Self.randomSPD(n, seed: 100 + UInt64(n))
        let expected = Self.naiveInverse(a, n)
        for triangle in [LAPACK.Triangle.lower, .upper] {
            var m = a
            try m.withUnsafeMutableBufferPointer { buffer in
                try LAPACK.choleskyFactorize(buffer.baseAddress!, order: n, triangle: triangle)
                try LAPACK.invertFromCholesky(buffer.baseAddress!, order: n, triangle: triangle)
            }
            // Entries of the inverse are about 1/n here; compare relative to that.
            #expect(Self.maxDifference(m, expected) * Double(n) < 1e-10)
        }
        var direct = a
        try direct.withUnsafeMutableBufferPointer { try LAPACK.invertPositiveDefinite($0.baseAddress!, order: n) }
        #expect(Self.maxDifference(direct, expected) * Double(n) < 1e-10)
    }

    @Test func floatRoutinesAgreeWithDoubleToSinglePrecision() throws {
        let n = 48
        let a = Self.randomSPD(n, seed: 7)
        let expectedFactor = Self.naiveCholesky(a, n)
        let expectedInverse = Self.naiveInverse(a, n)
        var factor = a.map(Float.init)
        try factor.withUnsafeMutableBufferPointer { try LAPACK.choleskyFactorize($0.baseAddress!, order: n, triangle: .lower) }
        #expect(Self.maxDifference(factor.map(Double.init), expectedFactor) < 1e-4)
        var inverse = a.map(Float.init)
        try inverse.withUnsafeMutableBufferPointer { try LAPACK.invertPositiveDefinite($0.baseAddress!, order: n) }
        #expect(Self.maxDifference(inverse.map(Double.init), expectedInverse) * Double(n) < 1e-4)
    }

    @Test func anIndefiniteMatrixIsATypedErrorNamingTheMinor() {
        // Leading minors: 4 > 0, 4·1 − 2·2 = 0 → not positive definite at order 2.
        var a: [Double] = [4, 2, 0,
                           2, 1, 0,
                           0, 0, 3]
        #expect(throws: KernelsError.notPositiveDefinite(routine: "dpotrf", order: 3, leadingMinor: 2)) {
            try a.withUnsafeMutableBufferPointer { try LAPACK.choleskyFactorize($0.baseAddress!, order: 3, triangle: .upper) }
        }
        var f: [Float] = [-1, 0, 0, 1]
        #expect(throws: KernelsError.notPositiveDefinite(routine: "spotrf", order: 2, leadingMinor: 1)) {
            try f.withUnsafeMutableBufferPointer { try LAPACK.invertPositiveDefinite($0.baseAddress!, order: 2) }
        }
        let description = KernelsError.notPositiveDefinite(routine: "dpotrf", order: 3, leadingMinor: 2).description
        #expect(description.contains("3×3") && description.contains("minor 2"))
    }

    @Test func anEmptyMatrixIsANoOpAndANegativeOrderIsRefused() throws {
        var empty: [Double] = [0]
        try empty.withUnsafeMutableBufferPointer { try LAPACK.invertPositiveDefinite($0.baseAddress!, order: 0) }
        #expect(empty == [0])
        #expect(throws: KernelsError.self) {
            try empty.withUnsafeMutableBufferPointer { try LAPACK.choleskyFactorize($0.baseAddress!, order: -1, triangle: .lower) }
        }
    }

    @Test func gramUpdateAccumulatesTheUpperTriangleOfXTransposeX() throws {
        let rows = 37, columns = 21
        var random = TestRandom(seed: 11)
        let x = random.values(rows * columns)
        var expected = [Double](repeating: 0, count: columns * columns)
        for i in 0..<columns {
            for j in 0..<columns {
                var sum = 0.0
                for r in 0..<rows { sum += Double(x[r * columns + i]) * Double(x[r * columns + j]) }
                expected[i * columns + j] = 2 * sum + 0.5
            }
        }
        // Start from 0.5 everywhere; two updates of the same batch, so beta = 1 accumulates.
        var cf = [Float](repeating: 0.5, count: columns * columns)
        var cd = [Double](repeating: 0.5, count: columns * columns)
        let xd = x.map(Double.init)
        for _ in 0..<2 {
            try x.withUnsafeBufferPointer { a in
                try cf.withUnsafeMutableBufferPointer { c in
                    try accumulateGram(a.baseAddress!, rows: rows, columns: columns, lda: columns,
                                       into: c.baseAddress!, ldc: columns)
                }
            }
            try xd.withUnsafeBufferPointer { a in
                try cd.withUnsafeMutableBufferPointer { c in
                    try accumulateGram(a.baseAddress!, rows: rows, columns: columns, lda: columns,
                                       into: c.baseAddress!, ldc: columns)
                }
            }
        }
        for i in 0..<columns {
            for j in 0..<columns {
                if j >= i {
                    #expect(abs(cd[i * columns + j] - expected[i * columns + j]) < 1e-9)
                    #expect(abs(Double(cf[i * columns + j]) - expected[i * columns + j]) < 1e-3)
                } else {
                    // The lower triangle is not touched.
                    #expect(cd[i * columns + j] == 0.5 && cf[i * columns + j] == 0.5)
                }
            }
        }
        #expect(throws: KernelsError.self) {
            try cd.withUnsafeMutableBufferPointer { c in
                try accumulateGram(c.baseAddress!, rows: 1, columns: columns, lda: columns - 1,
                                   into: c.baseAddress!, ldc: columns)
            }
        }
    }
}
