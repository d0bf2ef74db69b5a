#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An output folder that appears at its destination complete and on disk, or
/// not at all, and that replaces an existing entry only when asked: the folder
/// counterpart of `AtomicOutputFile`.
///
/// Everything is written into a temporary sibling, `.NAME.RANDOM.tmp` (files
/// inside it through `AtomicOutputFile`, which fsyncs each one). `commit()`
/// fsyncs the temporary folder, renames it into place and fsyncs the parent.
/// Without `replacingExisting` the rename is renameat2(RENAME_NOREPLACE),
/// which fails atomically when the name is taken (a plain rename(2) would
/// silently replace an empty folder); with it, renameat2(RENAME_EXCHANGE)
/// swaps the two atomically and the old entry is then removed. Where the
/// filesystem or kernel has neither flag, it falls back to check-then-rename
/// and to move-aside-then-rename. Until `commit()` succeeds the temporary
/// folder is removed by `discard()`, by deinit, and by `write` on any error.
/// `publish(_:at:)` moves a folder that was filled elsewhere (the daemon's job
/// output) into place the same way.
public final class AtomicOutputFolder {
    public let destination: String
    public let temporaryPath: String
    private let replacingExisting: Bool
    private var finished = false

    /// Creates the folder `destination` from what `body` writes into the
    /// temporary folder it is given, then commits it; on any error the
    /// temporary folder is removed and `destination` is left as it was.
    public static func write<R>(to destination: String, replacingExisting: Bool, _ body: (String) throws -> R) throws -> R {
        let folder = try AtomicOutputFolder(destination: destination, replacingExisting: replacingExisting)
        do {
            let result = try body(folder.temporaryPath)
            try folder.commit()
            return result
        } catch {
            folder.discard()
            throw error
        }
    }

    /// Creates an empty temporary folder next to `destination`; fails at once
    /// when `destination` exists and `replacingExisting` is false.
    public init(destination: String, replacingExisting: Bool) throws {
        let destination = Self.trimmingTrailingSlashes(destination)
        self.destination = destination
        self.replacingExisting = replacingExisting
        if !replacingExisting && Self.exists(destination) {
            throw ModelFormatError.io(file: destination, operation: "write",
                                      reason: "the folder already exists (losad replaces an output only when asked)")
        }
        let (directory, name) = splitPath(destination)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw ModelFormatError.io(file: destination, operation: "write", reason: "the path names no new folder")
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var path = ""
        var created = false
        var code: Int32 = 0
        // mkdir never takes over someone else's folder; a clash of random names just draws again.
        for _ in 0..<16 {
            path = prefix + "." + name + "." + String(UInt64.random(in: 0...UInt64.max), radix: 16) + ".tmp"
            if mkdir(path, 0o755) == 0 {
                created = true
                break
            }
            code = errno
            if code != EEXIST { break }
        }
        guard created else {
            throw ModelFormatError.io(file: destination, operation: "create the temporary folder \(path)",
                                      reason: Self.describe(code))
        }
        self.temporaryPath = path
    }

    deinit {
        if !finished { discard() }
    }

    // MARK: - Publishing

    /// Fsyncs the temporary folder, moves it to the destination, then fsyncs
    /// the parent so that the move survives a crash.
    public func commit() throws {
        precondition(!finished, "commit() after commit() or discard()")
        try AtomicOutputFile.syncFolder(temporaryPath, file: destination)
        if replacingExisting && Self.exists(destination) {
            try replace()
        } else {
            guard try Self.moveWithoutReplacing(temporaryPath, to: destination) else { throw appearedError() }
        }
        finished = true
        try AtomicOutputFile.syncFolder(splitPath(destination).directory, file: destination)
    }

    /// Moves `folder`, whose files are already on disk (written through `AtomicOutputFile`), to
    /// `destination` durably: fsync of the folder, a rename that never replaces an entry, fsync of the
    /// parent. Returns false, having moved nothing, when `destination` is taken.
    public static func publish(_ folder: String, at destination: String) throws -> Bool {
        let destination = trimmingTrailingSlashes(destination)
        try AtomicOutputFile.syncFolder(folder, file: destination)
        guard try moveWithoutReplacing(folder, to: destination) else { return false }
        try AtomicOutputFile.syncFolder(splitPath(destination).directory, file: destination)
        return true
    }

    /// renameat2(RENAME_NOREPLACE), or where the system has no such flag, check-then-rename (a small
    /// window, as AtomicOutputFile's fallback). False when `destination` is taken.
    private static func moveWithoutReplacing(_ source: String, to destination: String) throws -> Bool {
        switch renameat2(source, destination, flags: renameNoReplace) {
        case .done:
            return true
        case .failed(EEXIST), .failed(ENOTEMPTY):
            return false
        case .failed(let code) where !flagUnsupported(code):
            throw ModelFormatError.io(file: destination, operation: "rename \(source) into place", reason: describe(code))
        case .failed, .unavailable:
            guard !exists(destination) else { return false }
            guard Glibc.rename(source, destination) == 0 else {
                let code = errno
                throw ModelFormatError.io(file: destination, operation: "rename \(source) into place", reason: describe(code))
            }
            return true
        }
    }

    /// Swaps the new folder in atomically where the system can, else moves the
    /// old entry aside first (restoring it if the second move fails); then
    /// removes the old entry.
    private func replace() throws {
        switch Self.renameat2(temporaryPath, destination, flags: Self.renameExchange) {
        case .done:
            // The old entry now sits at the temporary name.
            Self.removeTree(temporaryPath)
            return
        case .failed(let code) where !Self.flagUnsupported(code):
            throw ModelFormatError.io(file: destination, operation: "exchange \(temporaryPath) with it", reason: Self.describe(code))
        case .failed, .unavailable:
            break
        }
        let aside = temporaryPath + ".old"
        try rename(destination, to: aside)
        do {
            try rename(temporaryPath, to: destination)
        } catch {
            _ = Glibc.rename(aside, destination)
            throw error
        }
        Self.removeTree(aside)
    }

    private func rename(_ source: String, to target: String) throws {
        guard Glibc.rename(source, target) == 0 else {
            let code = errno
            throw ModelFormatError.io(file: destination, operation: "rename \(source) to \(target)", reason: Self.describe(code))
        }
    }

    private func appearedError() -> ModelFormatError {
        .io(file: destination, operation: "write",
            reason: "the folder appeared while it was being written (losad replaces an output only when asked)")
    }

    /// Removes the temporary folder and everything in it; does nothing once committed.
    public func discard() {
        guard !finished else { return }
        Self.removeTree(temporaryPath)
        finished = true
    }

    // MARK: - renameat2

    private enum RenameOutcome {
        case done
        case failed(Int32)
        /// The C library has no renameat2 (glibc before 2.28).
        case unavailable
    }

    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

    // <linux/fs.h>; Swift's Glibc module hides renameat2 and its flags (they need _GNU_SOURCE).
    private static let renameNoReplace: UInt32 = 1
    private static let renameExchange: UInt32 = 2

    /// Looked up at run time for the same reason.
    private static let renameat2Function: RenameAt2? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: RenameAt2.self)
    }()

    private static func renameat2(_ source: String, _ target: String, flags: UInt32) -> RenameOutcome {
        guard let function = renameat2Function else { return .unavailable }
        while true {
            if function(AT_FDCWD, source, AT_FDCWD, target, flags) == 0 { return .done }
            let code = errno
            if code != EINTR { return .failed(code) }
        }
    }

    /// The errors a kernel or filesystem gives for a flag it does not implement.
    private static func flagUnsupported(_ code: Int32) -> Bool {
        code == EINVAL || code == ENOSYS || code == ENOTSUP || code == EOPNOTSUPP
    }

    // MARK: - Helpers

    /// Removes `path` and, for a real folder, everything under it; a symbolic
    /// link is removed itself, never followed.
    public static func removeTree(_ path: String) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            if let stream = opendir(path) {
                var names: [String] = []
                while let entry = readdir(stream) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(stream)
                for name in names { removeTree(path + "/" + name) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// lstat, so that a dangling symbolic link counts as taken too.
    static func exists(_ path: String) -> Bool { AtomicOutputFile.exists(path) }

    static func trimmingTrailingSlashes(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    private static func describe(_ code: Int32) -> String { AtomicOutputFile.describe(code) }
}
