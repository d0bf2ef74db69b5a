import Control
import Foundation
import Testing
@testable import Daemon

@Suite("MemoryAdmission")
struct MemoryAdmissionTests {
    func estimate(gib: Double) -> MemoryEstimate {
        MemoryEstimate(parts: [.init(name: "weights", bytes: Int(gib * Double(1 << 30)))])
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
        #expect(Quantities.bytes(900) == "900 B")
        #expect(Quantities.bytes(1536) == "1.5 KiB")
        #expect(Quantities.bytes(512 << 20) == "512.0 MiB")
        #expect(Quantities.bytes(Int(9.1 * Double(1 << 30))) == "9.1 GiB")
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
