/// SiLU, x·σ(x) (Elfwing et al., 2017), and SwiGLU, silu(gate) ⊙ up
/// (Shazeer, "GLU Variants Improve Transformer", 2020), the gate of the
/// LLaMA MLP: down(silu(gate(x)) ⊙ up(x)).
///
/// Shapes: x, y, dY, dX and gate, up, out, dOut, dGate, dUp are [N], any
/// tensor read flat (in the MLP [B·T, F]). Each kernel is one fused pass that
/// computes σ once per element and shares it between value and derivative;
/// the derivative uses 1 − σ from `VectorMath.sigmoidAndComplement`, which does
/// not cancel for large x.
/// A forward's output may be one of its inputs; gradients accumulate (+=),
/// the caller zeroes them.

// MARK: - SiLU

/// y = x · σ(x).   x, y: [N]
public func siluForward(_ x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let v = VectorMath.load(x + i)
            VectorMath.store(v * VectorMath.sigmoid(v), to: y + i)
            i += 16
        }
        while i < range.upperBound {
            y[i] = x[i] * VectorMath.sigmoid(x[i])
            i += 1
        }
    }
}

/// Backward of y = x · σ(x): dX += dY · σ(x) · (1 + x · (1 − σ(x))).   dY, x, dX: [N]
public func siluBackward(dY: UnsafePointer<Float>, x: UnsafePointer<Float>,
                         dX: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let v = VectorMath.load(x + i)
            let (s, c) = VectorMath.sigmoidAndComplement(v)
            let derivative = s * (1 + v * c)
            VectorMath.store(VectorMath.load(dX + i) + VectorMath.load(dY + i) * derivative, to: dX + i)
            i += 16
        }
        while i < range.upperBound {
            let v = x[i]
            let (s, c) = VectorMath.sigmoidAndComplement(v)
            let derivative = s * (1 + v * c)
            dX[i] = dX[i] + dY[i] * derivative
            i += 1
        }
    }
}

// MARK: - SwiGLU

/// out = silu(gate) ⊙ up = gate · σ(gate) · up.   gate, up, out: [N]
public func swigluForward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                          out: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let g = VectorMath.load(gate + i)
            VectorMath.store(g * VectorMath.sigmoid(g) * VectorMath.load(up + i), to: out + i)
            i += 16
        }
        while i < range.upperBound {
            let g = gate[i]
            out[i] = g * VectorMath.sigmoid(g) * up[i]
            i += 1
        }
    }
}

/// Backward of out = g · σ(g) · u: dGate += dOut · u · σ(g) · (1 + g · (1 − σ(g))),
/// dUp += dOut · g · σ(g).   dOut, gate, up, dGate, dUp: [N]
public func swigluBackward(dOut: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                           dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let g = VectorMath.load(gate + i), d = VectorMath.load(dOut + i)
            let (s, c) = VectorMath.sigmoidAndComplement(g)
            let siluDerivative = s * (1 + g * c)
            VectorMath.store(VectorMath.load(dGate + i) + d * VectorMath.load(up + i) * siluDerivative, to: dGate + i)
            VectorMath.store(VectorMath.load(dUp + i) + d * (g * s), to: dUp + i)
            i += 16
        }
        while i < range.upperBound {
            let g = gate[i], d = dOut[i]
            let (s, c) = VectorMath.sigmoidAndComplement(g)
            let siluDerivative = s * (1 + g * c)
            dGate[i] = dGate[i] + d * up[i] * siluDerivative
            dUp[i] = dUp[i] + d * (g * s)
            i += 1
        }
    }
}

// MARK: - Tensors

/// silu(x) into `y` of the same shape.
public func silu(_ x: Tensor, into y: Tensor) {
    requireSameShape("silu", x, y)
    siluForward(x.pointer, y: y.pointer, count: x.count)
}

/// silu(x) as a new tensor.
public func silu(_ x: Tensor) -> Tensor {
    let y = Tensor(zeros: x.shape)
    silu(x, into: y)
    return y
}

/// Backward of y = silu(x): dX += dY · silu'(x).
public func siluBackward(_ dY: Tensor, x: Tensor, dX: Tensor) {
    requireSameShape("siluBackward", dY, x)
    requireSameShape("siluBackward", dY, dX)
    siluBackward(dY: dY.pointer, x: x.pointer, dX: dX.pointer, count: x.count)
}

/// silu(gate) ⊙ up into `out`, all of one shape.
public func swiglu(gate: Tensor, up: Tensor, into out: Tensor) {
    requireSameShape("swiglu", gate, up)
    requireSameShape("swiglu", gate, out)
    swigluForward(gate: gate.pointer, up: up.pointer, out: out.pointer, count: gate.count)
}

/// silu(gate) ⊙ up as a new tensor.
public func swiglu(gate: Tensor, up: Tensor) -> Tensor {
    let out = Tensor(zeros: gate.shape)
    swiglu(gate: gate, up: up, into: out)
    return out
}

/// Backward of out = silu(gate) ⊙ up: dGate += dOut · up · silu'(gate), dUp += dOut · silu(gate).
public func swigluBackward(_ dOut: Tensor, gate: Tensor, up: Tensor, dGate: Tensor, dUp: Tensor) {
    for (name, tensor) in [("gate", gate), ("up", up), ("dGate", dGate), ("dUp", dUp)] {
        precondition(tensor.shape == dOut.shape, "swigluBackward: \(name) \(tensor.shape) for dOut \(dOut.shape)")
    }
    swigluBackward(dOut: dOut.pointer, gate: gate.pointer, up: up.pointer,
                   dGate: dGate.pointer, dUp: dUp.pointer, count: dOut.count)
}

// MARK: - GeGLU (tanh approximation)

/// gelu_tanh(x) = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), written as x·σ(2u) (since
/// ½(1 + tanh u) = σ(2u)), the form transformers' `gelu_pytorch_tanh` and ggml's `gelu` compute.
private let geluCoefficient: Float = 0.044715
private let twoRootTwoOverPi: Float = 2 * (2 / Float.pi).squareRoot()

/// out = gelu_tanh(gate) ⊙ up (Gemma's MLP).   gate, up, out: [N]
public func gegluForward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                         out: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let g = VectorMath.load(gate + i)
            let s = VectorMath.sigmoid(twoRootTwoOverPi * (g + geluCoefficient * g * g * g))
            VectorMath.store(g * s * VectorMath.load(up + i), to: out + i)
            i += 16
        }
        while i < range.upperBound {
            let g = gate[i]
            out[i] = g * VectorMath.sigmoid(twoRootTwoOverPi * (g + geluCoefficient * g * g * g)) * up[i]
            i += 1
        }
    }
}

/// Backward of out = g·σ(2u(g))·u_p: with s = σ(2u), gelu' = s + g·s(1 − s)·2u'(g),
/// 2u' = 2√(2/π)(1 + 3·0.044715g²); dGate += dOut·up·gelu', dUp += dOut·g·s.   all [N]
public func gegluBackward(dOut: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                          dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
    WorkerPool.shared.parallelFor(count, minimumChunk: ParallelGrain.transcendental) { range in
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            let g = VectorMath.load(gate + i), d = VectorMath.load(dOut + i)
            let (s, c) = VectorMath.sigmoidAndComplement(twoRootTwoOverPi * (g + geluCoefficient * g * g * g))
            let derivative = s + g * s * c * (twoRootTwoOverPi * (1 + 3 * geluCoefficient * g * g))
            VectorMath.store(VectorMath.load(dGate + i) + d * VectorMath.load(up + i) * derivative, to: dGate + i)
            VectorMath.store(VectorMath.load(dUp + i) + d * (g * s), to: dUp + i)
            i += 16
        }
        while i < range.upperBound {
            let g = gate[i], d = dOut[i]
            let (s, c) = VectorMath.sigmoidAndComplement(twoRootTwoOverPi * (g + geluCoefficient * g * g * g))
            let derivative = s + g * s * c * (twoRootTwoOverPi * (1 + 3 * geluCoefficient * g * g))
            dGate[i] = dGate[i] + d * up[i] * derivative
            dUp[i] = dUp[i] + d * (g * s)
            i += 1
        }
    }
}
