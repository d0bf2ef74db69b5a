import ArgumentParser
import Control
import Daemon
import Foundation
import Logging

/// `losad run`: the daemon in the foreground (what losad.service starts).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon in the foreground: watch the inbox, compress what arrives, record it in the ledger.",
        discussion: """
            SIGHUP re-reads the configuration (an invalid file is refused and the running one stays); \
            SIGTERM or SIGINT stops: running jobs are checkpointed and resume at the next start. \
            Under systemd (Type=notify) it reports READY, STATUS, WATCHDOG, RELOADING and STOPPING.
            """
    )

    static let installedConfig = "/etc/losad/losad.toml"

    /// What `org.varlink.service.GetInfo` answers (no public home page yet, so no url).
    static let serviceInfo = VarlinkServiceInfo(vendor: "losa", product: "losad", version: Losad.version, url: "")

    @Option(name: .long, help: ArgumentHelp("The configuration file.", discussion: "Default: \(installedConfig), or Config/losad.toml when run from the repository.", valueName: "path"))
    var config: String?

    func run() throws {
        let path = try config.map(RunCommand.absolute) ?? RunCommand.defaultConfigPath()
        // A broken file is reported by the service below with its exit status; here only its priority is wanted.
        if let priority = try? DaemonConfig.load(path: path).scheduler.priority { ComputeThreads.prepare(priority: priority) }
        // OpenBLAS is loaded by now (prepare above), so Status reads its kernel without loading it on a server thread.
        let control = VarlinkControlEndpoint(info: RunCommand.serviceInfo, compute: ComputeDescription.current,
                                             logger: Logger(label: "losad.control"))
        let service = DaemonService(options: DaemonService.Options(configPath: path, version: Losad.version),
                                    runner: CompressionJobRunner(version: Losad.version), control: control, logger: Logger(label: "losad"))
        do {
            try service.run()
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("losad: \(error)\n".utf8))
            throw ExitCode(78)   // EX_CONFIG: systemd's RestartPreventExitStatus= can keep a broken file from looping
        } catch {
            FileHandle.standardError.write(Data("losad: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// The installed file if there is one, else the repository's default when run from the repository.
    static func defaultConfigPath(currentDirectory: String = FileManager.default.currentDirectoryPath) throws -> String {
        if FileManager.default.fileExists(atPath: installedConfig) { return installedConfig }
        let repository = currentDirectory + "/Config/losad.toml"
        if FileManager.default.fileExists(atPath: repository), FileManager.default.fileExists(atPath: currentDirectory + "/Package.swift") {
            return repository
        }
        throw ValidationError("no configuration: \(installedConfig) does not exist and this is not the losad repository; pass --config PATH")
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
