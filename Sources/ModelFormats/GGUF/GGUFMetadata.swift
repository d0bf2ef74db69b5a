/// GGUF metadata: key/value pairs in the file's order, with lookup by key.
///
/// The order is kept so that a file written from a read one lists its keys as
/// the original did; replacing a key's value keeps its place, a new key goes last.
public struct GGUFMetadata: Sendable, Equatable {
    /// The pairs in order; keys are unique.
    public private(set) var entries: [(key: String, value: GGUFValue)]
    private var positions: [String: Int]

    /// Empty metadata.
    public init() {
        entries = []
        positions = [:]
    }

    /// Pairs in order; a key given twice keeps its first place and its last value.
    public init(_ pairs: [(key: String, value: GGUFValue)]) {
        self.init()
        for (key, value) in pairs { self[key] = value }
    }

    /// The number of pairs.
    public var count: Int { entries.count }
    /// Whether there are no pairs.
    public var isEmpty: Bool { entries.isEmpty }
    /// The keys in order.
    public var keys: [String] { entries.map(\.key) }

    /// The pairs as a dictionary (order dropped), for code that looks keys up by name.
    public var dictionary: [String: GGUFValue] {
        Dictionary(uniqueKeysWithValues: entries.lazy.map { ($0.key, $0.value) })
    }

    /// The position of `key` in the file's order.
    public func index(of key: String) -> Int? { positions[key] }

    /// The value for `key`; setting replaces in place, appends a new key, or removes with nil.
    public subscript(key: String) -> GGUFValue? {
        get { positions[key].map { entries[$0].value } }
        set {
            switch (positions[key], newValue) {
            case (let index?, let value?):
                entries[index].value = value
            case (nil, let value?):
                positions[key] = entries.count
                entries.append((key: key, value: value))
            case (let index?, nil):
                entries.remove(at: index)
                positions[key] = nil
                for later in index..<entries.count { positions[entries[later].key] = later }
            case (nil, nil):
                break
            }
        }
    }

    /// Appends a pair the reader has already checked to be new (no lookup for the common path).
    mutating func appendUnchecked(key: String, value: GGUFValue) {
        positions[key] = entries.count
        entries.append((key: key, value: value))
    }

    /// Same pairs in the same order.
    public static func == (lhs: GGUFMetadata, rhs: GGUFMetadata) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
