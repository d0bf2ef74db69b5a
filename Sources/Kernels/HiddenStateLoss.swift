/// Mean squared error of a student's hidden states against a teacher's, normalised by the teacher's energy
/// (SquareHead, Kurtic et al. 2023, arXiv 2310.06927): scale-free per layer, so layers whose residual stream
/// is large do not drown the others.
///
/// Shapes: student, teacher, dStudent [N, C] (one block's output for every token).
///
///     loss = Σ (s − t)² / Σ t²
///     ∂loss/∂s = 2 (s − t) / Σ t²
///
/// dStudent accumulates (+=) `gradientScale` times the gradient; the caller zeroes it. Sums in Double.
/// A teacher of zero energy gives loss 0 and no gradient (nothing to normalise by).

/// The normalised squared error of `student` against `teacher`; dStudent += gradientScale · ∂loss/∂student when given.
///   student, teacher, dStudent: [count]
public func normalisedSquaredError(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, count: Int,
                                   gradientScale: Float, dStudent: UnsafeMutablePointer<Float>?) -> Double {
    var error = 0.0, energy = 0.0
    var i = 0
    // Float lanes flushed to Double every 1024 values.
    while i < count {
        var partialError = SIMD16<Float>(), partialEnergy = SIMD16<Float>()
        let blockEnd = min(count, i + 1024)
        while i + 16 <= blockEnd {
            let t = VectorMath.load(teacher + i), d = VectorMath.load(student + i) - t
            partialError += d * d
            partialEnergy += t * t
            i += 16
        }
        error += Double(partialError.sum())
        energy += Double(partialEnergy.sum())
        while i < blockEnd {
            let d = student[i] - teacher[i]
            error += Double(d * d)
            energy += Double(teacher[i] * teacher[i])
            i += 1
        }
    }
    guard energy > 0 else { return 0 }
    if let dStudent, gradientScale != 0 {
        let factor = Float(2 / energy) * gradientScale
        let f = SIMD16<Float>(repeating: factor)
        var j = 0
        while j + 16 <= count {
            let g = f * (VectorMath.load(student + j) - VectorMath.load(teacher + j))
            VectorMath.store(VectorMath.load(dStudent + j) + g, to: dStudent + j)
            j += 16
        }
        while j < count {
            dStudent[j] += factor * (student[j] - teacher[j])
            j += 1
        }
    }
    return error / energy
}

/// Tensor form: student, teacher, dStudent of one shape.
public func normalisedSquaredError(student: Tensor, teacher: Tensor, gradientScale: Float = 1, dStudent: Tensor? = nil) -> Double {
    requireSameShape("normalisedSquaredError", student, teacher)
    if let dStudent { requireSameShape("normalisedSquaredError", student, dStudent) }
    return normalisedSquaredError(student: student.pointer, teacher: teacher.pointer, count: student.count,
                                  gradientScale: gradientScale, dStudent: dStudent?.pointer)
}
