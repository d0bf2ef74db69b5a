import Control
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The built `losactl` against a fake daemon: output, `--json`, exit codes.
@Suite struct LosactlTests {
    func losactl(_ arguments: [String], socket: String?, environment: [String: String] = [:]) async throws -> ProcessResult {
        try await runProcess(TestEnvironment.losactl, arguments + (socket.map { ["--socket", $0] } ?? []),
                             environment: ["LOSAD_SOCKET": ""].merging(environment) { $1 })
    }

    func decode<T: Decodable>(_ type: T.Type, _ result: ProcessResult) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(result.output.utf8))
    }

    @Test func helpDocumentsTheCommandsAndTheExitCodes() async throws {
        let help = try await runProcess(TestEnvironment.losactl, ["--help"])
        #expect(help.status == 0)
        for command in ["status", "jobs", "show", "submit", "cancel", "retry", "pause", "resume", "reload", "watch", "metrics"] {
            #expect(help.output.contains("  \(command) "), "\(command) in --help")
        }
        for line in ["0  success", "1  the daemon answered with an error", "2  usage error", "3  cannot reach the daemon", "LOSAD_SOCKET"] {
            #expect(help.output.contains(line), "\(line)")
        }
        for line in help.output.split(separator: "\n") {
            #expect(line.count <= 80, "a help line wraps: \(line)")
        }
        for line in [String]() {
            #expect(help.output.contains(line), "\(line)")
        }
        let submit = try await runProcess(TestEnvironment.losactl, ["submit", "--help"])
        for option in ["--sparsity", "--method", "--pattern", "--allocation", "--recovery", "--profile", "--calib", "--eval", "--json", "--socket"] {
            #expect(submit.output.contains(option), "\(option) in submit --help")
        }
        let completion = try await runProcess(TestEnvironment.losactl, ["--generate-completion-script", "bash"])
        #expect(completion.status == 0 && completion.output.contains("_losactl") && completion.output.contains("watch"))
    }

    @Test func usageErrorsExitTwo() async throws {
        for arguments in [["show", "seven"], ["explode"], ["jobs", "--limit", "-1"], ["jobs", "--state", "sleeping"],
                          ["submit"], ["cancel"]] {
            let result = try await losactl(arguments, socket: "/nonexistent/losad.sock")
            #expect(result.status == 2, "\(arguments): \(result.error)")
            #expect(result.error.contains("Error:") || result.error.contains("Usage:"), "\(arguments): \(result.error)")
        }
    }

    @Test func anUnreachableDaemonExitsThreeAndSaysHowToStartIt() async throws {
        let directory = try TemporaryDirectory()
        let missing = directory.file("absent.sock")
        let result = try await losactl(["status"], socket: missing)
        #expect(result.status == 3)
        #expect(result.error.contains(missing) && result.error.contains("the daemon is not running"))
        #expect(result.error.contains("systemctl start losad"))
        #expect(result.output.isEmpty)
        // LOSAD_SOCKET is where losactl looks without --socket.
        let fromEnvironment = try await losactl(["jobs", "--json"], socket: nil, environment: ["LOSAD_SOCKET": missing])
        #expect(fromEnvironment.status == 3 && fromEnvironment.error.contains(missing))
    }

    @Test func jsonIsTheDaemonsReply() async throws {
        try await TestServer.with { server in
            let socket = server.socketPath
            let status = try await losactl(["status", "--json"], socket: socket)
            #expect(status.status == 0, "\(status.error)")
            #expect(try decode(StatusReply.self, status) == (try await server.service.status(caller: .currentProcess)))
            let jobs = try await losactl(["jobs", "--json", "--state", "failed"], socket: socket)
            #expect(try decode(ListJobsReply.self, jobs).jobs.map(\.id) == [4])
            let limited = try await losactl(["jobs", "--json", "--limit", "2"], socket: socket)
            #expect(try decode(ListJobsReply.self, limited).jobs.map(\.id) == [4, 3])
            let show = try await losactl(["show", "1", "--json"], socket: socket)
            #expect(try decode(GetJobReply.self, show) == (try await server.service.getJob(id: 1, caller: .currentProcess)))
            let metrics = try await losactl(["metrics", "--json"], socket: socket)
            #expect(try decode(MetricsReply.self, metrics).metrics.count == 2)
            let paused = try await losactl(["pause", "--json"], socket: socket)
            #expect(try decode(QueueReply.self, paused) == QueueReply(state: .paused))
            let reload = try await losactl(["reload", "--json"], socket: socket)
            let reloaded = try jsonObject(reload.output)
            #expect(reload.status == 0 && reloaded.isEmpty)
        }
    }

    @Test func submitSendsAnAbsolutePathAndItsSettings() async throws {
        try await TestServer.with { server in
            let result = try await runProcess(TestEnvironment.losactl,
                ["submit", "--socket", server.socketPath, "models/../new.gguf", "--sparsity", "0.7", "--method", "sparsegpt",
                 "--pattern", "2:4", "--allocation", "uniform", "--recovery", "lora", "--profile", "standard",
                 "--calib", "/data/calib.txt", "--eval", "eval.txt", "--json"])
            #expect(result.status == 0, "\(result.error)")
            let cwd = FileManager.default.currentDirectoryPath
            #expect(server.service.submitted == [SubmitParameters(
                path: cwd + "/new.gguf", sparsity: 0.7, method: "sparsegpt", pattern: "2:4", allocation: "uniform",
                recovery: "lora", profile: "standard", calibration: "/data/calib.txt", evaluation: cwd + "/eval.txt")])
            #expect(try decode(JobReply.self, result).job.id == 5)
        }
    }

    @Test func aDaemonErrorExitsOneWithItsSentence() async throws {
        try await TestServer.with { server in
            let missing = try await losactl(["show", "99"], socket: server.socketPath)
            #expect(missing.status == 1)
            #expect(missing.error.contains("show 99 failed: there is no job 99"), "\(missing.error)")
            let finished = try await losactl(["cancel", "1"], socket: server.socketPath)
            #expect(finished.status == 1 && finished.error.contains("job 1 is succeeded: the job has already ended"), "\(finished.error)")
            let invalid = try await losactl(["submit", "/m/model.bin"], socket: server.socketPath)
            #expect(invalid.status == 1 && invalid.error.contains("is not a model losad can compress"), "\(invalid.error)")
            let method = try await losactl(["submit", "/m/x.gguf", "--method", "guess"], socket: server.socketPath)
            #expect(method.status == 1 && method.error.contains("parameter \"method\""), "\(method.error)")
        }
    }

    @Test func tablesShowTheQueue() async throws {
        try await TestServer.with { server in
            let jobs = try await losactl(["jobs"], socket: server.socketPath)
            #expect(jobs.status == 0)
            let lines = jobs.output.split(separator: "\n")
            #expect(lines.count == 5 && lines[0].hasPrefix("ID  STATE"))
            #expect(lines[1].contains("failed") && lines[1].contains("data runs past the end"))
            #expect(lines[3].contains("running") && lines[3].contains("train it 3/5 step 7/20 42% ETA 2m00s"))
            #expect(lines[4].contains("SmolLM2-135M-Instruct.Q4_1-losa50.gguf"))
            let status = try await losactl(["status"], socket: server.socketPath)
            #expect(status.output.contains("losad 0.1.0: running") && status.output.contains("kernel:  OpenBLAS Haswell"))
            let show = try await losactl(["show", "1", "--layers"], socket: server.socketPath)
            #expect(show.output.contains("perplexity: dense 14.3, pruned 21.1, LoSA 17.2, sparse file 17.25"), "\(show.output)")
            #expect(show.output.contains("decode:     125 tokens/s from the sparse file, 100 from the input (1.25x on this machine)"),
                    "\(show.output)")
            #expect(show.output.contains("parameters: 134,515,008"))
            #expect(show.output.contains("RECON ERROR"))
            let metrics = try await losactl(["metrics"], socket: server.socketPath)
            #expect(metrics.output.hasPrefix("# HELP losad_jobs Jobs by state.\n# TYPE losad_jobs gauge\nlosad_jobs{state=\"queued\"} 1\n"))
        }
    }

    @Test func watchPrintsOneLinePerEventWhenNotOnATerminal() async throws {
        try await TestServer.with { server in
            let watch = try await losactl(["watch", "2"], socket: server.socketPath)
            #expect(watch.status == 0, "\(watch.error)")
            let lines = watch.output.split(separator: "\n")
            #expect(lines.count == 8, "the job, 5 events, its end, the summary: \(watch.output)")
            #expect(!watch.output.contains("\u{1B}["), "no escapes into a pipe")
            #expect(lines.last == "job 2 succeeded")
            let json = try await losactl(["watch", "--json"], socket: server.socketPath)
            let replies = try json.output.split(separator: "\n").map { try JSONDecoder().decode(WatchReply.self, from: Data($0.utf8)) }
            #expect(replies.count == 7 && replies.last?.job.state == .succeeded && replies.first?.event == nil)
            let failed = try await losactl(["watch", "4"], socket: server.socketPath)
            #expect(failed.status == 1 && failed.output.contains("job 4 failed: tensor blk.0.attn_q.weight"))
        }
    }

    @Test(.enabled(if: TestEnvironment.setpriv != nil && TestEnvironment.isRoot, "needs root and setpriv"))
    func aStrangerIsToldWhoMayChangeState() async throws {
        let setpriv = try #require(TestEnvironment.setpriv)
        let access = AccessPolicy(daemonUID: getuid(), controlGroup: 4242, controlGroupName: "losad-operators")
        try await TestServer.with(access: access, mode: 0o666) { server in
            let prefix = ["--reuid=65534", "--regid=65534", "--clear-groups", TestEnvironment.losactl]
            let status = try await runProcess(setpriv, prefix + ["status", "--socket", server.socketPath])
            #expect(status.status == 0, "\(status.error)")
            let pause = try await runProcess(setpriv, prefix + ["pause", "--socket", server.socketPath])
            #expect(pause.status == 1)
            #expect(pause.error.contains("permission denied") && pause.error.contains("losad-operators")
                    && pause.error.contains("uid 65534"), "\(pause.error)")
        }
    }
}
