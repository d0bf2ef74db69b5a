import Foundation
import ModelFormats
import Testing
@testable import Daemon

/// SmolLM2-135M's architecture (its config.json), the demo model.
let smolLM2 = ModelConfig(architecture: .llama, layerCount: 30, hiddenSize: 576, headCount: 9, kvHeadCount: 3, headDim: 64,
                          ffnSize: 1536, vocabSize: 49152, contextLength: 8192, ropeTheta: 100_000, ropeScaling: nil,
                          ropeLayout: .halfSplit, rmsNormEpsilon: 1e-5, tiedEmbeddings: true, attentionBias: false)

@Suite("MemoryEstimate")
struct MemoryEstimateTests {
    @Test("the training workspace matches the buffer list written out by hand, and LoRATraining's measured 72 MB / 183 MB")
    func trainingWorkspace() {
        // B·T = N rows; every buffer of this model is a multiple of 16 floats, so there is no padding.
        func byHand(batch: Int) -> Int {
            let n = batch * 256, c = 576, hd = 576, kvd = 192, f = 1536, v = 49152, t = 256, group = 3
            return 31 * n * c + 8 * n * c + 2 * n + 4 * n * hd + 4 * n * kvd + 6 * n * f + 3 * group * t * t
                + 2 * f * c + n * max(c, f, hd) + min(128, n) * v + c
        }
        let one = MemoryEstimate.trainingWorkspaceFloats(config: smolLM2, batch: 1, tokens: 256, chunkRows: 128)
        let four = MemoryEstimate.trainingWorkspaceFloats(config: smolLM2, batch: 4, tokens: 256, chunkRows: 128)
        #expect(one == byHand(batch: 1) && one == 17_941_568)
        #expect(four == byHand(batch: 4) && four == 45_812_288)
        #expect(abs(Double(one * 4) / 1e6 - 72) < 0.5 && abs(Double(four * 4) / 1e6 - 183) < 0.5)
        #expect(MemoryEstimate.trainingWorkspaceFloats(config: smolLM2, batch: 0, tokens: 256, chunkRows: 128) == 0)
    }

    @Test("each part follows from the inputs: weights, adapters with R = 16 and three more arenas, calibration, Hessian, export")
    func parts() {
        let inputs = MemoryEstimate.Inputs(config: smolLM2, trainingBatch: 1, trainingTokens: 256, calibrationWindows: 64,
                                           calibrationTokens: 512, calibrationCopies: 4, sparseGPT: true,
                                           exportBytes: MemoryEstimate.exportBytes(parameterCount: smolLM2.parameterCount, type: .q8_0),
                                           processOverheadBytes: 100 << 20)
        let estimate = MemoryEstimate(inputs)
        let bytes = Dictionary(uniqueKeysWithValues: estimate.parts.map { ($0.name, $0.bytes) })
        // 30·(2·576² + 2·576·192 + 3·576·1536 + 2·576) + 49152·576 + 576 (tied head) parameters.
        #expect(bytes["weights"] == 134_515_008 * 4)
        // Per layer R·(in + out) summed over q, k, v, o, gate, up, down = 16·10176; four arenas of Float32.
        #expect(bytes["adapters and optimizer"] == 30 * 16 * (1152 + 768 + 768 + 1152 + 3 * 2112) * 4 * 4)
        #expect(bytes["training workspace"] == 17_941_568 * 4)
        #expect(bytes["calibration buffers"] == 64 * 512 * 576 * 4 * 4)
        #expect(bytes["SparseGPT Hessian"] == 2 * 1536 * 1536 * 4)   // the down projection's input is the widest
        #expect(bytes["export staging"] == (134_515_008 + 31) / 32 * 34)
        #expect(bytes["process"] == 100 << 20)
        #expect(estimate.totalBytes == estimate.parts.reduce(0) { $0 + $1.bytes })
        #expect(estimate.parts.map(\.name) == ["weights", "adapters and optimizer", "training workspace", "calibration buffers",
                                               "SparseGPT Hessian", "export staging", "process"])
    }

    @Test("without recovery there are no adapters or training workspace; without SparseGPT no Hessian")
    func pruneOnly() {
        let estimate = MemoryEstimate(.init(config: smolLM2, trainsAdapters: false, trainingBatch: 4, trainingTokens: 256,
                                            calibrationWindows: 8, calibrationTokens: 128, exportBytes: 0))
        #expect(estimate.parts.map(\.name) == ["weights", "calibration buffers", "export staging", "process"])
    }

    @Test("absurd sizes from a hostile header saturate instead of trapping")
    func saturation() {
        var config = smolLM2
        config.hiddenSize = 1 << 40
        let estimate = MemoryEstimate(.init(config: config, trainsAdapters: false, trainingBatch: 1, trainingTokens: 1,
                                            calibrationWindows: 1 << 30, calibrationTokens: 1 << 30, exportBytes: 0))
        #expect(estimate.parts.first { $0.name == "calibration buffers" }!.bytes >= Int.max / 16)
    }
}

@Suite("MemoryAdmission")
struct MemoryAdmissionTests {
    func estimate(gib: Double) -> MemoryEstimate {
        var estimate = MemoryEstimate(.init(config: smolLM2, trainsAdapters: false, trainingBatch: 1, trainingTokens: 1,
                                            calibrationWindows: 0, calibrationTokens: 0, exportBytes: 0, processOverheadBytes: 0))
        estimate.parts = [.init(name: "weights", bytes: Int(gib * Double(1 << 30)))]
        return estimate
    }

    @Test("a job that fits is admitted against the smallest bound")
    func admit() {
        let availability = MemoryAvailability(machineAvailable: 20 << 30, cgroupLimit: 8 << 30, cgroupUsage: 1 << 30,
                                              cgroupReclaimable: 0)
        #expect(MemoryAdmission.decide(job: "job 1", estimate: estimate(gib: 2), availability: availability, limit: .bytes(6 << 30))
                == .admit(allowedBytes: 6 << 30))
        #expect(MemoryAdmission.decide(job: "job 1", estimate: estimate(gib: 2), availability: availability, limit: .automatic)
                == .admit(allowedBytes: 7 << 30))
        #expect(MemoryAdmission.decide(job: "job 1", estimate: estimate(gib: 2), availability: MemoryAvailability(), limit: .automatic)
                == .admit(allowedBytes: Int.max))
    }

    @Test("a refusal names the estimate, its parts, the binding bound and the shortfall")
    func refuseByConfiguredLimit() {
        let decision = MemoryAdmission.decide(job: "job 7 (SmolLM2)", estimate: estimate(gib: 9.1),
                                              availability: MemoryAvailability(machineAvailable: 20 << 30), limit: .bytes(4 << 30))
        #expect(decision == .refuse(reason: "job 7 (SmolLM2) needs an estimated 9.1 GiB at its peak (weights 9.1 GiB), "
                                    + "but scheduler.memory_limit is 4.0 GiB; it is 5.1 GiB short. "
                                    + "Free memory, raise the limit, or use a smaller profile."))
    }

    @Test("the cgroup's headroom (limit − usage + reclaimable cache) binds when it is the smallest")
    func refuseByCgroup() {
        let availability = MemoryAvailability(machineAvailable: 20 << 30, cgroupLimit: 4 << 30, cgroupUsage: 3 << 30,
                                              cgroupReclaimable: 512 << 20, cgroupFolder: "/sys/fs/cgroup/system.slice/losad.service")
        #expect(availability.cgroupHeadroom == 1536 << 20)
        guard case .refuse(let reason) = MemoryAdmission.decide(job: "job 2", estimate: estimate(gib: 2), availability: availability,
                                                                limit: .automatic) else {
            Issue.record("a 2 GiB job was admitted with 1.5 GiB of cgroup headroom"); return
        }
        #expect(reason.contains("but the service's cgroup (/sys/fs/cgroup/system.slice/losad.service) leaves 1.5 GiB of its 4.0 GiB limit with 3.0 GiB in use; it is 512.0 MiB short"))
    }

    @Test("the machine's MemAvailable binds without a cgroup limit")
    func refuseByMachine() {
        guard case .refuse(let reason) = MemoryAdmission.decide(job: "job 3", estimate: estimate(gib: 3),
                                                                availability: MemoryAvailability(machineAvailable: 2 << 30),
                                                                limit: .automatic) else {
            Issue.record("admitted"); return
        }
        #expect(reason.contains("but the machine has 2.0 GiB available (MemAvailable); it is 1.0 GiB short"))
    }

    @Test("sizes are written in binary units")
    func format() {
        #expect(MemoryAdmission.format(900) == "900 B")
        #expect(MemoryAdmission.format(1536) == "1.5 KiB")
        #expect(MemoryAdmission.format(512 << 20) == "512.0 MiB")
        #expect(MemoryAdmission.format(Int(9.1 * Double(1 << 30))) == "9.1 GiB")
    }
}

@Suite("MemoryAvailability")
struct MemoryAvailabilityTests {
    /// A fake /proc and /sys/fs/cgroup under a temporary folder.
    func withTree(_ files: [String: String], _ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("memtree-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        try body(root.path)
    }

    static let meminfo = "MemTotal:       24684084 kB\nMemFree:        19760304 kB\nMemAvailable:   23731596 kB\n"

    @Test("cgroup v2: the smallest memory.max on the way to the root, memory.current and inactive_file")
    func v2() throws {
        try withTree([
            "proc/meminfo": Self.meminfo,
            "proc/self/cgroup": "0::/system.slice/losad.service\n",
            "cg/system.slice/memory.max": "8589934592\n",
            "cg/system.slice/losad.service/memory.max": "max\n",
            "cg/system.slice/losad.service/memory.current": "1073741824\n",
            "cg/system.slice/losad.service/memory.stat": "anon 900000000\nfile 200000000\ninactive_file 104857600\nactive_file 5\n",
        ]) { root in
            let figures = MemoryAvailability.read(procRoot: root + "/proc", cgroupRoot: root + "/cg")
            #expect(figures == MemoryAvailability(machineAvailable: 23_731_596 * 1024, machineTotal: 24_684_084 * 1024,
                                                  cgroupLimit: 8 << 30, cgroupUsage: 1 << 30, cgroupReclaimable: 100 << 20,
                                                  cgroupFolder: root + "/cg/system.slice/losad.service"))
            #expect(figures.cgroupHeadroom == (8 << 30) - (1 << 30) + (100 << 20))
        }
    }

    @Test("cgroup v1 memory controller, with v1's 'unlimited' read as no limit")
    func v1() throws {
        try withTree([
            "proc/meminfo": Self.meminfo,
            "proc/self/cgroup": "9:name=systemd:/\n4:memory:/docker/abc\n0::/\n",
            "cg/memory/docker/abc/memory.limit_in_bytes": "4294967296\n",
            "cg/memory/docker/abc/memory.usage_in_bytes": "536870912\n",
            "cg/memory/docker/abc/memory.stat": "cache 1\ntotal_inactive_file 1048576\n",
        ]) { root in
            let figures = MemoryAvailability.read(procRoot: root + "/proc", cgroupRoot: root + "/cg")
            #expect(figures.cgroupLimit == 4 << 30 && figures.cgroupUsage == 512 << 20 && figures.cgroupReclaimable == 1 << 20)
        }
        try withTree([
            "proc/meminfo": Self.meminfo,
            "proc/self/cgroup": "4:memory:/not/visible/here\n",
            "cg/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "cg/memory/memory.usage_in_bytes": "1000\n",
        ]) { root in
            // The path is not under the mount (a cgroup namespace): the mount's root is read instead.
            let figures = MemoryAvailability.read(procRoot: root + "/proc", cgroupRoot: root + "/cg")
            #expect(figures.cgroupFolder == root + "/cg/memory" && figures.cgroupLimit == nil && figures.cgroupUsage == 1000)
            #expect(figures.cgroupHeadroom == nil)
        }
    }

    @Test("missing or garbled files give unknowns, not errors")
    func missing() throws {
        try withTree(["proc/meminfo": "MemAvailable: lots kB\n"]) { root in
            #expect(MemoryAvailability.read(procRoot: root + "/proc", cgroupRoot: root + "/cg") == MemoryAvailability())
        }
    }

    @Test("this machine reports some available memory")
    func live() {
        let figures = MemoryAvailability.read()
        #expect((figures.machineAvailable ?? 0) > 0 && (figures.machineTotal ?? 0) >= (figures.machineAvailable ?? 0))
    }
}
