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
