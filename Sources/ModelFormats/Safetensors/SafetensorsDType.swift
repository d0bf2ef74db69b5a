/// The element types of the safetensors format, spelled as its header spells
/// them; this is the one table of element sizes the reader and writer use.
///
/// Follows the `Dtype` enum of huggingface/safetensors (safetensors/src/tensor.rs):
/// every name it accepts is recognised here, so a file is never refused as
/// malformed merely because losad cannot convert one of its types.
public enum SafetensorsDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits per element (sub-byte types pack several elements into a byte).
    public var bitsPerElement: Int {
        switch self {
        case .f4: return 4
        case .f6E2M3, .f6E3M2: return 6
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// Whether `SafetensorsFile.tensor(named:)` converts this type to Float32.
    public var convertsToFloat32: Bool {
        switch self {
        case .f32, .f16, .bf16, .i8, .u8: return true
        default: return false
        }
    }

    /// Whether `SafetensorsWriter` can store Float32 tensors as this type.
    public var isWritable: Bool {
        switch self {
        case .f32, .f16, .bf16: return true
        default: return false
        }
    }

    /// Bytes that `elements` values occupy, or nil when the size overflows or the
    /// values do not fill a whole number of bytes.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0 else { return nil }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: bitsPerElement)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }

    /// The name the safetensors header uses ("F32", "BF16", …).
    public var description: String { rawValue }

    /// Every header name, for error messages.
    static let allNames = allCases.map(\.rawValue).joined(separator: ", ")
}
