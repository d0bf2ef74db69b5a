@testable import Compression
import Testing

@Suite struct SparsityPatternTests {
    @Test func parsesUnstructuredAndNOfMPatterns() throws {
        #expect(try SparsityPattern(parsing: "unstructured") == .unstructured)
        #expect(try SparsityPattern(parsing: " Unstructured ") == .unstructured)
        #expect(try SparsityPattern(parsing: "2:4") == .nOfM(keep: 2, groupSize: 4))
        #expect(try SparsityPattern(parsing: "4:8") == .nOfM(keep: 4, groupSize: 8))
        for text in ["unstructured", "2:4", "4:8", "1:16"] {
            #expect(try SparsityPattern(parsing: text).description == text)
        }
    }

    @Test func badPatternsAreTypedErrorsNamingTheText() {
        for text in ["", "2-4", "a:b", "1:2:3", ":4", "structured"] {
            #expect(throws: PruningError.unknownPattern(text)) { try SparsityPattern(parsing: text) }
        }
        #expect(throws: PruningError.invalidGroup(keep: 0, groupSize: 4)) { try SparsityPattern(parsing: "0:4") }
        #expect(throws: PruningError.invalidGroup(keep: 5, groupSize: 4)) { try SparsityPattern(parsing: "5:4") }
        #expect(throws: PruningError.invalidGroup(keep: 2, groupSize: 256)) { try SparsityPattern(parsing: "2:256") }
        #expect(PruningError.unknownPattern("2-4").description.contains("'2-4'"))
    }

    @Test func zerosPerRowRoundsUnstructuredAndFixesNOfM() throws {
        #expect(try SparsityPattern.unstructured.zerosPerRow(inputs: 7, sparsity: 0.5) == 4)  // 3.5 rounds away from zero
        #expect(try SparsityPattern.unstructured.zerosPerRow(inputs: 576, sparsity: 0.7) == 403)  // 403.2
        #expect(try SparsityPattern.unstructured.zerosPerRow(inputs: 13, sparsity: 0) == 0)
        #expect(try SparsityPattern.unstructured.zerosPerRow(inputs: 13, sparsity: 1) == 13)
        #expect(try SparsityPattern.nOfM(keep: 2, groupSize: 4).zerosPerRow(inputs: 24, sparsity: 0.9) == 12)
        #expect(try SparsityPattern.nOfM(keep: 4, groupSize: 8).zerosPerRow(inputs: 24, sparsity: 0) == 12)
        #expect(throws: PruningError.rowNotDivisible(inputs: 20, groupSize: 8)) {
            try SparsityPattern.nOfM(keep: 4, groupSize: 8).zerosPerRow(inputs: 20, sparsity: 0.5)
        }
        for bad in [-0.1, 1.01, .nan, .infinity] {
            #expect(throws: PruningError.self) { try SparsityPattern.unstructured.zerosPerRow(inputs: 8, sparsity: bad) }
        }
    }

    @Test func methodsParseByName() throws {
        #expect(try PruningMethod(parsing: "SparseGPT") == .sparseGPT)
        #expect(try PruningMethod(parsing: "wanda") == .wanda)
        #expect(try PruningMethod(parsing: "magnitude") == .magnitude)
        #expect(throws: PruningError.unknownMethod("obs")) { try PruningMethod(parsing: "obs") }
        #expect(PruningMethod.sparseGPT.needsHessian && PruningMethod.wanda.needsStatistics)
        #expect(!PruningMethod.magnitude.needsStatistics && !PruningMethod.wanda.needsHessian)
    }
}
