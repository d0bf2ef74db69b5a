import Foundation
import GRDB
import Synchronization
import Testing
@testable import Ledger

/// A clock that advances one second per reading, so event order and timings are checkable.
final class SteppingClock: Sendable {
    private let seconds = Mutex<Double>(1_700_000_000)
    func now() -> Date { seconds.withLock { $0 += 1; return Date(timeIntervalSince1970: $0) } }
}

func makeModel(_ tag: Character = "a", name: String = "tiny") -> ModelRecord {
    ModelRecord(contentHash: String(repeating: tag, count: 64), path: "/inbox/\(name).gguf", format: "gguf",
                sizeBytes: 1234, name: name, configSummary: "llama, 2 layers, C 64",
                firstSeen: Date(timeIntervalSince1970: 1_700_000_000))
}

struct Settings: Codable {
    var sparsity: Double
    var method: String
}

@Suite("Ledger")
struct LedgerTests {
    let clock = SteppingClock()

    func ledger() throws -> Ledger { try Ledger.inMemory(clock: { [clock] in clock.now() }) }

    @Test("a file ledger is in WAL mode with foreign keys on, migrates once and keeps its rows")
    func fileLedger() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent(Ledger.fileName).path
        // Given a new ledger file with one queued job
        do {
            let ledger = try Ledger.open(path: path)
            #expect(try ledger.journalMode() == "wal")
            #expect(try ledger.reader.read { db in try Int.fetchOne(db, sql: "PRAGMA foreign_keys") } == 1)
            #expect(try ledger.appliedMigrations() == ["v1-models-jobs-events-statistics-metrics"])
            _ = try ledger.enqueue(model: makeModel(), inputPath: "/inbox/tiny.gguf", settings: Settings(sparsity: 0.5, method: "wanda"))
        }
        // When it is opened again
        let reopened = try Ledger.open(path: path)
        // Then the migration is not repeated and the job is still there
        #expect(try reopened.appliedMigrations().count == 1)
        #expect(try reopened.queuedJobs().map(\.inputPath) == ["/inbox/tiny.gguf"])
    }

    @Test("a file that is not SQLite is refused with its path in the error")
    func notADatabase() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString).sqlite").path
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect { try Ledger.open(path: path) } throws: { error in
            guard case LedgerError.cannotOpen(let failed, _) = error else { return false }
            return failed == path && "\(error)".contains(path)
        }
    }

    @Test("the same model with the same settings is queued once; other settings or a failed run queue again")
    func deduplication() throws {
        let ledger = try ledger()
        let settings = Settings(sparsity: 0.5, method: "wanda")
        // Given a model queued once
        let first = try ledger.enqueue(model: makeModel(), inputPath: "/inbox/a.gguf", settings: settings)
        guard case .enqueued = first else { Issue.record("first drop was not queued: \(first)"); return }
        // When the same bytes arrive again under another name
        let again = try ledger.enqueue(model: makeModel(name: "copy"), inputPath: "/inbox/copy.gguf", settings: settings)
        // Then it is a duplicate of the first job and only one model row exists
        #expect(again == .duplicate(first.job))
        #expect(try ledger.reader.read { db in try ModelRecord.fetchCount(db) } == 1)
        // And other settings make a second job
        let other = try ledger.enqueue(model: makeModel(), inputPath: "/inbox/a.gguf", settings: Settings(sparsity: 0.7, method: "wanda"))
        guard case .enqueued(let otherJob) = other else { Issue.record("other settings were not queued"); return }
        #expect(otherJob.id != first.job.id)
        // And once the first has failed, dropping it again queues a new job
        try ledger.start(job: first.job.id!)
        try ledger.fail(job: first.job.id!, error: "boom")
        guard case .enqueued = try ledger.enqueue(model: makeModel(), inputPath: "/inbox/a.gguf", settings: settings) else {
            Issue.record("a failed job blocked a new drop"); return
        }
    }

    @Test("settings are stored as canonical JSON, so key order does not make a new job")
    func canonicalSettings() throws {
        let ledger = try ledger()
        let a = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: #"{"method":"wanda","sparsity":0.5}"#)
        let canonical = try Ledger.canonicalJSON(Settings(sparsity: 0.5, method: "wanda"))
        #expect(canonical == #"{"method":"wanda","sparsity":0.5}"#)
        #expect(try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: Settings(sparsity: 0.5, method: "wanda")) == .duplicate(a.job))
        #expect(try a.job.decodedSettings(as: Settings.self).sparsity == 0.5)
        #expect(throws: LedgerError.self) { try ledger.enqueue(model: makeModel("b"), inputPath: "/i", settings: "[1,2]") }
    }

    @Test("a content hash that is not 64 lowercase hex digits is refused")
    func badHash() throws {
        let ledger = try ledger()
        var model = makeModel()
        model.contentHash = "ABC"
        #expect(throws: LedgerError.invalidValue(field: "models.content_hash", value: "ABC", reason: "a SHA-256 as 64 lowercase hex digits")) {
            try ledger.registerModel(model)
        }
    }

    @Test("the queue is first in, first out, and a started job leaves it")
    func fifo() throws {
        let ledger = try ledger()
        let ids = try (0..<4).map { i in
            try ledger.enqueue(model: makeModel(Character(String(i))), inputPath: "/inbox/\(i)", settings: "{}").job.id!
        }
        #expect(try ledger.queuedJobs().map(\.id!) == ids)
        #expect(try ledger.nextQueuedJob()?.id == ids[0])
        try ledger.start(job: ids[0])
        #expect(try ledger.nextQueuedJob()?.id == ids[1])
        #expect(try ledger.runningJobs().map(\.id!) == [ids[0]])
        #expect(try ledger.jobs(limit: 2).map(\.id!) == [ids[3], ids[2]])
        #expect(try ledger.jobs(in: [.running]).map(\.id!) == [ids[0]])
        #expect(try ledger.jobCounts() == [.queued: 3, .running: 1])
    }

    @Test("only a queued job starts; a second start names the state it is in")
    func startOnlyFromQueued() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        let running = try ledger.start(job: id)
        #expect(running.state == .running && running.attempts == 1 && running.startedAt != nil)
        let error = #expect(throws: LedgerError.self) { try ledger.start(job: id) }
        #expect(error == .invalidTransition(job: id, operation: "start", from: .running, allowed: [.queued]))
        #expect("\(error!)" == "ledger: cannot start job \(id): it is running, and only a job that is queued can be")
        #expect(throws: LedgerError.jobNotFound(99)) { try ledger.start(job: 99) }
    }

    @Test("every transition outside the state machine is refused and changes nothing")
    func stateMachine() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        // queued: cannot succeed, checkpoint, interrupt, retry or report progress
        #expect(throws: LedgerError.self) { try ledger.succeed(job: id, outputPath: "/o") }
        #expect(throws: LedgerError.self) { try ledger.recordCheckpoint(job: id, path: "/c", iteration: 1) }
        #expect(throws: LedgerError.self) { try ledger.interrupt(job: id, reason: "stop") }
        #expect(throws: LedgerError.self) { try ledger.retry(job: id) }
        #expect(throws: LedgerError.self) { try ledger.updateProgress(job: id, stage: "load", progress: 0.1) }
        #expect(try ledger.job(id)?.state == .queued)
        // running: cannot be refused
        try ledger.start(job: id)
        #expect(throws: LedgerError.self) { try ledger.refuse(job: id, reason: "memory") }
        // succeeded is final
        let done = try ledger.succeed(job: id, outputPath: "/outbox/tiny.gguf")
        #expect(done.state == .succeeded && done.progress == 1 && done.outputPath == "/outbox/tiny.gguf" && done.finishedAt != nil)
        for attempt in [{ try ledger.fail(job: id, error: "x") }, { try ledger.cancel(job: id) },
                        { try ledger.retry(job: id) }, { try ledger.start(job: id) }] as [() throws -> JobRecord] {
            #expect(throws: LedgerError.self) { try attempt() }
        }
        #expect(try ledger.job(id) == done)
    }

    @Test("a refused job keeps its reason and can be retried to the back of the queue")
    func refuseAndRetry() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        let reason = "needs an estimated 9.1 GiB, the limit allows 4.0 GiB"
        let refused = try ledger.refuse(job: id, reason: reason)
        #expect(refused.state == .refused && refused.error == reason)
        let retried = try ledger.retry(job: id)
        #expect(retried.state == .queued && retried.error == nil && retried.finishedAt == nil)
        let kinds = try ledger.details(job: id)!.events.map(\.kind)
        #expect(kinds == [.queued, .refused, .retried])
    }

    @Test("progress is validated, and a stage change is written as an event")
    func progress() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        try ledger.start(job: id)
        try ledger.updateProgress(job: id, stage: "calibrate", progress: 0.1)
        try ledger.updateProgress(job: id, stage: "losa", progress: 0.2, iteration: 1, step: 0)
        let job = try ledger.updateProgress(job: id, stage: "losa", progress: 0.3, iteration: 1, step: 5)
        #expect(job.stage == "losa" && job.progress == 0.3 && job.iteration == 1 && job.step == 5)
        #expect(throws: LedgerError.invalidValue(field: "progress", value: "1.5", reason: "a fraction in 0…1")) {
            try ledger.updateProgress(job: id, stage: "losa", progress: 1.5)
        }
        #expect(throws: LedgerError.self) { try ledger.updateProgress(job: id, stage: "losa", progress: .nan) }
        #expect(throws: LedgerError.self) { try ledger.updateProgress(job: id, stage: "losa", progress: 0.4, iteration: 0) }
        let events = try ledger.details(job: id)!.events
        #expect(events.map(\.kind) == [.queued, .started, .stage, .stage])
        #expect(events.map(\.stage) == [nil, nil, "calibrate", "losa"])
        // The stepping clock gives every event its own, increasing time.
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.time < $1.time })
    }

    @Test("jobs left running by a crash go back to the queue, with or without a checkpoint, and count another attempt")
    func recovery() throws {
        let ledger = try ledger()
        let a = try ledger.enqueue(model: makeModel("a"), inputPath: "/a", settings: "{}").job.id!
        let b = try ledger.enqueue(model: makeModel("b"), inputPath: "/b", settings: "{}").job.id!
        let c = try ledger.enqueue(model: makeModel("c"), inputPath: "/c", settings: "{}").job.id!
        try ledger.start(job: a)
        try ledger.updateProgress(job: a, stage: "losa", progress: 0.5, iteration: 3, step: 2)
        try ledger.recordCheckpoint(job: a, path: "/state/jobs/1/iteration-2.ckpt", iteration: 2)
        try ledger.start(job: b)
        // Given a restart: a and b are marked running
        #expect(try ledger.runningJobs().map(\.id!) == [a, b])
        let recovered = try ledger.recoverInterruptedJobs()
        // Then both are queued again, ahead of c, a with its checkpoint
        #expect(recovered.map(\.id!) == [a, b])
        #expect(try ledger.queuedJobs().map(\.id!) == [a, b, c])
        #expect(try ledger.runningJobs().isEmpty)
        let events = try ledger.details(job: a)!.events
        #expect(events.last?.kind == .interrupted)
        #expect(events.last?.message.hasSuffix("resumes from /state/jobs/1/iteration-2.ckpt") == true)
        #expect(try ledger.details(job: b)!.events.last?.message.hasSuffix("no checkpoint, starts over") == true)
        let resumed = try ledger.start(job: a)
        #expect(resumed.attempts == 2 && resumed.checkpointPath == "/state/jobs/1/iteration-2.ckpt" && resumed.iteration == 3)
        #expect(try ledger.details(job: a)!.events.last?.message == "attempt 2, resuming from /state/jobs/1/iteration-2.ckpt")
    }

    @Test("details hold events, layer statistics (a repeated iteration replaces its rows) and metrics")
    func details() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        try ledger.start(job: id)
        func row(_ layer: Int, _ rank: Int) -> LayerStatistic {
            LayerStatistic(jobID: id, iteration: 1, layer: layer, sparsity: 0.1, rank: rank, importance: 0.5, reconstructionError: 0.01)
        }
        try ledger.recordLayerStatistics([row(1, 6), row(0, 6)])
        try ledger.recordLayerStatistics([row(0, 7)])   // the iteration repeated after a resume
        try ledger.recordMetrics([JobMetric(jobID: id, name: "perplexity.dense", value: 14.3, unit: "")])
        try ledger.recordMetrics([JobMetric(jobID: id, name: "perplexity.dense", value: 14.2, unit: "")])
        try ledger.succeed(job: id, outputPath: "/o", metrics: [JobMetric(jobID: id, name: "perplexity.losa", value: 17, unit: "")])
        let details = try #require(try ledger.details(job: id))
        #expect(details.model.name == "tiny")
        #expect(details.layerStatistics.map(\.layer) == [0, 1])
        #expect(details.layerStatistics.map(\.rank) == [7, 6])
        #expect(details.metrics.map(\.name) == ["perplexity.dense", "perplexity.losa"])
        #expect(details.metrics.map(\.value) == [14.2, 17])
        #expect(try ledger.details(job: 42) == nil)
    }

    @Test("success is one transaction: output, report, figures and layer rows together, or none of them")
    func successIsOneTransaction() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        try ledger.start(job: id)
        let row = LayerStatistic(jobID: id, iteration: 2, layer: 0, sparsity: 0.4, rank: 7, importance: 0.5, reconstructionError: 0.02)
        let metric = JobMetric(jobID: id, name: "sparsity", value: 0.5, unit: "fraction")
        // A bad row refuses the whole success: the job stays running, with nothing of it recorded.
        var bad = row
        bad.sparsity = 1.5
        #expect(throws: LedgerError.self) { try ledger.succeed(job: id, outputPath: "/o/m", metrics: [metric], layerStatistics: [bad]) }
        let refused = try #require(try ledger.details(job: id))
        #expect(refused.job.state == .running && refused.job.outputPath == nil && refused.metrics.isEmpty && refused.layerStatistics.isEmpty)
        // A good one records everything, with one event naming output and report.
        let done = try ledger.succeed(job: id, outputPath: "/o/m", reportPath: "/o/report.json", metrics: [metric], layerStatistics: [row])
        let details = try #require(try ledger.details(job: id))
        #expect(done.state == .succeeded && details.metrics == [JobMetric(id: details.metrics.first?.id, jobID: id, name: "sparsity",
                                                                            value: 0.5, unit: "fraction")])
        #expect(details.layerStatistics.map(\.rank) == [7])
        #expect(details.events.last?.kind == .succeeded && details.events.last?.message == "wrote /o/m; report at /o/report.json")
        #expect(details.events.filter { $0.kind == .note }.isEmpty)
    }

    @Test("a write-ahead-log checkpoint leaves everything in the database file and the log empty")
    func walCheckpoint() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent(Ledger.fileName).path
        let ledger = try Ledger.open(path: path)
        for tag in "abcdef" {
            _ = try ledger.enqueue(model: makeModel(tag, name: "m\(tag)"), inputPath: "/i/\(tag)", settings: "{}")
        }
        let size = { (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0 }
        #expect(size() > 0, "the writes went to the log first")
        try ledger.checkpointWriteAheadLog()
        #expect(size() == 0)
        #expect(try ledger.queuedJobs().count == 6)
        try Ledger.inMemory().checkpointWriteAheadLog()   // nothing to do, no error
    }

    @Test("figures for a job that is not running are refused and leave no rows")
    func figuresNeedARunningJob() throws {
        let ledger = try ledger()
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        let row = LayerStatistic(jobID: id, iteration: 1, layer: 0, sparsity: 0.1, rank: 6, importance: 0.5, reconstructionError: 0.01)
        #expect(throws: LedgerError.self) { try ledger.recordLayerStatistics([row]) }
        #expect(throws: LedgerError.jobNotFound(7)) { try ledger.recordMetrics([JobMetric(jobID: 7, name: "x", value: 1, unit: "")]) }
        var bad = row
        bad.sparsity = 2
        try ledger.start(job: id)
        #expect(throws: LedgerError.self) { try ledger.recordLayerStatistics([row, bad]) }
        #expect(try ledger.details(job: id)!.layerStatistics.isEmpty)
    }

    @Test("the schema itself enforces foreign keys and the state vocabulary")
    func schemaConstraints() throws {
        let ledger = try ledger()
        #expect(throws: DatabaseError.self) {
            try ledger.writer.write { db in
                var job = JobRecord(modelID: 999, inputPath: "/i", settings: "{}", createdAt: Date())
                try job.insert(db)
            }
        }
        let id = try ledger.enqueue(model: makeModel(), inputPath: "/i", settings: "{}").job.id!
        #expect(throws: DatabaseError.self) {
            try ledger.writer.write { db in try db.execute(sql: "UPDATE jobs SET state = 'paused' WHERE id = ?", arguments: [id]) }
        }
        #expect(throws: DatabaseError.self) {
            try ledger.writer.write { db in try db.execute(sql: "UPDATE jobs SET progress = 2 WHERE id = ?", arguments: [id]) }
        }
    }
}
