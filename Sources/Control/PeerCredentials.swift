#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Who is at the other end of a Unix socket: the process, user and groups
/// the kernel reports (SO_PEERCRED, socket(7)) when it connected, with the
/// process's supplementary groups.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups: from /proc/PID/status, or when that cannot be
    /// read (hidepid, ProtectProc=) the user database's groups for `uid`.
    public var groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// This process, as a peer would see it (tests, and calls made in-process).
    public static var currentProcess: PeerCredentials {
        PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid(),
                        groups: supplementaryGroups(pid: getpid(), uid: getuid(), gid: getgid()))
    }

    /// Layout of Linux's `struct ucred`, which Glibc's Swift module does not export.
    struct KernelCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    #if os(Linux)
    static let peerCredentialsOption = SO_PEERCRED
    #endif

    /// The groups of process `pid`. /proc/PID/status lists them as the process
    /// has them now (after setgroups or a dropped privilege), which is what
    /// authorisation should see; getgrouplist is the fallback.
    public static func supplementaryGroups(pid: Int32, uid: UInt32, gid: UInt32) -> [UInt32] {
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) {
            return line.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
        }
        return userDatabaseGroups(uid: uid, gid: gid)
    }

    /// The groups the user database gives `uid` (getgrouplist(3)); empty when
    /// the user has no entry.
    static func userDatabaseGroups(uid: UInt32, gid: UInt32) -> [UInt32] {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
            return []
        }
        var count: Int32 = 64
        // getgrouplist reports the size it needs when the array is too small; a
        // user in more than 65,536 groups is refused rather than believed.
        while count <= 65_536 {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var found = count
            #if canImport(Darwin)
            let status = groups.withUnsafeMutableBufferPointer { pointer in
                pointer.withMemoryRebound(to: Int32.self) { getgrouplist(name, Int32(bitPattern: gid), $0.baseAddress, &found) }
            }
            #else
            let status = getgrouplist(name, gid, &groups, &found)
            #endif
            if status >= 0 { return Array(groups.prefix(Int(found))).map { UInt32($0) } }
            count = max(found, count * 2)
        }
        return []
    }

    public var description: String { "pid \(pid) uid \(uid) gid \(gid)" }
}

/// Who may change the daemon's state. Reading is open to whoever can open the
/// socket (its mode and group decide that); changing state needs root, the
/// daemon's own user, or membership (primary or supplementary) in the control
/// group.
public struct AccessPolicy: Sendable, Equatable {
    /// The daemon's own user.
    public var daemonUID: UInt32
    /// The group whose members may change state; nil: only root and the daemon's user.
    public var controlGroup: UInt32?
    /// The group's name, for error messages.
    public var controlGroupName: String?

    public init(daemonUID: UInt32 = getuid(), controlGroup: UInt32?, controlGroupName: String? = nil) {
        self.daemonUID = daemonUID
        self.controlGroup = controlGroup
        self.controlGroupName = controlGroupName ?? controlGroup.flatMap(Self.groupName)
    }

    /// Whether `caller` may change state.
    public func mayChangeState(_ caller: PeerCredentials) -> Bool {
        if caller.uid == 0 || caller.uid == daemonUID { return true }
        guard let group = controlGroup else { return false }
        return caller.gid == group || caller.groups.contains(group)
    }

    /// The gid of group `name` (getgrnam_r(3)), or nil when there is none.
    public static func groupID(named name: String) -> UInt32? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return UInt32(entry.gr_gid)
    }

    /// The name of group `gid`, or nil when there is none.
    public static func groupName(_ gid: UInt32) -> String? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65_536)
        guard getgrgid_r(gid_t(gid), &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.gr_name else {
            return nil
        }
        return String(cString: name)
    }
}
