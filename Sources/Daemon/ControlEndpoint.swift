/// The control server's place in the daemon: `DaemonService` starts it once the ledger is open
/// and before it reports READY=1, and stops it last, after the jobs have stopped. The varlink
/// server (module Control) conforms and answers `losactl` by calling `Manager`.
public protocol ControlEndpoint: Sendable {
    /// Starts listening — on the first of `passedSockets` that is a listening AF_UNIX stream socket
    /// (systemd socket activation, losad.socket), else on `configuration.socketPath` with its mode
    /// and group — and serves `manager` until `stop()`. Throws when it cannot listen; the daemon
    /// then exits with that error.
    func start(manager: Manager, configuration: DaemonConfig.Control, passedSockets: [SocketActivation.PassedSocket]) throws

    /// Stops accepting connections and ends open ones (a `watch` stream ends when the daemon's
    /// update feed finishes). Called once, at shutdown.
    func stop()
}
