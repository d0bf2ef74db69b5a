import Foundation
import Kernels
import ModelFormats
import Transformer

/// Where a job's text comes from.
public enum TextSource: Sendable, Equatable, Codable {
    /// A plain-text file, a JSONL file with "text" fields, or a folder of .txt files.
    case file(String)
    /// The English Python documentation every Python installation ships (pydoc_data): its calibration/training
    /// topics, or, for evaluation, the topics held out from them.
    case pythonDocumentation

    public var name: String {
        switch self {
        case let .file(path): return (path as NSString).lastPathComponent
        case .pythonDocumentation: return "python-docs"
        }
    }
}

/// The texts of a job: calibration, training (default: the calibration text) and evaluation (default: the
/// held-out Python documentation).
public struct TextSources: Sendable, Equatable, Codable {
    public var calibration: TextSource
    public var training: TextSource?
    public var evaluation: [TextSource]

    public init(calibration: TextSource = .pythonDocumentation, training: TextSource? = nil, evaluation: [TextSource] = []) {
        self.calibration = calibration
        self.training = training
        self.evaluation = evaluation
    }
}

/// A job's texts tokenised once and cut into windows (LOSA.md "Evaluation"; calibration and training
/// windows sampled from the seed). Training and evaluation never share text: the default corpus splits by
/// topic, and a file named for both is split by position (the last tenth, at least what evaluation needs,
/// is held out from training and calibration).
///
/// Shapes: calibrationWindows [n][T_cal]; trainingWindows [W][T_train + 1] (tokens and next-token targets);
/// evaluation streams [S].
struct JobTexts {
    var calibrationWindows: [[Int32]]
    var trainingWindows: [[Int32]]
    var evaluation: [(name: String, stream: [Int32])]
    /// How evaluation windows begin (a BOS where the tokenizer adds one), as calibration and training windows do.
    let evaluationLayout: WindowLayout

    init(sources: TextSources, tokenizer: Tokenizer, settings: CompressionSettings,
         vocabularySize: Int) throws(CompressionError) {
        evaluationLayout = WindowLayout(length: settings.evaluationLength, tokenizer: tokenizer)
        var streams: [TextSource: [Int32]] = [:]
        var heldOut: [Int32]? = nil
        func stream(_ source: TextSource, evaluation: Bool) throws(CompressionError) -> [Int32] {
            if case .pythonDocumentation = source {
                let split: (training: TextCorpus, evaluation: TextCorpus)
                do { split = try PydocTopics.defaultCorpus() } catch {
                    throw .notEnoughText(what: "default (\(error); pass --calib and --eval)", tokens: 0, needed: 1)
                }
                return tokenize(evaluation ? split.evaluation : split.training, tokenizer: tokenizer, vocabularySize: vocabularySize)
            }
            if let cached = streams[source] { return cached }
            guard case let .file(path) = source else { return [] }
            let corpus: TextCorpus
            do { corpus = try TextCorpus(contentsOf: path) } catch {
                throw .unreadableText(path: path, reason: "\(error)")
            }
            let tokens = tokenize(corpus, tokenizer: tokenizer, vocabularySize: vocabularySize)
            streams[source] = tokens
            return tokens
        }
        let trainingSource = sources.training ?? sources.calibration
        let evaluationSources = sources.evaluation.isEmpty ? [TextSource.pythonDocumentation] : sources.evaluation
        var calibrationStream = try stream(sources.calibration, evaluation: false)
        var trainingStream = try stream(trainingSource, evaluation: false)
        var evaluation: [(String, [Int32])] = []
        let evaluationTokens = settings.evaluationWindows > 0 ? settings.evaluationWindows * evaluationLayout.textTokens : Int.max
        for source in evaluationSources {
            var tokens = try stream(source, evaluation: true)
            if case .file = source, source == sources.calibration || source == trainingSource {
                // Same file for training and evaluation: hold its tail out.
                let held = min(max(tokens.count / 10, min(evaluationTokens, tokens.count / 2)), tokens.count / 2)
                let cut = tokens.count - held
                heldOut = Array(tokens[cut...])
                if source == sources.calibration { calibrationStream = Array(calibrationStream[..<cut]) }
                if source == trainingSource { trainingStream = Array(trainingStream[..<cut]) }
                tokens = heldOut!
            }
            if tokens.count > evaluationTokens { tokens = Array(tokens[..<evaluationTokens]) }
            guard tokens.count >= evaluationLayout.textTokens else {
                throw .notEnoughText(what: "evaluation (\(source.name))", tokens: tokens.count, needed: evaluationLayout.textTokens)
            }
            evaluation.append((source.name, tokens))
        }
        self.evaluation = evaluation

        calibrationWindows = try Self.calibrationWindows(of: calibrationStream, named: sources.calibration.name,
                                                        tokenizer: tokenizer, settings: settings)

        // Training: every non-overlapping window of T + 1 tokens (tokens and their targets); iterations draw from them.
        let training = WindowLayout(length: settings.trainingLength + 1, tokenizer: tokenizer)
        trainingWindows = (0..<training.windowCount(streamLength: trainingStream.count)).map { training.window($0, of: trainingStream) }
        if settings.recovery != .none && settings.trainingSamples > 0 && trainingWindows.count < settings.batchSize {
            throw .notEnoughText(what: "training (\(trainingSource.name))", tokens: trainingStream.count,
                                 needed: settings.batchSize * training.textTokens)
        }
    }
}

extension JobTexts {
    /// Calibration: n of the stream's non-overlapping windows, drawn from the seed; each window starts as the
    /// model's do (`WindowLayout`: a BOS where the tokenizer adds one).
    static func calibrationWindows(of stream: [Int32], named name: String, tokenizer: Tokenizer,
                                   settings: CompressionSettings) throws(CompressionError) -> [[Int32]] {
        let calibration = WindowLayout(length: settings.calibrationLength, tokenizer: tokenizer)
        let available = calibration.windowCount(streamLength: stream.count)
        guard available >= settings.calibrationWindows else {
            throw .notEnoughText(what: "calibration (\(name))", tokens: stream.count,
                                 needed: settings.calibrationWindows * calibration.textTokens)
        }
        var generator = RandomGenerator(seed: settings.seed, stream: 0x6361_6C69_62)
        var order = Array(0..<available)
        for i in stride(from: available - 1, to: 0, by: -1) { order.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
        return order.prefix(settings.calibrationWindows).sorted().map { calibration.window($0, of: stream) }
    }

    /// The calibration windows of `source` alone, as a job with `settings` would draw them when `source` is not
    /// also its evaluation text (the Python documentation: its calibration topics).
    static func calibrationWindows(_ source: TextSource, tokenizer: Tokenizer, settings: CompressionSettings,
                                   vocabularySize: Int) throws(CompressionError) -> [[Int32]] {
        let corpus: TextCorpus
        switch source {
        case .pythonDocumentation:
            do { corpus = try PydocTopics.defaultCorpus().training } catch {
                throw .notEnoughText(what: "default (\(error); pass --calib)", tokens: 0, needed: 1)
            }
        case let .file(path):
            do { corpus = try TextCorpus(contentsOf: path) } catch {
                throw .unreadableText(path: path, reason: "\(error)")
            }
        }
        return try calibrationWindows(of: tokenize(corpus, tokenizer: tokenizer, vocabularySize: vocabularySize),
                                      named: source.name, tokenizer: tokenizer, settings: settings)
    }
}

/// A corpus tokenised as one stream (documents separated by the end-of-sequence token). Ids outside the
/// model's vocabulary (a tokenizer larger than the embedding) are dropped.
func tokenize(_ corpus: TextCorpus, tokenizer: Tokenizer, vocabularySize: Int) -> [Int32] {
    corpus.tokens(using: tokenizer).filter { $0 >= 0 && Int($0) < vocabularySize }
}

extension TextSource: Hashable {}
