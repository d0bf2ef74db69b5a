import Control
/// Whether a job may start given its estimated peak memory: it must fit under the configured
/// `scheduler.memory_limit`, the machine's available memory and the cgroup's headroom — the
/// smallest of them decides, and a refusal says which one and by how much.
public enum MemoryAdmission {
    public enum Decision: Sendable, Equatable {
        /// The job fits; `allowedBytes` is the bound it was held to.
        case admit(allowedBytes: Int)
        /// The job does not fit; the sentence is what the ledger records.
        case refuse(reason: String)
    }

    /// The tightest of `scheduler.memory_limit`, the machine's available memory and the cgroup's headroom, with
    /// what it is in words; nil when none is known (no /proc).
    public static func bound(availability: MemoryAvailability, limit: DaemonConfig.MemoryLimit) -> (bytes: Int, what: String)? {
        var bounds: [(bytes: Int, what: String)] = []
        if case .bytes(let bytes) = limit {
            bounds.append((bytes, "scheduler.memory_limit is \(Quantities.bytes(bytes))"))
        }
        if let available = availability.machineAvailable {
            bounds.append((available, "the machine has \(Quantities.bytes(available)) available (MemAvailable)"))
        }
        if let headroom = availability.cgroupHeadroom, let cgroupLimit = availability.cgroupLimit {
            let folder = availability.cgroupFolder.map { " (\($0))" } ?? ""
            bounds.append((headroom, "the service's cgroup\(folder) leaves \(Quantities.bytes(headroom)) of its \(Quantities.bytes(cgroupLimit)) limit"
                                     + " with \(Quantities.bytes(availability.cgroupUsage ?? 0)) in use"))
        }
        return bounds.min { $0.bytes < $1.bytes }
    }

    /// Compares `estimate` with what `availability` and `limit` allow. `job` names the job in the reason.
    public static func decide(job: String, estimate: MemoryEstimate, availability: MemoryAvailability,
                              limit: DaemonConfig.MemoryLimit) -> Decision {
        guard let binding = bound(availability: availability, limit: limit) else {
            // Nothing known to compare with (no /proc): admit rather than block every job.
            return .admit(allowedBytes: Int.max)
        }
        let total = estimate.totalBytes
        guard total > binding.bytes else { return .admit(allowedBytes: binding.bytes) }
        let parts = estimate.parts.filter { $0.bytes > 0 }.map { "\($0.name) \(Quantities.bytes($0.bytes))" }.joined(separator: ", ")
        return .refuse(reason: "\(job) needs an estimated \(Quantities.bytes(total)) at its peak (\(parts)), but \(binding.what); "
                             + "it is \(Quantities.bytes(total - binding.bytes)) short. Free memory, raise the limit, or use a smaller profile.")
    }
}
