import ArgumentParser
import Control

/// `losactl cancel JOB`.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a queued or running job (a running one stops within seconds).")

    @Argument(help: ArgumentHelp("The job's id.", valueName: "job"))
    var id: Int

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let reply = try await options.withDaemon("cancel \(id)") { try await $0.cancel(id: id) }
        if options.json { return try options.printJSON(reply) }
        print("job \(reply.job.id) \(reply.job.state.rawValue): \(reply.job.model)")
    }
}

/// `losactl retry JOB`.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Queue a failed or cancelled job again with the same input and settings.")

    @Argument(help: ArgumentHelp("The job's id.", valueName: "job"))
    var id: Int

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let reply = try await options.withDaemon("retry \(id)") { try await $0.retry(id: id) }
        if options.json { return try options.printJSON(reply) }
        print("job \(reply.job.id) \(reply.job.state.rawValue): \(reply.job.model)")
    }
}
