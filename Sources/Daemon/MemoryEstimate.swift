import ModelFormats
import Transformer

/// An estimate of a job's peak memory, as named parts, from the model's config and the job's shape.
///
/// Every input is explicit so the scheduler passes the job's real shape (its profile's batch and
/// window length, its calibration sample count, its export type). Parts are summed even where they
/// need not coexist (the calibration buffers are freed before training): admission would rather
/// refuse a job that might have fit than start one the OOM killer ends.
public struct MemoryEstimate: Sendable, Equatable {
    /// What a job holds in memory at its peak.
    public struct Inputs: Sendable, Equatable {
        public var config: ModelConfig
        /// Float32 copies of the weights held at once (the working copy; 2 if the dense weights are kept beside it).
        public var weightCopies: Int
        /// Whether adapters are trained (recovery "losa" or "lora"; "none" trains nothing).
        public var trainsAdapters: Bool
        /// R: adapter components per projection (LOSA.md: 16).
        public var maximumRank: Int
        /// B and T of one training step.
        public var trainingBatch: Int
        public var trainingTokens: Int
        /// Rows of logits the loss materialises at once (`LoRATrainingWorkspace.chunkRows`).
        public var chunkRows: Int
        /// Calibration windows (samples) and tokens per window.
        public var calibrationWindows: Int
        public var calibrationTokens: Int
        /// [windows, tokens, C] Float32 buffers the calibration and pruning keep at once
        /// (layer inputs, outputs, dense targets, scratch).
        public var calibrationCopies: Int
        /// Whether SparseGPT runs (it holds an in × in Hessian and its inverse for the widest projection).
        public var sparseGPT: Bool
        /// Bytes the written model is assembled in before it goes to disk (see `exportBytes`).
        public var exportBytes: Int
        /// The daemon itself: runtime, tokenizer, ledger, buffers of the control server.
        public var processOverheadBytes: Int

        public init(config: ModelConfig, weightCopies: Int = 1, trainsAdapters: Bool = true, maximumRank: Int = 16,
                    trainingBatch: Int, trainingTokens: Int, chunkRows: Int = 128, calibrationWindows: Int,
                    calibrationTokens: Int, calibrationCopies: Int = 4, sparseGPT: Bool = false, exportBytes: Int,
                    processOverheadBytes: Int = 128 << 20) {
            self.config = config
            self.weightCopies = weightCopies
            self.trainsAdapters = trainsAdapters
            self.maximumRank = maximumRank
            self.trainingBatch = trainingBatch
            self.trainingTokens = trainingTokens
            self.chunkRows = chunkRows
            self.calibrationWindows = calibrationWindows
            self.calibrationTokens = calibrationTokens
            self.calibrationCopies = calibrationCopies
            self.sparseGPT = sparseGPT
            self.exportBytes = exportBytes
            self.processOverheadBytes = processOverheadBytes
        }
    }

    /// One named share of the estimate.
    public struct Part: Sendable, Equatable {
        public var name: String
        public var bytes: Int

        public init(name: String, bytes: Int) {
            self.name = name
            self.bytes = bytes
        }
    }

    public var parts: [Part]

    /// An estimate made of given parts (a runner that sizes its job itself; tests).
    public init(parts: [Part]) { self.parts = parts }

    /// Bytes of all parts together.
    public var totalBytes: Int { parts.reduce(0) { $0 + $1.bytes } }

    /// Each part in bytes, in the order weights, adapters, training workspace, calibration, pruning, export, process.
    public init(_ inputs: Inputs) {
        let c = inputs.config
        let float = MemoryLayout<Float>.size
        // Sizes come from untrusted model headers: saturate instead of trapping on overflow.
        func product(_ factors: Int...) -> Int {
            factors.reduce(1) { total, factor in
                let (value, overflow) = total.multipliedReportingOverflow(by: max(factor, 0))
                return overflow ? Int.max / 16 : value
            }
        }
        var parts = [Part(name: "weights", bytes: product(c.parameterCount, float, inputs.weightCopies))]
        if inputs.trainsAdapters {
            // Parameters, gradients and AdamW's two moments share one layout.
            let adapterFloats = SparseLoRA.layout(config: c, maximumRank: inputs.maximumRank).last ?? 0
            parts.append(Part(name: "adapters and optimizer", bytes: product(adapterFloats, 4, float)))
            parts.append(Part(name: "training workspace",
                              bytes: product(MemoryEstimate.trainingWorkspaceFloats(config: c, batch: inputs.trainingBatch,
                                                                                     tokens: inputs.trainingTokens,
                                                                                     chunkRows: inputs.chunkRows), float)))
        }
        parts.append(Part(name: "calibration buffers",
                          bytes: product(inputs.calibrationWindows, inputs.calibrationTokens, c.hiddenSize, inputs.calibrationCopies, float)))
        if inputs.sparseGPT {
            let widest = SparseLoRA.Projection.allCases.map { SparseLoRA.shape(of: $0, config: c).in }.max() ?? 0
            parts.append(Part(name: "SparseGPT Hessian", bytes: product(2, widest, widest, float)))
        }
        parts.append(Part(name: "export staging", bytes: max(inputs.exportBytes, 0)))
        parts.append(Part(name: "process", bytes: max(inputs.processOverheadBytes, 0)))
        self.parts = parts
    }

    /// Floats of a training workspace, padded per buffer as `LoRATrainingWorkspace.init` pads them.
    public static func trainingWorkspaceFloats(config: ModelConfig, batch: Int, tokens: Int, chunkRows: Int) -> Int {
        guard batch > 0, tokens > 0, chunkRows > 0 else { return 0 }
        return LoRATrainingWorkspace.shapes(config: config, batch: batch, tokens: tokens, chunkRows: chunkRows)
            .reduce(0) { $0 + ($1.1.reduce(1, *) + 15) / 16 * 16 }
    }

    /// Bytes of `parameterCount` weights encoded as `type` (GGUF blocks; safetensors f16/bf16/f32 alike).
    public static func exportBytes(parameterCount: Int, type: GGMLType) -> Int {
        let (blockSize, bytesPerBlock) = type.blockLayout
        return (parameterCount + blockSize - 1) / blockSize * bytesPerBlock
    }
}
