#if canImport(Glibc)
import Glibc
#endif

/// Reusable buffers of `compressedMatmul`: the quantised activations and a Float32 panel of decoded
/// rows. Grows on demand and never shrinks; one per workspace, not shared between threads.
public final class CompressedMatmulScratch: @unchecked Sendable {
    private(set) var activations: UnsafeMutableRawPointer
    private(set) var activationBytes: Int
    private(set) var panel: UnsafeMutablePointer<Float>
    private(set) var panelCount: Int
    /// Whether the panel path lets a mapped matrix's pages go once it has decoded them (`releaseResidentPages`): a
    /// pass that reads every matrix once (an evaluation of a model larger than memory can spare) then holds one
    /// panel's pages, not the file's. Off for inference, whose next token reads the same pages again.
    public var releasesPages = false

    public init() {
        activations = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        activationBytes = 64
        panel = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        panelCount = 16
    }

    deinit {
        activations.deallocate()
        panel.deallocate()
    }

    func activations(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > activationBytes {
            activations.deallocate()
            activations = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            activationBytes = bytes
        }
        return activations
    }

    func panel(floats: Int) -> UnsafeMutablePointer<Float> {
        if floats > panelCount {
            panel.deallocate()
            panel = UnsafeMutablePointer<Float>.allocate(capacity: floats)
            panelCount = floats
        }
        return panel
    }
}

/// Up to this many tokens the direct kernel (activations quantised, every stored byte read once for
/// all tokens) runs; above it, decoded panels through sgemm amortise the decoding over the tokens.
public let compressedMatmulDirectTokenLimit = 8

/// Floats of decoded weights per panel in the sgemm path (16 MiB: within L2/L3 reach, large enough
/// that each sgemm call is efficient).
let compressedPanelFloats = 4 << 20

/// y (+)= x · Wᵀ.   x [N, cols]; W [rows, cols] compressed; y [N, rows].
///
/// N ≤ `directTokenLimit`: W's rows are split over the worker pool and multiplied by
/// the quantised x (decode). Larger N: panels of rows decoded to Float32 (over the pool), then sgemm
/// (prefill, evaluation).
public func compressedMatmul(_ x: Tensor, _ w: CompressedMatrix, into y: Tensor, accumulate: Bool = false,
                             scratch: CompressedMatmulScratch, path: KernelPath = .best,
                             directTokenLimit: Int = compressedMatmulDirectTokenLimit, pool: WorkerPool = .shared) {
    let n = x.rowCount
    precondition(x.rowLength == w.cols && y.rowLength == w.rows && y.rowCount == n,
                 "compressed matmul: x \(x.shape) · W[\(w.rows), \(w.cols)]ᵀ into y \(y.shape)")
    guard n > 0 else { return }
    if n <= directTokenLimit {
        let act = scratch.activations(bytes: n * w.activationRowBytes)
        w.quantizeActivations(x.pointer, tokens: n, stride: w.cols, into: act, path: path)
        let rows = w.rows, yPointer = y.pointer
        // Chunks of whole cache lines of y rows per thread; at least 16 rows so that a thread's
        // share is worth the wake-up.
        pool.parallelFor(rows, minimumChunk: 16) { range in
            w.multiply(activations: act, tokens: n, into: yPointer, ldy: rows, rows: range,
                       accumulate: accumulate, path: path)
        }
        return
    }
    let panelRows = max(16, min(w.rows, compressedPanelFloats / w.cols))
    let panel = scratch.panel(floats: panelRows * w.cols)
    var start = 0
    while start < w.rows {
        let end = min(w.rows, start + panelRows)
        pool.parallelFor(end - start, minimumChunk: 8) { range in
            w.dequantize(rows: (start + range.lowerBound)..<(start + range.upperBound),
                         into: panel + range.lowerBound * w.cols, path: path)
        }
        if scratch.releasesPages { w.releaseResidentPages(rows: start..<end) }
        sgemm(transposeA: false, transposeB: true, m: n, n: end - start, k: w.cols,
              a: x.pointer, lda: w.cols, b: panel, ldb: w.cols,
              beta: accumulate ? 1 : 0, c: y.pointer + start, ldc: w.rows)
        start = end
    }
}
