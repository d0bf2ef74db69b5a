/// Why a runner stopped without an outcome, when it was not a failure of its own.
public enum JobRunnerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The runner stopped because `JobContext` asked it to.
    case stopped(JobContext.StopReason)

    public var description: String {
        switch self {
        case .stopped(.cancelled(let reason)): return "job stopped: \(reason)"
        case .stopped(.daemonStopping(let reason)): return "job stopped: \(reason)"
        }
    }
}
