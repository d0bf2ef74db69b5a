#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// How much memory the machine and the daemon's cgroup leave, read from /proc/meminfo (MemAvailable)
/// and the cgroup's memory controller: cgroup v2 memory.max (the smallest along the path to the
/// root), memory.current and memory.stat's inactive_file; v1 memory.limit_in_bytes and
/// memory.usage_in_bytes as a fallback.
public struct MemoryAvailability: Sendable, Equatable {
    /// MemAvailable: what can be allocated without swapping, page cache included.
    public var machineAvailable: Int?
    public var machineTotal: Int?
    /// The effective cgroup limit; nil when there is none (or it could not be read).
    public var cgroupLimit: Int?
    /// What the cgroup uses now (the daemon and its page cache).
    public var cgroupUsage: Int?
    /// Page cache the kernel drops before it reaches the limit.
    public var cgroupReclaimable: Int?
    /// The cgroup folder read, for messages.
    public var cgroupFolder: String?

    public init(machineAvailable: Int? = nil, machineTotal: Int? = nil, cgroupLimit: Int? = nil, cgroupUsage: Int? = nil,
                cgroupReclaimable: Int? = nil, cgroupFolder: String? = nil) {
        self.machineAvailable = machineAvailable
        self.machineTotal = machineTotal
        self.cgroupLimit = cgroupLimit
        self.cgroupUsage = cgroupUsage
        self.cgroupReclaimable = cgroupReclaimable
        self.cgroupFolder = cgroupFolder
    }

    /// What the cgroup still allows: limit − usage + reclaimable page cache; nil without a limit.
    public var cgroupHeadroom: Int? {
        guard let limit = cgroupLimit else { return nil }
        return max(0, limit - (cgroupUsage ?? 0) + (cgroupReclaimable ?? 0))
    }

    /// Reads the current figures. The roots are parameters so tests can point them at a fake tree.
    public static func read(procRoot: String = "/proc", cgroupRoot: String = "/sys/fs/cgroup") -> MemoryAvailability {
        var result = MemoryAvailability()
        if let meminfo = try? String(contentsOfFile: procRoot + "/meminfo", encoding: .utf8) {
            result.machineAvailable = kilobytes(meminfo, "MemAvailable")
            result.machineTotal = kilobytes(meminfo, "MemTotal")
        }
        guard let membership = try? String(contentsOfFile: procRoot + "/self/cgroup", encoding: .utf8) else { return result }
        let lines = membership.split(separator: "\n").map { $0.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false) }
        if let v1 = lines.first(where: { $0.count == 3 && $0[1].split(separator: ",").contains("memory") }),
           FileManager.default.fileExists(atPath: cgroupRoot + "/memory") {
            let folder = existingFolder(cgroupRoot + "/memory", String(v1[2]))
            result.cgroupFolder = folder
            // v1 reports "no limit" as a huge page-rounded number near 2^63.
            result.cgroupLimit = number(folder + "/memory.limit_in_bytes").flatMap { $0 >= 1 << 62 ? nil : $0 }
            result.cgroupUsage = number(folder + "/memory.usage_in_bytes")
            result.cgroupReclaimable = statistic(folder + "/memory.stat", "total_inactive_file")
        } else if let v2 = lines.first(where: { $0.count == 3 && $0[0] == "0" && $0[1].isEmpty }) {
            let folder = existingFolder(cgroupRoot, String(v2[2]))
            result.cgroupFolder = folder
            // A parent's memory.max binds its children too: take the smallest on the way up to the root.
            var limits: [Int] = []
            var current = folder
            while current.hasPrefix(cgroupRoot) {
                if let limit = number(current + "/memory.max") { limits.append(limit) }
                if current == cgroupRoot { break }
                current = (current as NSString).deletingLastPathComponent
            }
            result.cgroupLimit = limits.min()
            result.cgroupUsage = number(folder + "/memory.current")
            result.cgroupReclaimable = statistic(folder + "/memory.stat", "inactive_file")
        }
        return result
    }

    /// The cgroup's folder under `root`; the root itself when the path is not visible there
    /// (inside a cgroup namespace or a container the mount starts at the process's own cgroup).
    static func existingFolder(_ root: String, _ path: String) -> String {
        let candidate = path == "/" ? root : root + path
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory) && isDirectory.boolValue ? candidate : root
    }

    /// An integer file's value; nil for "max", missing files or garbage.
    static func number(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A "key value" line of memory.stat.
    static func statistic(_ path: String, _ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == key { return Int(fields[1]) }
        }
        return nil
    }

    /// A "Key:   123 kB" line of /proc/meminfo, in bytes.
    static func kilobytes(_ meminfo: String, _ key: String) -> Int? {
        for line in meminfo.split(separator: "\n") where line.hasPrefix(key + ":") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let value = Int(fields[1]) else { return nil }
            return fields.count >= 3 && fields[2] == "kB" ? value * 1024 : value
        }
        return nil
    }
}
