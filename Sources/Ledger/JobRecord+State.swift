import GRDB

extension JobRecord {
    /// Where a job is in its life: queued → running → succeeded | failed | cancelled; a queued job
    /// may also be refused at admission or cancelled before it starts.
    public enum State: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
        case queued
        case running
        case succeeded
        case failed
        case cancelled
        /// Admission declined it (e.g. its estimated memory exceeds what the machine allows).
        case refused

        /// Whether the job will not move again on its own (only a retry re-queues it).
        public var isFinal: Bool {
            switch self {
            case .queued, .running: return false
            case .succeeded, .failed, .cancelled, .refused: return true
            }
        }
    }
}
