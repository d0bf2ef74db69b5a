import ArgumentParser
import Control
import Foundation

/// The options every command takes: where the daemon is and how to print.
struct GlobalOptions: ParsableArguments {
    static let defaultSocket = "/run/losad/losad.sock"

    @Option(name: .long, help: ArgumentHelp("The daemon's control socket (default: $LOSAD_SOCKET, else \(defaultSocket)).",
                                             valueName: "path"),
            completion: .file())
    var socket: String?

    @Flag(name: .long, help: "Print the daemon's reply as JSON instead of a table.")
    var json = false

    /// `--socket`, else `LOSAD_SOCKET`, else the default.
    var socketPath: String {
        if let socket { return socket }
        if let environment = ProcessInfo.processInfo.environment["LOSAD_SOCKET"], !environment.isEmpty { return environment }
        return Self.defaultSocket
    }

    /// Runs `body` with a client of the daemon. A daemon error is printed as a
    /// sentence naming `action` and exits 1; an unreachable daemon exits 3.
    func withDaemon<Result: Sendable>(_ action: String, _ body: (ManagerClient) async throws -> Result) async throws -> Result {
        do {
            return try await VarlinkClient.withConnection(socketPath: socketPath) { try await body(ManagerClient($0)) }
        } catch let error as VarlinkError {
            printError("\(action) failed: \(Self.sentence(for: error))")
            throw Losactl.Status.daemonError
        } catch let error as VarlinkClientError {
            switch error {
            case .cannotConnect(let path, let code, let reason):
                if code == EACCES || code == EPERM {
                    printError("cannot open losad's socket \(path): \(reason). Changing or reading the daemon needs "
                               + "membership in the group that owns the socket (ls -l \(path)).")
                } else {
                    printError("cannot reach losad at \(path) (\(reason)): the daemon is not running. Start it with "
                               + "`sudo systemctl start losad`, or point --socket or LOSAD_SOCKET at the socket of one that runs.")
                }
                throw Losactl.Status.unreachable
            case .connectionClosed(let path):
                printError("\(action) failed: losad closed the connection at \(path) before it answered (did it stop?)")
                throw Losactl.Status.unreachable
            case .protocolViolation(let violation):
                printError("\(action) failed: losad's answer could not be read: \(violation)")
                throw Losactl.Status.daemonError
            }
        }
    }

    /// The user's sentence for a daemon error.
    static func sentence(for error: VarlinkError) -> String {
        if let error = ManagerError(error) { return error.description }
        if let error = VarlinkServiceError(error) { return error.description }
        return error.description
    }

    /// Prints `value` as indented JSON with sorted keys.
    func printJSON(_ value: some Encodable) throws {
        print(String(decoding: try Self.encoder(pretty: true).encode(value), as: UTF8.self))
    }

    static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// Writes `losactl: message` to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("losactl: \(message)\n".utf8))
}

extension JobState: ExpressibleByArgument {}
