import Compression
import Foundation
import TOMLKit

// Reading `losad.toml`: every key is looked up through `SectionReader`, which checks its type and
// range and remembers it was read, so whatever is left over afterwards is an unknown key.

extension DaemonConfig {
    /// Every section and key the file may hold, in the order `Config/losad.toml` documents them.
    public static let knownKeys: KeyValuePairs<String, [String]> = [
        "folders": ["inbox", "outbox", "state"],
        "job": JobSettingKey.allCases.map(\.rawValue),
        "scheduler": ["running_jobs", "threads", "memory_limit", "priority"],
        "watch": ["settle_seconds", "rescan_seconds"],
        "control": ["socket", "socket_mode", "socket_group"],
        "service": ["stop_timeout_seconds"],
    ]

    /// Reads and validates the configuration file at `path`; relative paths in it are taken from the file's folder.
    public static func load(path: String) throws -> DaemonConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw ConfigError.unreadable(file: path, reason: reason)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, file: path, baseDirectory: folder)
    }

    /// Validates TOML `text`; `file` names it in errors and `baseDirectory` anchors relative paths.
    public static func parse(_ text: String, file: String, baseDirectory: String) throws -> DaemonConfig {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError.syntax(file: file, line: error.source.begin.line, column: error.source.begin.column,
                                     reason: error.description)
        }
        try checkSections(root, file: file)
        let d = DaemonConfig.defaults
        var config = d

        var folders = SectionReader("folders", root, file: file, base: baseDirectory)
        config.folders = Folders(inbox: try folders.path("inbox", default: d.folders.inbox),
                                 outbox: try folders.path("outbox", default: d.folders.outbox),
                                 state: try folders.path("state", default: d.folders.state))
        try folders.finish()

        var job = SectionReader("job", root, file: file, base: baseDirectory)
        config.job = try job.jobSettings()
        try job.finish()

        var scheduler = SectionReader("scheduler", root, file: file, base: baseDirectory)
        config.scheduler = Scheduler(
            runningJobs: try scheduler.integer("running_jobs", default: d.scheduler.runningJobs, in: 1...64,
                                               allowed: "a whole number of jobs from 1 to 64"),
            threads: try scheduler.integer("threads", default: d.scheduler.threads, in: 0...1024,
                                           allowed: "0 (one per usable CPU) or a whole number of threads up to 1024"),
            memoryLimit: try scheduler.memoryLimit("memory_limit"),
            priority: try scheduler.choice("priority", default: d.scheduler.priority))
        try scheduler.finish()

        var watch = SectionReader("watch", root, file: file, base: baseDirectory)
        config.watch = Watch(
            settleSeconds: try watch.number("settle_seconds", default: d.watch.settleSeconds, in: 0.1...3600,
                                            allowed: "seconds from 0.1 to 3600"),
            rescanSeconds: try watch.number("rescan_seconds", default: d.watch.rescanSeconds, in: 1...86400,
                                            allowed: "seconds from 1 to 86400"))
        try watch.finish()

        var control = SectionReader("control", root, file: file, base: baseDirectory)
        config.control = Control(socketPath: try control.socketPath("socket", default: d.control.socketPath),
                                 socketMode: try control.fileMode("socket_mode", default: d.control.socketMode),
                                 socketGroup: try control.groupName("socket_group", default: d.control.socketGroup))
        try control.finish()

        var service = SectionReader("service", root, file: file, base: baseDirectory)
        config.service = Service(
            stopTimeoutSeconds: try service.number("stop_timeout_seconds", default: d.service.stopTimeoutSeconds,
                                                   in: 1...3600, allowed: "seconds from 1 to 3600"))
        try service.finish()

        try checkAcrossKeys(config, file: file)
        return config
    }

    /// Top-level entries must be known sections (tables).
    static func checkSections(_ root: TOMLTable, file: String) throws {
        let sections = knownKeys.map(\.key)
        for key in root.keys.sorted() {
            if let keys = knownKeys.first(where: { $0.key == key })?.value {
                guard root[key]?.type == .table else {
                    throw ConfigError.wrongType(file: file, key: key, value: render(root[key]!),
                                                expected: "a section ([\(key)] with keys \(keys.joined(separator: ", ")))")
                }
                continue
            }
            // A key written above every section header: point at the section it belongs to.
            let home = knownKeys.first(where: { $0.value.contains(key) }).map { "\($0.key).\(key) (under [\($0.key)])" }
            throw ConfigError.unknownKey(file: file, key: key, suggestion: home ?? nearest(key, among: sections))
        }
    }

    static func checkAcrossKeys(_ c: DaemonConfig, file: String) throws {
        let inbox = c.folders.inbox
        for (key, path) in [("folders.outbox", c.folders.outbox), ("folders.state", c.folders.state)] {
            if path == inbox || path.hasPrefix(inbox.hasSuffix("/") ? inbox : inbox + "/") {
                throw ConfigError.invalidValue(file: file, key: key, value: quoted(path),
                                               allowed: "a folder outside folders.inbox (\(inbox)), or what losad writes there would be taken for new models")
            }
        }
    }

    static func render(_ value: TOMLValueConvertible) -> String {
        if let string = value.string { return quoted(string) }
        return value.debugDescription
    }

    static func quoted(_ string: String) -> String { "\"\(string)\"" }

    /// The candidate closest to `key` by edit distance, if it is close enough to be a typo.
    static func nearest(_ key: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (candidate, distance) = scored, distance <= max(1, min(3, candidate.count / 3)) else { return nil }
        return candidate
    }

    /// Levenshtein distance (insertions, deletions, substitutions), one row at a time.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Typed, range-checked reads from one `[section]`, remembering which keys were read.
struct SectionReader {
    let section: String
    let table: TOMLTable?
    let file: String
    let base: String
    var read: Set<String> = []

    init(_ section: String, _ root: TOMLTable, file: String, base: String) {
        self.section = section
        self.table = root[section]?.table
        self.file = file
        self.base = base
    }

    func name(_ key: String) -> String { "\(section).\(key)" }

    mutating func value(_ key: String) -> TOMLValueConvertible? {
        read.insert(key)
        return table?[key]
    }

    /// Fails on the first key of the section that no reader asked for.
    func finish() throws {
        guard let table else { return }
        let known = DaemonConfig.knownKeys.first { $0.key == section }?.value ?? []
        for key in table.keys.sorted() where !read.contains(key) {
            var suggestion = DaemonConfig.nearest(key, among: known).map(name)
            if suggestion == nil, let other = DaemonConfig.knownKeys.first(where: { $0.value.contains(key) }) {
                suggestion = "\(other.key).\(key) (under [\(other.key)])"
            }
            throw ConfigError.unknownKey(file: file, key: name(key), suggestion: suggestion)
        }
    }

    mutating func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else {
            throw ConfigError.wrongType(file: file, key: name(key), value: DaemonConfig.render(value), expected: "a string")
        }
        return string
    }

    mutating func number(_ key: String, default fallback: Double, in range: ClosedRange<Double>, allowed: String) throws -> Double {
        guard let value = value(key) else { return fallback }
        guard let number = value.double ?? value.int.map(Double.init) else {
            throw ConfigError.wrongType(file: file, key: name(key), value: DaemonConfig.render(value), expected: "a number (\(allowed))")
        }
        guard number.isFinite, range.contains(number) else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.render(value), allowed: allowed)
        }
        return number
    }

    mutating func integer(_ key: String, default fallback: Int, in range: ClosedRange<Int>, allowed: String) throws -> Int {
        guard let value = value(key) else { return fallback }
        guard let number = value.int else {
            throw ConfigError.wrongType(file: file, key: name(key), value: DaemonConfig.render(value), expected: "an integer (\(allowed))")
        }
        guard range.contains(number) else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: "\(number)", allowed: allowed)
        }
        return number
    }

    mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, default fallback: E) throws -> E where E.RawValue == String {
        let allowed = "one of " + E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        guard let value = value(key) else { return fallback }
        guard let raw = value.string else {
            throw ConfigError.wrongType(file: file, key: name(key), value: DaemonConfig.render(value), expected: allowed)
        }
        guard let choice = E(rawValue: raw) else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.quoted(raw), allowed: allowed)
        }
        return choice
    }

    /// The `[job]` section, every key parsed by `JobSettings` as `losactl submit` and `losad compress` are:
    /// the same values are allowed and refused with the same sentence. Relative corpus paths are taken from
    /// the configuration file's folder.
    mutating func jobSettings() throws -> JobSettings {
        var changes: [JobSettingKey: JobSettings.Value] = [:]
        for key in JobSettingKey.allCases {
            guard let value = value(key.rawValue) else { continue }
            if let text = value.string {
                let isPath = key == .calibrationCorpus || key == .evaluationCorpus
                changes[key] = .text(isPath && !text.isEmpty && !text.contains("\0") ? try resolve(text, key.rawValue) : text)
            } else if let number = value.double ?? value.int.map(Double.init) {
                changes[key] = .number(number)
            } else if let array = value.array {
                let items = array.compactMap { $0.string }
                changes[key] = items.count == array.count ? .list(items) : .other(DaemonConfig.render(value))
            } else {
                changes[key] = .other(DaemonConfig.render(value))
            }
        }
        do {
            return try JobSettings.defaults.applying(changes)
        } catch {
            guard case let .invalidSetting(field, value, allowed) = error else { throw error }
            throw ConfigError.invalidValue(file: file, key: name(field), value: value, allowed: allowed)
        }
    }

    /// A path, relative ones taken from the configuration file's folder, normalised (no `.`/`..`).
    mutating func path(_ key: String, default fallback: String) throws -> String {
        guard let raw = try string(key) else { return fallback }
        return try resolve(raw, key)
    }

    func resolve(_ raw: String, _ key: String) throws -> String {
        guard !raw.isEmpty, !raw.contains("\0") else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.quoted(raw),
                                           allowed: "a path (absolute, or relative to the configuration file's folder)")
        }
        let absolute = raw.hasPrefix("/") ? raw : (base as NSString).appendingPathComponent(raw)
        return URL(fileURLWithPath: absolute).standardizedFileURL.path
    }

    /// "auto", a size with a binary unit like systemd's ("512M", "6G", "6GiB"), or bytes as an integer.
    mutating func memoryLimit(_ key: String) throws -> DaemonConfig.MemoryLimit {
        let allowed = "\"auto\", or a size of at least 64M such as \"512M\", \"6G\" or \"6GiB\" (K, M, G, T are powers of 1024), or bytes as an integer"
        guard let value = value(key) else { return DaemonConfig.defaults.scheduler.memoryLimit }
        let bytes: Int?
        if let integer = value.int {
            bytes = integer
        } else if let text = value.string {
            if text == "auto" { return .automatic }
            bytes = SectionReader.parseSize(text)
        } else {
            throw ConfigError.wrongType(file: file, key: name(key), value: DaemonConfig.render(value), expected: allowed)
        }
        guard let bytes, bytes >= 64 << 20 else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.render(value), allowed: allowed)
        }
        return .bytes(bytes)
    }

    static func parseSize(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let number = Double(digits), number.isFinite, number >= 0 else { return nil }
        let shifts: [String: Int] = ["": 0, "B": 0, "K": 10, "KiB": 10, "M": 20, "MiB": 20, "G": 30, "GiB": 30, "T": 40, "TiB": 40]
        guard let shift = shifts[unit] else { return nil }
        let bytes = number * Double(1 << shift)
        guard bytes < Double(Int.max / 2) else { return nil }
        return Int(bytes)
    }

    /// An absolute socket path that fits `sockaddr_un.sun_path` (107 bytes and the terminating NUL).
    mutating func socketPath(_ key: String, default fallback: String) throws -> String {
        let path = try path(key, default: fallback)
        guard path.utf8.count <= 107 else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.quoted(path),
                                           allowed: "a socket path of at most 107 bytes (this one has \(path.utf8.count))")
        }
        return path
    }

    /// Permission bits as a TOML octal integer (0o660) or an octal string ("0660").
    mutating func fileMode(_ key: String, default fallback: Int) throws -> Int {
        let allowed = "permission bits from 0 to 0777, written 0o660 or \"0660\""
        guard let value = value(key) else { return fallback }
        let mode: Int?
        if let integer = value.int {
            mode = integer
        } else if let text = value.string, !text.isEmpty, text.allSatisfy({ ("0"..."7").contains($0) }) {
            mode = Int(text, radix: 8)
        } else if value.string != nil {
            mode = nil
        } else {
            throw ConfigError.wrongType(file: file, key: name(key), value: DaemonConfig.render(value), expected: allowed)
        }
        guard let mode, (0...0o777).contains(mode) else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.render(value), allowed: allowed)
        }
        return mode
    }

    /// A group name as useradd accepts it, or a numeric id; "" means the daemon's own group.
    mutating func groupName(_ key: String, default fallback: String?) throws -> String? {
        guard let raw = try string(key) else { return fallback }
        if raw.isEmpty { return nil }
        let first = raw.unicodeScalars.first!
        let valid = raw.unicodeScalars.count <= 32
            && (raw.allSatisfy(\.isNumber) || ((first == "_" || ("a"..."z").contains(first))
                && raw.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }))
        guard valid else {
            throw ConfigError.invalidValue(file: file, key: name(key), value: DaemonConfig.quoted(raw),
                                           allowed: "a group name (lowercase letters, digits, _ and -, starting with a letter or _, at most 32) or a numeric id, or \"\"")
        }
        return raw
    }
}
