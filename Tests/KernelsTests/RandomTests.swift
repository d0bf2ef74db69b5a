import Foundation
import Testing
@testable import Kernels

/// The seeded generator: published vectors, reproducibility, checkpointing,
/// streams, and the moments of its distributions.
///
/// Statistical bounds are five standard errors of the estimate for n = 10⁵
/// samples; with fixed seeds each check is deterministic, and a wrong
/// distribution (a shifted mean, a wrong variance) misses by far more.
@Suite struct RandomTests {
    static let sampleCount = 100_000

    // MARK: - Published vectors

    @Test func splitMix64MatchesItsPublishedOutputsForSeedZero() {
        var mixer = SplitMix64(state: 0)
        let expected: [UInt64] = [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F, 0xF88B_B8A8_724C_81EC]
        #expect((0..<4).map { _ in mixer.next() } == expected)
    }

    @Test func xoshiroMatchesTheReferenceImplementationFromStateOneTwoThreeFour() throws {
        // The outputs of Vigna's xoshiro256starstar.c, as rand_xoshiro's test records them.
        var generator = try #require(RandomGenerator(state: [1, 2, 3, 4]))
        let expected: [UInt64] = [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240, 1_216_172_134_540_287_360,
                                  607_988_272_756_665_600, 16_172_922_978_634_559_625, 8_476_171_486_693_032_832,
                                  10_595_114_339_597_558_777, 2_904_607_092_377_533_576]
        #expect((0..<10).map { _ in generator.next() } == expected)
    }

    @Test func seedingIsXoshiroFromFourSplitMix64Outputs() {
        // Seed 42 through SplitMix64, as other xoshiro256** ports publish it.
        var generator = RandomGenerator(seed: 42)
        let expected: [UInt64] = [1_546_998_764_402_558_742, 6_990_951_692_964_543_102,
                                  12_544_586_762_248_559_009, 17_057_574_109_182_124_193]
        #expect((0..<4).map { _ in generator.next() } == expected)
        var mixer = SplitMix64(state: 42)
        #expect(RandomGenerator(seed: 42).state == (0..<4).map { _ in mixer.next() })
    }

    @Test func jumpMatchesTheReferenceImplementation() throws {
        // jump() from state {0, 0, 0, 1}, as the reference C code computes it.
        var generator = try #require(RandomGenerator(state: [0, 0, 0, 1]))
        generator.jump()
        #expect(generator.state == [0x934D_05E8_B207_6310, 0xEABD_D0BF_76A1_BE51, 0x75DD_6A99_2ACC_B1E8, 0xC660_C602_A733_0187])
    }

    // MARK: - Reproducibility and checkpoints

    @Test func theSameSeedGivesTheSameSequenceAndAnotherSeedDoesNot() {
        var a = RandomGenerator(seed: 7), b = RandomGenerator(seed: 7), c = RandomGenerator(seed: 8)
        let first = (0..<1000).map { _ in a.next() }
        #expect(first == (0..<1000).map { _ in b.next() })
        #expect(Set(first).isDisjoint(with: (0..<1000).map { _ in c.next() }))
        #expect(Set(first).count == 1000)
    }

    @Test func savedStateResumesTheSequenceExactly() throws {
        var generator = RandomGenerator(seed: 99)
        for _ in 0..<10 { _ = generator.next() }
        let saved = generator.state
        let continued = (0..<100).map { _ in generator.next() }
        var restored = try #require(RandomGenerator(state: saved))
        #expect((0..<100).map { _ in restored.next() } == continued)
        #expect(restored == generator)
    }

    @Test func aStateSurvivesAJSONRoundTrip() throws {
        var generator = RandomGenerator(seed: 2024)
        for _ in 0..<3 { _ = generator.nextNormal() }
        // Full 64-bit words, beyond what a Double holds exactly.
        #expect(generator.state.contains { $0 > 1 << 53 })
        let data = try JSONEncoder().encode(generator)
        let decoded = try JSONDecoder().decode(RandomGenerator.self, from: data)
        #expect(decoded == generator)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(RandomGenerator.self, from: Data("[0,0,0,0]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(RandomGenerator.self, from: Data("[1,2,3]".utf8)) }
    }

    @Test func statesTheGeneratorCannotHaveAreRefused() {
        #expect(RandomGenerator(state: [0, 0, 0, 0]) == nil)
        #expect(RandomGenerator(state: [1, 2, 3]) == nil)
        #expect(RandomGenerator(state: [1, 2, 3, 4, 5]) == nil)
        #expect(RandomGenerator(state: [0, 0, 0, 1]) != nil)
    }

    // MARK: - Streams

    @Test func streamZeroIsThePlainSeedAndOtherStreamsDiffer() {
        #expect(RandomGenerator(seed: 5, stream: 0) == RandomGenerator(seed: 5))
        var streams = (0..<4).map { RandomGenerator(seed: 5, stream: UInt64($0)) }
        var seen = Set<UInt64>()
        for index in streams.indices {
            for _ in 0..<1000 { seen.insert(streams[index].next()) }
        }
        // 4000 random 64-bit values collide with probability ~10⁻¹²: any repeat means overlapping streams.
        #expect(seen.count == 4000)
        #expect(RandomGenerator(seed: 5, stream: 1) != RandomGenerator(seed: 6, stream: 1))
    }

    @Test func splitHandsOverTheCurrentSequenceAndJumpsPastIt() {
        var parent = RandomGenerator(seed: 11)
        var untouched = parent
        var child = parent.split()
        #expect((0..<100).map { _ in child.next() } == (0..<100).map { _ in untouched.next() })
        var jumped = RandomGenerator(seed: 11)
        jumped.jump()
        #expect(parent == jumped)
        var secondChild = parent.split()
        #expect(secondChild != child)
        #expect(Set((0..<1000).map { _ in secondChild.next() }).isDisjoint(with: (0..<1000).map { _ in child.next() }))
    }

    @Test func itWorksAsASwiftRandomNumberGenerator() {
        var a = RandomGenerator(seed: 3), b = RandomGenerator(seed: 3)
        let shuffledA = Array(0..<50).shuffled(using: &a), shuffledB = Array(0..<50).shuffled(using: &b)
        #expect(shuffledA == shuffledB)
        #expect(shuffledA != Array(0..<50))
        let dice = (0..<600).map { _ in Int.random(in: 1...6, using: &a) }
        #expect(Set(dice) == Set(1...6))
    }

    // MARK: - Uniform

    static func moments(_ values: [Float]) -> (mean: Double, variance: Double) {
        let mean = values.reduce(0) { $0 + Double($1) } / Double(values.count)
        let variance = values.reduce(0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count - 1)
        return (mean, variance)
    }

    @Test func uniformFloatsFillZeroToOneWithMeanOneHalfAndVarianceOneTwelfth() {
        var generator = RandomGenerator(seed: 21)
        let values = (0..<Self.sampleCount).map { _ in generator.nextFloat() }
        #expect(values.allSatisfy { $0 >= 0 && $0 < 1 })
        let n = Double(Self.sampleCount)
        let (mean, variance) = Self.moments(values)
        // Standard errors: mean √(1/12/n) ≈ 9.1·10⁻⁴; variance √((1/80 − 1/144)/n) ≈ 2.4·10⁻⁴.
        #expect(abs(mean - 0.5) <= 5 * (1.0 / 12 / n).squareRoot())
        #expect(abs(variance - 1.0 / 12) <= 5 * ((1.0 / 80 - 1.0 / 144) / n).squareRoot())
        // Each tenth of the interval gets a tenth of the draws (binomial standard error ≈ 95).
        var bins = [Int](repeating: 0, count: 10)
        for v in values { bins[Int(v * 10)] += 1 }
        let binError = (n * 0.1 * 0.9).squareRoot()
        #expect(bins.allSatisfy { abs(Double($0) - n / 10) <= 5 * binError }, "\(bins)")
    }

    @Test func uniformFloatsInARangeStayBelowTheUpperBound() {
        var generator = RandomGenerator(seed: 22)
        let values = (0..<Self.sampleCount).map { _ in generator.nextFloat(in: -3, 5) }
        #expect(values.allSatisfy { $0 >= -3 && $0 < 5 })
        let (mean, variance) = Self.moments(values)
        let n = Double(Self.sampleCount)
        #expect(abs(mean - 1) <= 5 * (64.0 / 12 / n).squareRoot())
        #expect(abs(variance - 64.0 / 12) <= 5 * 64 * ((1.0 / 80 - 1.0 / 144) / n).squareRoot())
        // One ulp wide: lower + width · u rounds to the upper bound for about half
        // of the draws, which must be pulled back into the interval.
        let lower = Float(1).nextDown
        let narrow = (0..<1000).map { _ in generator.nextFloat(in: lower, 1) }
        #expect(narrow.allSatisfy { $0 == lower })
    }

    // MARK: - Normal

    @Test func normalsHaveMeanZeroVarianceOneAndGaussianTails() {
        var generator = RandomGenerator(seed: 23)
        let values = (0..<Self.sampleCount).map { _ in generator.nextNormal() }
        let n = Double(Self.sampleCount)
        let (mean, variance) = Self.moments(values)
        // Standard errors: mean 1/√n ≈ 3.2·10⁻³; variance √(2/n) ≈ 4.5·10⁻³.
        #expect(abs(mean) <= 5 / n.squareRoot())
        #expect(abs(variance - 1) <= 5 * (2 / n).squareRoot())
        // P(|z| > 1.96) = 0.05 and P(|z| > 3) = 0.0027 for a Gaussian; a uniform of
        // the same variance has no values beyond √3 ≈ 1.73.
        let beyond196 = Double(values.filter { abs($0) > 1.96 }.count) / n
        let beyond3 = Double(values.filter { abs($0) > 3 }.count) / n
        #expect(abs(beyond196 - 0.05) <= 5 * (0.05 * 0.95 / n).squareRoot())
        #expect(abs(beyond3 - 0.0027) <= 5 * (0.0027 * 0.9973 / n).squareRoot())
        #expect(values.allSatisfy { $0.isFinite })
    }

    @Test func fillNormalScalesAndShiftsAndUsesBothValuesOfEachPair() {
        var generator = RandomGenerator(seed: 24)
        let tensor = Tensor(zeros: [Self.sampleCount + 1])  // an odd count ends on half a pair
        generator.fillNormal(tensor, mean: 2, standardDeviation: 0.5)
        let (mean, variance) = Self.moments(tensor.scalars)
        let n = Double(tensor.count)
        #expect(abs(mean - 2) <= 5 * 0.5 / n.squareRoot())
        #expect(abs(variance - 0.25) <= 5 * 0.25 * (2 / n).squareRoot())
        var pairs = RandomGenerator(seed: 24)
        let (first, second) = pairs.nextNormalPair()
        #expect(tensor.pointer[0] == 2 + 0.5 * first && tensor.pointer[1] == 2 + 0.5 * second)
    }

    @Test func fillsAreReproducible() {
        let a = Tensor(zeros: [33, 17]), b = Tensor(zeros: [33, 17])
        var g1 = RandomGenerator(seed: 25), g2 = RandomGenerator(seed: 25)
        g1.fillUniform(a, in: -1, 1)
        g2.fillUniform(b, in: -1, 1)
        g1.fillNormal(a)
        g2.fillNormal(b)
        #expect(a.scalars == b.scalars)
        #expect(g1 == g2)
    }

    // MARK: - Kaiming

    @Test func kaimingBoundFollowsPyTorch() {
        // a = √5 (nn.Linear, LoRA's A): gain √(1/3), so bound = 1/√fan_in.
        let lora = RandomGenerator.kaimingUniformBound(shape: [16, 4096], a: 5.0.squareRoot())
        #expect(abs(Double(lora) - 1 / 4096.0.squareRoot()) <= 1e-7 * Double(lora))
        // a = 0 (ReLU): gain √2, bound = √(6/fan_in).
        let relu = RandomGenerator.kaimingUniformBound(shape: [10, 24], a: 0)
        #expect(abs(Double(relu) - (6.0 / 24).squareRoot()) <= 1e-7)
        // A convolution's fan_in includes its receptive field: 3 · 5 · 5 = 75.
        let conv = RandomGenerator.kaimingUniformBound(shape: [8, 3, 5, 5], a: 0)
        #expect(abs(Double(conv) - (6.0 / 75).squareRoot()) <= 1e-7)
    }

    @Test func kaimingFillStaysWithinTheBoundAndIsUniform() {
        var generator = RandomGenerator(seed: 26)
        let weight = Tensor(zeros: [250, 400])  // 10⁵ values, fan_in 400
        generator.fillKaimingUniform(weight, a: 5.0.squareRoot())
        let bound = Float(1 / 400.0.squareRoot())
        let values = weight.scalars
        #expect(values.allSatisfy { $0 >= -bound && $0 < bound })
        // The extremes reach the bound (a gap of 10⁻⁴ of it has probability e⁻¹⁰ of being empty).
        #expect(values.min()! < -bound * 0.9999 && values.max()! > bound * 0.9999)
        let n = Double(values.count)
        let (mean, variance) = Self.moments(values)
        let b = Double(bound)
        #expect(abs(mean) <= 5 * b * (1.0 / 3 / n).squareRoot())
        #expect(abs(variance - b * b / 3) <= 5 * b * b * 4 * ((1.0 / 80 - 1.0 / 144) / n).squareRoot())
        var bins = [Int](repeating: 0, count: 10)
        for v in values { bins[min(9, Int((v + bound) / (2 * bound) * 10))] += 1 }
        #expect(bins.allSatisfy { abs(Double($0) - n / 10) <= 5 * (n * 0.09).squareRoot() }, "\(bins)")
    }
}
