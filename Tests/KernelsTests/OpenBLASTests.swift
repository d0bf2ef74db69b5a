import Testing
@testable import Kernels

/// The OpenBLAS kernel-set choice, on CPUs described by small /proc/cpuinfo texts.
@Suite struct OpenBLASTests {
    /// The first processor block of a /proc/cpuinfo, with `flags`.
    static func cpuinfo(vendor: String, family: Int, model: Int, flags: String) -> String {
        """
        processor\t: 0
        vendor_id\t: \(vendor)
        cpu family\t: \(family)
        model\t\t: \(model)
        model name\t: Test CPU \(model)
        stepping\t: 2
        flags\t\t: \(flags)
        bugs\t\t: spectre_v1

        """
    }

    static let base = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ssse3 sse4_1"
    static let avx2 = base + " sse4_2 avx f16c fma avx2"
    static let avx512 = avx2 + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni"

    static func core(vendor: String = "GenuineIntel", family: Int = 6, model: Int = 85, flags: String) -> String {
        OpenBLAS.bestX86Core(CPUFeatures(cpuinfo: cpuinfo(vendor: vendor, family: family, model: model, flags: flags)))
    }

    @Test func cpuinfoParsingReadsTheFirstProcessorBlock() {
        let text = Self.cpuinfo(vendor: "GenuineIntel", family: 6, model: 207, flags: Self.avx2)
            + Self.cpuinfo(vendor: "AuthenticAMD", family: 25, model: 17, flags: Self.avx512)
        let features = CPUFeatures(cpuinfo: text)
        #expect(features.vendor == "GenuineIntel")
        #expect(features.family == 6 && features.model == 207)
        #expect(features.modelName == "Test CPU 207")
        #expect(features.flags.contains("avx2") && !features.flags.contains("avx512f"))
        #expect(features.notableFlags == ["sse4_2", "avx", "f16c", "fma", "avx2"])
    }

    @Test func anIntelAVX512CPUWithBFloat16AndAMXGetsCooperlake() {
        // Family 6 model 207 (Emerald Rapids): OpenBLAS 0.3.21 has no Sapphire Rapids set.
        #expect(Self.core(model: 207, flags: Self.avx512 + " avx512_bf16 amx_bf16 amx_tile amx_int8") == "Cooperlake")
    }

    @Test func avx512WithoutBFloat16GetsSkylakeX() {
        #expect(Self.core(model: 85, flags: Self.avx512) == "SkylakeX")
    }

    @Test func avx512NeedsAllFiveCoreSubsets() {
        // avx512f alone (Knights Landing, say) is not enough for the SkylakeX kernels.
        let partial = Self.avx2 + " avx512f avx512cd avx512_bf16"
        #expect(Self.core(model: 87, flags: partial) == "Haswell")
        #expect(!CPUFeatures(cpuinfo: Self.cpuinfo(vendor: "GenuineIntel", family: 6, model: 87, flags: partial)).hasAVX512Core)
    }

    @Test func amdWithAVX2GetsZenAndIntelWithAVX2GetsHaswell() {
        #expect(Self.core(vendor: "AuthenticAMD", family: 23, model: 49, flags: Self.avx2) == "Zen")
        #expect(Self.core(vendor: "HygonGenuine", family: 24, model: 1, flags: Self.avx2) == "Zen")
        #expect(Self.core(vendor: "GenuineIntel", family: 6, model: 60, flags: Self.avx2) == "Haswell")
    }

    @Test func olderCPUsStepDownThroughSandybridgeNehalemAndPrescott() {
        #expect(Self.core(model: 42, flags: Self.base + " sse4_2 avx") == "Sandybridge")
        // AVX2 without FMA cannot run the Haswell kernels.
        #expect(Self.core(model: 42, flags: Self.base + " sse4_2 avx avx2") == "Sandybridge")
        #expect(Self.core(model: 26, flags: Self.base + " sse4_2") == "Nehalem")
        #expect(Self.core(model: 15, flags: Self.base) == "Prescott")
        #expect(OpenBLAS.bestX86Core(CPUFeatures(cpuinfo: "")) == "Prescott")
    }

    @Test func theUsersOpenBLASCoreTypeWins() {
        let features = CPUFeatures(cpuinfo: Self.cpuinfo(vendor: "GenuineIntel", family: 6, model: 85, flags: Self.avx512))
        #expect(OpenBLAS.chooseCore(environment: ["OPENBLAS_CORETYPE": "Haswell"], features: features) == .user("Haswell"))
        #if arch(x86_64)
        #expect(OpenBLAS.chooseCore(environment: [:], features: features) == .detected("SkylakeX"))
        // An empty value is no choice.
        #expect(OpenBLAS.chooseCore(environment: ["OPENBLAS_CORETYPE": ""], features: features) == .detected("SkylakeX"))
        #endif
    }

    @Test func theLibraryLoadsAndReportsItsThreadsAndCore() throws {
        let blas = try Kernels.prepare()
        #expect(blas.threadCount >= 1)
        #expect(!blas.coreName.isEmpty && blas.coreName != "unknown")
        #expect(blas.configuration.contains("OpenBLAS"))
    }
}
