import Foundation
import Kernels
import Testing

/// `StoredFloatMatrix`: Float32, Float16 and BFloat16 rows read where a file holds them.
@Suite struct StoredFloatMatrixTests {
    /// F32, F16 and BF16 rows read in place widen exactly.
    @Test func storedFloatMatricesDecodeExactly() {
        let values: [Float] = (0..<96).map { Float($0) * 0.37 - 11 }
        for element in [StoredFloatMatrix.Element.f32, .f16, .bf16] {
            let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: values.count * element.byteCount, alignment: 1)
            defer { bytes.deallocate() }
            var expected = values
            values.withUnsafeBufferPointer { v in
                switch element {
                case .f32: bytes.copyMemory(from: UnsafeRawBufferPointer(v))
                case .f16: convertFloat32ToFloat16(v.baseAddress!, bytes.baseAddress!.assumingMemoryBound(to: UInt16.self), count: v.count)
                case .bf16: convertFloat32ToBFloat16(v.baseAddress!, bytes.baseAddress!.assumingMemoryBound(to: UInt16.self), count: v.count)
                }
            }
            if element != .f32 {
                let bits = bytes.baseAddress!.assumingMemoryBound(to: UInt16.self)
                expected = (0..<values.count).map { element == .f16 ? Float(Float16(bitPattern: bits[$0])) : float32(fromBFloat16: bits[$0]) }
            }
            let matrix = StoredFloatMatrix(element: element, rows: 8, cols: 12, base: UnsafeRawPointer(bytes.baseAddress!),
                                           owner: NSObject(), mappedFile: false)
            let out = [Float](unsafeUninitializedCapacity: 36) { buffer, count in
                matrix.dequantize(rows: 2..<5, into: buffer.baseAddress!, path: .best)
                count = 36
            }
            #expect(out == Array(expected[24..<60]), "\(element)")
        }
    }
}
