import Compression
import Foundation
import Testing

/// A job setting the daemon does not accept is refused with the same sentence from each entry point: the
/// configuration file's `[job]` key, `losactl submit` and `losad compress` (all parse through `JobSettings`).
@Suite struct SettingSentenceTests {
    /// The sentence `JobSettings` gives for `key = value` (`outputs` is a list wherever it is given).
    static func sentence(_ key: JobSettingKey, _ value: String) -> String {
        var settings = JobSettings.defaults
        do {
            try settings.set(key, key == .outputs ? .list([value]) : .text(value))
            return "(accepted)"
        } catch {
            return error.description
        }
    }

    @Test(arguments: [(JobSettingKey.method, "--method", "guess"), (.pattern, "--pattern", "3-4"), (.outputs, "--outputs", "onnx")])
    func anUnknownValueGetsTheSameSentenceFromTheFileFromLosactlAndFromLosadCompress(
        _ key: JobSettingKey, _ option: String, _ value: String) async throws {
        let sentence = Self.sentence(key, value)
        #expect(sentence.hasPrefix("\(key.rawValue) = ") && sentence.contains("is not allowed; expected"), "\(sentence)")
        let setup = try DaemonJobTests.Setup(recovery: "none")
        defer { setup.remove() }

        // 1. The configuration file: the daemon refuses to start (EX_CONFIG) and says why.
        let config = setup.root + "/bad.toml"
        let toml = key == .outputs ? "outputs = [\"\(value)\"]" : "\(key.rawValue) = \"\(value)\""
        try "[job]\n\(toml)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let run = try await DaemonJobTests.losad(["run", "--config", config])
        #expect(run.status == 78 && run.error.contains("job." + sentence), "\(run.error)")

        // 2. `losactl submit` to the running daemon: the daemon's refusal, word for word.
        let daemon = try DaemonJobTests.Daemon(setup)
        try await daemon.ready()
        let submit = try await ChildProcess.run(LosadProcess.losactl, ["submit", DaemonJobTests.tinyModel, option, value],
                                                environment: ["LOSAD_SOCKET": setup.root + "/losad.sock"])
        #expect(submit.status == 1 && submit.error.contains(sentence), "\(submit.error)")
        #expect(try await daemon.stop() < 10)

        // 3. `losad compress`: a usage error with the same sentence, before any work.
        let compress = try await DaemonJobTests.losad(["compress", DaemonJobTests.tinyModel, "--out", setup.root + "/out", option, value])
        #expect(compress.status != 0 && compress.error.contains(sentence), "\(compress.error)")
    }
}

/// The training schedule's options that only `losad compress` takes (the measurements of README's schedule table
/// use them): out of range they are refused naming the field; in range they reach the job (its report's settings).
@Suite struct ScheduleOptionTests {
    @Test(arguments: [("--warmup-fraction", "1", "warmup_fraction"), ("--last-iteration-share", "0", "last_iteration_share"),
                      ("--last-iteration-share", "1.5", "last_iteration_share"), ("--lora-dropout", "1", "lora_dropout")])
    func anOutOfRangeScheduleOptionIsRefusedNamingTheField(_ option: String, _ value: String, _ field: String) async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("schedule-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let compress = try await DaemonJobTests.losad(["compress", DaemonJobTests.tinyModel, "--out", out, option, value])
        #expect(compress.status == 64, "\(compress.error)")
        #expect(compress.error.contains(field), "\(compress.error)")
        #expect(!FileManager.default.fileExists(atPath: out + "/report.json"))
    }

    @Test func theScheduleOptionsReachTheJob() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("schedule-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let compress = try await DaemonJobTests.losad(
            ["compress", DaemonJobTests.tinyModel, "--out", out, "--calib", DaemonJobTests.text, "--eval", DaemonJobTests.text,
             "--warmup-fraction", "0", "--last-iteration-share", "0.5", "--lora-dropout", "0.2", "--outputs", "gguf"]
            + DaemonJobTests.budget.flatMap { [$0.flag, $0.value] })
        #expect(compress.status == 0, "\(compress.error)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as? [String: Any]
        let settings = report?["settings"] as? [String: Any]
        #expect(settings?["warmupFraction"] as? Double == 0)
        #expect(settings?["lastIterationShare"] as? Double == 0.5)
        #expect(settings?["loraDropout"] as? Double == 0.2)
        // 40 windows of batch 4: 10 steps, the last iteration 5 of them with the share 0.5 (0.6 would give 6).
        let iterations = report?["iterations"] as? [[String: Any]]
        #expect((iterations?.last?["trainingSteps"] as? Int) == 5, "\(String(describing: iterations?.last))")
    }
}
