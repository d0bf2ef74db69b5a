#if canImport(Glibc)
import Glibc
#endif
import Control
import Foundation
import Testing
@testable import losad

/// The control socket of the real `losad run` (issue 7): a varlink client nobody here wrote, bad
/// clients, many clients, a caller at another uid, and losactl, each against a daemon of its own.
@Suite struct ControlSocketTests {
    static let pythonMissing = "needs the python of scripts/python-env.sh (the varlink package from PyPI), or LOSAD_TEST_PYTHON"

    @Test(.enabled(if: LosadProcess.python != nil, Comment(rawValue: pythonMissing)))
    func theVarlinkPackageFromPyPIFollowsARealJobToItsEnd() async throws {
        let python = try #require(LosadProcess.python)
        let daemon = try await LosadProcess()
        let submitted = try await daemon.call("io.losa.Manager.Submit", #"{"path":"\#(LosadProcess.tinyModel)"}"#)
        let id = try #require(((submitted["parameters"] as? [String: Any])?["job"] as? [String: Any])?["id"] as? Int, "\(submitted)")

        let result = try await ChildProcess.run(python, [LosadProcess.probe, daemon.socketPath, "job", "\(id)"])
        try #require(result.status == 0, "\(result.error)\n\(daemon.log)")
        let report = try Self.object(result.output)
        let info = try #require(report["info"] as? [String: Any])
        #expect(info["product"] as? String == "losad" && info["version"] as? String == Losad.version)
        #expect(info["interfaces"] as? [String] == ["org.varlink.service", "io.losa.Manager"])
        #expect(report["description"] as? String == ManagerInterface.interfaceDefinition)

        let status = try #require(report["status"] as? [String: Any])
        #expect(status["version"] as? String == Losad.version)
        #expect(status["inbox"] as? String == daemon.root + "/inbox" && status["outbox"] as? String == daemon.root + "/outbox")
        // The OpenBLAS kernel set with its version and threads, and the CPU with the job's threads.
        let kernel = try #require(status["kernel"] as? String)
        #expect(kernel.wholeMatch(of: /[A-Za-z0-9]+ \(\d+\.\d+\.\d+, \d+ threads\)/) != nil, "\(kernel)")
        #expect((status["device"] as? String)?.hasSuffix(" threads)") == true, "\(status)")

        // The stream: the job as it was, then one reply per event, the last one final.
        let watch = try #require(report["watch"] as? [[String: Any]])
        let jobs = watch.compactMap { $0["job"] as? [String: Any] }
        #expect(jobs.count == watch.count && watch.count >= 4, "\(watch)")
        #expect(watch.first?["event"] == nil, "the first reply is the job as it is, without an event")
        #expect(jobs.dropLast().allSatisfy { ["queued", "running"].contains($0["state"] as? String) })
        let last = try #require(jobs.last)
        #expect(last["state"] as? String == "succeeded", "\(last)\n\(daemon.log)")
        #expect((last["output"] as? String)?.hasPrefix(daemon.root + "/outbox/") == true)
        let kinds = watch.dropFirst().compactMap { ($0["event"] as? [String: Any])?["kind"] as? String }
        #expect(kinds.count == watch.count - 1 && kinds.contains("stage") && kinds.last == "succeeded", "\(kinds)")

        // What the job measured, as GetJob and Metrics report it afterwards.
        let details = try #require(report["GetJob"] as? [String: Any])
        let figures = try #require(details["figures"] as? [String: Any])
        #expect((figures["densePerplexity"] as? Double ?? 0) > 1 && (figures["perplexity"] as? Double ?? 0) > 1, "\(figures)")
        #expect(abs((figures["measuredSparsity"] as? Double ?? 0) - 0.5) < 0.05, "\(figures)")
        let events = (details["events"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(events.first == "queued" && events.contains("started") && events.last == "succeeded", "\(events)")
        let metrics = (report["Metrics"] as? [String: Any])?["metrics"] as? [[String: Any]] ?? []
        let names = Set(metrics.compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["losad_jobs", "losad_job_perplexity", "losad_job_sparsity_ratio"]), "\(names)")
        #expect(report["problems"] as? [String] == [], "replies that differ from io.losa.Manager.varlink")
        #expect(await daemon.stop() == 0, "\(daemon.log)")
    }

    @Test func badClientsGetTheirErrorsOrAreDroppedAndTheDaemonGoesOnServing() async throws {
        let daemon = try await LosadProcess()
        _ = try await daemon.call("io.losa.Manager.Pause")
        _ = try await daemon.call("io.losa.Manager.Submit", #"{"path":"\#(LosadProcess.tinyModel)"}"#)   // job 1, held queued

        // Not varlink at all: that connection is closed, nothing else.
        for garbage in ["{\"method\": ", "[]", "\u{1}\u{2}binary", #"{"parameters":{}}"#, #"{"method":["x"]}"#] {
            let client = try WireClient(path: daemon.socketPath)
            client.send(garbage)
            #expect(try await client.receive(timeout: 5) == .closed, "\(garbage)")
        }
        // Over the 64 KiB limit, with or without its NUL.
        let oversize = try WireClient(path: daemon.socketPath)
        oversize.send(#"{"method":"io.losa.Manager.Ping","parameters":{"x":"\#(String(repeating: "a", count: 70_000))"}}"#)
        #expect(try await oversize.receive(timeout: 5) == .closed)
        let endless = try WireClient(path: daemon.socketPath)
        endless.send(Array(repeating: UInt8(ascii: "a"), count: 70_000))
        #expect(try await endless.receive(timeout: 5) == .closed)

        // Well-formed calls the daemon refuses, each with its error, on one connection that goes on.
        let client = try WireClient(path: daemon.socketPath)
        let tiny = LosadProcess.tinyModel
        let cases: [(call: String, error: String, parameters: [String: String])] = [
            (#"{"method":"io.losa.Manager.Explode"}"#, "org.varlink.service.MethodNotFound", ["method": "io.losa.Manager.Explode"]),
            (#"{"method":"com.example.Nothing.Here"}"#, "org.varlink.service.InterfaceNotFound", ["interface": "com.example.Nothing"]),
            (#"{"method":"io.losa.Manager.GetJob","parameters":{"id":"one"}}"#, "org.varlink.service.InvalidParameter", ["parameter": "id"]),
            (#"{"method":"io.losa.Manager.ListJobs","parameters":{"state":7}}"#, "org.varlink.service.InvalidParameter", ["parameter": "state"]),
            (#"{"method":"io.losa.Manager.Submit","parameters":{"path":["/a"]}}"#, "org.varlink.service.InvalidParameter", ["parameter": "path"]),
            (#"{"method":"io.losa.Manager.Submit","parameters":{"path":"models/tiny"}}"#, "org.varlink.service.InvalidParameter", ["parameter": "path"]),
            (#"{"method":"io.losa.Manager.Submit","parameters":{"path":"\#(tiny)","sparsity":0.99}}"#, "io.losa.Manager.InvalidSetting", ["parameter": "sparsity"]),
            (#"{"method":"io.losa.Manager.Submit","parameters":{"path":"\#(tiny)","method":"guess"}}"#, "io.losa.Manager.InvalidSetting", ["parameter": "method"]),
            (#"{"method":"io.losa.Manager.Submit","parameters":{"path":"\#(tiny)","calibration":"/no/such.txt"}}"#, "io.losa.Manager.InvalidSetting", ["parameter": "calibration"]),
            (#"{"method":"io.losa.Manager.Submit","parameters":{"path":"/no/such/model.gguf"}}"#, "io.losa.Manager.InvalidModel",
             ["path": "/no/such/model.gguf", "reason": "No such file or directory"]),
            (#"{"method":"io.losa.Manager.GetJob","parameters":{"id":99}}"#, "io.losa.Manager.JobNotFound", ["id": "99"]),
            (#"{"method":"io.losa.Manager.Cancel","parameters":{"id":99}}"#, "io.losa.Manager.JobNotFound", ["id": "99"]),
            (#"{"method":"io.losa.Manager.Retry","parameters":{"id":1}}"#, "io.losa.Manager.InvalidState", ["id": "1", "state": "queued"]),
            (#"{"method":"io.losa.Manager.Watch","parameters":{"id":1}}"#, "org.varlink.service.ExpectedMore", [:]),
        ]
        for (call, error, parameters) in cases {
            guard case .message(let text) = try await client.call(call) else { Issue.record("no answer to \(call)"); continue }
            let reply = try Self.object(text)
            #expect(reply["error"] as? String == error, "\(call): \(text)")
            let answered = reply["parameters"] as? [String: Any] ?? [:]
            for (key, value) in parameters {
                #expect(answered[key].map { "\($0)" } == value, "\(call): \(key) in \(text)")
            }
        }
        #expect(try await client.call(#"{"method":"io.losa.Manager.Ping"}"#) == .message(#"{"parameters":{}}"#))

        // A client that sends nothing, and one whose message never ends, are never answered; the
        // daemon serves everyone else meanwhile (the idle timeout drops them after 60 s).
        let silent = try WireClient(path: daemon.socketPath)
        let unterminated = try WireClient(path: daemon.socketPath)
        unterminated.send(#"{"method":"io.losa.Manager.Ping"}"#, terminated: false)
        #expect(try await unterminated.receive(timeout: 0.5) == .timedOut)
        #expect(try await Self.gauge(daemon, "losad_control_connections") == 4, "silent, unterminated, client and the caller")

        // A client that leaves in the middle of a Watch: its subscription ends with it.
        let watcher = try WireClient(path: daemon.socketPath)
        guard case .message(let first) = try await watcher.call(#"{"method":"io.losa.Manager.Watch","parameters":{"id":1},"more":true}"#) else {
            Issue.record("no first Watch reply")
            return
        }
        #expect(first.contains(#""continues":true"#) && first.contains(#""state":"queued""#), "\(first)")
        #expect(try await Self.gauge(daemon, "losad_watch_streams") == 1)
        watcher.close()
        #expect(try await LosadProcess.eventually { try await Self.gauge(daemon, "losad_watch_streams") == 0 },
                "the daemon's watch ends when its client leaves")

        for leaving in [silent, unterminated, client] { leaving.close() }
        #expect(try await LosadProcess.eventually { try await Self.gauge(daemon, "losad_control_connections") == 1 },
                "no connection outlives its client")
        let status = try await daemon.call("io.losa.Manager.Status")
        #expect((status["parameters"] as? [String: Any])?["state"] as? String == "paused", "\(status)")
        #expect(kill(daemon.pid, 0) == 0)
        #expect(await daemon.stop() == 0, "\(daemon.log)")
    }

    @Test func fiftyClientsMakingTwoThousandCallsAllGetTheirAnswersAndTheDaemonsMemoryReturnsToItsBaseline() async throws {
        let daemon = try await LosadProcess()
        _ = try await daemon.call("io.losa.Manager.Pause")
        _ = try await daemon.call("io.losa.Manager.Submit", #"{"path":"\#(LosadProcess.tinyModel)"}"#)

        // A warm-up round grows the daemon to its working size (NIO's and the dispatch queue's
        // threads, malloc arenas, SQLite's page cache); the baseline is taken after it.
        #expect(try await Self.round(daemon, clients: 50, callsPerClient: 10) == 500)
        try await Task.sleep(for: .milliseconds(300))
        let baseline = try #require(daemon.residentKiB)
        var after: [Int] = []
        var seconds: [Double] = []
        for _ in 0..<2 {
            let started = Date()
            let correct = try await Self.round(daemon, clients: 50, callsPerClient: 40)
            seconds.append(Date().timeIntervalSince(started))
            #expect(correct == 2000)
            #expect(try await LosadProcess.eventually { try await Self.gauge(daemon, "losad_control_connections") == 1 })
            after.append(try #require(daemon.residentKiB))
        }
        print("control load: 2 × 2000 calls from 50 clients in \(seconds.map { String(format: "%.2f s", $0) }); "
              + "VmRSS baseline \(baseline) KiB, after each round \(after) KiB")
        // 2,000 calls that each leaked one reply (~1 KiB) would add ~2 MiB a round; what stays above
        // the baseline must be less than that, and a second round must not add to the first.
        #expect(after[0] - baseline < 2048, "baseline \(baseline) KiB, after \(after[0]) KiB")
        #expect(after[1] - after[0] < 1024, "after the first round \(after[0]) KiB, after the second \(after[1]) KiB")
        #expect(await daemon.stop() == 0, "\(daemon.log)")
    }

    @Test(.enabled(if: LosadProcess.python != nil && LosadProcess.setpriv != nil && getuid() == 0,
                   "needs root, setpriv and the test python"))
    func aCallerAtAnotherUIDCanReadButNotChangeState() async throws {
        let python = try #require(LosadProcess.python), setpriv = try #require(LosadProcess.setpriv)
        // Open to all (0666) so that a stranger reaches it; state changes stay with the daemon's group.
        let daemon = try await LosadProcess(control: "socket_mode = \"0666\"\nsocket_group = \"\"")
        var info = stat()
        #expect(lstat(daemon.socketPath, &info) == 0 && info.st_mode & 0o7777 == 0o666 && info.st_gid == getegid())
        let group = AccessPolicy.groupName(getegid())

        let stranger = try await ChildProcess.run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                            python, LosadProcess.probe, daemon.socketPath, "access"])
        try #require(stranger.status == 0, "\(stranger.error)")
        let report = try Self.object(stranger.output)
        #expect(report["status"] as? String == "idle" && report["jobs"] as? Int == 0, "reading is open: \(report)")
        for method in ["submit", "cancel"] {
            let outcome = try #require(report[method] as? [String: Any])
            #expect(outcome["error"] as? String == "io.losa.Manager.PermissionDenied", "\(method): \(outcome)")
            let parameters = try #require(outcome["parameters"] as? [String: Any])
            #expect(parameters["uid"] as? Int == 65534 && parameters["group"] as? String == group, "\(parameters)")
        }

        // The same user in the daemon's group gets past the check: the daemon itself answers.
        let member = try await ChildProcess.run(setpriv, ["--reuid=65534", "--regid=65534", "--groups=\(getegid())",
                                                          python, LosadProcess.probe, daemon.socketPath, "access"])
        try #require(member.status == 0, "\(member.error)")
        let allowed = try Self.object(member.output)
        #expect((allowed["submit"] as? [String: Any])?["error"] as? String == "io.losa.Manager.InvalidModel", "\(allowed)")
        #expect((allowed["cancel"] as? [String: Any])?["error"] as? String == "io.losa.Manager.JobNotFound", "\(allowed)")
        let jobs = try await daemon.call("io.losa.Manager.ListJobs")
        #expect(((jobs["parameters"] as? [String: Any])?["jobs"] as? [Any])?.isEmpty == true, "nothing was queued")
        #expect(daemon.log.contains("state changes by root, uid \(getuid()) and group \(group ?? "")"), "\(daemon.log)")
        #expect(await daemon.stop() == 0, "\(daemon.log)")
    }

    @Test func losactlDrivesTheRealDaemon() async throws {
        let daemon = try await LosadProcess()
        let status = try await daemon.losactl("status", "--json")
        try #require(status.status == 0, "\(status.error)")
        #expect(try Self.object(status.output)["state"] as? String == "idle")
        let text = try await daemon.losactl("status")
        #expect(text.status == 0 && text.output.contains("kernel:  OpenBLAS ") && text.output.contains("threads)"), "\(text.output)")

        #expect(try await daemon.losactl("pause").status == 0)
        let submitted = try await daemon.losactl("submit", LosadProcess.tinyModel, "--sparsity", "0.4", "--json")
        try #require(submitted.status == 0, "\(submitted.error)")
        let job = try #require(try Self.object(submitted.output)["job"] as? [String: Any])
        #expect(job["id"] as? Int == 1 && job["state"] as? String == "queued")
        #expect((job["settings"] as? [String: Any])?["sparsity"] as? Double == 0.4)
        let listed = try await daemon.losactl("jobs", "--json")
        let jobs = try #require(try Self.object(listed.output)["jobs"] as? [[String: Any]])
        #expect(jobs.map { $0["id"] as? Int } == [1])
        #expect(try await daemon.losactl("jobs").output.contains("queued"))

        // Resumed, the job starts; watch follows it (one line per event, not a terminal) until a cancel ends it.
        #expect(try await daemon.losactl("resume").status == 0)
        async let watched = daemon.losactl("watch", "1")
        #expect(try await LosadProcess.eventually {
            let status = try await daemon.call("io.losa.Manager.Status")
            return ((status["parameters"] as? [String: Any])?["running"] as? [Any])?.count == 1
        })
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = try await daemon.losactl("cancel", "1")
        #expect(cancelled.status == 0, "\(cancelled.error)")
        let watch = try await watched
        #expect(watch.status == 1, "a cancelled job makes watch exit 1: \(watch.output)\(watch.error)")
        let lines = watch.output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("job 1 tiny-llama: ") == true, "\(watch.output)")
        #expect(lines.last?.hasPrefix("job 1 cancelled") == true, "\(watch.output)")

        let shown = try await daemon.losactl("show", "1", "--json")
        #expect(((try Self.object(shown.output))["job"] as? [String: Any])?["state"] as? String == "cancelled", "\(shown.output)")
        #expect(try await daemon.losactl("show", "1").status == 0)
        let metrics = try await daemon.losactl("metrics")
        #expect(metrics.output.contains("# TYPE losad_jobs gauge\n") && metrics.output.contains(#"losad_jobs{state="cancelled"} 1"#),
                "\(metrics.output)")
        let metricsJSON = try await daemon.losactl("metrics", "--json")
        #expect(((try Self.object(metricsJSON.output))["metrics"] as? [Any])?.isEmpty == false)
        let missing = try await daemon.losactl("show", "7")
        #expect(missing.status == 1 && missing.error.contains("7"), "\(missing.error)")
        #expect(await daemon.stop() == 0, "\(daemon.log)")
    }

    @Test func aSocketPassedBySystemdIsServedAndNoFileIsCreated() async throws {
        var template = Array("/tmp/losad-activation-XXXXXX".utf8CString)
        let folder = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/activated.sock"
        let listener = try Self.listeningSocket(path)
        defer { close(listener) }

        let daemon = try await LosadProcess(inheriting: listener, answeringAt: path)
        let client = try WireClient(path: path)
        guard case .message(let text) = try await client.call(#"{"method":"io.losa.Manager.Status"}"#) else {
            Issue.record("no Status reply")
            return
        }
        #expect(try Self.object(text)["parameters"] != nil, "\(text)")
        client.close()
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "the configured socket is not created")
        #expect(daemon.log.contains("control socket passed by systemd (descriptor 3)"), "\(daemon.log)")
        #expect(await daemon.stop() == 0, "\(daemon.log)")
        #expect(FileManager.default.fileExists(atPath: path), "systemd owns the passed socket's file")
    }

    // MARK: - Helpers

    static func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// The value of an unlabelled gauge in the daemon's Metrics reply.
    static func gauge(_ daemon: LosadProcess, _ name: String) async throws -> Double? {
        let reply = try await daemon.call("io.losa.Manager.Metrics")
        let metrics = (reply["parameters"] as? [String: Any])?["metrics"] as? [[String: Any]] ?? []
        let metric = metrics.first { $0["name"] as? String == name }
        return ((metric?["samples"] as? [[String: Any]])?.first?["value"] as? NSNumber)?.doubleValue
    }

    /// `clients` connections at once, each making `callsPerClient` calls one after another, on
    /// threads of their own; returns how many answers were right. The daemon holds job 1 queued and
    /// paused. Each client asks a different sequence, so an answer crossed between connections shows.
    static func round(_ daemon: LosadProcess, clients: Int, callsPerClient: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<clients {
                group.addTask {
                    try await ChildProcess.onThread {
                        let client = try WireClient(path: daemon.socketPath)
                        defer { client.close() }
                        var correct = 0
                        for call in 0..<callsPerClient {
                            let missing = 1000 + index * 100 + call
                            let (message, check): (String, ([String: Any]) -> Bool) = switch (index + call) % 5 {
                            case 0: (#"{"method":"io.losa.Manager.GetJob","parameters":{"id":1}}"#,
                                     { (($0["parameters"] as? [String: Any])?["job"] as? [String: Any])?["id"] as? Int == 1 })
                            case 1: (#"{"method":"io.losa.Manager.Status"}"#,
                                     { ($0["parameters"] as? [String: Any])?["state"] as? String == "paused"
                                         && ($0["parameters"] as? [String: Any])?["queued"] as? Int == 1 })
                            case 2: (#"{"method":"io.losa.Manager.ListJobs","parameters":{"state":"queued","limit":\#(1 + call % 3)}}"#,
                                     { (($0["parameters"] as? [String: Any])?["jobs"] as? [[String: Any]])?.map { $0["id"] as? Int } == [1] })
                            case 3: (#"{"method":"io.losa.Manager.GetJob","parameters":{"id":\#(missing)}}"#,
                                     { $0["error"] as? String == "io.losa.Manager.JobNotFound"
                                         && ($0["parameters"] as? [String: Any])?["id"] as? Int == missing })
                            default: (call % 2 == 0 ? #"{"method":"org.varlink.service.GetInfo"}"# : #"{"method":"io.losa.Manager.Metrics"}"#,
                                      { ($0["parameters"] as? [String: Any])?[call % 2 == 0 ? "product" : "metrics"] != nil })
                            }
                            guard case .message(let text) = client.callBlocking(message, timeout: 30),
                                  let reply = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
                            if check(reply) { correct += 1 }
                        }
                        return correct
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }

    /// A listening Unix stream socket at `path`, as losad.socket would pass it; its descriptor is
    /// moved above the standard ones so that the spawn's dup2 onto 3 is a real copy.
    static func listeningSocket(_ path: String) throws -> Int32 {
        let made = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(made, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard made >= 0, bound == 0, listen(made, 16) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let moved = fcntl(made, F_DUPFD_CLOEXEC, 100)
        close(made)
        guard moved >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return moved
    }
}
