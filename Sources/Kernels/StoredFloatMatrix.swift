/// A Float32, Float16 or BFloat16 matrix W [rows, cols] read in place, row-major, where a file holds it (a Hugging
/// Face BF16 checkpoint, an F32 GGUF): what a compression job decodes one layer at a time instead of copying the
/// whole model to Float32. Decoding widens exactly (every F16/BF16 value is a Float32).
///
/// Not an inference kernel: the direct product (a few tokens) decodes a row at a time and multiplies in Float32,
/// correct but slow. `Checkpoint.inPlaceMatrices`, which inference reads, does not hand these out.
public final class StoredFloatMatrix: Float32DirectProduct, @unchecked Sendable {
    // @unchecked: immutable; `base` points into memory `owner` keeps valid and unchanged.
    public enum Element: Sendable {
        case f32, f16, bf16

        public var byteCount: Int { self == .f32 ? 4 : 2 }
    }

    public let element: Element
    public let rows: Int
    public let cols: Int
    public let base: UnsafeRawPointer
    private let owner: AnyObject
    private let mappedFile: Bool

    /// Wraps rows·cols elements at `base`, which `owner` keeps valid; `mappedFile`: a read-only file mapping whose
    /// pages may be dropped (`releaseResidentPages`).
    public init(element: Element, rows: Int, cols: Int, base: UnsafeRawPointer, owner: AnyObject, mappedFile: Bool) {
        precondition(rows > 0 && cols > 0, "stored float matrix: \(rows)×\(cols)")
        self.element = element
        self.rows = rows
        self.cols = cols
        self.base = base
        self.owner = owner
        self.mappedFile = mappedFile
    }

    public var storedByteCount: Int { rows * cols * element.byteCount }

    public func dequantize(rows rowRange: Range<Int>, into out: UnsafeMutablePointer<Float>, path: KernelPath) {
        precondition(rowRange.lowerBound >= 0 && rowRange.upperBound <= rows, "stored float matrix: rows \(rowRange) of \(rows)")
        let count = rowRange.count * cols, first = rowRange.lowerBound * cols
        // Unaligned reads: a safetensors tensor starts at any byte offset.
        switch element {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: base + first * 4, byteCount: count * 4)
        case .f16, .bf16:
            let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
            defer { bits.deallocate() }
            UnsafeMutableRawPointer(bits).copyMemory(from: base + first * 2, byteCount: count * 2)
            if element == .f16 { convertFloat16ToFloat32(bits, out, count: count) } else { convertBFloat16ToFloat32(bits, out, count: count) }
        }
    }

    public func releaseResidentPages(rows rowRange: Range<Int>) {
        guard mappedFile else { return }
        releaseMappedPages(base + rowRange.lowerBound * cols * element.byteCount, byteCount: rowRange.count * cols * element.byteCount)
    }
}
