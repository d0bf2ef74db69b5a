/// One tensor's entry in a GGUF file: its name, shape, element type and where its bytes lie.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The checkpoint's name for the tensor (e.g. `blk.0.attn_q.weight`).
    public let name: String
    /// The dimensions in ggml order: `dimensions[0]` is ne[0], the innermost
    /// (contiguous) one. A file may list none, which ggml reads as one element.
    public let dimensions: [Int]
    /// How the elements are stored.
    public let type: GGMLType
    /// Offset of the data from the start of the data section, as stored in the file.
    public let offset: Int
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    /// Bytes of data (`type.byteCount(elements: elementCount)`), padding excluded.
    public let byteCount: Int
    /// The product of the dimensions (one for a tensor with none).
    public let elementCount: Int

    /// The dimensions row-major, outermost first: ggml's order reversed
    /// (a ggml [C, V] embedding is the row-major [V, C] matrix).
    public var shape: [Int] { dimensions.reversed() }
}
