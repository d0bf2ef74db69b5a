import Kernels
import ModelFormats

/// A projection of the model being compressed, kept compactly: the input's matrix read in place (quantised blocks
/// of the mapped file), one bit per weight that pruning zeroed, the kept weights' own values only when they differ
/// from the input's (the least-squares refit changes them), and the adapters while they are merged:
///
///     W = (values ?? W_input) ⊙ M            M = not pruned
///     merged: W + ΔW at W's nonzeros         ΔW = (B_r·A_r)·s, as `SparseLoRA.merge` adds it
///
/// Why: a Float32 copy of the student costs 4 bytes per weight (25.6 GiB for a 7B model); between LoSA's
/// iterations the student without the refit is exactly M ⊙ W_input, so the mask (1/8 byte per weight) is all that
/// changes. Merging and unmerging only set and clear the adapters here, so unmerging is exact.
///
/// Consumers never multiply it through the compressed kernels' 8-bit activations: training, calibration and pruning
/// expand it one layer at a time (`FrozenLayerExpansion`), evaluations decode panels of rows (`compressedMatmul`
/// with more than 8 tokens): both Float32 products over exactly the values a Float32 copy would hold.
///
/// Shapes: W, M [rows, cols]; values [kept weights], row-major; rowStarts [rows + 1].
public final class PrunedProjection: Float32DirectProduct, @unchecked Sendable {
    /// The input's matrix, read in place.
    public let source: any CompressedMatrix
    public var rows: Int { source.rows }
    public var cols: Int { source.cols }
    /// Bit i set: weight i (row-major) is pruned. Nil: nothing pruned.
    public private(set) var prunedBits: [UInt64]?
    /// The kept weights' values in row-major order, when they are not the source's (nil: the source's).
    public private(set) var keptValues: [Float]?
    /// keptValues' index of each row's first kept weight, and the count at the end.
    private var rowStarts: [Int] = []
    private var merged: (adapters: SparseLoRA, layer: Int, projection: SparseLoRA.Projection)?
    /// Changes whenever the matrix's values do (pruning, restoring, merging): expansions keyed by it stay valid.
    public private(set) var version = 0

    public init(source: any CompressedMatrix) {
        self.source = source
    }

    /// Bytes this object holds besides the source: the mask and the kept values.
    public var ownedByteCount: Int { (prunedBits?.count ?? 0) * 8 + (keptValues?.count ?? 0) * 4 + rowStarts.count * 8 }

    public var storedByteCount: Int { source.storedByteCount + ownedByteCount }

    /// Whether the adapters are merged into it.
    public var isMerged: Bool { merged != nil }

    // MARK: - Changing it

    /// Nothing pruned, the source's values: the dense input again.
    public func reset() {
        precondition(merged == nil, "pruned projection: reset with the adapters merged")
        prunedBits = nil
        keptValues = nil
        rowStarts = []
        version += 1
    }

    /// Adds ΔW of `projection` of `layer` to the values it yields (`SparseLoRA.merge`).
    func merge(_ adapters: SparseLoRA, layer: Int, projection: SparseLoRA.Projection) {
        precondition(merged == nil, "pruned projection: the adapters are already merged")
        merged = (adapters, layer, projection)
        version += 1
    }

    /// Removes ΔW again, exactly.
    func unmerge() {
        precondition(merged != nil, "pruned projection: the adapters are not merged")
        merged = nil
        version += 1
    }

    /// Takes `weight` [rows, cols] as pruning left it (with the adapters merged: W + ΔW): its zeros become the mask;
    /// with `ownValues` (the refit changed the kept weights), or when the matrix keeps its own values already, the
    /// kept values W (ΔW subtracted again while merged) are stored too. A kept value that comes out exactly 0 counts
    /// as pruned, as it would in a Float32 copy.
    public func store(_ weight: UnsafePointer<Float>, ownValues: Bool) {
        let rows = rows, cols = cols, count = rows * cols
        var bits = [UInt64](repeating: 0, count: (count + 63) / 64)
        guard ownValues || keptValues != nil else {
            for i in 0..<count where weight[i] == 0 { bits[i >> 6] |= 1 << UInt64(i & 63) }
            prunedBits = bits
            version += 1
            return
        }
        var values: [Float] = []
        var starts = [Int](repeating: 0, count: rows + 1)
        let panelRows = max(1, min(rows, Self.panelFloats / cols))
        let delta = merged == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: panelRows * cols)
        defer { delta?.deallocate() }
        var first = 0
        while first < rows {
            let end = min(rows, first + panelRows)
            if let delta { mergedDelta(rows: first..<end, into: delta) }
            for row in first..<end {
                starts[row] = values.count
                for j in 0..<cols {
                    let i = row * cols + j
                    var v = weight[i]
                    if v != 0, let delta { v -= delta[(row - first) * cols + j] }
                    if v == 0 {
                        bits[i >> 6] |= 1 << UInt64(i & 63)
                    } else {
                        values.append(v)
                    }
                }
            }
            first = end
        }
        starts[rows] = values.count
        prunedBits = bits
        keptValues = values
        rowStarts = starts
        version += 1
    }

    /// Takes `weight` [rows, cols] of an unmerged student (a checkpoint's): its zeros become the mask, and its kept
    /// values are stored only when some differ from the source's.
    public func restore(_ weight: UnsafePointer<Float>) {
        precondition(merged == nil, "pruned projection: restore with the adapters merged")
        let cols = cols
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        var sourceValues = true
        for r in 0..<rows where sourceValues {
            source.dequantize(rows: r..<(r + 1), into: row, path: .best)
            for j in 0..<cols where weight[r * cols + j] != 0 && weight[r * cols + j].bitPattern != row[j].bitPattern {
                sourceValues = false
                break
            }
        }
        source.releaseResidentPages(rows: 0..<rows)
        keptValues = nil
        store(weight, ownValues: !sourceValues)
    }

    /// Takes a mask saved from `prunedBits` (a checkpoint's), the values the source's.
    public func restore(prunedBits bits: [UInt64]) {
        precondition(merged == nil && bits.count == (rows * cols + 63) / 64, "pruned projection: restore \(bits.count) mask words")
        prunedBits = bits
        keptValues = nil
        rowStarts = []
        version += 1
    }

    // MARK: - Reading it

    /// The whole matrix as Float32 [rows, cols] (the source decoded over the worker pool, then ΔW while merged).
    public func decodeAll(into out: UnsafeMutablePointer<Float>) {
        let cols = cols
        WorkerPool.shared.parallelFor(rows, minimumChunk: 16) { range in
            self.fillBase(rows: range, into: out + range.lowerBound * cols)
        }
        source.releaseResidentPages(rows: 0..<rows)
        addMergedDelta(rows: 0..<rows, into: out)
    }

    public func dequantize(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>, path: KernelPath) {
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= rows, "pruned projection: rows \(rowRange) of \(rows)")
        fillBase(rows: rowRange, into: out, path: path)
        source.releaseResidentPages(rows: rowRange)
        addMergedDelta(rows: rowRange, into: out)
    }

    /// (values ?? source) ⊙ M for `rowRange` into out [rowRange.count, cols].
    private func fillBase(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>, path: KernelPath = .best) {
        let cols = cols
        if let keptValues, let prunedBits {
            keptValues.withUnsafeBufferPointer { values in
                for row in rowRange {
                    var next = rowStarts[row]
                    let o = out + (row - rowRange.lowerBound) * cols
                    for j in 0..<cols {
                        let i = row * cols + j
                        if prunedBits[i >> 6] >> UInt64(i & 63) & 1 == 1 {
                            o[j] = 0
                        } else {
                            o[j] = values[next]
                            next += 1
                        }
                    }
                }
            }
            return
        }
        source.dequantize(rows: rowRange, into: out, path: path)
        guard let prunedBits else { return }
        let start = rowRange.lowerBound * cols, end = rowRange.upperBound * cols
        prunedBits.withUnsafeBufferPointer { bits in
            for i in start..<end where bits[i >> 6] >> UInt64(i & 63) & 1 == 1 { out[i - start] = 0 }
        }
    }

    /// out += ΔW at out's nonzeros, while merged.   out [rowRange.count, cols]
    private func addMergedDelta(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        guard merged != nil else { return }
        let cols = cols, panelRows = max(1, min(rowRange.count, Self.panelFloats / cols))
        let delta = UnsafeMutablePointer<Float>.allocate(capacity: panelRows * cols)
        defer { delta.deallocate() }
        var first = rowRange.lowerBound
        while first < rowRange.upperBound {
            let end = min(rowRange.upperBound, first + panelRows)
            let o = out + (first - rowRange.lowerBound) * cols
            mergedDelta(rows: first..<end, into: delta)
            for i in 0..<((end - first) * cols) where o[i] != 0 { o[i] += delta[i] }
            first = end
        }
    }

    /// ΔW's rows `rowRange` [count, cols] (`SparseLoRA.delta`'s product; the mask is applied by the callers, which
    /// only touch nonzero weights).
    private func mergedDelta(rows rowRange: Range<Int>, into delta: UnsafeMutablePointer<Float>) {
        guard let (adapters, layer, projection) = merged else { return }
        let r = adapters.ranks[layer], rMax = adapters.settings.maximumRank
        guard r > 0 else {
            delta.update(repeating: 0, count: rowRange.count * cols)
            return
        }
        sgemm(transposeA: false, transposeB: false, m: rowRange.count, n: cols, k: r, alpha: adapters.settings.scaling,
              a: adapters.b(layer, projection).pointer + rowRange.lowerBound * rMax, lda: rMax,
              b: adapters.a(layer, projection).pointer, ldb: cols, beta: 0, c: delta, ldc: cols)
    }

    /// Floats of the panels ΔW is formed in (4 MiB).
    private static let panelFloats = 1 << 20

    public func releaseResidentPages(rows rowRange: Range<Int>) {
        source.releaseResidentPages(rows: rowRange)
    }
}
