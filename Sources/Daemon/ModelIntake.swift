#if canImport(Glibc)
import Glibc
#endif
import Compression
import Foundation
import Ledger
import Logging
import ModelFormats

/// Turns a model into a queued job: one the inbox watcher found ready, or one `losactl submit` named.
///
/// The model is opened with `Checkpoint.open` first, so a malformed file is known before it waits
/// in the queue: from the inbox it becomes a *failed* job whose error is the reader's sentence (the
/// user sees why in `losactl jobs`), from `submit` the caller gets that sentence back. The ledger
/// recognises a model by content hash: the same model with the same settings queued, running or
/// done is not queued again.
///
/// The watcher offers every model in the inbox again after a restart. That is not a new drop: a
/// model at the same path whose last job was created after the file last changed place or content
/// (its ctime) is left alone, whatever that job's state.
public final class ModelIntake: Sendable {
    /// What became of one inbox candidate.
    public enum Result: Sendable, Equatable {
        case enqueued(JobRecord)
        /// The same model with the same settings is already queued, running or done.
        case duplicate(JobRecord)
        /// A job for this very drop exists already (the daemon restarted); nothing new.
        case alreadyTaken(JobRecord)
        /// The model could not be read; the job was recorded as failed with the reason.
        case failed(JobRecord)
        /// Nothing could be recorded (the ledger failed); the reason was logged.
        case notRecorded(String)
    }

    private let ledger: Ledger
    private let settings: @Sendable () -> JobSettings
    private let logger: Logger

    /// - Parameter settings: the current configuration's job defaults (read at each intake, so a reload applies).
    public init(ledger: Ledger, settings: @escaping @Sendable () -> JobSettings, logger: Logger = Logger(label: "losad.intake")) {
        self.ledger = ledger
        self.settings = settings
        self.logger = logger
    }

    /// Validates, registers and queues a candidate the watcher found.
    public func take(_ candidate: InboxCandidate) -> Result {
        do {
            if let model = try ledger.model(contentHash: candidate.contentHash),
               let taken = try ledger.jobs(forModel: model.id!).last(where: { $0.inputPath == candidate.path }),
               let dropped = ModelIntake.dropTime(candidate.path), taken.createdAt >= dropped {
                logger.info("\(candidate.path) is already job \(taken.id!) (\(taken.state.rawValue)); not queued again",
                            metadata: ["job_id": "\(taken.id!)"])
                return .alreadyTaken(taken)
            }
            let settings = try Ledger.canonicalJSON(self.settings())
            switch ModelIntake.open(candidate.path) {
            case .success(let checkpoint):
                let model = ModelIntake.record(candidate, summary: ModelIntake.summary(checkpoint.config))
                switch try ledger.enqueue(model: model, inputPath: candidate.path, settings: settings) {
                case .enqueued(let job):
                    logger.notice("queued \(candidate.name) as job \(job.id!)", metadata: ["job_id": "\(job.id!)", "model": "\(model.name)"])
                    return .enqueued(job)
                case .duplicate(let job):
                    logger.notice("\(candidate.path) is the same model as job \(job.id!) (\(job.state.rawValue)) with the same settings; not queued again",
                                  metadata: ["job_id": "\(job.id!)"])
                    return .duplicate(job)
                }
            case .failure(let error):
                let model = ModelIntake.record(candidate, summary: "unreadable")
                switch try ledger.enqueue(model: model, inputPath: candidate.path, settings: settings) {
                case .enqueued(let job):
                    let failed = try ledger.fail(job: job.id!, error: "cannot read the model: \(error)")
                    logger.error("job \(job.id!): cannot read \(candidate.path): \(error)", metadata: ["job_id": "\(job.id!)"])
                    return .failed(failed)
                case .duplicate(let job):
                    return .duplicate(job)
                }
            }
        } catch {
            logger.error("cannot record \(candidate.path) in the ledger: \(error)")
            return .notRecorded("\(error)")
        }
    }

    /// Validates, hashes and queues the model at `path` (absolute) with the configuration's settings
    /// changed by `changes`. Blocks while it hashes the model (seconds for gigabytes).
    public func submit(path: String, changes: [JobSettingKey: JobSettings.Value] = [:]) throws -> EnqueueOutcome {
        let settings: JobSettings
        do {
            settings = try self.settings().applying(changes)
        } catch {
            throw RequestError.invalidSetting(error)
        }
        guard path.hasPrefix("/") else {
            throw RequestError.invalidModel(path: path, reason: "the path must be absolute (the daemon has its own working folder)")
        }
        let format: InboxCandidate.Format
        let files: [String]
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw RequestError.invalidModel(path: path, reason: String(cString: strerror(errno)))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG where path.lowercased().hasSuffix(".gguf"):
            format = .gguf
            files = []
        case S_IFDIR:
            format = .huggingFace
            files = ModelIntake.visibleFiles(path)
        default:
            throw RequestError.invalidModel(path: path, reason: "it is neither a .gguf file nor a Hugging Face folder")
        }
        let checkpoint: Checkpoint
        switch ModelIntake.open(path) {
        case .success(let opened): checkpoint = opened
        case .failure(let error): throw RequestError.invalidModel(path: path, reason: "\(error)")
        }
        let hash: String
        do {
            hash = format == .gguf ? try ContentHash.file(path) : try ContentHash.folder(path, files: files)
        } catch {
            throw RequestError.invalidModel(path: path, reason: "\(error)")
        }
        let name = (path as NSString).lastPathComponent
        let candidate = InboxCandidate(path: path, name: name, format: format, sizeBytes: Int64(checkpoint.fileSize), contentHash: hash)
        do {
            let outcome = try ledger.enqueue(model: ModelIntake.record(candidate, summary: ModelIntake.summary(checkpoint.config)),
                                             inputPath: path, settings: try Ledger.canonicalJSON(settings))
            let already = outcome == .enqueued(outcome.job) ? "" : " (already there)"
            logger.notice("submitted \(path): job \(outcome.job.id!)\(already)",
                          metadata: ["job_id": "\(outcome.job.id!)"])
            return outcome
        } catch {
            throw RequestError.internalError("\(error)")
        }
    }

    // MARK: - Helpers

    static func open(_ path: String) -> Swift.Result<Checkpoint, any Error> {
        do { return .success(try Checkpoint.open(path)) } catch { return .failure(error) }
    }

    static func record(_ candidate: InboxCandidate, summary: String) -> ModelRecord {
        var name = candidate.name
        if candidate.format == .gguf, name.lowercased().hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        return ModelRecord(contentHash: candidate.contentHash, path: candidate.path, format: candidate.format.rawValue,
                           sizeBytes: candidate.sizeBytes, name: name, configSummary: summary)
    }

    /// "llama, 30 layers, C 576, 9/3 heads, F 1536, V 49152, 134.5M parameters".
    public static func summary(_ c: ModelConfig) -> String {
        let millions = Double(c.parameterCount) / 1e6
        let parameters = millions >= 1000 ? String(format: "%.2fB", millions / 1000) : String(format: "%.1fM", millions)
        return "\(c.architecture.rawValue), \(c.layerCount) layers, C \(c.hiddenSize), \(c.headCount)/\(c.kvHeadCount) heads, "
            + "F \(c.ffnSize), V \(c.vocabSize), \(parameters) parameters"
    }

    /// The latest status change (ctime) of the entry and, for a folder, of its files: a move or copy
    /// into the inbox sets it, a restart of the daemon does not.
    static func dropTime(_ path: String) -> Date? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        var latest = info.st_ctim
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in visibleFiles(path) {
                var file = stat()
                if stat(path + "/" + name, &file) == 0,
                   (file.st_ctim.tv_sec, file.st_ctim.tv_nsec) > (latest.tv_sec, latest.tv_nsec) {
                    latest = file.st_ctim
                }
            }
        }
        return Date(timeIntervalSince1970: Double(latest.tv_sec) + Double(latest.tv_nsec) * 1e-9)
    }

    /// Regular files of a folder, hidden ones left out — the set `InboxWatcher` hashes.
    static func visibleFiles(_ folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            var info = stat()
            return !name.hasPrefix(".") && stat(folder + "/" + name, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        }.sorted()
    }
}
