import Compression
import Testing

@Suite struct SparsityScheduleTests {
    @Test func cubicScheduleReachesTheTargetAndGrowsMonotonically() {
        let schedule = SparsitySchedule(target: 0.7, iterations: 5)
        let values = (1...5).map { schedule.sparsity(iteration: $0) }
        // s_1 = 0.7 − 0.7·0.8³ = 0.3416
        #expect(abs(values[0] - 0.3416) < 1e-12)
        #expect(values.last == 0.7)
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 < $1 })
        #expect((1...5).map { schedule.meanRank(iteration: $0) } == [6, 7, 8, 9, 10])
    }

    @Test func singleIterationIsTheTarget() {
        #expect(SparsitySchedule(target: 0.5, iterations: 1).sparsity(iteration: 1) == 0.5)
    }
}
