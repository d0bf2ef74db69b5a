import ArgumentParser
import Compression
import Foundation

/// `losad report PATH`: the summary table of a finished job from its report.json (or the folder holding it).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print the summary table of a compression job's report.json.",
        discussion: "PATH is a report.json or the folder that holds it (a job's folder in the outbox). Exits 1 with a sentence when it cannot be read."
    )

    @Argument(help: "A report.json, or the folder holding it.")
    var path: String

    @Flag(name: .long, help: "Print the per-iteration, per-layer figures too.")
    var layers = false

    func run() throws {
        var isFolder: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
            ? (path as NSString).appendingPathComponent("report.json") : path
        let report: CompressionReport
        do {
            report = try JSONDecoder().decode(CompressionReport.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            FileHandle.standardError.write(Data("losad report: cannot read \(file): \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(report.summaryTable)
        if layers { print(report.layerTable) }
    }
}
