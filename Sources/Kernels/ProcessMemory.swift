import Foundation

/// This process's memory as the kernel counts it (/proc/self/status).
public enum ProcessMemory {
    /// Resident set size now (VmRSS), bytes; 0 where unavailable.
    public static var residentBytes: Int { statusField("VmRSS:") }

    /// Peak resident set size so far (VmHWM), bytes; 0 where unavailable.
    public static var peakResidentBytes: Int { statusField("VmHWM:") }

    private static func statusField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
        }
        return 0
    }
}
