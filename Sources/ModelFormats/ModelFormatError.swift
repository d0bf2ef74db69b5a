/// Errors reading or writing checkpoints. Each names the file and the field
/// (header item, metadata key, tensor name) and says what was wrong.
public enum ModelFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file ended before `field` could be read.
    case truncated(file: String, field: String, offset: Int, needed: Int, available: Int)
    /// `field` holds a value that is impossible or inconsistent.
    case invalid(file: String, field: String, reason: String)
    /// `field` holds a value that is valid in the format but not supported by losad.
    case unsupported(file: String, field: String, reason: String)
    /// A file could not be opened, mapped, written or renamed.
    case io(file: String, operation: String, reason: String)

    public var file: String {
        switch self {
        case .truncated(let file, _, _, _, _), .invalid(let file, _, _), .unsupported(let file, _, _),
             .io(let file, _, _):
            return file
        }
    }

    public var description: String {
        switch self {
        case .truncated(let file, let field, let offset, let needed, let available):
            return "\(file): file ends inside \(field) (needs \(needed) bytes at offset \(offset), \(available) left); the file is truncated or not this format."
        case .invalid(let file, let field, let reason):
            return "\(file): \(field) is invalid: \(reason)."
        case .unsupported(let file, let field, let reason):
            return "\(file): \(field) is not supported: \(reason)."
        case .io(let file, let operation, let reason):
            return "\(file): cannot \(operation): \(reason)."
        }
    }
}
