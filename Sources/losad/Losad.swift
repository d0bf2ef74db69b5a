import ArgumentParser
import Compression
import Foundation
import Kernels
import Logging

/// The losad executable: the daemon and its foreground subcommands.
@main
struct Losad: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "losad",
        abstract: "Compress language models on this machine with LoSA (dynamic low-rank sparse adaptation).",
        version: version,
        subcommands: [VersionCommand.self, InspectCommand.self, EvalCommand.self, GenerateCommand.self, CompressCommand.self]
    )

    /// Logs go to standard error, at `LOSAD_LOG_LEVEL` (trace … critical; default notice),
    /// so that a command's output on standard output stays clean for scripts.
    static func main() {
        let level = ProcessInfo.processInfo.environment["LOSAD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        losadVersionString = version
        main(nil)
    }
}
