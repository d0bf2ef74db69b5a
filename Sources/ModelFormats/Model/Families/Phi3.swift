/// Phi-3 (mini and medium; Phi-3-small is another architecture, `phi3small`): LLaMA's block with
/// q/k/v stored as one tensor and gate/up as another (`FusedProjection`: split when the checkpoint
/// is opened, fused again when it is written), C/H head size (no `head_dim` key), NEOX rope
/// (llama.cpp's converter keeps Hugging Face's rows).
///
/// The window: transformers 5.24 masks every layer to `sliding_window` keys when the config sets
/// one (Phi-3-mini-4k: 2047), as for Mistral; llama.cpp disables Phi-3's window ("Phi SWA is
/// currently disabled") and runs every layer full, so a GGUF reads as full attention whatever
/// `phi3.attention.sliding_window` says. Refused: the 128k models' longrope (config
/// `rope_scaling` / `rope_parameters` type `longrope` or `su`, by the shared reader; GGUF
/// `rope.scaling.attn_factor` with its `rope_factors_long/short` tensors) and partial rotary
/// embedding (`partial_rotary_factor` < 1, GGUF `rope.dimension_count` < head size: Phi-4-mini).
enum Phi3: ModelFamily {
    static let architecture = ModelConfig.Architecture.phi3
    static let ggufNames: Set<String> = ["phi3"]
    static let huggingFaceModelTypes: Set<String> = ["phi3"]
    static let ggufRopeLayout = ModelConfig.RopeLayout.halfSplit

    static func read(_ keys: GGUFConfigKeys, into config: inout ModelConfig) throws {
        if let factor = try keys.optionalDouble("rope.scaling.attn_factor") {
            throw keys.unsupported("rope.scaling.attn_factor",
                                   "\(factor): a long-context (longrope) Phi-3 with rope_factors_long/short; losad runs unscaled, linear and llama3-style rope")
        }
        if let dimensions = try keys.optionalInt("rope.dimension_count"), dimensions != config.headDim {
            throw keys.unsupported("rope.dimension_count", "\(dimensions) of the head's \(config.headDim) dimensions rotate; losad rotates whole heads")
        }
    }

    static func read(_ keys: HuggingFaceConfigKeys, into config: inout ModelConfig) throws {
        let nested = keys.raw("rope_parameters")?["partial_rotary_factor"].flatMap { $0.isNull ? nil : $0 }
        let (key, factor) = nested != nil ? ("rope_parameters.partial_rotary_factor", nested?.number)
            : ("partial_rotary_factor", try keys.optional("partial_rotary_factor", Double.self))
        if nested != nil, factor == nil {
            throw ModelFormatError.invalid(file: keys.file, field: keys.field(key), reason: "expected a number, found \(nested!.summary)")
        }
        if let factor, factor != 1 {
            throw keys.unsupported(key, "\(factor): partial rotary embedding; losad rotates whole heads")
        }
        if let window = try keys.optional("sliding_window", Int.self) {
            config.block.slidingWindow = window
            config.block.layerSpans = Array(repeating: .sliding, count: config.layerCount)
        }
    }
}
