import Foundation

/// This process's memory as the kernel counts it (/proc/self/status).
public enum ProcessMemory {
    /// Resident set size now (VmRSS), bytes; 0 where unavailable.
    public static var residentBytes: Int { statusField("VmRSS:") }

    /// Peak resident set size so far (VmHWM), bytes; 0 where unavailable.
    public static var peakResidentBytes: Int { statusField("VmHWM:") }

    private static func statusField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        return field(name, in: status)
    }

    /// Bytes of the "kB" field `name` in a /proc status text. The kernel writes "VmHWM:\t%8lu kB": a tab, then the
    /// number padded with spaces to 8 digits — so from 10^7 kB (9.5 GiB) on no space precedes it.
    static func field(_ name: String, in status: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return (line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first ?? 0) * 1024
        }
        return 0
    }
}

/// Drops the whole pages inside `byteCount` bytes at `address` — a read-only file mapping's — from this process's
/// resident memory (madvise MADV_DONTNEED: the page cache keeps them, a later read faults them back in without
/// I/O). The partial pages at either end stay. Only for file mappings: an anonymous page would read back as zeros.
public func releaseMappedPages(_ address: UnsafeRawPointer, byteCount: Int) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: address) + page - 1) / page * page
    let end = (Int(bitPattern: address) + byteCount) / page * page
    guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(pointer, end - start, Int32(MADV_DONTNEED))
}

extension ProcessMemory {
    /// Hands memory the allocator keeps after frees back to the system (glibc's malloc_trim): buffers below its mmap
    /// threshold (up to 32 MiB) come from the heap and stay resident once freed. A compression job calls it when
    /// its model is let go, before it reads its outputs back (the 7B shape's peak was there: 9.01 GiB, 6.81 of them
    /// the input's pages, the rest freed heap).
    public static func returnFreedMemory() {
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }
}

#if os(Linux)
/// glibc's malloc_trim(3), declared in <malloc.h>, which the Glibc module does not export.
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
