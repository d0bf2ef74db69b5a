import Compression
import Control
import Foundation

/// `losad compress`'s progress on standard error: a bar redrawn in place on a terminal, plain lines
/// otherwise (one per stage change and every few seconds).
final class ProgressBar: @unchecked Sendable {
    let terminal: Bool
    private let lock = NSLock()
    private var lastStage = ""
    private var lastLine = Date.distantPast
    private var drawn = false

    init(terminal: Bool) { self.terminal = terminal }

    func show(_ p: CompressionProgress) {
        lock.lock(); defer { lock.unlock() }
        let iteration = p.iterations > 0 && p.iteration > 0 ? " \(p.iteration)/\(p.iterations)" : ""
        let eta = p.remaining.map { " ETA " + Quantities.duration($0) } ?? ""
        let stage = "\(p.stage.rawValue)\(iteration)"
        if terminal {
            let width = 24, filled = Int((p.fraction * Double(width)).rounded())
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            var line = String(format: "\r[%@] %@ %@ — %@%@", bar, Quantities.percent(p.fraction), stage, p.message, eta)
            line = String(line.prefix(160))
            FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
            drawn = true
        } else if stage != lastStage || Date().timeIntervalSince(lastLine) >= 10 {
            let line = String(format: "%6.1fs %@ %@: %@%@\n", p.elapsed, Quantities.percent(p.fraction), stage, p.message, eta)
            FileHandle.standardError.write(Data(line.utf8))
            lastLine = Date()
        }
        lastStage = stage
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
    }
}

/// Set by SIGINT/SIGTERM: the job stops at its next step.
final class InterruptFlag: @unchecked Sendable {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0
    private static let shared = InterruptFlag()

    var isSet: Bool { InterruptFlag.flag != 0 }

    static func install() -> InterruptFlag {
        signal(SIGINT) { _ in InterruptFlag.flag = 1 }
        signal(SIGTERM) { _ in InterruptFlag.flag = 1 }
        return shared
    }
}
