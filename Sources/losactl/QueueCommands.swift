import ArgumentParser
import Control

/// `losactl pause`.
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Hold the queue: no new job starts until resume; running jobs finish.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let reply = try await options.withDaemon("pause") { try await $0.pause() }
        if options.json { return try options.printJSON(reply) }
        print("losad is \(reply.state.rawValue)")
    }
}

/// `losactl resume`.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Let the queue start jobs again.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let reply = try await options.withDaemon("resume") { try await $0.resume() }
        if options.json { return try options.printJSON(reply) }
        print("losad is \(reply.state.rawValue)")
    }
}

/// `losactl reload`.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make the daemon read its configuration file again (as SIGHUP does).")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        try await options.withDaemon("reload") { try await $0.reload() }
        if options.json { return try options.printJSON(NoParameters()) }
        print("configuration reloaded")
    }
}
