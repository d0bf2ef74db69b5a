import Testing
@testable import Kernels

/// A band of rows of a sparse matrix (how a fused phi3 tensor's q, k and v are read in place): the
/// same weights as those rows of the whole, the same products, and a valid encoding of its own.
@Suite struct SparseMatrixRowsTests {
    @Test(arguments: SparseValueKind.allCases)
    func aRowBandIsThoseRowsOfTheWholeMatrix(kind: SparseValueKind) throws {
        var random = TestRandom(seed: 23)
        let rows = 12, cols = 150
        let dense = sparseTestMatrix(rows: rows, cols: cols, density: 0.5, random: &random)
        let whole = SparseMatrix.encode(dense, kind: kind)
        let decoded = whole.decode()
        for band in [0..<5, 5..<9, 9..<12, 3..<4] {
            let part = whole.rows(band)
            #expect(part.rows == band.count && part.cols == cols && part.rowOffsets[0] == 0)
            try part.validate()
            // Row-separable encoding: encoding those rows alone gives the same matrix.
            let alone = SparseMatrix.encode(dense.slice(band).copy(), kind: kind)
            #expect(part.decode().scalars == decoded.slice(band).scalars)
            #expect(alone.decode().scalars == part.decode().scalars && alone.valueByteCount == part.valueByteCount)
            // The kernels' product through the band equals the whole product's rows.
            for path in KernelPath.supported {
                let x = Tensor(zeros: [3, cols])
                for i in 0..<x.count { x.pointer[i] = random.uniform(-1, 1) }
                let y = Tensor(zeros: [3, rows]), yBand = Tensor(zeros: [3, band.count])
                compressedMatmul(x, whole, into: y, scratch: CompressedMatmulScratch(), path: path)
                compressedMatmul(x, part, into: yBand, scratch: CompressedMatmulScratch(), path: path)
                for t in 0..<3 {
                    #expect(Array(yBand.scalars[(t * band.count)..<((t + 1) * band.count)])
                            == Array(y.scalars[(t * rows + band.lowerBound)..<(t * rows + band.upperBound)]), "\(path), band \(band)")
                }
            }
        }
        // A band of a band.
        #expect(whole.rows(2..<10).rows(3..<5).decode().scalars == decoded.slice(5..<7).scalars)
    }
}
