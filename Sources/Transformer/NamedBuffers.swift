import Kernels
import ModelFormats

/// Named tensors that are views of one allocation, each starting on a 64-byte boundary: how every
/// workspace of the decoder (evaluation, KV cache, training) holds its buffers.
struct NamedBuffers {
    let views: [String: Tensor]
    /// Floats held by all the buffers together (padding included).
    let floatCount: Int

    init(_ shapes: [(String, [Int])]) {
        let offsets = shapes.reduce(into: [0]) { offsets, entry in
            offsets.append(offsets.last! + (entry.1.reduce(1, *) + 15) / 16 * 16)
        }
        let storage = TensorStorage(count: offsets.last!)
        var views: [String: Tensor] = [:]
        for (entry, offset) in zip(shapes, offsets) {
            precondition(views[entry.0] == nil, "buffers: '\(entry.0)' named twice")
            views[entry.0] = Tensor(shape: entry.1, storage: storage, offset: offset)
        }
        self.views = views
        floatCount = offsets.last!
    }

    /// The buffer `name`, which must exist.
    subscript(_ name: String) -> Tensor {
        guard let view = views[name] else { preconditionFailure("buffers: no buffer '\(name)'") }
        return view
    }

    /// The buffer `name` when the workspace has one.
    func optional(_ name: String) -> Tensor? { views[name] }

    /// The shapes of the per-row buffers a layer pass needs for `rows` rows of a decoder of `config`
    /// (`LayerActivations`, inference form: no copies for backward, hidden written over gate).
    static func inferenceLayerShapes(config c: ModelConfig, rows n: Int) -> [(String, [Int])] {
        let hd = c.headCount * c.headDim, kvd = c.kvHeadCount * c.headDim
        var shapes: [(String, [Int])] = [
            ("residual", [n, c.hiddenSize]), ("normed", [n, c.hiddenSize]),
            ("query", [n, hd]), ("key", [n, kvd]), ("value", [n, kvd]), ("attention", [n, hd]),
            ("gate", [n, c.ffnSize]), ("up", [n, c.ffnSize]),
        ]
        if c.block.postSublayerNorms {
            shapes += [("sublayerOutput", [n, c.hiddenSize]), ("sublayerNormed", [n, c.hiddenSize])]
        }
        return shapes
    }

    /// The inference activations of the first `n` rows (see `inferenceLayerShapes`).
    func inferenceActivations(rows n: Int) -> LayerActivations {
        let normed = self["normed"].slice(0..<n), gate = self["gate"].slice(0..<n)
        let output = optional("sublayerOutput")?.slice(0..<n)
        return LayerActivations(
            normed1: normed, query: self["query"].slice(0..<n), key: self["key"].slice(0..<n),
            value: self["value"].slice(0..<n), attention: self["attention"].slice(0..<n), attentionOutput: output,
            normed2: normed, gate: gate, up: self["up"].slice(0..<n), hidden: gate, ffnOutput: output,
            sublayerNormed: optional("sublayerNormed")?.slice(0..<n))
    }
}
