import Kernels
import ModelFormats

/// The gated MLP of the LLaMA family (Shazeer 2020, "GLU Variants Improve Transformer"):
///
///     out = (act(x·Wgᵀ) ⊙ x·Wuᵀ) · Wdᵀ,   act = silu (SwiGLU) or gelu_tanh (GeGLU, gemma)
///
/// Shapes: x [N, C]; gate, up, hidden [N, F]; Wg, Wu [F, C]; Wd [C, F]. The projections are the
/// layer's (`DecoderLayer`); this is the element-wise middle, forward and backward.
enum FeedForward {
    /// hidden = act(gate) ⊙ up (hidden may be gate: element-wise, so in place is safe).
    static func activate(_ activation: ModelConfig.GateActivation, gate: Tensor, up: Tensor, into hidden: Tensor) {
        switch activation {
        case .silu: swigluForward(gate: gate.pointer, up: up.pointer, out: hidden.pointer, count: gate.count)
        case .geluTanh: gegluForward(gate: gate.pointer, up: up.pointer, out: hidden.pointer, count: gate.count)
        }
    }

    /// Backward of `activate`: dGate += dHidden·up·act'(gate), dUp += dHidden·act(gate).
    static func activateBackward(_ activation: ModelConfig.GateActivation, _ dHidden: Tensor, gate: Tensor, up: Tensor,
                                 dGate: Tensor, dUp: Tensor) {
        switch activation {
        case .silu: swigluBackward(dHidden, gate: gate, up: up, dGate: dGate, dUp: dUp)
        case .geluTanh:
            gegluBackward(dOut: dHidden.pointer, gate: gate.pointer, up: up.pointer, dGate: dGate.pointer,
                          dUp: dUp.pointer, count: dHidden.count)
        }
    }
}
