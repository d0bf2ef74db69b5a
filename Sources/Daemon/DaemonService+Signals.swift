#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension DaemonService {
    /// SIGTERM and SIGINT stop, SIGHUP reloads; the signals are ignored by default handlers so the
    /// dispatch sources see them.
    func installSignalHandlers() -> [any DispatchSourceSignal] {
        let queue = DispatchQueue(label: "losad.signals")
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                switch number {
                case SIGHUP:
                    DispatchQueue.global().async { _ = try? self.reload() }
                case SIGINT where self.stopOnce.load(ordering: .acquiring):
                    self.logger.warning("second SIGINT: exiting now; running jobs resume from their checkpoints at the next start")
                    exit(130)
                default:
                    self.requestStop(reason: "received \(name)")
                }
            }
            source.resume()
            sources.append(source)
        }
        return sources
    }
}
