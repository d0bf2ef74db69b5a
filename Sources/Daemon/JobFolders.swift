#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// The folders of one job: its output, written hidden in the outbox and renamed into view only when
/// the job succeeds (so the outbox shows complete results only), and its checkpoint folder under
/// the state folder, which outlives stops and crashes.
public enum JobFolders {
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

    /// Renames the finished output folder `staging` to `final` (to `final-2`, `-3`, … if that name is
    /// taken) after syncing it, and returns `outcome` with its paths moved along.
    /// - Throws: `JobFolderError` when the outcome names a file that is missing or outside `staging`.
    public static func publish(_ staging: String, as final: String, outcome: JobOutcome) throws -> JobOutcome {
        let files = FileManager.default
        for (what, path) in [("output", outcome.outputPath), ("report", outcome.reportPath)] {
            guard let path else { continue }
            guard path.hasPrefix(staging + "/") else {
                throw JobFolderError(path: path, reason: "the runner's \(what) is not inside the job's output folder \(staging)")
            }
            guard files.fileExists(atPath: path) else {
                throw JobFolderError(path: path, reason: "the runner reported this \(what), but it does not exist")
            }
        }
        try sync(staging)
        var target = final
        var suffix = 1
        while rename(staging, target) != 0 {
            let code = errno
            guard code == EEXIST || code == ENOTEMPTY, suffix < 1000 else {
                throw JobFolderError(path: target, reason: "cannot rename \(staging) to it: \(String(cString: strerror(code)))")
            }
            suffix += 1
            target = final + "-\(suffix)"
        }
        try sync((target as NSString).deletingLastPathComponent)   // the rename itself is durable
        var moved = outcome
        moved.outputPath = target + outcome.outputPath.dropFirst(staging.count)
        moved.reportPath = outcome.reportPath.map { target + $0.dropFirst(staging.count) }
        return moved
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

    /// fsync(2) of a folder, so renames and new entries in it survive a power loss.
    static func sync(_ folder: String) throws {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw JobFolderError(path: folder, reason: "cannot open it to sync: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw JobFolderError(path: folder, reason: "fsync failed: \(String(cString: strerror(errno)))") }
    }
}

/// A job folder that could not be prepared or published.
public struct JobFolderError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}
