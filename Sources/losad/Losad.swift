import ArgumentParser
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
        subcommands: [VersionCommand.self, InspectCommand.self, EvalCommand.self, GenerateCommand.self]
    )
}
