import ArgumentParser
import Control

/// `losactl show JOB`.
struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one job: settings, results, figures per LoSA iteration and per layer, events.")

    @Argument(help: ArgumentHelp("The job's id.", valueName: "job"))
    var id: Int

    @Flag(name: .long, help: "Also list every layer of every iteration.")
    var layers = false

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let reply = try await options.withDaemon("show \(id)") { try await $0.getJob(id: id) }
        if options.json { return try options.printJSON(reply) }
        let job = reply.job
        var lines = [
            "job \(job.id): \(job.model), \(job.state.rawValue)",
            "input:      \(job.input)",
            "settings:   \(Formatting.settings(job.settings))",
        ]
        if let calibration = job.settings.calibration { lines.append("calibrate:  \(calibration)") }
        if let evaluation = job.settings.evaluation { lines.append("evaluate:   \(evaluation)") }
        lines.append("submitted:  \(Formatting.time(job.submittedAt))")
        if let started = job.startedAt { lines.append("started:    \(Formatting.time(started))") }
        if let finished = job.finishedAt { lines.append("finished:   \(Formatting.time(finished))") }
        if job.progress != nil { lines.append("progress:   \(Formatting.progress(job))") }
        if let output = job.output { lines.append("output:     \(output)") }
        if let error = job.error { lines.append("error:      \(error)") }
        let figures = reply.figures
        var results: [String] = []
        if let dense = figures.densePerplexity { results.append("dense \(Formatting.number(dense))") }
        if let pruned = figures.prunedPerplexity { results.append("pruned \(Formatting.number(pruned))") }
        if let final = figures.perplexity { results.append("LoSA \(Formatting.number(final))") }
        if let sparse = figures.sparsePerplexity { results.append("sparse file \(Formatting.number(sparse))") }
        if !results.isEmpty { lines.append("perplexity: " + results.joined(separator: ", ")) }
        if let sparsity = figures.measuredSparsity { lines.append("sparsity:   \(Quantities.percent(sparsity)) zeros measured in the output") }
        if let count = figures.parameterCount { lines.append("parameters: \(Formatting.grouped(count))") }
        if let peak = figures.peakMemoryBytes { lines.append("peak RSS:   \(Quantities.bytes(peak))") }
        if let size = figures.outputBytes { lines.append("size:       \(Quantities.bytes(size))") }
        if let size = figures.sparseOutputBytes { lines.append("sparse:     \(Quantities.bytes(size))") }
        if let input = figures.inputDecodeTokensPerSecond, let sparse = figures.sparseDecodeTokensPerSecond, input > 0 {
            lines.append("decode:     \(Formatting.number(sparse)) tokens/s from the sparse file, \(Formatting.number(input)) from the input "
                         + "(\(Formatting.number(sparse / input))x on this machine)")
        }
        if let seconds = figures.seconds { lines.append("took:       \(Quantities.duration(seconds))") }
        print(lines.joined(separator: "\n"))

        if !reply.iterations.isEmpty {
            var table = TextTable(["ITERATION", "SPARSITY", "MEAN RANK", "LOSS", "TIME"], rightAligned: [0, 1, 2, 3, 4])
            for iteration in reply.iterations {
                table.add(["\(iteration.iteration)", Formatting.number(iteration.sparsity), Formatting.number(iteration.meanRank),
                           iteration.loss.map(Formatting.number) ?? "-", iteration.seconds.map(Quantities.duration) ?? "-"])
            }
            print("\n" + table.rendered)
        }
        if layers {
            for iteration in reply.iterations where !iteration.layers.isEmpty {
                var table = TextTable(["LAYER", "SPARSITY", "RANK", "IMPORTANCE", "RECON ERROR"], rightAligned: [0, 1, 2, 3, 4])
                for layer in iteration.layers {
                    table.add(["\(layer.layer)", Formatting.number(layer.sparsity), "\(layer.rank)",
                               layer.importance.map(Formatting.number) ?? "-", layer.reconstructionError.map(Formatting.number) ?? "-"])
                }
                print("\niteration \(iteration.iteration)\n" + table.rendered)
            }
        }
        if !reply.events.isEmpty {
            var table = TextTable(["TIME", "EVENT", "MESSAGE"])
            for event in reply.events { table.add([Formatting.time(event.time), event.kind, event.message]) }
            print("\n" + table.rendered)
        }
    }
}
