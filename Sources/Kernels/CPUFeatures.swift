#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The processor's identity and instruction-set extensions, as the kernel reports them.
///
/// Read from `/proc/cpuinfo`, whose flags the kernel clears for extensions the
/// OS does not enable (e.g. AVX-512 without XSAVE support), so a listed flag is usable.
public struct CPUFeatures: Sendable, Equatable {
    public var vendor: String
    public var family: Int
    public var model: Int
    public var modelName: String
    public var flags: Set<String>

    public init(vendor: String, family: Int, model: Int, modelName: String, flags: Set<String>) {
        self.vendor = vendor
        self.family = family
        self.model = model
        self.modelName = modelName
        self.flags = flags
    }

    /// The features of the machine this process runs on.
    public static let current: CPUFeatures = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return CPUFeatures(cpuinfo: text)
    }()

    /// Parses the first processor block of a `/proc/cpuinfo` text.
    public init(cpuinfo: String) {
        var fields: [String: String] = [:]
        for line in cpuinfo.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty, !fields.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = value }
        }
        self.vendor = fields["vendor_id"] ?? "unknown"
        self.family = Int(fields["cpu family"] ?? "") ?? 0
        self.model = Int(fields["model"] ?? "") ?? 0
        self.modelName = fields["model name"] ?? "unknown"
        self.flags = Set((fields["flags"] ?? "").split(separator: " ").map(String.init))
    }

    /// The extensions that decide which kernels can run, in a stable order for display.
    public var notableFlags: [String] {
        let interesting = ["sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512cd", "avx512bw",
                           "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                           "amx_tile", "amx_bf16", "neon", "asimd", "sve"]
        return interesting.filter { flags.contains($0) }
    }

    public var hasAVX512Core: Bool {
        ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }
}
