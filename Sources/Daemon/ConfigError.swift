/// Why a configuration file was not accepted; every case names the file and the key.
public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    /// The text is not TOML.
    case syntax(file: String, line: Int, column: Int, reason: String)
    /// A key (or section) losad does not know; `suggestion` is the nearest known one, if close.
    case unknownKey(file: String, key: String, suggestion: String?)
    case wrongType(file: String, key: String, value: String, expected: String)
    case invalidValue(file: String, key: String, value: String, allowed: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read the configuration: \(reason)"
        case let .syntax(file, line, column, reason):
            return "\(file):\(line):\(column): not valid TOML: \(reason)"
        case let .unknownKey(file, key, suggestion):
            let hint = suggestion.map { "; did you mean \($0)?" } ?? "; see Config/losad.toml for every key"
            return "\(file): unknown key \(key)\(hint)"
        case let .wrongType(file, key, value, expected):
            return "\(file): \(key) = \(value) is not \(expected)"
        case let .invalidValue(file, key, value, allowed):
            return "\(file): \(key) = \(value) is not allowed; expected \(allowed)"
        }
    }
}
