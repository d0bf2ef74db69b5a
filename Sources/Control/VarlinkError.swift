import Foundation

/// An error as varlink carries it: a qualified name, like
/// `io.losa.Manager.JobNotFound`, and its parameters, a JSON object.
/// The client throws it for an error reply; a server answers with it.
public struct VarlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// A JSON object, keys sorted.
    public var parameters: Data

    /// An error without parameters.
    public init(name: String) {
        self.name = name
        self.parameters = Data("{}".utf8)
    }

    /// An error whose parameters are `parameters`, which must encode as a JSON
    /// object (a struct; nil optionals are left out).
    public init<P: Encodable>(name: String, parameters: P) {
        self.name = name
        self.parameters = (try? VarlinkJSON.encoder.encode(parameters)) ?? Data("{}".utf8)
    }

    /// An error whose parameters arrived as JSON text.
    init(name: String, parameters: Data) {
        self.name = name
        self.parameters = parameters
    }

    /// The parameters decoded as `P`.
    public func decodeParameters<P: Decodable>(as type: P.Type) throws -> P {
        try JSONDecoder().decode(P.self, from: parameters)
    }

    /// The name's last component, like `JobNotFound`.
    public var shortName: String {
        name.lastIndex(of: ".").map { String(name[name.index(after: $0)...]) } ?? name
    }

    public var description: String {
        let text = String(decoding: parameters, as: UTF8.self)
        return text == "{}" ? name : "\(name) \(text)"
    }
}

/// Something that answers a varlink call as an error reply.
public protocol VarlinkErrorConvertible: Error {
    var varlinkError: VarlinkError { get }
}

extension VarlinkError: VarlinkErrorConvertible {
    public var varlinkError: VarlinkError { self }
}

/// The standard errors of `org.varlink.service` (https://varlink.org/Service).
public enum VarlinkServiceError: VarlinkErrorConvertible, Equatable, CustomStringConvertible {
    case interfaceNotFound(interface: String)
    case methodNotFound(method: String)
    case methodNotImplemented(method: String)
    case invalidParameter(parameter: String)
    case permissionDenied
    case expectedMore

    public static let interface = "org.varlink.service"

    private struct InterfaceParameters: Codable { var interface: String }
    private struct MethodParameters: Codable { var method: String }
    private struct ParameterParameters: Codable { var parameter: String }

    public var varlinkError: VarlinkError {
        let prefix = Self.interface + "."
        switch self {
        case .interfaceNotFound(let interface):
            return VarlinkError(name: prefix + "InterfaceNotFound", parameters: InterfaceParameters(interface: interface))
        case .methodNotFound(let method):
            return VarlinkError(name: prefix + "MethodNotFound", parameters: MethodParameters(method: method))
        case .methodNotImplemented(let method):
            return VarlinkError(name: prefix + "MethodNotImplemented", parameters: MethodParameters(method: method))
        case .invalidParameter(let parameter):
            return VarlinkError(name: prefix + "InvalidParameter", parameters: ParameterParameters(parameter: parameter))
        case .permissionDenied:
            return VarlinkError(name: prefix + "PermissionDenied")
        case .expectedMore:
            return VarlinkError(name: prefix + "ExpectedMore")
        }
    }

    /// The standard error `error` carries, or nil when it is another one.
    public init?(_ error: VarlinkError) {
        guard error.name.hasPrefix(Self.interface + ".") else { return nil }
        switch error.shortName {
        case "InterfaceNotFound":
            self = .interfaceNotFound(interface: (try? error.decodeParameters(as: InterfaceParameters.self))?.interface ?? "")
        case "MethodNotFound":
            self = .methodNotFound(method: (try? error.decodeParameters(as: MethodParameters.self))?.method ?? "")
        case "MethodNotImplemented":
            self = .methodNotImplemented(method: (try? error.decodeParameters(as: MethodParameters.self))?.method ?? "")
        case "InvalidParameter":
            self = .invalidParameter(parameter: (try? error.decodeParameters(as: ParameterParameters.self))?.parameter ?? "")
        case "PermissionDenied": self = .permissionDenied
        case "ExpectedMore": self = .expectedMore
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .interfaceNotFound(let interface): return "the service has no interface \(interface)"
        case .methodNotFound(let method): return "the service has no method \(method)"
        case .methodNotImplemented(let method): return "the service does not implement \(method)"
        case .invalidParameter(let parameter): return "parameter \"\(parameter)\" is missing or invalid"
        case .permissionDenied: return "permission denied"
        case .expectedMore: return "the method streams its replies and must be called with more"
        }
    }
}
