import ArgumentParser
import Foundation
import ModelFormats
import Transformer

/// `losad generate MODEL --prompt TEXT`: continue a prompt, greedily or by seeded sampling.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with a model (a smoke test of a compressed model).",
        discussion: "Decodes with a key/value cache until the tokenizer's end-of-sequence token or --max-tokens new tokens, and prints the continuation only. Temperature 0 (the default) is greedy; otherwise nucleus sampling with --top-p, reproducible with --seed."
    )

    @Argument(help: "A .gguf file or a Hugging Face model folder.")
    var model: String

    @Option(name: .long, help: "The text to continue.")
    var prompt: String

    @Option(name: .long, help: "New tokens at most.")
    var maxTokens = 64

    @Option(name: .long, help: "Softmax temperature; 0 picks the most probable token every step.")
    var temperature: Float = 0

    @Option(name: .long, help: "Sample only from the most probable tokens whose probability reaches this, in (0, 1].")
    var topP: Float = 1

    @Option(name: .long, help: "Seed of the sampling generator.")
    var seed: UInt64 = 0

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1, not \(maxTokens).") }
        guard temperature >= 0, temperature.isFinite else {
            throw ValidationError("--temperature must be 0 or more, not \(temperature).")
        }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], not \(topP).") }
    }

    /// A prompt that encodes to no tokens at all.
    struct EmptyPrompt: Error, CustomStringConvertible {
        var description: String { "the prompt encodes to no tokens and the tokenizer adds none; give a non-empty --prompt." }
    }

    func run() throws {
        do {
            let checkpoint = try Checkpoint.open(model)
            let tokenizer = checkpoint.tokenizer
            // The prefix (BOS) only: a suffix such as EOS would end the text before it is continued.
            let tokens = tokenizer.prefixTokenIDs + tokenizer.encode(prompt, addSpecialTokens: false)
            guard !tokens.isEmpty else { throw EmptyPrompt() }
            let decoder = try Decoder(readingInPlace: checkpoint)
            let options = GenerationOptions(maxTokens: maxTokens, temperature: temperature, topP: topP, seed: seed,
                                            stopTokenID: tokenizer.eosTokenID)
            let result = decoder.generate(prompt: tokens, options: options)
            print(tokenizer.decode(result.tokens, skipSpecialTokens: true))
        } catch {
            FileHandle.standardError.write(Data("losad generate: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
