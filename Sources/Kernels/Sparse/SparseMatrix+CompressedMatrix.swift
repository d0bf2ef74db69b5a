import CKernels

/// The sparse encoding's products: the C kernels of Sources/CKernels/sparse_dot.c (scalar reference)
/// and sparse_avx2.c, on the activation format `kind` pairs with (S8/S4: int8 per 64 columns with a
/// float scale; F16: floats).
extension SparseMatrix: CompressedMatrix {
    public var activationRowBytes: Int { ck_sparse_activation_row_bytes(kind.kernelKind, Int32(cols)) }

    public func quantizeActivations(_ x: UnsafePointer<Float>, tokens: Int, stride: Int,
                                    into act: UnsafeMutableRawPointer, path: KernelPath) {
        precondition(path <= KernelPath.best, "sparse kernels: the \(path) path is not supported by this CPU")
        precondition(stride >= cols, "sparse kernels: row stride \(stride) below \(cols) columns")
        ck_sparse_quantize_activations(kind.kernelKind, x, Int32(tokens), Int32(cols), stride, act, path.rawValue)
    }

    public func multiply(activations act: UnsafeRawPointer, tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                         rows rowRange: Range<Int>, accumulate: Bool, path: KernelPath) {
        precondition(path <= KernelPath.best, "sparse kernels: the \(path) path is not supported by this CPU")
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= rows && ldy >= rows,
                     "sparse kernels: rows \(rowRange) of \(rows), ldy \(ldy)")
        withUnsafePointer(to: kernelView) { view in
            ck_sparse_matmul(view, act, Int32(tokens), y, ldy, Int32(rowRange.lowerBound), Int32(rowRange.upperBound),
                             accumulate ? 1 : 0, path.rawValue)
        }
    }

    public func dequantize(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>, path: KernelPath) {
        precondition(path <= KernelPath.best, "sparse kernels: the \(path) path is not supported by this CPU")
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= rows, "sparse kernels: rows \(rowRange) of \(rows)")
        withUnsafePointer(to: kernelView) { view in
            ck_sparse_dequantize_rows(view, Int32(rowRange.lowerBound), Int32(rowRange.upperBound), out, path.rawValue)
        }
    }
}

extension SparseMatrix {
    /// Rows per worker chunk of `dequantized`: about 64 Ki weights, well above a pool round trip.
    static func dequantizeChunkRows(cols: Int) -> Int { max(1, (1 << 16) / cols) }

    /// W [rows, cols] as Float32 through the C kernels (`dequantize(rows:into:path:)`), rows split over
    /// `WorkerPool.shared`: the fast counterpart of the reference `decode()`, the same values bit for bit.
    /// The view must have passed `validate` (or come from `encode`).
    public func dequantized(path: KernelPath = .best) -> Tensor {
        let out = Tensor(zeros: [rows, cols])
        let base = out.pointer, cols = self.cols, groups = self.groups
        WorkerPool.shared.parallelFor(rows, minimumChunk: Self.dequantizeChunkRows(cols: cols)) { range in
            dequantize(rows: range, into: base + range.lowerBound * cols, path: path)
            // The AVX2 kernel computes every lane of a group as scale × q, so an unstored weight of a
            // group with a negative scale (losad writes none, another writer may) comes out −0; the reference and the format's
            // other readers give +0. Rewriting the unstored weights costs one store each.
            for o in range {
                let row = base + o * cols
                for g in 0..<groups {
                    let width = min(Self.groupSize, cols - g * Self.groupSize)
                    let columns: UInt64 = width == 64 ? ~0 : (UInt64(1) << UInt64(width)) - 1
                    var unstored = ~masks[o * groups + g] & columns
                    while unstored != 0 {
                        row[g * Self.groupSize + unstored.trailingZeroBitCount] = 0
                        unstored &= unstored - 1
                    }
                }
            }
        }
        return out
    }
}
