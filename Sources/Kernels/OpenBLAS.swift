#if canImport(Glibc)
import Glibc
#endif
import CBLAS
import Foundation
import Logging

/// OpenBLAS, opened at run time with the best kernel set for this CPU.
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, in its library constructor, and
/// Debian's 0.3.21 misdetects some AVX-512 processors as 'Prescott' (about 5x
/// slower sgemm). Linking it normally would run that constructor before our
/// code, so we detect the CPU ourselves, set the variable (unless the user set
/// it), and only then `dlopen` the library and resolve its symbols. Every
/// stored property is immutable after init, hence `@unchecked Sendable`.
public final class OpenBLAS: @unchecked Sendable {
    /// How the kernel set was decided.
    public enum CoreChoice: Sendable, Equatable {
        /// The user set `OPENBLAS_CORETYPE`; we left it alone.
        case user(String)
        /// We chose it from the CPU's features.
        case detected(String)
        /// No choice applies on this architecture; OpenBLAS decided.
        case library
    }

    public typealias SgemmFunction = @convention(c) (
        CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint,
        Float, UnsafePointer<Float>?, blasint, UnsafePointer<Float>?, blasint,
        Float, UnsafeMutablePointer<Float>?, blasint) -> Void
    typealias CorenameFunction = @convention(c) () -> UnsafeMutablePointer<CChar>?
    typealias GetIntFunction = @convention(c) () -> Int32
    typealias SetThreadsFunction = @convention(c) (Int32) -> Void

    /// The path or soname that was opened.
    public let libraryName: String
    /// The kernel set OpenBLAS reports it is running (e.g. "Cooperlake").
    public let coreName: String
    public let coreChoice: CoreChoice
    /// OpenBLAS's build configuration string (version, options).
    public let configuration: String
    let handle: UnsafeMutableRawPointer
    let sgemm: SgemmFunction
    private let getThreads: GetIntFunction
    private let setThreads: SetThreadsFunction

    /// The number of threads OpenBLAS uses for one call.
    public var threadCount: Int { Int(getThreads()) }

    /// Changes the number of threads OpenBLAS uses (at least 1).
    public func setThreadCount(_ count: Int) { setThreads(Int32(max(1, count))) }

    /// The sonames tried in order; Debian's libopenblas0 provides the first.
    static let candidateNames = ["libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so"]

    private init(libraryName: String, handle: UnsafeMutableRawPointer, coreChoice: CoreChoice) throws {
        func resolve<T>(_ name: String, as type: T.Type) throws -> T {
            guard let symbol = dlsym(handle, name) else {
                throw KernelsError.blasSymbolMissing(library: libraryName, symbol: name)
            }
            return unsafeBitCast(symbol, to: type)
        }
        self.libraryName = libraryName
        self.handle = handle
        self.coreChoice = coreChoice
        self.sgemm = try resolve("cblas_sgemm", as: SgemmFunction.self)
        self.getThreads = try resolve("openblas_get_num_threads", as: GetIntFunction.self)
        self.setThreads = try resolve("openblas_set_num_threads", as: SetThreadsFunction.self)
        let corename = try resolve("openblas_get_corename", as: CorenameFunction.self)
        self.coreName = corename().map { String(cString: $0) } ?? "unknown"
        let config = try resolve("openblas_get_config", as: CorenameFunction.self)
        self.configuration = config().map { String(cString: $0) }?
            .trimmingCharacters(in: .whitespaces) ?? "unknown"
    }

    /// Resolves a further symbol of the library (LAPACK routines, for example).
    public func symbol<T>(_ name: String, as type: T.Type) throws -> T {
        guard let symbol = dlsym(handle, name) else {
            throw KernelsError.blasSymbolMissing(library: libraryName, symbol: name)
        }
        return unsafeBitCast(symbol, to: type)
    }

    /// The outcome of the one load this process makes.
    public static let loaded: Result<OpenBLAS, KernelsError> = {
        do { return .success(try load()) } catch let error as KernelsError {
            return .failure(error)
        } catch {
            return .failure(.blasUnavailable(reason: "\(error)"))
        }
    }()

    /// The loaded library; stops the process with the load error if there is none.
    ///
    /// Entry points call `OpenBLAS.loaded` first and report a failure to the
    /// user; this accessor is for numeric code that runs after that check.
    public static var library: OpenBLAS {
        switch loaded {
        case .success(let blas): return blas
        case .failure(let error): fatalError("\(error)")
        }
    }

    private static func load() throws -> OpenBLAS {
        let choice = chooseCore(environment: ProcessInfo.processInfo.environment,
                                features: CPUFeatures.current)
        if case .detected(let core) = choice {
            setenv("OPENBLAS_CORETYPE", core, 1)
        }
        // OpenBLAS's idle threads spin for 2^28 cycles after each call by default,
        // taking the cores from the worker pool that runs the element-wise ops
        // between products; 2^4 puts them to sleep at once (a user's value wins).
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0)
        var errors: [String] = []
        for name in candidateNames {
            if let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                let blas = try OpenBLAS(libraryName: name, handle: handle, coreChoice: choice)
                let how: String
                switch choice {
                case .user(let core): how = "OPENBLAS_CORETYPE=\(core) set by the user"
                case .detected(let core): how = "\(core) chosen from the CPU features"
                case .library: how = "chosen by OpenBLAS"
                }
                Logger(label: "losad.kernels").info(
                    "OpenBLAS runs its \(blas.coreName) kernels on \(blas.threadCount) threads (\(how))",
                    metadata: ["library": "\(name)"])
                return blas
            }
            errors.append(dlerror().map { String(cString: $0) } ?? name)
        }
        throw KernelsError.blasUnavailable(reason: errors.joined(separator: "; "))
    }

    /// Decides the kernel set: the user's `OPENBLAS_CORETYPE` wins, else the best
    /// set the CPU's features support among those Debian's OpenBLAS 0.3.21 ships.
    public static func chooseCore(environment: [String: String], features: CPUFeatures) -> CoreChoice {
        if let user = environment["OPENBLAS_CORETYPE"], !user.isEmpty { return .user(user) }
        #if arch(x86_64)
        return .detected(bestX86Core(features))
        #else
        return .library
        #endif
    }

    /// The fastest OpenBLAS x86-64 kernel set whose instructions `features` all has.
    public static func bestX86Core(_ features: CPUFeatures) -> String {
        let f = features.flags
        if features.hasAVX512Core && f.contains("avx512_bf16") { return "Cooperlake" }
        if features.hasAVX512Core { return "SkylakeX" }
        if f.contains("avx2") && f.contains("fma") {
            return features.vendor == "AuthenticAMD" || features.vendor == "HygonGenuine" ? "Zen" : "Haswell"
        }
        if f.contains("avx") { return "Sandybridge" }
        if f.contains("sse4_2") { return "Nehalem" }
        return "Prescott"
    }
}
