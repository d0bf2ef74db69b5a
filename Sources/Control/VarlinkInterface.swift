import Foundation

/// One varlink interface a server serves: its definition text and a handler
/// for its methods.
public protocol VarlinkInterface: Sendable {
    /// The interface name, like `io.losa.Manager`.
    var name: String { get }
    /// The interface definition, returned verbatim by `GetInterfaceDescription`.
    var definition: String { get }
    /// Answers one call to a method of this interface. Never throws: every
    /// failure is an error reply.
    func handle(_ call: VarlinkCall, caller: PeerCredentials) async -> VarlinkResponse
}

/// What a method answers.
public enum VarlinkResponse: Sendable {
    /// One reply message (`VarlinkReply.encode`), without its NUL.
    case reply(Data)
    /// One error reply.
    case error(VarlinkError)
    /// Several replies, for a call made with `more`: every item but the last
    /// has `continues` true, and the stream ends after the last one (a stream
    /// that ends earlier closes the connection, since the call cannot end well).
    case stream(AsyncStream<VarlinkStreamItem>)
}

/// One of several replies.
public enum VarlinkStreamItem: Sendable {
    /// A reply message; `continues` says whether more replies follow.
    case reply(Data, continues: Bool)
    /// An error reply, which ends the call.
    case error(VarlinkError)
}

/// Who the service says it is, for `org.varlink.service.GetInfo`.
public struct VarlinkServiceInfo: Sendable, Equatable, Codable {
    public var vendor: String
    public var product: String
    public var version: String
    public var url: String

    public init(vendor: String, product: String, version: String, url: String) {
        self.vendor = vendor
        self.product = product
        self.version = version
        self.url = url
    }
}

/// Routes calls to the interfaces a server serves, and answers the standard
/// interface `org.varlink.service` (https://varlink.org/Service) itself.
public struct VarlinkDispatcher: Sendable {
    public static let serviceInterface = "org.varlink.service"
    /// The definition of `org.varlink.service`, as the specification gives it.
    public static let serviceDefinition = String(decoding: PackageResources.org_varlink_service_varlink, as: UTF8.self)

    public let info: VarlinkServiceInfo
    private let interfaces: [String: any VarlinkInterface]
    /// The interface names, in `GetInfo` order (the standard one first).
    public let interfaceNames: [String]

    public init(info: VarlinkServiceInfo, interfaces: [any VarlinkInterface]) {
        self.info = info
        self.interfaces = Dictionary(interfaces.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.interfaceNames = [Self.serviceInterface] + interfaces.map(\.name)
    }

    struct GetInfoReply: Codable, Equatable {
        var vendor: String
        var product: String
        var version: String
        var url: String
        var interfaces: [String]
    }

    struct GetInterfaceDescriptionParameters: Codable { var interface: String }
    struct GetInterfaceDescriptionReply: Codable { var description: String }
    struct NoParameters: Codable {}

    /// The answer to `call` from `caller`.
    public func handle(_ call: VarlinkCall, caller: PeerCredentials) async -> VarlinkResponse {
        if call.upgrade {
            return .error(VarlinkServiceError.invalidParameter(parameter: "upgrade").varlinkError)
        }
        guard let interfaceName = call.interface, !interfaceName.isEmpty else {
            return .error(VarlinkServiceError.methodNotFound(method: call.method).varlinkError)
        }
        if interfaceName == Self.serviceInterface {
            return answerService(call)
        }
        guard let interface = interfaces[interfaceName] else {
            return .error(VarlinkServiceError.interfaceNotFound(interface: interfaceName).varlinkError)
        }
        return await interface.handle(call, caller: caller)
    }

    private func answerService(_ call: VarlinkCall) -> VarlinkResponse {
        do {
            switch call.member {
            case "GetInfo":
                _ = try call.parameters(as: NoParameters.self)
                return .reply(try VarlinkReply.encode(GetInfoReply(
                    vendor: info.vendor, product: info.product, version: info.version, url: info.url,
                    interfaces: interfaceNames)))
            case "GetInterfaceDescription":
                let name = try call.parameters(as: GetInterfaceDescriptionParameters.self).interface
                let definition: String
                if name == Self.serviceInterface {
                    definition = Self.serviceDefinition
                } else if let interface = interfaces[name] {
                    definition = interface.definition
                } else {
                    throw VarlinkServiceError.interfaceNotFound(interface: name)
                }
                return .reply(try VarlinkReply.encode(GetInterfaceDescriptionReply(description: definition)))
            default:
                throw VarlinkServiceError.methodNotFound(method: call.method)
            }
        } catch let error as VarlinkErrorConvertible {
            return .error(error.varlinkError)
        } catch {
            return .error(VarlinkServiceError.invalidParameter(parameter: "parameters").varlinkError)
        }
    }
}
