/// A question the job asks between units of work (a block of calibration, a training step): should it stop?
/// The daemon answers from its cancel and shutdown flags; a foreground job from SIGINT.
public struct Cancellation: Sendable {
    let isCancelled: @Sendable () -> Bool

    public init(_ isCancelled: @escaping @Sendable () -> Bool) {
        self.isCancelled = isCancelled
    }

    public static let never = Cancellation { false }

    /// Throws `CompressionError.cancelled` once cancellation was asked for.
    public func check() throws(CompressionError) {
        if isCancelled() { throw .cancelled }
    }
}
