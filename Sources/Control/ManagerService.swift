/// What the daemon implements to serve `io.losa.Manager`
/// (io.losa.Manager.varlink). The server has already checked the caller's
/// right to change state (see `AccessPolicy`) and the parameters' types;
/// `caller` is there for the ledger and the logs.
///
/// Throw a `ManagerError` (or `VarlinkServiceError.invalidParameter` for a
/// setting the daemon does not accept); any other error reaches the client as
/// `io.losa.Manager.InternalError` with the error's description.
public protocol ManagerService: Sendable {
    /// The daemon's state, queue, running jobs, device and kernel.
    func status(caller: PeerCredentials) async throws -> StatusReply
    /// Jobs newest first, filtered by state, at most `parameters.limit`
    /// (nil: `ListJobsParameters.defaultLimit`).
    func listJobs(_ parameters: ListJobsParameters, caller: PeerCredentials) async throws -> ListJobsReply
    /// One job with its figures and events, or `ManagerError.jobNotFound`.
    func getJob(id: Int, caller: PeerCredentials) async throws -> GetJobReply
    /// Queues the model at `parameters.path` (absolute, checked by the server).
    func submit(_ parameters: SubmitParameters, caller: PeerCredentials) async throws -> JobReply
    /// Cancels a queued or running job.
    func cancel(id: Int, caller: PeerCredentials) async throws -> JobReply
    /// Queues a failed or cancelled job again.
    func retry(id: Int, caller: PeerCredentials) async throws -> JobReply
    /// Holds the queue.
    func pause(caller: PeerCredentials) async throws -> QueueReply
    /// Lets the queue run.
    func resume(caller: PeerCredentials) async throws -> QueueReply
    /// Reads the configuration again; `ManagerError.invalidConfiguration` keeps the old one.
    func reload(caller: PeerCredentials) async throws
    /// Follows job `id` (nil: the running one, or else the next to start): the
    /// stream yields the job as it is now, then one update per event, and
    /// finishes right after the update whose job is in a final state. When the
    /// client goes away the stream's consumer is cancelled, so its
    /// `onTermination` is the place to unsubscribe.
    func watch(id: Int?, caller: PeerCredentials) async throws -> AsyncThrowingStream<WatchReply, any Error>
    /// Counters and gauges.
    func metrics(caller: PeerCredentials) async throws -> MetricsReply
}
