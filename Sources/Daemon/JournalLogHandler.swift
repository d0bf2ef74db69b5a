#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import Foundation
import Logging

/// A swift-log handler that writes to the systemd journal with structured fields (systemd.journal-fields(7)):
/// MESSAGE, PRIORITY (syslog levels), SYSLOG_IDENTIFIER, CODE_FILE/LINE/FUNC, LOGGER (the label), and every
/// metadata key as an upper-case field — `job_id`, `model` and `stage` become JOB_ID, MODEL and STAGE, so
/// `journalctl -u losad JOB_ID=7` shows one job.
///
/// `JournalLogHandler.make(label:level:)` picks it when `$JOURNAL_STREAM` names the device and inode of
/// standard error (systemd connected stderr to the journal), and a plain standard-error handler otherwise.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public let label: String
    /// Receives each entry's fields; `sd_journal_sendv` in production, a recorder in tests.
    let sink: @Sendable ([String]) -> Void

    /// A handler whose entries go to `sink` (the journal by default).
    public init(label: String, level: Logger.Level = .info, sink: (@Sendable ([String]) -> Void)? = nil) {
        self.label = label
        self.logLevel = level
        self.sink = sink ?? { JournalLogHandler.sendToJournal($0) }
    }

    /// The journal handler when stderr is connected to the journal, else swift-log's standard-error handler.
    public static func make(label: String, level: Logger.Level,
                            environment: [String: String] = ProcessInfo.processInfo.environment) -> any LogHandler {
        if standardErrorIsJournal(environment: environment) { return JournalLogHandler(label: label, level: level) }
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }

    /// Whether `$JOURNAL_STREAM` ("DEVICE:INODE") matches file descriptor 2.
    public static func standardErrorIsJournal(environment: [String: String], descriptor: Int32 = 2) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        sink(JournalLogHandler.fields(level: event.level, message: event.message.description, metadata: merged, label: label,
                                      file: event.file, function: event.function, line: event.line))
    }

    /// syslog(3) priority of a swift-log level (journald's PRIORITY field).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// The journal field name for a metadata key: upper case, anything but A–Z, 0–9 and _ becomes _,
    /// no leading _ or digit (those are reserved or invalid), at most 64 characters.
    public static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().unicodeScalars.map { scalar -> Character in
            (("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)) ? Character(scalar) : "_"
        })
        while let first = name.first, first == "_" || first.isNumber { name.removeFirst() }
        if name.isEmpty { name = "FIELD" }
        return String(name.prefix(64))
    }

    /// One entry's fields as "NAME=value" strings, in a fixed order (MESSAGE first, metadata sorted by name).
    public static func fields(level: Logger.Level, message: String, metadata: Logger.Metadata, label: String,
                              file: String, function: String, line: UInt) -> [String] {
        var fields = [
            "MESSAGE=\(message)",
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=losad",
            "LOGGER=\(label)",
            "CODE_FILE=\(file)",
            "CODE_LINE=\(line)",
            "CODE_FUNC=\(function)",
        ]
        let reserved: Set<String> = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "LOGGER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            var name = fieldName(key)
            if reserved.contains(name) { name = "META_" + name }
            fields.append("\(name)=\(value)")
        }
        return fields
    }

    /// Sends the fields with sd_journal_sendv (values may hold newlines; libsystemd encodes them). Returns
    /// whether the journal took them; when it did not, the message went to `fallback` (standard error).
    @discardableResult
    static func sendToJournal(_ fields: [String],
                              fallback: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) -> Bool {
        let buffers = fields.map { Array($0.utf8) }
        let pointers = buffers.map { bytes -> UnsafeMutableRawPointer in
            let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            bytes.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            return pointer
        }
        defer { pointers.forEach { $0.deallocate() } }
        var vectors = zip(pointers, buffers).map { iovec(iov_base: $0, iov_len: $1.count) }
        if sd_journal_sendv(&vectors, Int32(vectors.count)) < 0 {
            // The journal is gone (e.g. journald restarting): standard error still reaches it via the stream.
            fallback(fields.first.map { String($0.dropFirst("MESSAGE=".count)) } ?? "")
            return false
        }
        return true
    }
}
