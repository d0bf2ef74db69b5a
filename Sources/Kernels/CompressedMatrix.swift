import CKernels

/// The SIMD path a C kernel runs (ckernels.h's ck_path).
public enum KernelPath: Int32, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case scalar = 0
    case avx2 = 1
    case avx512 = 2

    /// The best path this CPU supports.
    public static let best = KernelPath(rawValue: ck_best_path()) ?? .scalar

    /// Every path this CPU can run, the scalar reference first (what tests hold to each other).
    public static var supported: [KernelPath] { allCases.filter { $0 <= best } }

    public static func < (a: KernelPath, b: KernelPath) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .scalar: return "scalar"
        case .avx2: return "AVX2"
        case .avx512: return "AVX-512"
        }
    }
}

/// A frozen weight matrix W [rows, cols] kept in a compressed form (quantised blocks, the sparse
/// encoding) that multiplies small batches directly — each stored byte read once for all tokens —
/// and decodes panels of rows to Float32 for large batches (`compressedMatmul` chooses).
///
/// The activation side of the direct product is quantised once per call into a scratch of
/// `activationRowBytes` per token, in the format the matrix's kernel pairs with.
public protocol CompressedMatrix: AnyObject, Sendable {
    var rows: Int { get }
    var cols: Int { get }
    /// Bytes the matrix occupies as stored: what one product reads from memory.
    var storedByteCount: Int { get }
    /// Bytes of one token's quantised activation row.
    var activationRowBytes: Int { get }
    /// Quantises `tokens` rows of x (row stride `stride` floats) into `act`.
    func quantizeActivations(_ x: UnsafePointer<Float>, tokens: Int, stride: Int,
                             into act: UnsafeMutableRawPointer, path: KernelPath)
    /// y[t·ldy + o] (+)= W[o] · x[t] for o in `rowRange`, t < tokens, from quantised activations.
    func multiply(activations act: UnsafeRawPointer, tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                  rows rowRange: Range<Int>, accumulate: Bool, path: KernelPath)
    /// Decodes rows `rowRange` to Float32: out[(o − lowerBound)·cols + i].
    func dequantize(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>, path: KernelPath)
    /// Lets the kernel drop the pages of rows `rowRange` from this process's resident memory where they are a mapped
    /// file's (they stay in the page cache; the next read faults them back in): a pass that decodes a large model one
    /// layer at a time then holds one layer's pages, not the file's. Nothing for matrices in owned memory.
    func releaseResidentPages(rows rowRange: Range<Int>)
    /// Decodes the whole matrix to Float32 [rows, cols] over the worker pool, then lets its file pages go.
    func decodeAll(into out: UnsafeMutablePointer<Float>)
}

extension CompressedMatrix {
    public func releaseResidentPages(rows rowRange: Range<Int>) {}

    public func decodeAll(into out: UnsafeMutablePointer<Float>) {
        let cols = cols
        WorkerPool.shared.parallelFor(rows, minimumChunk: 16) { range in
            self.dequantize(rows: range, into: out + range.lowerBound * cols, path: .best)
        }
        releaseResidentPages(rows: 0..<rows)
    }

}

/// A matrix without an 8-bit kernel (stored floats, a compression job's pruned projection): its direct product keeps
/// the activations as Float32, decodes each row and dots it — exact, and slow; only evaluations' panels (decoded, then
/// sgemm) are meant to run on such matrices.
public protocol Float32DirectProduct: CompressedMatrix {}

extension Float32DirectProduct {
    public var activationRowBytes: Int { cols * MemoryLayout<Float>.stride }

    public func quantizeActivations(_ x: UnsafePointer<Float>, tokens: Int, stride: Int,
                                    into act: UnsafeMutableRawPointer, path: KernelPath) {
        let out = act.assumingMemoryBound(to: Float.self)
        for t in 0..<tokens { (out + t * cols).update(from: x + t * stride, count: cols) }
    }

    public func multiply(activations act: UnsafeRawPointer, tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                         rows rowRange: Range<Int>, accumulate: Bool, path: KernelPath) {
        let x = act.assumingMemoryBound(to: Float.self), cols = cols
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        for o in rowRange {
            dequantize(rows: o..<(o + 1), into: row, path: path)
            for t in 0..<tokens {
                var sum: Float = 0
                for j in 0..<cols { sum += row[j] * x[t * cols + j] }
                y[t * ldy + o] = accumulate ? y[t * ldy + o] + sum : sum
            }
        }
    }
}
