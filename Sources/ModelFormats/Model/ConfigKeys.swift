/// Typed reading of one model's configuration keys, with errors that name the key in the user's
/// file: GGUF metadata under the architecture's prefix (`gemma3.attention.sliding_window`), or a
/// Hugging Face `config.json`. The common reader (`ModelConfig+GGUF`, `+HuggingFace`) and each
/// family's file read through these.
public struct GGUFConfigKeys {
    let metadata: [String: GGUFValue]
    /// The `general.architecture` name, the prefix of the model's keys.
    let prefix: String
    let file: String

    func field(_ key: String) -> String { "metadata key '\(key)'" }

    /// The integer at `{prefix}.{suffix}`, or `fallback` when absent (an error when there is none).
    func int(_ suffix: String, default fallback: Int? = nil) throws -> Int {
        let key = "\(prefix).\(suffix)"
        guard let value = metadata[key] else {
            if let fallback { return fallback }
            throw ModelFormatError.invalid(file: file, field: field(key), reason: "missing")
        }
        guard let number = value.intValue else {
            throw ModelFormatError.invalid(file: file, field: field(key), reason: "expected an integer, found \(value.type)")
        }
        return number
    }

    /// The integer at `{prefix}.{suffix}`, or nil when absent.
    func optionalInt(_ suffix: String) throws -> Int? {
        metadata["\(prefix).\(suffix)"] == nil ? nil : try int(suffix)
    }

    /// The number at `{prefix}.{suffix}`, or nil when absent.
    func optionalDouble(_ suffix: String) throws -> Double? {
        let key = "\(prefix).\(suffix)"
        guard let value = metadata[key] else { return nil }
        guard let number = value.doubleValue else {
            throw ModelFormatError.invalid(file: file, field: field(key), reason: "expected a number, found \(value.type)")
        }
        return number
    }

    /// The number at `{prefix}.{suffix}`, or `fallback` when absent.
    func double(_ suffix: String, default fallback: Double) throws -> Double {
        try optionalDouble(suffix) ?? fallback
    }

    /// The string at `{prefix}.{suffix}`, or nil when absent.
    func optionalString(_ suffix: String) -> String? { metadata["\(prefix).\(suffix)"]?.stringValue }

    /// An error naming `{prefix}.{suffix}` for a feature losad does not run.
    func unsupported(_ suffix: String, _ reason: String) -> ModelFormatError {
        .unsupported(file: file, field: field("\(prefix).\(suffix)"), reason: reason)
    }
}

/// See `GGUFConfigKeys`: the same for the top-level keys of a Hugging Face `config.json`.
public struct HuggingFaceConfigKeys {
    let json: [String: JSONValue]
    let file: String

    func field(_ key: String) -> String { "key '\(key)'" }

    /// The value at `key`, or nil when absent or null.
    func raw(_ key: String) -> JSONValue? {
        guard let value = json[key], !value.isNull else { return nil }
        return value
    }

    /// The value at `key` as `T`, or `fallback` when absent or null (an error when there is none).
    func value<T>(_ key: String, _ type: T.Type, default fallback: T? = nil) throws -> T {
        guard let raw = raw(key) else {
            if let fallback { return fallback }
            throw ModelFormatError.invalid(file: file, field: field(key), reason: "missing")
        }
        let typed: Any?
        switch type {
        case is Int.Type: typed = raw.integer
        case is Double.Type: typed = raw.number
        case is Bool.Type: typed = raw.bool
        case is String.Type: typed = raw.string
        default: typed = nil
        }
        guard let result = typed as? T else {
            throw ModelFormatError.invalid(file: file, field: field(key), reason: "expected \(T.self), found \(raw.summary)")
        }
        return result
    }

    /// The value at `key` as `T`, or nil when absent or null.
    func optional<T>(_ key: String, _ type: T.Type) throws -> T? {
        raw(key) == nil ? nil : try value(key, type)
    }

    /// The per-layer attention kinds of `layer_types` ("sliding_attention", "full_attention"), or nil when absent.
    func layerSpans(count: Int) throws -> [ModelConfig.AttentionSpan]? {
        guard let raw = raw("layer_types") else { return nil }
        guard let array = raw.array, array.count == count else {
            throw ModelFormatError.invalid(file: file, field: field("layer_types"),
                                           reason: "expected \(count) layer kinds, found \(raw.summary)")
        }
        return try array.enumerated().map { i, kind in
            switch kind.string {
            case "sliding_attention": return .sliding
            case "full_attention": return .full
            default:
                throw ModelFormatError.unsupported(file: file, field: field("layer_types[\(i)]"),
                                                   reason: "\(kind.summary) (losad runs full_attention and sliding_attention)")
            }
        }
    }

    /// An error naming `key` for a feature losad does not run.
    func unsupported(_ key: String, _ reason: String) -> ModelFormatError {
        .unsupported(file: file, field: field(key), reason: reason)
    }
}
