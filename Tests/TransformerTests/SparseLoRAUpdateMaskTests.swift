import Kernels
import Testing
@testable import Transformer

@Suite struct SparseLoRAUpdateMaskTests {
    /// The mask marks exactly rows [:r_l] of every A and columns [:r_l] of every B (checked through the
    /// views, so against the layout rather than the same offset arithmetic), and every gradient the
    /// backward writes falls inside it.
    @Test func maskCoversExactlyTheActiveRankComponents() throws {
        let fixture = try SparseLoRAFixture()
        let adapters = fixture.adapters
        adapters.ranks = [5, 11]
        var mask: [UInt8] = []
        adapters.fillUpdateMask(&mask)
        #expect(mask.count == adapters.parameters.count)

        // Which arena elements the views of active components cover, found by writing through them.
        let marker = TensorStorage(count: adapters.parameters.count)
        var expectedCount = 0
        let rMax = adapters.settings.maximumRank
        for layer in 0..<adapters.config.layerCount {
            let r = adapters.ranks[layer]
            for projection in SparseLoRA.Projection.allCases {
                let (out, input) = SparseLoRA.shape(of: projection, config: adapters.config)
                let aOffset = adapters.a(layer, projection).offset, bOffset = adapters.b(layer, projection).offset
                for row in 0..<r { for column in 0..<input { marker.base[aOffset + row * input + column] = 1 } }
                for row in 0..<out { for column in 0..<r { marker.base[bOffset + row * rMax + column] = 1 } }
                expectedCount += r * (input + out)
            }
        }
        #expect(mask.filter { $0 == 1 }.count == expectedCount)
        #expect((0..<mask.count).allSatisfy { (mask[$0] == 1) == (marker.base[$0] == 1) })

        let gradients = fixture.gradients()
        let outside = gradients.indices.filter { gradients[$0] != 0 && mask[$0] == 0 }
        let inside = gradients.indices.filter { gradients[$0] != 0 && mask[$0] == 1 }
        #expect(outside.isEmpty, "\(outside.count) gradients outside the mask")
        #expect(inside.count > expectedCount / 2)

        // A rank change is reflected on the next fill; rank 0 masks the layer out entirely.
        adapters.ranks = [0, 16]
        adapters.fillUpdateMask(&mask)
        let layer0 = adapters.a(0, .query).offset..<adapters.a(1, .query).offset
        #expect(mask[layer0].allSatisfy { $0 == 0 })
        #expect(mask.filter { $0 == 1 }.count == SparseLoRA.Projection.allCases.reduce(0) {
            let (out, input) = SparseLoRA.shape(of: $1, config: adapters.config)
            return $0 + 16 * (input + out)
        })
    }
}
