import ArgumentParser
import Foundation
import ModelFormats
import Transformer

/// `losad eval MODEL --text FILE`: perplexity of a text, as shared/docs/LOSA.md "Evaluation" defines it.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure a model's perplexity on a text file.",
        discussion: "The text is tokenized as one stream (no special tokens), cut into non-overlapping windows of --ctx tokens (the tail after the last full window is not scored), and every next-token prediction inside a window is scored. Where the model's tokenizer adds a BOS token (Gemma's does), every window starts with it and holds --ctx − 1 text tokens; the report says which. Exits 1 with a sentence when the model or text cannot be read or the text is shorter than one window."
    )

    @Argument(help: "A .gguf file or a Hugging Face model folder.")
    var model: String

    @Option(name: .long, help: "The UTF-8 text file to evaluate on.")
    var text: String

    @Option(name: .long, help: "Tokens per evaluation window.")
    var ctx = 512

    @Option(name: .long, help: "Windows per forward pass (more uses more memory).")
    var batch = 1

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    struct Report: Encodable {
        var model: String
        var textFile: String
        var ctx: Int
        /// Tokens in the whole stream.
        var tokens: Int
        var windows: Int
        /// How each window begins: "no BOS", or the BOS the tokenizer adds (`WindowLayout.prefixDescription`).
        var windowStart: String
        /// Next-token predictions scored: windows × (ctx − 1).
        var predictedTokens: Int
        /// Mean negative log-likelihood per predicted token, in nats.
        var meanNLL: Double
        var perplexity: Double
        /// Seconds of forward passes (loading excluded).
        var seconds: Double
        /// Window tokens processed per second: windows × ctx / seconds.
        var tokensPerSecond: Double
    }

    func validate() throws {
        guard ctx >= 2 else { throw ValidationError("--ctx must be at least 2 tokens, not \(ctx).") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, not \(batch).") }
    }

    func run() throws {
        let report: Report
        do { report = try evaluate() } catch {
            FileHandle.standardError.write(Data("losad eval: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.text(report))
        }
    }

    /// A sentence for a text file that cannot be read.
    struct UnreadableText: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "cannot read the text file \(path) (\(reason)); check the path and that it is UTF-8." }
    }

    func evaluate() throws -> Report {
        let contents: String
        do { contents = try String(contentsOfFile: text, encoding: .utf8) } catch {
            let reason = FileManager.default.fileExists(atPath: text) ? "not UTF-8 or not readable" : "no such file"
            throw UnreadableText(path: text, reason: reason)
        }
        let checkpoint = try Checkpoint.open(model)
        let tokens = checkpoint.tokenizer.encode(contents, addSpecialTokens: false)
        let layout = WindowLayout(length: ctx, tokenizer: checkpoint.tokenizer)
        guard tokens.count >= layout.textTokens else {
            throw TransformerError.streamTooShort(tokens: tokens.count, windowLength: layout.textTokens)
        }
        let decoder = try Decoder(readingInPlace: checkpoint)
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try decoder.perplexity(of: tokens, layout: layout, batch: batch)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Report(model: checkpoint.path, textFile: text, ctx: ctx, tokens: tokens.count, windows: result.windows,
                      windowStart: layout.prefixDescription,
                      predictedTokens: result.predictedTokens, meanNLL: result.meanNLL, perplexity: result.perplexity,
                      seconds: seconds, tokensPerSecond: Double(result.windows * ctx) / max(seconds, 1e-9))
    }

    static func text(_ r: Report) -> String {
        """
        model:       \(r.model)
        text:        \(r.textFile)
        tokens:      \(r.tokens) (\(r.windows) windows of \(r.ctx), \(r.predictedTokens) predictions scored)
        windows:     \(r.windowStart)
        NLL:         \(String(format: "%.6f", r.meanNLL)) nats per token
        perplexity:  \(String(format: "%.4f", r.perplexity))
        time:        \(String(format: "%.2f s, %.1f tokens/s", r.seconds, r.tokensPerSecond))
        """
    }
}
