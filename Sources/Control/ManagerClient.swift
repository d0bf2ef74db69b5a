/// Typed calls of `io.losa.Manager` and `org.varlink.service` over one
/// varlink connection. Error replies are thrown as `VarlinkError`;
/// `ManagerError(_:)` and `VarlinkServiceError(_:)` read them.
public struct ManagerClient {
    public let connection: VarlinkConnection
    private let prefix = ManagerInterface.interfaceName + "."

    public init(_ connection: VarlinkConnection) {
        self.connection = connection
    }

    /// `org.varlink.service.GetInfo`: vendor, product, version, url and interfaces.
    public func info() async throws -> (info: VarlinkServiceInfo, interfaces: [String]) {
        let reply = try await connection.call("org.varlink.service.GetInfo", NoParameters(),
                                              returning: VarlinkDispatcher.GetInfoReply.self)
        return (VarlinkServiceInfo(vendor: reply.vendor, product: reply.product, version: reply.version, url: reply.url),
                reply.interfaces)
    }

    /// `org.varlink.service.GetInterfaceDescription`: the definition text of `interface`.
    public func interfaceDescription(_ interface: String) async throws -> String {
        try await connection.call("org.varlink.service.GetInterfaceDescription",
                                  VarlinkDispatcher.GetInterfaceDescriptionParameters(interface: interface),
                                  returning: VarlinkDispatcher.GetInterfaceDescriptionReply.self).description
    }

    public func ping() async throws {
        _ = try await connection.call(prefix + "Ping", NoParameters(), returning: NoParameters.self)
    }

    public func status() async throws -> StatusReply {
        try await connection.call(prefix + "Status", NoParameters(), returning: StatusReply.self)
    }

    public func listJobs(_ parameters: ListJobsParameters = ListJobsParameters()) async throws -> ListJobsReply {
        try await connection.call(prefix + "ListJobs", parameters, returning: ListJobsReply.self)
    }

    public func getJob(id: Int) async throws -> GetJobReply {
        try await connection.call(prefix + "GetJob", JobIDParameters(id: id), returning: GetJobReply.self)
    }

    public func submit(_ parameters: SubmitParameters) async throws -> JobReply {
        try await connection.call(prefix + "Submit", parameters, returning: JobReply.self)
    }

    public func cancel(id: Int) async throws -> JobReply {
        try await connection.call(prefix + "Cancel", JobIDParameters(id: id), returning: JobReply.self)
    }

    public func retry(id: Int) async throws -> JobReply {
        try await connection.call(prefix + "Retry", JobIDParameters(id: id), returning: JobReply.self)
    }

    public func pause() async throws -> QueueReply {
        try await connection.call(prefix + "Pause", NoParameters(), returning: QueueReply.self)
    }

    public func resume() async throws -> QueueReply {
        try await connection.call(prefix + "Resume", NoParameters(), returning: QueueReply.self)
    }

    public func reload() async throws {
        _ = try await connection.call(prefix + "Reload", NoParameters(), returning: NoParameters.self)
    }

    /// Follows job `id` (nil: the running one), handing each update to `body`
    /// until the job ends.
    public func watch(id: Int?, _ body: (WatchReply) async throws -> Void) async throws {
        try await connection.callMore(prefix + "Watch", WatchParameters(id: id), returning: WatchReply.self, body)
    }

    public func metrics() async throws -> MetricsReply {
        try await connection.call(prefix + "Metrics", NoParameters(), returning: MetricsReply.self)
    }
}
