/// Kernels: the numeric core of losad — the `Tensor` type, BLAS-backed matrix
/// products, element-wise and row-wise ops with their backward passes, the
/// worker pool and the seeded random generator.
public enum Kernels {
    /// Makes sure OpenBLAS is opened with the chosen kernel set, and reports why not.
    public static func prepare() throws -> OpenBLAS {
        try OpenBLAS.loaded.get()
    }
}
