import ArgumentParser
import Compression
import Foundation
import Kernels
import ModelFormats

/// `losad sparsify MODEL --out FILE`: losad's compact sparse file of an already pruned model.
struct SparsifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sparsify",
        abstract: "Write losad's compact sparse model file of a pruned model (docs/sparse-format.md).",
        discussion: "The projections' zeros are taken as the pruned weights and stored as a 1-bit mask; the kept values are packed and quantised (--values). Every other tensor is copied as the model stores it. --magnitude prunes each projection row by |w| first, for speed tests of models nobody pruned; a model worth running comes from `losad compress`, which calibrates and recovers."
    )

    @Argument(help: "A .gguf file or a Hugging Face model folder.")
    var model: String

    @Option(name: .long, help: "The sparse file to write (a new .gguf path).")
    var out: String

    @Option(name: .long, help: "How kept values are stored: s8 (int8 + scales), s4 (4-bit codebook levels + scales) or f16.")
    var values: String = "s8"

    @Option(name: .long, help: "Prune each projection row by magnitude to this sparsity first, in [0, 1).")
    var magnitude: Double?

    @Option(name: .long, help: ArgumentHelp(
        "Calibration text for s4 values (same forms as `losad compress --calib`, or python-docs for its default text).",
        discussion: "Each s4 scale is then chosen for the error weighted by its input columns' second moments over the calibration windows a quick `losad compress` job would draw; without it, for the plain squared error."))
    var calib: String?

    @Option(name: .long, help: ArgumentHelp(
        "How s4 values are rounded with --calib: nearest (each value its nearest level) or gptq.",
        discussion: "gptq rounds column by column and lets the weights not yet rounded absorb each error through the calibration inputs' Hessian (GPTQ with the mask fixed), block after block."))
    var rounding = "nearest"

    func validate() throws {
        guard SparseValueKind(rawValue: values) != nil else {
            throw ValidationError("--values must be one of \(SparseValueKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(values)'.")
        }
        if calib != nil, values != SparseValueKind.s4.rawValue {
            throw ValidationError("--calib weights the s4 scale search; it does nothing for --values \(values).")
        }
        guard ["nearest", "gptq"].contains(rounding) else {
            throw ValidationError("--rounding must be nearest or gptq, not '\(rounding)'.")
        }
        if rounding == "gptq" && calib == nil {
            throw ValidationError("--rounding gptq needs calibration text (--calib).")
        }
        if let magnitude, !(0..<1).contains(magnitude) {
            throw ValidationError("--magnitude must be in [0, 1), not \(magnitude).")
        }
    }

    func run() throws {
        do {
            _ = try Kernels.prepare()
            let checkpoint = try Checkpoint.open(model)
            let kind = SparseValueKind(rawValue: values)!
            // Statistics of the model as it will be stored: after --magnitude pruning when asked for.
            let text: TextSource? = calib.map {
                $0 == TextSource.pythonDocumentation.name && !FileManager.default.fileExists(atPath: $0) ? .pythonDocumentation : .file($0)
            }
            let result: SparseModelWriteResult
            if let text, rounding == "gptq" {
                result = try SparseConversion.writeS4RoundedWithHessian(checkpoint, to: out, text: text, magnitudeSparsity: magnitude)
            } else {
                let importances = try text.map {
                    try SparseConversion.inputSecondMoments(of: checkpoint, text: $0, magnitudeSparsity: magnitude)
                } ?? [:]
                result = try SparseConversion.write(checkpoint, to: out, values: kind, magnitudeSparsity: magnitude,
                                                    importances: importances)
            }
            print(String(format: "%@: %.1f MB (source %.1f MB)", result.path, Double(result.bytesWritten) / 1e6,
                         Double(checkpoint.fileSize) / 1e6))
        } catch {
            FileHandle.standardError.write(Data("losad sparsify: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
