#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Ledger
import Testing

/// `losad run` inside the confinement systemd/losad.service sets, as far as it can be had without
/// systemd as PID 1 (scripts/confine.sh: namespaces, read-only mounts, private /tmp and /dev,
/// hidden homes and processes, an unprivileged user without capabilities, no-new-privileges, and
/// the unit's seccomp filter with its MemoryDenyWriteExecute, address-family, namespace,
/// realtime and personality rules, killing on any call outside the allow list): a dropped model
/// still becomes a finished job. Needs root; skipped with the reason without it, except under
/// CI=true, where it must run.
@Suite(.serialized) struct ConfinementTests {
    static let repository = DaemonJobTests.repository
    static let script = repository.path + "/scripts/confine.sh"
    /// The unprivileged user the daemon runs as here (nobody; the unit has its own user losad).
    static let user: (uid: uid_t, gid: gid_t) = (65534, 65534)

    static var underCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Why the confinement cannot be built here, or nil.
    static var missing: String? {
        if getuid() != 0 { return "not root (the namespaces and mounts need it)" }
        #if !arch(x86_64)
        return "the seccomp filter is written for x86-64"
        #else
        let tools = ["/usr/bin/setpriv", "/usr/bin/unshare", "/usr/bin/python3", "/usr/bin/systemd-analyze"]
        if let tool = tools.first(where: { !FileManager.default.isExecutableFile(atPath: $0) }) { return "\(tool) is missing" }
        if !FileManager.default.fileExists(atPath: "/usr/include/x86_64-linux-gnu/asm/unistd_64.h") { return "linux-libc-dev is missing" }
        return nil
        #endif
    }

    /// A root-owned folder the daemon may only read (its executable, configuration and corpus), with
    /// state, inbox, outbox and run folders it owns and may write: the layout of an installed losad.
    struct Setup {
        let root: String
        var state: String { root + "/state" }
        var inbox: String { root + "/inbox" }
        var outbox: String { root + "/outbox" }
        var runtime: String { root + "/run" }
        var executable: String { root + "/bin/losad" }
        var config: String { root + "/losad.toml" }
        var writable: [String] { [state, inbox, outbox, runtime] }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("losad-confined-\(UUID().uuidString.prefix(8))").path
            let files = FileManager.default
            try files.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
            chmod(root, 0o755)
            for folder in [state, inbox, outbox, runtime] {
                try files.createDirectory(atPath: folder, withIntermediateDirectories: false)
                #expect(chown(folder, ConfinementTests.user.uid, ConfinementTests.user.gid) == 0)
            }
            // A link where the file system allows it: the build's binary is large.
            if link(CommandTests.executable.path, executable) != 0 {
                try files.copyItem(atPath: CommandTests.executable.path, toPath: executable)
            }
            try files.copyItem(atPath: DaemonJobTests.text, toPath: root + "/text.txt")
            let budget = DaemonJobTests.budget.map { "\($0.key) = \($0.value)" }.joined(separator: "\n")
            try """
                [folders]
                inbox = "\(inbox)"
                outbox = "\(outbox)"
                state = "\(state)"
                [job]
                profile = "quick"
                calibration_corpus = "\(root)/text.txt"
                evaluation_corpus = "\(root)/text.txt"
                \(budget)
                [watch]
                settle_seconds = 0.3
                rescan_seconds = 1
                [control]
                socket = "\(runtime)/losad.sock"
                socket_group = ""
                [service]
                stop_timeout_seconds = 10
                """.write(toFile: config, atomically: true, encoding: .utf8)
            chmod(config, 0o644)
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// confine.sh's arguments for `setup` (the unit's layout: the folder read-only, its four folders writable).
    static func confinement(_ setup: Setup) -> [String] {
        var arguments = [script, "--user", "\(user.uid):\(user.gid)", "--action", "kill", "--readable", setup.root]
        for folder in setup.writable { arguments += ["--writable", folder] }
        return arguments + ["--"]
    }

    @Test("the confinement holds: outside the writable folders everything is read-only, homes, other processes, devices and the network are gone, no capabilities, seccomp on",
          .enabled(if: missing == nil || underCI, "\(missing ?? "")"))
    func theConfinementIsReal() throws {
        if let missing = Self.missing { Issue.record("CI=true, and the confinement cannot be built: \(missing)"); return }
        let setup = try Setup()
        let marker = "/tmp/losad-marker-\(UUID().uuidString.prefix(8))"
        #expect(FileManager.default.createFile(atPath: marker, contents: nil))
        defer {
            setup.remove()
            unlink(marker)
        }
        // Each line prints "name yes" or "name no"; the shell is the one the daemon would be.
        let probe = """
            check() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name yes"; else echo "$name no"; fi; }
            check write-state touch \(setup.state)/probe
            check write-config touch \(setup.config)
            check write-usr touch /usr/losad-probe
            check write-repository touch \(Self.repository.path)/.losad-probe
            check read-config cat \(setup.config)
            check see-home ls /root
            check see-pid-1 test -e /proc/1/status
            check see-disk sh -c 'ls /dev | grep -qv -e null -e zero -e full -e random -e urandom -e shm -e fd -e std'
            check see-host-tmp test -e \(marker)
            check write-tmp touch /tmp/probe
            check read-meminfo grep -q MemAvailable /proc/meminfo
            check read-cpuinfo grep -q flags /proc/cpuinfo
            check root-user test "$(id -u)" = 0
            check capabilities sh -c 'grep -q "^CapBnd:.*[1-9a-f]" /proc/self/status'
            check no-new-privs grep -q "^NoNewPrivs:.*1" /proc/self/status
            check seccomp grep -q "^Seccomp:.*2" /proc/self/status
            check network sh -c 'grep -v "^ *lo:" /proc/net/dev | grep -q ":"'
            check umask test "$(umask)" = 0027
            """
        let result = try SystemdUnitTests.run("/bin/bash", Self.confinement(setup) + ["/bin/sh", "-c", probe])
        #expect(result.status == 0, "\(result.output)")
        let answers = Dictionary(result.output.split(separator: "\n").compactMap { line -> (String, Bool)? in
            let fields = line.split(separator: " ")
            return fields.count == 2 && ["yes", "no"].contains(fields[1]) ? (String(fields[0]), fields[1] == "yes") : nil
        }, uniquingKeysWith: { $1 })
        let expected: [String: Bool] = [
            "write-state": true, "write-config": false, "write-usr": false, "write-repository": false, "read-config": true,
            "see-home": false, "see-pid-1": false, "see-disk": false, "see-host-tmp": false, "write-tmp": true,
            "read-meminfo": true, "read-cpuinfo": true, "root-user": false, "capabilities": false, "no-new-privs": true,
            "seccomp": true, "network": false, "umask": true,
        ]
        for (name, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(answers[name] == value, "\(name): expected \(value ? "yes" : "no"), got \(answers[name].map { $0 ? "yes" : "no" } ?? "nothing")\n\(result.output)")
        }
        #expect(!result.output.contains("cannot"), "\(result.output)")
    }

    @Test("losad run under the unit's confinement, as an unprivileged user: a dropped model becomes a finished job, compute still at idle priority",
          .enabled(if: missing == nil || underCI, "\(missing ?? "")"))
    func aJobCompletesUnderTheConfinement() async throws {
        if let missing = Self.missing { Issue.record("CI=true, and the confinement cannot be built: \(missing)"); return }
        let setup = try Setup()
        defer { setup.remove() }
        let log = setup.root + "/daemon.log"
        #expect(FileManager.default.createFile(atPath: log, contents: nil))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = Self.confinement(setup) + [setup.executable, "run", "--config", setup.config]
        process.environment = ProcessInfo.processInfo.environment.merging(["LOSAD_LOG_LEVEL": "info"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        try DaemonJobTests.drop(into: setup.inbox)
        // The ledger stays the daemon's while it runs (a root-owned -shm file would lock it out); its log says how the job ended.
        let ended = try await DaemonJobTests.wait(timeout: 180) {
            !process.isRunning || ["succeeded: ", "failed: ", "refused: ", "cannot start job"].contains { output.contains($0) }
        }
        #expect(ended && process.isRunning,
                "the daemon ended (\(process.isRunning ? "running" : "\(process.terminationReason == .uncaughtSignal ? "signal" : "status") \(process.terminationStatus)")): \(output)")
        process.terminate()
        _ = try await DaemonJobTests.wait(timeout: 30) { !process.isRunning }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(output)")
        #expect(output.contains("succeeded: "), "\(output)")
        #expect(!output.contains("jobs run at the daemon's own CPU priority"), "lowering compute threads was refused: \(output)")

        let ledger = try Ledger.open(path: setup.state + "/losad.sqlite")
        let job = try #require(try ledger.jobs().first)
        #expect(job.state == .succeeded, "\(job.error ?? "") \(output)")
        let result = try #require(job.outputPath)
        #expect(result.hasPrefix(setup.outbox + "/"))
        var status = stat()
        #expect(stat(result + "/model.safetensors", &status) == 0)
        #expect(status.st_uid == Self.user.uid, "written by the unprivileged user")
        #expect(status.st_mode & 0o007 == 0, "UMask=0027: nothing for others")
        let details = try #require(try ledger.details(job: job.id!))
        #expect(details.layerStatistics.count == 3 * 2)   // 3 iterations × 2 layers, as without confinement
    }
}
