import ArgumentParser
import Control

/// `losactl metrics`.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the daemon's counters and gauges in the Prometheus text format (for node_exporter's textfile collector).")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let reply = try await options.withDaemon("metrics") { try await $0.metrics() }
        if options.json { return try options.printJSON(reply) }
        print(Metric.prometheusText(reply.metrics), terminator: "")
    }
}
