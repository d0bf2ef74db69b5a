#if canImport(Glibc)
import Glibc
#endif
@testable import Kernels

// What the sparse tests share: sparse test matrices, the sections of an encoding as bytes, buffers
// that end at an unmapped page (so a read past them crashes the test instead of passing unseen),
// and a reader of the kernels' activation layout (sparse_dot.c's header).

/// A [rows, cols] matrix with values in ±2 (never 0) at a random `density` of positions, or a 2:4
/// pattern (two kept per four consecutive columns) when `twoOfFour`.
func sparseTestMatrix(rows: Int, cols: Int, density: Double, twoOfFour: Bool = false,
                      random: inout TestRandom) -> Tensor {
    let t = Tensor(zeros: [rows, cols])
    for o in 0..<rows {
        if twoOfFour {
            for start in stride(from: 0, to: cols, by: 4) {
                let width = min(4, cols - start)
                var kept = Set<Int>()
                while kept.count < min(2, width) { kept.insert(random.below(width)) }
                for k in kept { t.pointer[o * cols + start + k] = nonzero(&random) }
            }
        } else {
            for i in 0..<cols where Double(random.uniform(0, 1)) < density {
                t.pointer[o * cols + i] = nonzero(&random)
            }
        }
    }
    return t
}

private func nonzero(_ random: inout TestRandom) -> Float {
    let v = random.uniform(-2, 2)
    return v == 0 ? 0.5 : v
}

/// The four sections of an encoded matrix as separate byte arrays (the padding included in values).
struct SparseSections {
    var masks: [UInt8]
    var rowOffsets: [UInt8]
    var values: [UInt8]
    var scales: [UInt8]?

    init(_ m: SparseMatrix) {
        masks = Array(UnsafeRawBufferPointer(start: m.masks, count: m.rows * m.groups * 8))
        rowOffsets = Array(UnsafeRawBufferPointer(start: m.rowOffsets, count: (m.rows + 1) * 4))
        values = Array(UnsafeRawBufferPointer(start: m.values, count: m.valueBufferByteCount))
        scales = m.scales.map { Array(UnsafeRawBufferPointer(start: $0, count: m.rows * m.groups * 2)) }
    }

    /// Reads the little-endian uint32 at `index` of the offsets.
    func offset(_ index: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(rowOffsets[4 * index + $1]) << (8 * UInt32($1)) }
    }

    mutating func setOffset(_ index: Int, _ value: UInt32) {
        for b in 0..<4 { rowOffsets[4 * index + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
    }

    /// The matrix these bytes describe, through the validating init, over guarded copies.
    func open(rows: Int, cols: Int, kind: SparseValueKind) throws(SparseFormatError) -> SparseMatrix {
        let owner = GuardedBuffers([masks, rowOffsets, values] + (scales.map { [$0] } ?? []))
        let b = owner.buffers
        return try SparseMatrix(rows: rows, cols: cols, kind: kind, masks: b[0], rowOffsets: b[1], values: b[2],
                                scales: scales == nil ? nil : b[3], owner: owner)
    }
}

/// Copies of byte arrays, each ending where an inaccessible page begins (start rounded down to 8
/// bytes, so at most 7 bytes of slack): a kernel reading past a buffer faults.
final class GuardedBuffers {
    private var mappings: [(UnsafeMutableRawPointer, Int)] = []
    private(set) var buffers: [UnsafeRawBufferPointer] = []

    init(_ arrays: [[UInt8]]) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for bytes in arrays {
            let dataPages = (bytes.count + 8 + page - 1) / page
            let length = (dataPages + 1) * page
            let mapping = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
            precondition(mapping != MAP_FAILED, "mmap of a guarded test buffer failed")
            let guardPage = mapping + dataPages * page
            precondition(mprotect(guardPage, page, PROT_NONE) == 0, "mprotect failed")
            let start = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: guardPage) - bytes.count) & ~7)!
            bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            mappings.append((mapping, length))
            buffers.append(UnsafeRawBufferPointer(start: start, count: bytes.count))
        }
    }

    deinit {
        for (mapping, length) in mappings { munmap(mapping, length) }
    }
}

// MARK: - Activations (the layout of sparse_dot.c)

/// S8/S4 rows: ceil(cols / 64) float scales padded to whole 64 bytes, then 64 int8 per group.
func sparseActivationScaleBytes(cols: Int) -> Int { ((cols + 63) / 64 * 4 + 63) / 64 * 64 }

/// The Swift reference of ck_sparse_quantize_activations for one token: the same float operations
/// (absmax, 127 / absmax, round half to even), so every path must give these bytes.
func sparseReferenceActivations(kind: SparseValueKind, x: [Float]) -> [UInt8] {
    let cols = x.count, groups = (cols + 63) / 64
    if kind == .f16 {
        var padded = x + [Float](repeating: 0, count: groups * 64 - cols)
        return padded.withUnsafeMutableBytes { Array($0) }
    }
    let scaleBytes = sparseActivationScaleBytes(cols: cols)
    var out = [UInt8](repeating: 0, count: scaleBytes + groups * 64)
    for g in 0..<groups {
        let part = x[(g * 64)..<min(cols, g * 64 + 64)]
        let absmax = part.reduce(Float(0)) { max($0, abs($1)) }
        let inverse: Float = absmax > 0 ? 127 / absmax : 0
        let scale = absmax / 127
        withUnsafeBytes(of: scale.bitPattern.littleEndian) { out.replaceSubrange((4 * g)..<(4 * g + 4), with: $0) }
        for (j, v) in part.enumerated() {
            let q = max(-127, min(127, (v * inverse).rounded(.toNearestOrEven)))
            out[scaleBytes + g * 64 + j] = UInt8(bitPattern: Int8(q))
        }
    }
    return out
}

/// The values an activation row stands for: d · q (S8/S4) or the floats (F16), `cols` of them.
func sparseActivationValues(kind: SparseValueKind, row: UnsafeRawPointer, cols: Int) -> [Double] {
    if kind == .f16 { return (0..<cols).map { Double(row.load(fromByteOffset: 4 * $0, as: Float.self)) } }
    let scaleBytes = sparseActivationScaleBytes(cols: cols)
    return (0..<cols).map { i in
        let d = row.load(fromByteOffset: 4 * (i / 64), as: Float.self)
        let q = row.load(fromByteOffset: scaleBytes + (i / 64) * 64 + i % 64, as: Int8.self)
        return Double(d) * Double(q)
    }
}
