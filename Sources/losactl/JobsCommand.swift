import ArgumentParser
import Control
import Foundation

/// `losactl jobs`.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List jobs, newest first.")

    @Option(name: .long, help: ArgumentHelp("Only jobs in this state.", valueName: "state"))
    var state: JobState?

    @Option(name: .long, help: ArgumentHelp("At most this many jobs (default \(ListJobsParameters.defaultLimit)).", valueName: "n"))
    var limit: Int?

    @OptionGroup var options: GlobalOptions

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more, not \(limit)") }
    }

    func run() async throws {
        let reply = try await options.withDaemon("jobs") {
            try await $0.listJobs(ListJobsParameters(state: state, limit: limit))
        }
        if options.json { return try options.printJSON(reply) }
        guard !reply.jobs.isEmpty else {
            print(state.map { "no \($0.rawValue) jobs" } ?? "no jobs")
            return
        }
        var table = TextTable(["ID", "STATE", "MODEL", "SETTINGS", "SUBMITTED", "NOW"], rightAligned: [0])
        for job in reply.jobs {
            table.add(["\(job.id)", job.state.rawValue, job.model, Formatting.settings(job.settings),
                       Formatting.time(job.submittedAt), Self.note(job)])
        }
        print(table.rendered)
    }

    /// The running job's progress, the failed job's reason, the finished job's output.
    static func note(_ job: Job) -> String {
        switch job.state {
        case .running: return Formatting.progress(job)
        case .failed: return job.error.map { $0.count > 60 ? $0.prefix(59) + "…" : $0 } ?? "-"
        case .succeeded: return job.output.map { ($0 as NSString).lastPathComponent } ?? "-"
        case .queued, .cancelled: return "-"
        }
    }
}
