import ArgumentParser
import Compression
import Daemon
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
        subcommands: [RunCommand.self, CompressCommand.self, ReportCommand.self, VersionCommand.self, InspectCommand.self, EvalCommand.self,
                      GenerateCommand.self, BenchCommand.self, SparsifyCommand.self]
    )

    /// Logs go to standard error — to the journal with structured fields when systemd connected
    /// standard error to it — at `LOSAD_LOG_LEVEL` (trace … critical; default info for the daemon,
    /// notice for the other commands, so that their output on standard output stays clean for scripts).
    static func main() {
        let daemon = CommandLine.arguments.dropFirst().first == "run"
        let level = ProcessInfo.processInfo.environment["LOSAD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? (daemon ? .info : .notice)
        LoggingSystem.bootstrap { label in JournalLogHandler.make(label: label, level: level) }
        main(nil)
    }
}
