#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// systemd/ and scripts/install.sh: the installed units pass `systemd-analyze verify`, score SAFE
/// in `systemd-analyze security`, carry the install's paths, and `make uninstall` leaves the
/// administrator's configuration. Needs systemd-analyze, not root and not a running systemd.
@Suite struct SystemdUnitTests {
    static let repository = DaemonJobTests.repository
    static let binaries = CommandTests.executable.deletingLastPathComponent().path

    static var systemdAnalyzeMissing: Bool {
        !FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")
    }

    /// Runs a command, standard error joined to standard output, with `environment` added to this
    /// process's and the variables in `removing` taken out.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    removing: [String] = []) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { !removing.contains($0.key) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    static func temporaryFolder(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("systemd-analyze verify reports nothing for the installed units, and the service's exposure is at most 1.0 (SAFE)",
          .enabled(if: !systemdAnalyzeMissing || ConfinementTests.underCI, "systemd-analyze is not installed"))
    func unitsVerifyAndScoreSafe() throws {
        try #require(!Self.systemdAnalyzeMissing, "CI=true, and systemd-analyze (package systemd) is not installed")
        let result = try Self.run("/bin/bash", [Self.repository.path + "/scripts/check-systemd.sh", Self.binaries])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("== systemd-analyze verify losad.service losad.socket\nnothing reported\n"), "\(result.output)")
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level for losad.service") })
        let exposure = try #require(line.split(separator: " ").compactMap { Double($0) }.first, "\(line)")
        #expect(exposure <= 1.0 && line.contains("SAFE"), "\(line)")
    }

    @Test("check-systemd.sh fails on a unit systemd-analyze objects to",
          .enabled(if: !systemdAnalyzeMissing || ConfinementTests.underCI, "systemd-analyze is not installed"))
    func theCheckCanFail() throws {
        try #require(!Self.systemdAnalyzeMissing, "CI=true, and systemd-analyze (package systemd) is not installed")
        // Binaries that exist but name nothing the unit can start: only losactl, no losad.
        let folder = try Self.temporaryFolder("losad-check-fail")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createSymbolicLink(atPath: folder + "/losactl", withDestinationPath: Self.binaries + "/losactl")
        try "#!/bin/sh\nexit 0\n".write(toFile: folder + "/losad", atomically: true, encoding: .utf8)
        chmod(folder + "/losad", 0o755)
        let result = try Self.run("/bin/bash", [Self.repository.path + "/scripts/check-systemd.sh", folder, "0.1"])
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("FAILED: exposure") && result.output.contains("is above 0.1"), "\(result.output)")
    }

    @Test("install with PREFIX=/usr and DESTDIR: the unit starts /usr/bin/losad, an existing configuration is kept (the new default beside it), uninstall leaves only the configuration")
    func installAndUninstallHonourPrefixDestdirAndTheConfiguration() throws {
        let destination = try Self.temporaryFolder("losad-install")
        defer { try? FileManager.default.removeItem(atPath: destination) }
        // Only PREFIX: every folder follows it (a layout variable set around the test would not).
        var environment = ["DESTDIR": destination, "PREFIX": "/usr", "BUILT": Self.binaries]
        for name in ["BINDIR", "DATADIR", "SYSCONFDIR", "UNITDIR", "SYSUSERSDIR", "TMPFILESDIR", "BASHCOMPLETIONDIR",
                     "ZSHCOMPLETIONDIR", "FISHCOMPLETIONDIR", "VARLINKDIR", "DOCDIR"] { environment[name] = "" }
        let script = Self.repository.path + "/scripts/install.sh"

        let first = try Self.run("/bin/bash", [script, "install"], environment: environment)
        #expect(first.status == 0, "\(first.output)")
        let unit = try String(contentsOfFile: destination + "/usr/lib/systemd/system/losad.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/bin/losad run --config /etc/losad/losad.toml\n"), "\(unit)")
        #expect(unit.contains("\nExecReload=/usr/bin/losactl reload\n"))
        #expect(!unit.contains("/usr/local/"))
        let expected = ["/usr/bin/losad", "/usr/bin/losactl", "/usr/lib/systemd/system/losad.socket",
                        "/usr/lib/sysusers.d/losad.conf", "/usr/lib/tmpfiles.d/losad.conf",
                        "/usr/share/varlink/io.losa.Manager.varlink", "/usr/share/bash-completion/completions/losactl",
                        "/usr/share/zsh/site-functions/_losad", "/usr/share/fish/vendor_completions.d/losactl.fish",
                        "/etc/losad/losad.toml"]
        for path in expected { #expect(FileManager.default.fileExists(atPath: destination + path), "\(path)") }
        #expect(FileManager.default.isExecutableFile(atPath: destination + "/usr/bin/losad"))
        let bash = try String(contentsOfFile: destination + "/usr/share/bash-completion/completions/losactl", encoding: .utf8)
        #expect(bash.contains("complete") && bash.contains("losactl") && bash.contains("watch"), "a real completion script")
        let varlink = try String(contentsOfFile: destination + "/usr/share/varlink/io.losa.Manager.varlink", encoding: .utf8)
        #expect(varlink.contains("interface io.losa.Manager"))

        // The administrator changed the configuration; a second install keeps it.
        let config = destination + "/etc/losad/losad.toml"
        try "[scheduler]\nrunning_jobs = 2\n".write(toFile: config, atomically: true, encoding: .utf8)
        let second = try Self.run("/bin/bash", [script, "install"], environment: environment)
        #expect(second.status == 0, "\(second.output)")
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "[scheduler]\nrunning_jobs = 2\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: config + ".new"))
                == Data(contentsOf: Self.repository.appendingPathComponent("Config/losad.toml")))

        environment["BUILT"] = nil   // `make uninstall` knows no build folder
        let removed = try Self.run("/bin/bash", [script, "uninstall"], environment: environment, removing: ["BUILT"])
        #expect(removed.status == 0, "\(removed.output)")
        var left: [String] = []
        let walker = FileManager.default.enumerator(atPath: destination)
        while let path = walker?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: destination + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                left.append("/" + path)
            }
        }
        #expect(left.sorted() == ["/etc/losad/losad.toml", "/etc/losad/losad.toml.new"], "\(left)")
    }
}
