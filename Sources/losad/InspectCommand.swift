import ArgumentParser
import Foundation
import ModelFormats

/// `losad inspect PATH`: what a checkpoint is, before anything is done to it.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: architecture, parameters, tensor types, tokenizer, size; and whether losad runs it.",
        discussion: "PATH is a .gguf file or a Hugging Face folder (config.json, *.safetensors, tokenizer.json). A model losad cannot run is still listed (metadata and tensor table) with the key or feature that stops it; exit status 0 means the model was parsed, 1 that not even its container could be read."
    )

    @Argument(help: "A .gguf file or a Hugging Face model folder.")
    var path: String

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    @Flag(name: .long, help: "Also convert every tensor to Float32 and report how long that took.")
    var load = false

    @Flag(name: .long, help: "Also list the metadata and every tensor (name, type, shape, size).")
    var tensors = false

    /// A model losad cannot run: what it holds, and why not.
    struct UnrunnableReport: Encodable {
        var path: String
        var runnable = false
        /// The sentence of the error that stops losad, naming the key, tensor or feature.
        var reason: String
        var listing: ModelListing
    }

    struct Report: Encodable {
        struct TypeCount: Encodable { var type: String; var tensors: Int; var elements: Int }
        struct TokenizerInfo: Encodable {
            var algorithm: String
            var vocabularySize: Int
            var bosTokenID: Int32?
            var eosTokenID: Int32?
        }
        var path: String
        var format: String
        var fileSize: Int
        var architecture: String
        var config: ModelConfig
        var parameterCount: Int
        var tensorCount: Int
        var tensorTypes: [TypeCount]
        var tokenizer: TokenizerInfo
        /// Seconds to convert every tensor to Float32 (with --load).
        var loadSeconds: Double?
        var runnable = true
        /// With --tensors.
        var listing: ModelListing?
    }

    func run() throws {
        let checkpoint: Checkpoint
        do { checkpoint = try Checkpoint.open(path) } catch {
            // Not runnable: list what the container holds, if it parses at all.
            let listing: ModelListing
            do { listing = try ModelListing.read(path) } catch {
                FileHandle.standardError.write(Data("losad inspect: \(error)\n".utf8))
                throw ExitCode(1)
            }
            let report = UnrunnableReport(path: path, reason: "\(error)", listing: listing)
            if json {
                try printJSON(report)
            } else {
                print("model:         \(path)\nformat:        \(listing.format)\nruns in losad: no — \(error)\n\(listing.text)")
            }
            return
        }
        var report = Self.report(checkpoint)
        if tensors { report.listing = try ModelListing.read(path) }
        if load {
            let start = DispatchTime.now().uptimeNanoseconds
            do { _ = try checkpoint.loadWeights() } catch {
                FileHandle.standardError.write(Data("losad inspect: \(error)\n".utf8))
                throw ExitCode(1)
            }
            report.loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        if json {
            try printJSON(report)
        } else {
            print(Self.text(report) + (report.listing.map { "\n" + $0.text } ?? ""))
        }
    }

    private func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func report(_ checkpoint: Checkpoint) -> Report {
        var byType: [String: Report.TypeCount] = [:]
        for entry in checkpoint.tensors {
            byType[entry.type, default: .init(type: entry.type, tensors: 0, elements: 0)].tensors += 1
            byType[entry.type]!.elements += entry.elementCount
        }
        let tokenizer = checkpoint.tokenizer
        return Report(
            path: checkpoint.path,
            format: checkpoint.format.rawValue,
            fileSize: checkpoint.fileSize,
            architecture: checkpoint.config.architecture.rawValue,
            config: checkpoint.config,
            parameterCount: checkpoint.tensors.filter(\.isUsed).reduce(0) { $0 + $1.elementCount },
            tensorCount: checkpoint.tensors.count,
            tensorTypes: byType.values.sorted { ($0.elements, $0.type) > ($1.elements, $1.type) },
            tokenizer: .init(algorithm: tokenizer.algorithm.rawValue, vocabularySize: tokenizer.vocabularySize,
                             bosTokenID: tokenizer.bosTokenID, eosTokenID: tokenizer.eosTokenID)
        )
    }

    static func text(_ r: Report) -> String {
        let c = r.config
        let number = { (n: Int) in n.formatted(.number.grouping(.automatic)) }
        let megabytes = String(format: "%.1f MB", Double(r.fileSize) / 1e6)
        let types = r.tensorTypes.map { "\($0.type) ×\($0.tensors)" }.joined(separator: ", ")
        let rope = "theta \(number(Int(c.ropeTheta))), \(c.ropeLayout == .adjacent ? "adjacent pairs" : "half-split pairs")"
            + (c.ropeScaling.map { ", llama3 scaling ×\($0.factor)" } ?? "")
        let special = [r.tokenizer.bosTokenID.map { "BOS \($0)" }, r.tokenizer.eosTokenID.map { "EOS \($0)" }]
            .compactMap { $0 }.joined(separator: ", ")
        return """
        model:         \(r.path)
        format:        \(r.format), \(megabytes)
        architecture:  \(r.architecture): \(c.layerCount) layers, hidden \(c.hiddenSize), \(c.headCount) heads (\(c.kvHeadCount) kv) × \(c.headDim), ffn \(c.ffnSize)
        vocabulary:    \(number(c.vocabSize)) tokens, context \(number(c.contextLength))
        rope:          \(rope)
        norm epsilon:  \(Float(c.rmsNormEpsilon))
        parameters:    \(number(r.parameterCount))\(c.tiedEmbeddings ? " (embeddings tied to the output head)" : "")\(c.attentionBias ? ", q/k/v biases" : "")
        tensors:       \(r.tensorCount): \(types)
        tokenizer:     \(r.tokenizer.algorithm), \(number(r.tokenizer.vocabularySize)) tokens\(special.isEmpty ? "" : ", \(special)")
        block:         \(blockDescription(c))
        runs in losad: yes
        """ + (r.loadSeconds.map { String(format: "\nloaded:        every tensor to Float32 in %.2f s", $0) } ?? "")
    }

    /// What the family adds to LLaMA's block, in a line.
    static func blockDescription(_ c: ModelConfig) -> String {
        let b = c.block
        var parts = [b.gateActivation == .silu ? "SwiGLU" : "GeGLU (tanh)"]
        if !FusedProjection.stored(in: c.architecture).isEmpty { parts.append("fused q/k/v and gate/up (split on load)") }
        if b.queryKeyNorm { parts.append("q/k norms") }
        if b.postSublayerNorms { parts.append("post-sublayer norms") }
        if let scale = b.attentionScale { parts.append(String(format: "attention scale %.4g", scale)) }
        if let cap = b.attentionSoftcap { parts.append("score cap \(cap)") }
        if let cap = b.finalLogitSoftcap { parts.append("logit cap \(cap)") }
        if let window = b.slidingWindow {
            let sliding = (0..<c.layerCount).filter { c.span(ofLayer: $0) == .sliding }.count
            parts.append("sliding window \(window) on \(sliding) of \(c.layerCount) layers")
        }
        if let theta = b.slidingRopeTheta { parts.append("sliding-layer rope theta \(Int(theta))") }
        if let factor = b.ropeLinearFactor { parts.append("linear rope scaling ×\(factor)") }
        if let scale = b.embeddingScale { parts.append(String(format: "embedding scale %.4g", scale)) }
        return parts.joined(separator: ", ")
    }
}
