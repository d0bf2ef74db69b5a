/// What the ledger refused to do, as a sentence an operator can act on.
public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No job has this id.
    case jobNotFound(Int64)
    /// No model has this id.
    case modelNotFound(Int64)
    /// The job is not in a state from which `operation` may move it.
    case invalidTransition(job: Int64, operation: String, from: JobRecord.State, allowed: [JobRecord.State])
    /// A field was given a value the schema does not accept.
    case invalidValue(field: String, value: String, reason: String)
    /// The database file could not be opened or migrated.
    case cannotOpen(path: String, reason: String)

    public var description: String {
        switch self {
        case .jobNotFound(let id):
            return "ledger: no job \(id)"
        case .modelNotFound(let id):
            return "ledger: no model \(id)"
        case let .invalidTransition(job, operation, from, allowed):
            let states = allowed.map(\.rawValue).joined(separator: " or ")
            return "ledger: cannot \(operation) job \(job): it is \(from.rawValue), and only a job that is \(states) can be"
        case let .invalidValue(field, value, reason):
            return "ledger: \(field) = \(value) is not accepted: \(reason)"
        case let .cannotOpen(path, reason):
            return "ledger: cannot open \(path): \(reason)"
        }
    }
}
