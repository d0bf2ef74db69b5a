/// A sparse matrix view that breaks docs/sparse-format.md, named by the field (mask, row_offsets,
/// values, scales) and the row and group where it does.
public struct SparseFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The part of the encoding at fault, spelled as in the format's documentation.
    public enum Field: String, Sendable {
        case shape
        case mask
        case rowOffsets = "row_offsets"
        case values
        case scales
    }

    public let field: Field
    public let row: Int?
    public let group: Int?
    /// What is wrong, with the numbers.
    public let problem: String
    /// The tensor the view belongs to, when the reader knows it (see `named`).
    public private(set) var tensor: String?

    public init(_ field: Field, row: Int? = nil, group: Int? = nil, _ problem: String) {
        self.field = field
        self.row = row
        self.group = group
        self.problem = problem
    }

    /// The same error, naming the tensor it was found in.
    public func named(_ tensor: String) -> SparseFormatError {
        var copy = self
        copy.tensor = tensor
        return copy
    }

    public var description: String {
        var place = field.rawValue
        if let row { place += " of row \(row)" }
        if let group { place += ", group \(group)" }
        let subject = tensor.map { "sparse matrix '\($0)'" } ?? "sparse matrix"
        return "\(subject): \(place): \(problem); the file is damaged or was not written by this format's writer."
    }
}
