import ModelFormats
import Transformer

/// An estimate of a job's peak memory, as named parts. The runner sizes them from the buffers the job
/// allocates (`CompressionJob.memoryEstimate`); parts are summed even where they need not coexist:
/// admission would rather refuse a job that might have fit than start one the OOM killer ends.
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
