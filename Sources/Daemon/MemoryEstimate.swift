import ModelFormats
import Transformer

/// An estimate of a job's peak memory, as named parts that add up to it. The runner sizes them from the buffers
/// the job allocates (`CompressionJob.memoryPlan`: what lives the whole job plus its largest phase).
public struct MemoryEstimate: Sendable, Equatable {
    /// One named share of the estimate.
    public struct Part: Sendable, Equatable {
        public var name: String
        public var bytes: Int

        public init(name: String, bytes: Int) {
            self.name = name
            self.bytes = bytes
        }
    }

    public var parts: [Part]

    /// An estimate made of given parts (a runner that sizes its job itself; tests).
    public init(parts: [Part]) { self.parts = parts }

    /// Bytes of all parts together.
    public var totalBytes: Int { parts.reduce(0) { $0 + $1.bytes } }
}
