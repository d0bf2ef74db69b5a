import Kernels

/// The row permutation llama.cpp's converter (convert_hf_to_gguf.py, `permute`)
/// applies to LLaMA q and k projections so that ggml's adjacent-pair rotary
/// embedding computes what Hugging Face's half-split `rotate_half` computes.
///
/// Per head of D rows, Hugging Face row j·(D/2) + i becomes GGUF row 2i + j
/// (i < D/2, j ∈ {0, 1}). Applying it to q and k weights (and q/k biases) moves
/// a model from the half-split layout to the adjacent one; `inverse` moves back.
public enum QKPermutation {
    /// Hugging Face → GGUF layout: rows of `weight` ([heads·D, …] or a bias [heads·D]) reordered per head.
    public static func toAdjacent(_ weight: Tensor, heads: Int) -> Tensor {
        permuteRows(weight, heads: heads, toAdjacent: true)
    }

    /// GGUF → Hugging Face layout (the inverse of `toAdjacent`).
    public static func toHalfSplit(_ weight: Tensor, heads: Int) -> Tensor {
        permuteRows(weight, heads: heads, toAdjacent: false)
    }

    private static func permuteRows(_ weight: Tensor, heads: Int, toAdjacent: Bool) -> Tensor {
        let rows = weight.rank <= 1 ? weight.count : weight.shape[0]
        let rowLength = rows == 0 ? 0 : weight.count / rows
        precondition(heads > 0 && rows % heads == 0 && (rows / heads) % 2 == 0,
                     "q/k permutation: \(rows) rows do not split into \(heads) heads of an even size")
        let headDim = rows / heads, half = headDim / 2
        let result = Tensor(zeros: weight.shape)
        for head in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let adjacentRow = head * headDim + 2 * i + j
                    let halfSplitRow = head * headDim + j * half + i
                    let (target, source) = toAdjacent ? (adjacentRow, halfSplitRow) : (halfSplitRow, adjacentRow)
                    (result.pointer + target * rowLength).update(from: weight.pointer + source * rowLength, count: rowLength)
                }
            }
        }
        return result
    }
}
