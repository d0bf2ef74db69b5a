/// The type the exporter stores replaced (pruned) tensors in. Every choice
/// keeps an exact zero exactly zero: F32/F16/BF16 store 0 as 0, and ggml's
/// Q8_0 and Q4_0 encoders map 0 to the code that decodes to 0 (see `Q8_0` and
/// `Q4_0`). Quantisation can add zeros, never remove them: a Q8_0 value below
/// 1/254 of its block's largest magnitude rounds to 0 (Q4_0: below 1/16).
public enum ExportTensorType: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// The source's own type for F32, F16 and BF16 tensors; Q8_0 for a GGUF
    /// tensor stored quantised (the smallest ggml block type whose step is
    /// fine enough to keep LoRA-merged weights close); F32 for any other dtype.
    case auto
    case q8_0
    case q4_0
    case f16
    case bf16
    case f32

    public var description: String { rawValue }

    /// The ggml type of an explicit choice; nil for `auto`.
    var ggmlType: GGMLType? {
        switch self {
        case .auto: return nil
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .f16: return .f16
        case .bf16: return .bf16
        case .f32: return .f32
        }
    }

    /// The safetensors dtype of an explicit choice; nil for `auto` and for the
    /// block types, which safetensors cannot hold.
    var safetensorsDType: SafetensorsDType? {
        switch self {
        case .f16: return .f16
        case .bf16: return .bf16
        case .f32: return .f32
        case .auto, .q8_0, .q4_0: return nil
        }
    }

    // MARK: - Choosing per tensor

    /// The GGUF type for a replaced tensor stored as `source` with rows of
    /// `rowLength` elements, and why the choice was changed, if it was: a row
    /// that is not a whole number of blocks cannot be stored in a block type,
    /// so that tensor is stored as F16 (which also keeps zeros exact).
    func ggufType(source: GGMLType, rowLength: Int) -> (type: GGMLType, fallback: String?) {
        let wanted: GGMLType
        if let explicit = ggmlType {
            wanted = explicit
        } else {
            switch source {
            case .f32, .f16, .bf16: wanted = source
            default: wanted = source.blockSize > 1 ? .q8_0 : .f32
            }
        }
        guard rowLength % wanted.blockSize != 0 else { return (wanted, nil) }
        return (.f16, "rows of \(rowLength) elements are not whole \(wanted) blocks of \(wanted.blockSize); stored as F16")
    }

    /// The safetensors dtype for a replaced tensor stored as `source`; nil for
    /// Q8_0 and Q4_0, which the caller refuses before writing anything.
    func safetensorsDType(source: SafetensorsDType) -> SafetensorsDType? {
        guard self == .auto else { return safetensorsDType }
        return source.isWritable ? source : .f32
    }

    // MARK: - Range

    /// The largest magnitude `type` can store without overflow: the largest
    /// finite F16 and BF16 values, and for the block types the magnitude whose binary16
    /// step (amax / 127 for Q8_0, amax / 8 for Q4_0) is still finite. Beyond
    /// it, zeros in the block would decode as NaN (0 × inf).
    static func largestMagnitude(of type: GGMLType) -> Float {
        let half: Float = 65504
        switch type {
        case .f16: return half
        case .bf16: return Float(bitPattern: 0x7F7F_0000)
        case .q8_0: return half * 127
        case .q4_0: return half * 8
        default: return .greatestFiniteMagnitude
        }
    }
}
