import ArgumentParser
import Control

/// `losactl status`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the daemon is doing: its state, the queue, the running jobs, device and kernel.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let status = try await options.withDaemon("status") { try await $0.status() }
        if options.json { return try options.printJSON(status) }
        print("""
        losad \(status.version): \(status.state.rawValue), up \(Quantities.duration(status.uptimeSeconds))
        queue:   \(status.queued) queued, \(status.running.count) running
        device:  \(status.device)
        kernel:  OpenBLAS \(status.kernel)
        inbox:   \(status.inbox)
        outbox:  \(status.outbox)
        """)
        if !status.running.isEmpty {
            var table = TextTable(["ID", "MODEL", "PROGRESS"], rightAligned: [0])
            for job in status.running { table.add(["\(job.id)", job.model, Formatting.progress(job)]) }
            print("\n" + table.rendered)
        }
    }
}
