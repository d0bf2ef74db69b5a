import Foundation
import Logging
import ModelFormats

/// The folders of one job: its output, written hidden in the outbox and moved into view only when the
/// job succeeds (so the outbox shows complete results only), and its own folder under the state folder
/// for checkpoints, which outlives stops and crashes and goes when the job has succeeded.
public struct JobFolders: Sendable, Equatable {
    /// `outbox/.<model>-<id>.partial`: where the runner writes.
    public var staging: String
    /// `outbox/<model>-<id>`: where the output appears once the job succeeded.
    public var published: String
    /// `state/jobs/<id>`: the job's own folder.
    public var job: String
    /// `state/jobs/<id>/checkpoint`: what the runner resumes from.
    public var checkpoint: String { job + "/checkpoint" }

    public init(outbox: String, state: String, model: String, job id: Int64) {
        let name = JobFolders.folderName(model: model, job: id)
        staging = outbox + "/." + name + ".partial"
        published = outbox + "/" + name
        job = state + "/jobs/\(id)"
    }

    /// "<model name>-<job id>", with characters a file name cannot hold replaced.
    public static func folderName(model: String, job: Int64) -> String {
        var name = String(model.map { $0 == "/" || $0 == "\0" ? "_" : $0 }.prefix(200))
        while name.hasPrefix(".") { name.removeFirst() }
        return (name.isEmpty ? "model" : name) + "-\(job)"
    }

    /// An empty output folder (whatever an earlier attempt left there is removed) and the checkpoint
    /// folder (kept as it is: the runner resumes from it).
    public static func prepare(output: String, checkpoint: String) throws {
        let files = FileManager.default
        if files.fileExists(atPath: output) { try files.removeItem(atPath: output) }
        try files.createDirectory(atPath: output, withIntermediateDirectories: true)
        try files.createDirectory(atPath: checkpoint, withIntermediateDirectories: true)
    }

    /// Moves the finished output folder `staging` to `final` (to `final-2`, `-3`, … if that name is
    /// taken) durably (`AtomicOutputFolder.publish`), and returns where it went and `outcome` with its
    /// paths moved along.
    /// - Throws: `JobFolderError` when the outcome names a file that is missing or outside `staging`;
    ///   `ModelFormatError` when the move fails.
    public static func publish(_ staging: String, as final: String,
                               outcome: JobOutcome) throws -> (folder: String, outcome: JobOutcome) {
        for (what, path) in [("output", outcome.outputPath), ("report", outcome.reportPath)] {
            guard let path else { continue }
            guard path.hasPrefix(staging + "/") else {
                throw JobFolderError(path: path, reason: "the runner's \(what) is not inside the job's output folder \(staging)")
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw JobFolderError(path: path, reason: "the runner reported this \(what), but it does not exist")
            }
        }
        var target = final
        var suffix = 1
        while try !AtomicOutputFolder.publish(staging, at: target) {
            suffix += 1
            guard suffix <= 1000 else { throw JobFolderError(path: final, reason: "it and \(final)-2 … -1000 are all taken") }
            target = final + "-\(suffix)"
        }
        var moved = outcome
        moved.outputPath = target + outcome.outputPath.dropFirst(staging.count)
        moved.reportPath = outcome.reportPath.map { target + $0.dropFirst(staging.count) }
        return (target, moved)
    }

    /// Removes a folder, logging (not throwing) when it cannot.
    public static func remove(_ path: String, _ logger: Logger) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            logger.warning("cannot remove \(path): \(error)")
        }
    }
}

/// A job folder that could not be prepared or published.
public struct JobFolderError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}
