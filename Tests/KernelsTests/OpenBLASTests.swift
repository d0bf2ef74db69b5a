import Testing
@testable import Kernels

@Suite struct OpenBLASTests {
    @Test func loads() throws {
        let blas = try Kernels.prepare()
        #expect(blas.threadCount >= 1)
    }
}
