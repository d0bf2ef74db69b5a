#if canImport(Glibc)
import Glibc
#endif
import Daemon
import Foundation
import Ledger
import Testing

/// The success path (publish → one ledger transaction → clean up) under a `kill -9` at each of its steps:
/// the real daemon kills itself there (`LOSAD_TEST_CRASH_AT`, `CrashPoint`), and after a restart the job is
/// either run again with no output left from the crashed run, or succeeded with its output — never both,
/// never neither.
@Suite(.serialized) struct SuccessPathCrashTests {
    typealias Setup = DaemonJobTests.Setup

    /// The entries of the outbox, hidden ones included.
    static func outbox(_ setup: Setup) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: setup.outbox)) ?? []).sorted()
    }

    @Test(arguments: CrashPoint.allCases)
    func aCrashAnywhereOnTheSuccessPathLeavesARerunnableJobOrASucceededOne(_ point: CrashPoint) async throws {
        let setup = try Setup(recovery: "none")
        defer { setup.remove() }
        let crashing = try DaemonJobTests.Daemon(setup, name: "crashing", environment: ["LOSAD_TEST_CRASH_AT": point.rawValue])
        try await crashing.ready()
        try DaemonJobTests.drop(into: setup.inbox)
        #expect(try await DaemonJobTests.wait(timeout: 180) { !crashing.process.isRunning }, "\(crashing.output)")
        #expect(crashing.process.terminationReason == .uncaughtSignal && crashing.process.terminationStatus == SIGKILL)

        // What the crash left, read while no daemon runs.
        let ledger = try setup.ledger()
        let crashed = try #require(try DaemonJobTests.job(ledger))
        let id = try #require(crashed.id)
        let published = "tiny-llama-\(id)"
        let stateFolder = setup.root + "/state/jobs/\(id)"
        switch point {
        case .beforePublishing:
            #expect(crashed.state == .running && Self.outbox(setup) == [".\(published).partial"], "\(Self.outbox(setup))")
        case .afterPublishing:
            // The one moment the ledger and the outbox disagree: the restart must resolve it.
            #expect(crashed.state == .running && Self.outbox(setup) == [published], "\(Self.outbox(setup))")
        case .afterRecording:
            #expect(crashed.state == .succeeded && Self.outbox(setup) == [published], "\(Self.outbox(setup))")
            #expect(FileManager.default.fileExists(atPath: stateFolder))
        }

        let restarted = try DaemonJobTests.Daemon(setup, name: "restarted")
        try await restarted.ready()
        #expect(try await DaemonJobTests.wait(timeout: 180) { try DaemonJobTests.job(ledger)?.state == .succeeded },
                "\(restarted.output)")
        let job = try #require(try DaemonJobTests.job(ledger))
        // A crash before the transaction runs the job again; after it, the job is done for good.
        #expect(job.attempts == (point == .afterRecording ? 1 : 2), "\(job)")
        if point == .afterPublishing {
            #expect(restarted.output.contains("removing \(setup.outbox)/\(published), the unrecorded output of interrupted job \(id)"),
                    "\(restarted.output)")
        }
        // One complete output under the job's own name, nothing hidden, no second copy; the state folder gone.
        #expect(Self.outbox(setup) == [published], "\(Self.outbox(setup))")
        let output = try #require(job.outputPath)
        #expect(output.hasPrefix(setup.outbox + "/" + published + "/") && FileManager.default.fileExists(atPath: output + "/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: setup.outbox + "/" + published + "/report.json"))
        #expect(!FileManager.default.fileExists(atPath: stateFolder))
        #expect(try ledger.details(job: id)?.metrics.contains { $0.name == "sparsity" } == true)
        #expect(try await restarted.stop() < 10)
    }
}
