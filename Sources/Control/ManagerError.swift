/// The errors of `io.losa.Manager` (io.losa.Manager.varlink), each with its
/// parameters, and the sentence a user reads.
public enum ManagerError: VarlinkErrorConvertible, Equatable, CustomStringConvertible {
    /// No job has this id.
    case jobNotFound(id: Int)
    /// The job (or, with no id, the queue) is in `state`, which does not allow the call.
    case invalidState(id: Int?, state: String, reason: String)
    /// The caller may read but not change state.
    case permissionDenied(method: String, uid: UInt32, group: String?)
    /// The submitted path is not a model the daemon can compress.
    case invalidModel(path: String, reason: String)
    /// A submitted setting is not one the daemon accepts; `message` is the daemon's sentence naming the
    /// setting and its allowed values (the same words its configuration file and `losad compress` use).
    case invalidSetting(parameter: String, message: String)
    /// Reload found an invalid configuration and kept the running one.
    case invalidConfiguration(file: String, reason: String)
    /// Something failed inside the daemon.
    case internalError(message: String)

    public static let interface = "io.losa.Manager"

    private struct JobNotFoundParameters: Codable { var id: Int }
    private struct InvalidStateParameters: Codable { var id: Int?; var state: String; var reason: String }
    private struct PermissionDeniedParameters: Codable { var method: String; var uid: UInt32; var group: String? }
    private struct InvalidModelParameters: Codable { var path: String; var reason: String }
    private struct InvalidSettingParameters: Codable { var parameter: String; var message: String }
    private struct InvalidConfigurationParameters: Codable { var file: String; var reason: String }
    private struct InternalErrorParameters: Codable { var message: String }

    public var varlinkError: VarlinkError {
        let prefix = Self.interface + "."
        switch self {
        case .jobNotFound(let id):
            return VarlinkError(name: prefix + "JobNotFound", parameters: JobNotFoundParameters(id: id))
        case .invalidState(let id, let state, let reason):
            return VarlinkError(name: prefix + "InvalidState", parameters: InvalidStateParameters(id: id, state: state, reason: reason))
        case .permissionDenied(let method, let uid, let group):
            return VarlinkError(name: prefix + "PermissionDenied", parameters: PermissionDeniedParameters(method: method, uid: uid, group: group))
        case .invalidModel(let path, let reason):
            return VarlinkError(name: prefix + "InvalidModel", parameters: InvalidModelParameters(path: path, reason: reason))
        case .invalidSetting(let parameter, let message):
            return VarlinkError(name: prefix + "InvalidSetting", parameters: InvalidSettingParameters(parameter: parameter, message: message))
        case .invalidConfiguration(let file, let reason):
            return VarlinkError(name: prefix + "InvalidConfiguration", parameters: InvalidConfigurationParameters(file: file, reason: reason))
        case .internalError(let message):
            return VarlinkError(name: prefix + "InternalError", parameters: InternalErrorParameters(message: message))
        }
    }

    /// The manager error `error` carries, or nil when it is another one or its
    /// parameters do not match.
    public init?(_ error: VarlinkError) {
        guard error.name.hasPrefix(Self.interface + ".") else { return nil }
        do {
            switch error.shortName {
            case "JobNotFound":
                self = .jobNotFound(id: try error.decodeParameters(as: JobNotFoundParameters.self).id)
            case "InvalidState":
                let p = try error.decodeParameters(as: InvalidStateParameters.self)
                self = .invalidState(id: p.id, state: p.state, reason: p.reason)
            case "PermissionDenied":
                let p = try error.decodeParameters(as: PermissionDeniedParameters.self)
                self = .permissionDenied(method: p.method, uid: p.uid, group: p.group)
            case "InvalidModel":
                let p = try error.decodeParameters(as: InvalidModelParameters.self)
                self = .invalidModel(path: p.path, reason: p.reason)
            case "InvalidSetting":
                let p = try error.decodeParameters(as: InvalidSettingParameters.self)
                self = .invalidSetting(parameter: p.parameter, message: p.message)
            case "InvalidConfiguration":
                let p = try error.decodeParameters(as: InvalidConfigurationParameters.self)
                self = .invalidConfiguration(file: p.file, reason: p.reason)
            case "InternalError":
                self = .internalError(message: try error.decodeParameters(as: InternalErrorParameters.self).message)
            default:
                return nil
            }
        } catch {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .jobNotFound(let id):
            return "there is no job \(id)"
        case .invalidState(let id, let state, let reason):
            return id.map { "job \($0) is \(state): \(reason)" } ?? "the queue is \(state): \(reason)"
        case .permissionDenied(let method, let uid, let group):
            let who = group.map { "root, the daemon's user or a member of group \($0)" } ?? "root or the daemon's user"
            return "permission denied: \(method) changes the daemon's state, which only \(who) may do (you are uid \(uid))"
        case .invalidModel(let path, let reason):
            return "\(path) is not a model losad can compress: \(reason)"
        case .invalidSetting(_, let message):
            return message
        case .invalidConfiguration(let file, let reason):
            return "the configuration \(file) is invalid, so the running one stays: \(reason)"
        case .internalError(let message):
            return "the daemon failed: \(message)"
        }
    }
}
