import ArgumentParser
import Control
import Foundation

/// losactl: the losad daemon's command-line client, over the varlink socket.
@main
struct Losactl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "losactl",
        abstract: "Show and steer losad, the daemon that compresses language models on this machine.",
        discussion: """
        losactl talks to losad over its control socket with the varlink protocol \
        (interface io.losa.Manager). Every command prints a human table by default \
        and the daemon's reply as JSON with --json.

        EXIT STATUS
          0  success
          1  the daemon answered with an error, or the watched job failed
          2  usage error
          3  cannot reach the daemon: it is not running, or its socket is not
             yours to open

        ENVIRONMENT
          LOSAD_SOCKET  the control socket, default \(GlobalOptions.defaultSocket);
                        --socket overrides it
        """,
        subcommands: [
            StatusCommand.self, JobsCommand.self, ShowCommand.self, SubmitCommand.self, CancelCommand.self,
            RetryCommand.self, PauseCommand.self, ResumeCommand.self, ReloadCommand.self, WatchCommand.self,
            MetricsCommand.self,
        ]
    )

    /// Exit statuses, as `--help` documents them.
    enum Status {
        static let daemonError = ExitCode(1)
        static let usage = ExitCode(2)
        static let unreachable = ExitCode(3)
    }

    /// Runs the command; usage errors exit 2 rather than argument-parser's 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(Status.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}
