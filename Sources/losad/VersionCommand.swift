import ArgumentParser
import CSystemd
import Foundation
import Kernels

/// `losad version`: what this build is and which compute paths it uses here.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the version, the CPU features found and the OpenBLAS kernel and threads in use."
    )

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    struct Report: Encodable {
        var version: String
        var cpu: String
        var cpuFeatures: [String]
        var openblasLibrary: String
        var openblasCore: String
        var openblasCoreChoice: String
        var openblasThreads: Int
        var openblasConfig: String
        var workerThreads: Int
        var systemdBooted: Bool
    }

    func run() throws {
        let blas: OpenBLAS
        do { blas = try Kernels.prepare() } catch {
            throw ValidationError("\(error)")
        }
        let cpu = CPUFeatures.current
        let choice: String
        switch blas.coreChoice {
        case .user(let core): choice = "OPENBLAS_CORETYPE=\(core) set by the user"
        case .detected(let core): choice = "chosen by losad from the CPU features (\(core))"
        case .library: choice = "chosen by OpenBLAS"
        }
        let report = Report(
            version: Losad.version,
            cpu: "\(cpu.modelName) (\(cpu.vendor) family \(cpu.family) model \(cpu.model))",
            cpuFeatures: cpu.notableFlags,
            openblasLibrary: blas.libraryName,
            openblasCore: blas.coreName,
            openblasCoreChoice: choice,
            openblasThreads: blas.threadCount,
            openblasConfig: blas.configuration,
            workerThreads: WorkerPool.shared.threadCount,
            systemdBooted: sd_booted() > 0
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("""
            losad \(report.version)
            cpu:              \(report.cpu)
            cpu features:     \(report.cpuFeatures.joined(separator: " "))
            openblas:         \(report.openblasConfig) (\(report.openblasLibrary))
            openblas kernel:  \(report.openblasCore), \(report.openblasCoreChoice)
            openblas threads: \(report.openblasThreads)
            worker threads:   \(report.workerThreads)
            systemd booted:   \(report.systemdBooted ? "yes" : "no")
            """)
        }
    }
}
