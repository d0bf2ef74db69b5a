import ArgumentParser
import Control
import Foundation

/// `losactl submit PATH`.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Queue a model that is not in the inbox: a .gguf file or a Hugging Face folder.",
        discussion: "Settings left out take the daemon's configured defaults; the daemon checks the values, and refuses one it does not accept with the sentence its configuration file and `losad compress` give. The daemon reads the model as its own user, so the path must be readable by it.")

    @Argument(help: ArgumentHelp("The model: a .gguf file or a Hugging Face folder.", valueName: "path"), completion: .file())
    var path: String

    @Option(name: .long, help: ArgumentHelp("Target average sparsity, from 0.01 to 0.95 (e.g. 0.5).", valueName: "s"))
    var sparsity: Double?

    @Option(name: .long, help: ArgumentHelp("Pruning score: magnitude, wanda or sparsegpt.", valueName: "method"))
    var method: String?

    @Option(name: .long, help: ArgumentHelp("Where zeros may fall: unstructured, or N:M such as 2:4 or 4:8.", valueName: "pattern"))
    var pattern: String?

    @Option(name: .long, help: ArgumentHelp("Sparsity per layer: rmi or uniform.", valueName: "allocation"))
    var allocation: String?

    @Option(name: .long, help: ArgumentHelp("Quality recovery: losa, lora or none.", valueName: "recovery"))
    var recovery: String?

    @Option(name: .long, help: ArgumentHelp("Training budget: quick, standard or paper.", valueName: "profile"))
    var profile: String?

    @Option(name: .customLong("calib"), help: ArgumentHelp("Calibration and training text file (default: the built-in corpus).", valueName: "file"),
            completion: .file())
    var calibration: String?

    @Option(name: .customLong("eval"), help: ArgumentHelp("Evaluation text file (default: the built-in corpus).", valueName: "file"),
            completion: .file())
    var evaluation: String?

    @Option(name: .long, help: ArgumentHelp("The files to write: gguf (the interoperable export), sparse (losad's sparse file), or gguf,sparse.",
                                            valueName: "outputs"))
    var outputs: String?

    @Option(name: .long, help: ArgumentHelp("Training objective: ce, kd, ce+kd, ce+hidden, kd+hidden or ce+kd+hidden (ce: cross-entropy; kd, hidden: distillation from the dense model).",
                                            valueName: "objective"))
    var objective: String?

    @Option(name: .long, help: ArgumentHelp("Distillation temperature, from 0.25 to 16.", valueName: "t"))
    var kdTemperature: Double?

    @Option(name: .long, help: ArgumentHelp("Weight of the hidden-state term.", valueName: "w"))
    var hiddenLossWeight: Double?

    @Option(name: .long, help: ArgumentHelp("After Wanda or magnitude pruning: none, or least-squares (refit the kept weights).",
                                            valueName: "reconstruction"))
    var weightReconstruction: String?

    @OptionGroup var options: GlobalOptions

    /// `path` made absolute against the current directory: the daemon's differs.
    static func absolute(_ path: String) -> String {
        let url = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true))
        return url.standardizedFileURL.path
    }

    func run() async throws {
        let parameters = SubmitParameters(
            path: Self.absolute(path), sparsity: sparsity, method: method, pattern: pattern, allocation: allocation,
            recovery: recovery, profile: profile, calibration: calibration.map(Self.absolute),
            evaluation: evaluation.map(Self.absolute),
            outputs: outputs.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) },
            objective: objective, kdTemperature: kdTemperature, hiddenLossWeight: hiddenLossWeight,
            weightReconstruction: weightReconstruction)
        let reply = try await options.withDaemon("submit \(parameters.path)") { try await $0.submit(parameters) }
        if options.json { return try options.printJSON(reply) }
        print("job \(reply.job.id) \(reply.job.state.rawValue): \(reply.job.model) (\(Formatting.settings(reply.job.settings)))")
    }
}
