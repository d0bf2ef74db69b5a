import ArgumentParser
import Control
import Foundation

/// `losactl watch [JOB]`.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a job until it ends: progress bars on a terminal, one line per event otherwise.",
        discussion: "Without a job id, follows the job running now, or else the next one to start. Exits 0 when the job succeeded, 1 when it failed or was cancelled. With --json, prints one JSON object per reply, one per line.")

    @Argument(help: ArgumentHelp("The job's id (default: the running job).", valueName: "job"))
    var id: Int?

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let encoder = GlobalOptions.encoder(pretty: false)
        var display = isatty(STDOUT_FILENO) == 1 && !options.json ? ProgressDisplay() : nil
        var last: Job?
        try await options.withDaemon(id.map { "watch \($0)" } ?? "watch") { client in
            try await client.watch(id: id) { update in
                if options.json {
                    print(String(decoding: try encoder.encode(update), as: UTF8.self))
                } else if display != nil {
                    display!.show(update)
                } else {
                    print(Self.line(update, first: last == nil))
                }
                fflush(nil)  // a pipe sees each line as it happens
                last = update.job
            }
        }
        display?.finish()
        guard let job = last else { return }
        if !options.json {
            var summary = "job \(job.id) \(job.state.rawValue)"
            if let output = job.output { summary += ": \(output)" }
            if let error = job.error { summary += ": \(error)" }
            print(summary)
        }
        if job.state == .failed || job.state == .cancelled { throw Losactl.Status.daemonError }
    }

    /// One update as a line of a log.
    static func line(_ update: WatchReply, first: Bool) -> String {
        let job = update.job
        guard let event = update.event else {
            let progress = job.progress.map { _ in ", " + Formatting.progress(job) } ?? ""
            return "job \(job.id) \(job.model): \(job.state.rawValue)\(progress)"
        }
        var line = "\(Formatting.time(event.time)) job \(job.id) \(event.kind): \(event.message)"
        if let progress = event.progress ?? (event.kind == "progress" ? job.progress : nil) {
            var progressJob = job
            progressJob.progress = progress
            line += " (\(Formatting.progress(progressJob))"
            if let loss = progress.loss { line += ", loss \(Formatting.number(loss))" }
            line += ")"
        }
        return line
    }
}

/// Bars for the whole job, the LoSA iteration and the training step, redrawn
/// in place with ANSI escapes; events other than progress scroll above them.
struct ProgressDisplay {
    private var drawnLines = 0
    private static let width = 30

    mutating func show(_ update: WatchReply) {
        clear()
        if let event = update.event, event.kind != "progress" {
            print("\(Formatting.time(event.time)) \(event.kind): \(event.message)")
        }
        let lines = Self.bars(update.job)
        for line in lines { print(line) }
        drawnLines = lines.count
    }

    mutating func finish() {
        clear()
    }

    private mutating func clear() {
        guard drawnLines > 0 else { return }
        print("\u{1B}[\(drawnLines)A", terminator: "")
        for _ in 0..<drawnLines { print("\u{1B}[2K") }
        print("\u{1B}[\(drawnLines)A", terminator: "")
        drawnLines = 0
    }

    static func bars(_ job: Job) -> [String] {
        var lines = ["job \(job.id) \(job.model): \(job.state.rawValue)"]
        guard let progress = job.progress else { return lines }
        let eta = progress.etaSeconds.map { "  ETA \(Quantities.duration($0))" } ?? ""
        lines.append("  \(pad("job")) \(bar(progress.fraction)) \(Quantities.percent(progress.fraction))  \(progress.stage)\(eta)")
        if let iteration = progress.iteration, let iterations = progress.iterations, iterations > 0 {
            lines.append("  \(pad("iteration")) \(bar(Double(iteration) / Double(iterations))) \(iteration)/\(iterations)")
        }
        if let step = progress.step, let steps = progress.steps, steps > 0 {
            let loss = progress.loss.map { "  loss \(Formatting.number($0))" } ?? ""
            lines.append("  \(pad("step")) \(bar(Double(step) / Double(steps))) \(step)/\(steps)\(loss)")
        }
        return lines
    }

    private static func pad(_ text: String) -> String {
        text.count >= 10 ? text : text + String(repeating: " ", count: 10 - text.count)
    }

    static func bar(_ fraction: Double) -> String {
        let filled = Int((min(max(fraction, 0), 1) * Double(width)).rounded(.down))
        return "[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "]"
    }
}
