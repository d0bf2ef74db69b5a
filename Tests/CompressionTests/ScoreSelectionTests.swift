@testable import Compression
import Kernels
import Testing

@Suite struct ScoreSelectionTests {
    @Test func partitionPutsExactlyTheSmallestKeysFirst() {
        var random = RandomGenerator(seed: 3)
        for size in [1, 2, 3, 5, 8, 31, 128, 577] {
            for trial in 0..<6 {
                // Trials 0-2 distinct keys (as the methods make them); 3-5 with many duplicates.
                let keys = (0..<size).map { _ in trial < 3 ? random.next() : random.next() % 7 }
                let count = Int(random.next() % UInt64(size + 1))
                var buffer = keys
                buffer.withUnsafeMutableBufferPointer { ScoreSelection.partitionSmallest($0, count: count) }
                #expect(buffer.sorted() == keys.sorted(), "a permutation")
                #expect(buffer[..<count].sorted() == Array(keys.sorted()[..<count]), "size \(size), count \(count)")
            }
        }
    }

    @Test func keysOrderByScoreThenColumnWithForcedFirst() {
        let a = ScoreSelection.key(score: 0.5, column: 9)
        let b = ScoreSelection.key(score: 0.5, column: 10)
        let c = ScoreSelection.key(score: 0.25, column: 1000)
        let zero = ScoreSelection.key(score: 0, column: 0)
        let forced = ScoreSelection.forcedKey(column: 4000)
        #expect(c < a && a < b)
        #expect(forced < zero && zero < c)
        #expect(ScoreSelection.key(score: .infinity, column: 0) > ScoreSelection.key(score: .greatestFiniteMagnitude, column: 5))
        #expect(ScoreSelection.column(of: b) == 10 && ScoreSelection.column(of: forced) == 4000)
    }
}
