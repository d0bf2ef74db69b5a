import Foundation
import Kernels
import ModelFormats
import Testing
@testable import Transformer

/// The demo model's perplexity against transformers (scripts/fixtures/perplexity_reference.py
/// wrote Fixtures/demo-perplexity.json from the same GGUF, dequantised by the gguf package).
@Suite struct DemoPerplexityTests {
    struct Reference: Decodable {
        var format_version: Int
        var model: String
        var text_file: String
        var ctx: Int
        var token_count: Int
        var windows: Int
        var predicted_tokens: Int
        var perplexity: Double
        var window_mean_nll: [Double]
        var token_ids: [Int32]
    }

    /// Windows checked: a debug build runs a 512-token window of the 135M model in tens of
    /// seconds, so it checks the first one; a release build checks all of them.
    #if DEBUG
    static let checkedWindows = 1
    #else
    static let checkedWindows = Int.max
    #endif

    @Test(.enabled(if: TransformerFixtures.demoModelExists, "set LOSAD_DEMO_MODEL or run scripts/fetch-demo-model.sh"))
    func theDemoModelsPerplexityIsWithinOnePercentOfTransformers() throws {
        let directory = try TransformerFixtures.directory
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: directory.appendingPathComponent("demo-perplexity.json")))
        #expect(reference.format_version == 1, "rerun scripts/fixtures/perplexity_reference.py")
        let checkpoint = try Checkpoint.open(TransformerFixtures.demoModelPath)

        // The same token stream: ours encodes the text exactly as transformers' tokenizer for the GGUF did.
        let text = try String(contentsOf: directory.appendingPathComponent(reference.text_file), encoding: .utf8)
        let ours = checkpoint.tokenizer.encode(text, addSpecialTokens: false)
        #expect(ours == reference.token_ids, "tokenizers disagree on \(reference.text_file)")
        #expect(reference.token_ids.count == reference.token_count)

        #expect(reference.window_mean_nll.count == reference.windows)

        let windows = min(Self.checkedWindows, reference.windows)
        let theirs = windows == reference.windows ? reference.perplexity
            : exp(reference.window_mean_nll.prefix(windows).reduce(0, +) / Double(windows))
        let decoder = try Decoder(checkpoint: checkpoint)
        let result = try decoder.perplexity(of: Array(reference.token_ids.prefix(windows * reference.ctx)), windowLength: reference.ctx)
        #expect(result.windows == windows && result.predictedTokens == windows * (reference.ctx - 1))
        let difference = abs(result.perplexity - theirs) / theirs
        print("demo model perplexity at ctx \(reference.ctx) over \(windows) of \(reference.windows) windows: ours \(result.perplexity), transformers \(theirs), relative difference \(difference)")
        #expect(difference < 0.01)
        if windows == reference.windows { #expect(result.predictedTokens == reference.predicted_tokens) }
    }
}
