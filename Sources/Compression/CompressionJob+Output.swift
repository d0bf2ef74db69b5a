import Foundation
import Kernels
import ModelFormats
import Transformer

/// What a job writes besides the model: the metadata recorded in it, the report beside it, and their names.
extension CompressionJob {
    /// `losa.*` keys recorded in the exported file: how it was made.
    func exportMetadata() -> GGUFMetadata {
        let s = request.settings
        return GGUFMetadata([("losa.sparsity", .string(String(s.sparsity))), ("losa.method", .string(s.method.rawValue)),
                             ("losa.pattern", .string(s.pattern.description)), ("losa.allocation", .string(s.allocation.rawValue)),
                             ("losa.recovery", .string(s.recovery.rawValue)), ("losa.profile", .string(s.profile.rawValue)),
                             ("losa.version", .string(request.version)),
                             ("losa.source", .string((request.input as NSString).lastPathComponent))])
    }

    /// report.json beside the output model, written durably (`AtomicOutputFile`).
    func writeReport(_ summary: CompressionReport) throws(CompressionError) {
        let path = CompressionJob.reportPath(forOutput: request.output)
        do {
            try AtomicOutputFile.write([UInt8](try summary.json()), to: path, replacingExisting: true)
        } catch {
            throw .unsupportedModel(path: path, reason: "cannot write the report: \(error)")
        }
    }

    /// Where the report of a job writing `output` goes: `report.json` in the output's folder.
    public static func reportPath(forOutput output: String) -> String {
        ((output as NSString).deletingLastPathComponent as NSString).appendingPathComponent("report.json")
    }

    /// `<input stem>-<recovery>-<percent>[-<N>of<M>]`, with `.gguf` for a GGUF input (a folder name otherwise).
    public static func outputName(input: String, settings: CompressionSettings) -> String {
        let name = ((input as NSString).standardizingPath as NSString).lastPathComponent
        let isGGUF = name.lowercased().hasSuffix(".gguf")
        let stem = isGGUF ? String(name.dropLast(5)) : name
        let pattern = settings.pattern == .unstructured ? "" : "-" + settings.pattern.description.replacingOccurrences(of: ":", with: "of")
        let tag = "\(stem)-\(settings.recovery.rawValue)-\(Int((settings.sparsity * 100).rounded()))\(pattern)"
        return isGGUF ? tag + ".gguf" : tag
    }
}
