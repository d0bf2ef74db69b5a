import Kernels

/// Where the daemon computes, as `losactl status` shows it: the CPU with the threads a job uses, and
/// the OpenBLAS kernel set with its version and threads.
public struct ComputeDescription: Sendable, Equatable {
    /// "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (2 threads)".
    public var device: String
    /// The OpenBLAS kernel set with the library's version and threads, "Haswell (0.3.21, 2 threads)"
    /// (`losactl status` prints it after "OpenBLAS"); the load error when OpenBLAS could not be loaded.
    public var kernel: String

    public init(device: String, kernel: String) {
        self.device = device
        self.kernel = kernel
    }

    /// This machine's, for `config`'s thread setting.
    ///
    /// Reads `OpenBLAS.loaded`, which loads the library if nothing has yet, and OpenBLAS's threads
    /// take the scheduling class of the thread that loads it. So call this only once
    /// `ComputeThreads.prepare` loaded it at the compute priority (`losad run` does that before the
    /// daemon starts), never first from a control-server thread.
    public static func current(_ config: DaemonConfig) -> ComputeDescription {
        let cpu = CPUFeatures.current
        let name = cpu.modelName.isEmpty ? "\(cpu.vendor) family \(cpu.family) model \(cpu.model)" : cpu.modelName
        let threads = config.scheduler.threads > 0 ? config.scheduler.threads : WorkerPool.defaultThreadCount()
        let kernel: String
        switch OpenBLAS.loaded {
        case .success(let blas):
            kernel = "\(blas.coreName) (\(openBLASVersion(blas.configuration)), \(blas.threadCount) threads)"
        case .failure(let error):
            kernel = "unavailable: \(error)"
        }
        return ComputeDescription(device: "\(name) (\(threads) threads)", kernel: kernel)
    }

    /// "0.3.21" from the build string "OpenBLAS 0.3.21 NO_AFFINITY Haswell MAX_THREADS=64".
    static func openBLASVersion(_ configuration: String) -> String {
        let words = configuration.split(separator: " ")
        guard words.count >= 2, words[0] == "OpenBLAS" else { return configuration }
        return String(words[1])
    }
}
