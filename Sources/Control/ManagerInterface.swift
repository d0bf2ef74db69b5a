import Foundation

/// Serves `io.losa.Manager` from a `ManagerService`: decodes each call's
/// parameters into the method's type, refuses state changes to callers the
/// `AccessPolicy` does not allow, and turns replies and errors into varlink
/// messages.
public struct ManagerInterface: VarlinkInterface {
    public static let interfaceName = "io.losa.Manager"
    /// io.losa.Manager.varlink, compiled into the module.
    public static let interfaceDefinition = String(decoding: PackageResources.io_losa_Manager_varlink, as: UTF8.self)

    /// The methods that change state and so need `AccessPolicy.mayChangeState`.
    public static let stateChangingMethods: Set<String> = ["Submit", "Cancel", "Retry", "Pause", "Resume", "Reload"]

    public let service: any ManagerService
    public let access: AccessPolicy

    public var name: String { Self.interfaceName }
    public var definition: String { Self.interfaceDefinition }

    public init(service: any ManagerService, access: AccessPolicy) {
        self.service = service
        self.access = access
    }

    public func handle(_ call: VarlinkCall, caller: PeerCredentials) async -> VarlinkResponse {
        do {
            if Self.stateChangingMethods.contains(call.member), !access.mayChangeState(caller) {
                throw ManagerError.permissionDenied(method: call.method, uid: caller.uid, group: access.controlGroupName)
            }
            switch call.member {
            case "Ping":
                _ = try call.parameters(as: NoParameters.self)
                return .reply(try VarlinkReply.encode(NoParameters()))
            case "Status":
                _ = try call.parameters(as: NoParameters.self)
                return .reply(try VarlinkReply.encode(try await service.status(caller: caller)))
            case "ListJobs":
                let parameters = try call.parameters(as: ListJobsParameters.self)
                if let limit = parameters.limit, limit < 0 { throw VarlinkServiceError.invalidParameter(parameter: "limit") }
                return .reply(try VarlinkReply.encode(try await service.listJobs(parameters, caller: caller)))
            case "GetJob":
                let id = try call.parameters(as: JobIDParameters.self).id
                return .reply(try VarlinkReply.encode(try await service.getJob(id: id, caller: caller)))
            case "Submit":
                let parameters = try call.parameters(as: SubmitParameters.self)
                try Self.validate(parameters)
                return .reply(try VarlinkReply.encode(try await service.submit(parameters, caller: caller)))
            case "Cancel":
                let id = try call.parameters(as: JobIDParameters.self).id
                return .reply(try VarlinkReply.encode(try await service.cancel(id: id, caller: caller)))
            case "Retry":
                let id = try call.parameters(as: JobIDParameters.self).id
                return .reply(try VarlinkReply.encode(try await service.retry(id: id, caller: caller)))
            case "Pause":
                _ = try call.parameters(as: NoParameters.self)
                return .reply(try VarlinkReply.encode(try await service.pause(caller: caller)))
            case "Resume":
                _ = try call.parameters(as: NoParameters.self)
                return .reply(try VarlinkReply.encode(try await service.resume(caller: caller)))
            case "Reload":
                _ = try call.parameters(as: NoParameters.self)
                try await service.reload(caller: caller)
                return .reply(try VarlinkReply.encode(NoParameters()))
            case "Watch":
                let id = try call.parameters(as: WatchParameters.self).id
                // Following a job for nobody would only hold a subscription.
                if call.oneway { return .reply(try VarlinkReply.encode(NoParameters())) }
                guard call.more else { throw VarlinkServiceError.expectedMore }
                return .stream(Self.replies(of: try await service.watch(id: id, caller: caller)))
            case "Metrics":
                _ = try call.parameters(as: NoParameters.self)
                return .reply(try VarlinkReply.encode(try await service.metrics(caller: caller)))
            default:
                throw VarlinkServiceError.methodNotFound(method: call.method)
            }
        } catch {
            return .error(Self.varlinkError(error))
        }
    }

    /// Checks what the interface itself promises about `Submit`: an absolute
    /// path. The daemon checks the settings (InvalidSetting names the one it refuses).
    static func validate(_ parameters: SubmitParameters) throws(VarlinkServiceError) {
        guard parameters.path.hasPrefix("/"), !parameters.path.contains("\0") else {
            throw .invalidParameter(parameter: "path")
        }
    }

    /// The varlink error a thrown error becomes.
    static func varlinkError(_ error: any Error) -> VarlinkError {
        if let error = error as? any VarlinkErrorConvertible { return error.varlinkError }
        return ManagerError.internalError(message: String(describing: error)).varlinkError
    }

    /// The service's watch updates as varlink replies: `continues` until the
    /// update whose job is final, which is the last. The service's stream is
    /// consumed by a task that is cancelled as soon as the server stops
    /// listening (the client went away), so the service can unsubscribe.
    static func replies(of updates: AsyncThrowingStream<WatchReply, any Error>) -> AsyncStream<VarlinkStreamItem> {
        let (stream, continuation) = AsyncStream.makeStream(of: VarlinkStreamItem.self, bufferingPolicy: .bufferingNewest(64))
        let producer = Task {
            do {
                for try await update in updates {
                    let last = update.job.state.isFinal
                    continuation.yield(.reply(try VarlinkReply.encode(update, continues: !last), continues: !last))
                    if last { break }
                }
            } catch is CancellationError {
            } catch {
                continuation.yield(.error(varlinkError(error)))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in producer.cancel() }
        return stream
    }
}
