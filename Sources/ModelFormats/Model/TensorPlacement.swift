/// What a stored tensor is to the decoder: one role, or a fused tensor of a layer holding several.
public enum TensorPlacement: Hashable, Sendable {
    case role(TensorRole)
    case fused(layer: Int, FusedProjection)

    /// The placement of a GGUF tensor name in a checkpoint of `architecture`, or nil for a name that
    /// is not part of the decoder. Phi-3's `ffn_up` is gate and up fused, never up alone.
    public init?(ggufName name: String, architecture: ModelConfig.Architecture) {
        if let fused = Self.fused(name, prefix: "blk.", architecture: architecture, name: \.gguf) {
            self = fused
        } else if let role = TensorRole(ggufName: name) {
            self = .role(role)
        } else {
            return nil
        }
    }

    /// The placement of a Hugging Face tensor name in a checkpoint of `architecture`, or nil.
    public init?(huggingFaceName name: String, architecture: ModelConfig.Architecture) {
        if let fused = Self.fused(name, prefix: "model.layers.", architecture: architecture, name: \.huggingFace) {
            self = fused
        } else if let role = TensorRole(huggingFaceName: name, architecture: architecture) {
            self = .role(role)
        } else {
            return nil
        }
    }

    private static func fused(_ name: String, prefix: String, architecture: ModelConfig.Architecture,
                              name stored: KeyPath<FusedProjection, String>) -> TensorPlacement? {
        for fused in FusedProjection.stored(in: architecture) {
            let suffix = "." + fused[keyPath: stored]
            guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { continue }
            let index = name.dropFirst(prefix.count).dropLast(suffix.count)
            if let layer = Int(index), layer >= 0, String(layer) == index { return .fused(layer: layer, fused) }
        }
        return nil
    }

    /// The GGUF name.
    public var ggufName: String {
        switch self {
        case .role(let role): return role.ggufName
        case .fused(let layer, let fused): return "blk.\(layer).\(fused.gguf)"
        }
    }

    /// The Hugging Face name in a checkpoint of `architecture` (nil for GGUF-only tensors).
    public func huggingFaceName(in architecture: ModelConfig.Architecture) -> String? {
        switch self {
        case .role(let role): return role.huggingFaceName(in: architecture)
        case .fused(let layer, let fused): return "model.layers.\(layer).\(fused.huggingFace)"
        }
    }

    /// The role, when the tensor is one role's alone.
    public var role: TensorRole? {
        if case .role(let role) = self { return role }
        return nil
    }

    /// Where `role` is stored in a checkpoint of `architecture` that fuses what the family fuses.
    public static func storing(_ role: TensorRole, in architecture: ModelConfig.Architecture) -> TensorPlacement {
        if case .layer(let layer, let tensor) = role, let fused = FusedProjection.holding(tensor, in: architecture) {
            return .fused(layer: layer, fused)
        }
        return .role(role)
    }
}
