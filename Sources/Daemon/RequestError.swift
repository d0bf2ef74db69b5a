import Compression

/// Why a daemon operation (`Manager`) was refused, as a sentence for the user and a stable code the
/// control protocol turns into an error name (io.losa.Manager.<code>).
public enum RequestError: Error, Equatable, Sendable, CustomStringConvertible {
    case jobNotFound(Int64)
    /// The path is not a model losad can read.
    case invalidModel(path: String, reason: String)
    /// A submitted setting is not one losad accepts (`CompressionError.invalidSetting`, naming the key and the
    /// allowed values).
    case invalidSetting(CompressionError)
    /// The job is not in a state the operation applies to (e.g. retrying a running job).
    case invalidState(job: Int64, reason: String)
    /// The configuration file was not accepted; the running configuration stays in force.
    case invalidConfiguration(String)
    /// The daemon is stopping and takes no new work.
    case shuttingDown
    /// The ledger or the file system failed underneath.
    case internalError(String)

    /// The error's name in the control protocol.
    public var code: String {
        switch self {
        case .jobNotFound: return "JobNotFound"
        case .invalidModel: return "InvalidModel"
        case .invalidSetting: return "InvalidSetting"
        case .invalidState: return "InvalidState"
        case .invalidConfiguration: return "InvalidConfiguration"
        case .shuttingDown: return "ShuttingDown"
        case .internalError: return "InternalError"
        }
    }

    public var description: String {
        switch self {
        case .jobNotFound(let id): return "there is no job \(id) (losactl jobs lists them)"
        case let .invalidModel(path, reason): return "\(path) is not a model losad can compress: \(reason)"
        case .invalidSetting(let error): return "\(error)"
        case let .invalidState(job, reason): return "job \(job): \(reason)"
        case .invalidConfiguration(let reason): return "the configuration was not reloaded: \(reason); the running one stays in force"
        case .shuttingDown: return "losad is stopping and takes no new work"
        case .internalError(let reason): return "losad could not do it: \(reason)"
        }
    }
}
