import Compression
import Foundation
import Testing
@testable import Daemon

@Suite("DaemonConfig")
struct DaemonConfigTests {
    static let file = "/etc/losad/losad.toml"

    func parse(_ text: String) throws -> DaemonConfig {
        try DaemonConfig.parse(text, file: Self.file, baseDirectory: "/etc/losad")
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test("the shipped Config/losad.toml holds exactly the defaults and documents every key")
    func shippedDefault() throws {
        let path = Self.repositoryRoot.appendingPathComponent("Config/losad.toml").path
        #expect(try DaemonConfig.load(path: path) == DaemonConfig.defaults)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        for (section, keys) in DaemonConfig.knownKeys {
            #expect(lines.contains { $0 == "[\(section)]" }, "section [\(section)] missing")
            for key in keys {
                let index = try #require(lines.firstIndex { $0.hasPrefix("\(key) = ") }, "key \(section).\(key) missing")
                #expect(index > 0 && lines[index - 1].hasPrefix("#"), "key \(section).\(key) has no comment above it")
            }
        }
    }

    @Test("budget keys override the profile's; 0 keeps it; out of range names the key")
    func budgets() throws {
        let config = try parse("[job]\niterations = 3\ncalibration_windows = 8\ntraining_samples = 0\nevaluation_windows = 2\n")
        #expect(config.job.budget == JobSettings.Budget(iterations: 3, calibrationWindows: 8, trainingSamples: nil, evaluationWindows: 2))
        #expect(DaemonConfig.defaults.job.budget == nil)
        #expect(throws: ConfigError.self) { try parse("[job]\niterations = 12\n") }
        do {
            _ = try parse("[job]\ntraining_samples = -1\n")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("job.training_samples"))
        }
    }

    @Test("an empty file gives the defaults")
    func emptyFile() throws {
        #expect(try parse("") == DaemonConfig.defaults)
    }

    @Test("every key is read into its field")
    func everyKey() throws {
        let corpus = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-\(UUID().uuidString).txt")
        try "some text".write(to: corpus, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: corpus) }
        let config = try parse("""
            [folders]
            inbox = "in"
            outbox = "../out"
            state = "/var/lib/x/./state/"
            [job]
            sparsity = 0.5
            method = "sparsegpt"
            pattern = "2:4"
            allocation = "uniform"
            recovery = "lora"
            profile = "quick"
            calibration_corpus = "\(corpus.path)"
            evaluation_corpus = ""
            export_type = "q4_0"
            outputs = ["gguf"]
            [scheduler]
            running_jobs = 2
            threads = 3
            memory_limit = "6G"
            priority = "batch"
            [watch]
            settle_seconds = 2
            rescan_seconds = 0.5e1
            [control]
            socket = "run/losad.sock"
            socket_mode = 0o640
            socket_group = ""
            [service]
            stop_timeout_seconds = 30
            """)
        #expect(config.folders == .init(inbox: "/etc/losad/in", outbox: "/etc/out", state: "/var/lib/x/state"))
        let job = config.job
        #expect(job.sparsity == 0.5 && job.method == .sparseGPT && job.pattern == .nOfM(keep: 2, groupSize: 4))
        #expect(job.allocation == .uniform && job.recovery == .lora && job.profile == .quick)
        #expect(job.calibrationCorpus == corpus.path && job.evaluationCorpus == nil && job.exportType == .q4_0)
        #expect(job.outputs == [.gguf] && job.budget == nil)
        #expect(config.scheduler == .init(runningJobs: 2, threads: 3, memoryLimit: .bytes(6 << 30), priority: .batch))
        #expect(config.watch == .init(settleSeconds: 2, rescanSeconds: 5))
        #expect(config.control == .init(socketPath: "/etc/losad/run/losad.sock", socketMode: 0o640, socketGroup: nil))
        #expect(config.service == .init(stopTimeoutSeconds: 30))
        #expect(config.keysNeedingRestart(comparedTo: .defaults) == ["folders.state", "control.socket", "control.socket_mode", "control.socket_group"])
        #expect(DaemonConfig.defaults.keysNeedingRestart(comparedTo: .defaults).isEmpty)
    }

    @Test("memory limits take auto, binary units and plain bytes", arguments: [
        ("\"auto\"", DaemonConfig.MemoryLimit.automatic), ("\"6G\"", .bytes(6 << 30)), ("\"6GiB\"", .bytes(6 << 30)),
        ("\"512M\"", .bytes(512 << 20)), ("\"1.5T\"", .bytes(3 << 39)), ("1073741824", .bytes(1 << 30)),
    ])
    func memoryLimits(text: String, expected: DaemonConfig.MemoryLimit) throws {
        #expect(try parse("[scheduler]\nmemory_limit = \(text)").scheduler.memoryLimit == expected)
    }

    @Test("socket modes take a TOML octal integer or an octal string")
    func socketModes() throws {
        #expect(try parse("[control]\nsocket_mode = 0o600").control.socketMode == 0o600)
        #expect(try parse("[control]\nsocket_mode = \"0666\"").control.socketMode == 0o666)
        #expect(try parse("[control]\nsocket_group = \"1001\"").control.socketGroup == "1001")
    }

    static let f = file
    /// Each bad file with the exact error it must produce.
    @Test("each kind of mistake is refused with the key, the value and what is allowed", arguments: [
        ("[watch]\nsetle_seconds = 3",
         ConfigError.unknownKey(file: f, key: "watch.setle_seconds", suggestion: "watch.settle_seconds")),
        ("[sheduler]\nthreads = 1", .unknownKey(file: f, key: "sheduler", suggestion: "scheduler")),
        ("inbox = \"/in\"", .unknownKey(file: f, key: "inbox", suggestion: "folders.inbox (under [folders])")),
        ("[job]\nthreads = 2", .unknownKey(file: f, key: "job.threads", suggestion: "scheduler.threads (under [scheduler])")),
        ("[job]\ncolour = \"blue\"", .unknownKey(file: f, key: "job.colour", suggestion: nil)),
        ("folders = \"/x\"", .wrongType(file: f, key: "folders", value: "\"/x\"", expected: "a section ([folders] with keys inbox, outbox, state)")),
        ("[scheduler]\nrunning_jobs = \"two\"",
         .wrongType(file: f, key: "scheduler.running_jobs", value: "\"two\"", expected: "an integer (a whole number of jobs from 1 to 64)")),
        ("[scheduler]\nrunning_jobs = 0",
         .invalidValue(file: f, key: "scheduler.running_jobs", value: "0", allowed: "a whole number of jobs from 1 to 64")),
        ("[scheduler]\nthreads = 1.5",
         .wrongType(file: f, key: "scheduler.threads", value: "1.5", expected: "an integer (0 (one per usable CPU) or a whole number of threads up to 1024)")),
        ("[scheduler]\npriority = \"low\"",
         .invalidValue(file: f, key: "scheduler.priority", value: "\"low\"", allowed: "one of \"idle\", \"batch\", \"normal\"")),
        ("[scheduler]\npriority = 19", .wrongType(file: f, key: "scheduler.priority", value: "19", expected: "one of \"idle\", \"batch\", \"normal\"")),
        ("[job]\nsparsity = 1.2", .invalidValue(file: f, key: "job.sparsity", value: "1.2", allowed: "a fraction of weights to zero, from 0.01 to 0.95")),
        ("[job]\nsparsity = \"half\"",
         .invalidValue(file: f, key: "job.sparsity", value: "\"half\"", allowed: "a fraction of weights to zero, from 0.01 to 0.95")),
        ("[job]\nsparsity = nan", .invalidValue(file: f, key: "job.sparsity", value: "nan", allowed: "a fraction of weights to zero, from 0.01 to 0.95")),
        ("[job]\nmethod = \"Wanda\"",
         .invalidValue(file: f, key: "job.method", value: "\"Wanda\"", allowed: "one of \"magnitude\", \"wanda\", \"sparsegpt\"")),
        ("[job]\npattern = \"2-4\"",
         .invalidValue(file: f, key: "job.pattern", value: "\"2-4\"", allowed: JobSettingKey.pattern.allowed)),
        ("[job]\nexport_type = \"q5_k\"",
         .invalidValue(file: f, key: "job.export_type", value: "\"q5_k\"", allowed: "one of \"auto\", \"q8_0\", \"q4_0\", \"f16\", \"bf16\", \"f32\"")),
        ("[job]\noutputs = [\"gguf\", \"onnx\"]",
         .invalidValue(file: f, key: "job.outputs", value: "[\"gguf\", \"onnx\"]", allowed: "a list of one or more of \"gguf\", \"sparse\"")),
        ("[job]\noutputs = []", .invalidValue(file: f, key: "job.outputs", value: "[]", allowed: "a list of one or more of \"gguf\", \"sparse\"")),
        ("[job]\nsparsity = 0.7\npattern = \"4:8\"",
         .invalidValue(file: f, key: "job.sparsity", value: "0.7", allowed: "0.5, the sparsity pattern \"4:8\" makes")),
        ("[job]\ncalibration_corpus = \"/no/such/corpus.txt\"",
         .invalidValue(file: f, key: "job.calibration_corpus", value: "\"/no/such/corpus.txt\"",
                       allowed: "the absolute path of a readable text file, or \"\" for the built-in text")),
        ("[job]\nevaluation_corpus = \"/tmp\"",
         .invalidValue(file: f, key: "job.evaluation_corpus", value: "\"/tmp\"",
                       allowed: "the absolute path of a readable text file, or \"\" for the built-in text")),
        ("[watch]\nsettle_seconds = 0", .invalidValue(file: f, key: "watch.settle_seconds", value: "0", allowed: "seconds from 0.1 to 3600")),
        ("[service]\nstop_timeout_seconds = -5",
         .invalidValue(file: f, key: "service.stop_timeout_seconds", value: "-5", allowed: "seconds from 1 to 3600")),
        ("[folders]\ninbox = \"\"",
         .invalidValue(file: f, key: "folders.inbox", value: "\"\"", allowed: "a path (absolute, or relative to the configuration file's folder)")),
        ("[folders]\ninbox = 7", .wrongType(file: f, key: "folders.inbox", value: "7", expected: "a string")),
        ("[folders]\ninbox = \"/srv/in\"\noutbox = \"/srv/in/out\"",
         .invalidValue(file: f, key: "folders.outbox", value: "\"/srv/in/out\"",
                       allowed: "a folder outside folders.inbox (/srv/in), or what losad writes there would be taken for new models")),
        ("[folders]\ninbox = \"/srv/in\"\nstate = \"/srv/in\"",
         .invalidValue(file: f, key: "folders.state", value: "\"/srv/in\"",
                       allowed: "a folder outside folders.inbox (/srv/in), or what losad writes there would be taken for new models")),
        ("[scheduler]\nmemory_limit = \"10MB\"", .invalidValue(file: f, key: "scheduler.memory_limit", value: "\"10MB\"", allowed: memoryAllowed)),
        ("[scheduler]\nmemory_limit = \"32M\"", .invalidValue(file: f, key: "scheduler.memory_limit", value: "\"32M\"", allowed: memoryAllowed)),
        ("[scheduler]\nmemory_limit = true", .wrongType(file: f, key: "scheduler.memory_limit", value: "true", expected: memoryAllowed)),
        ("[control]\nsocket_mode = \"rw\"", .invalidValue(file: f, key: "control.socket_mode", value: "\"rw\"", allowed: modeAllowed)),
        ("[control]\nsocket_mode = 0o1777", .invalidValue(file: f, key: "control.socket_mode", value: "1023", allowed: modeAllowed)),
        ("[control]\nsocket_group = \"Bad Group\"",
         .invalidValue(file: f, key: "control.socket_group", value: "\"Bad Group\"",
                       allowed: "a group name (lowercase letters, digits, _ and -, starting with a letter or _, at most 32) or a numeric id, or \"\"")),
        ("[control]\nsocket = \"/run/\(String(repeating: "s", count: 110))\"",
         .invalidValue(file: f, key: "control.socket", value: "\"/run/\(String(repeating: "s", count: 110))\"",
                       allowed: "a socket path of at most 107 bytes (this one has 115)")),
    ])
    func mistakes(text: String, expected: ConfigError) throws {
        #expect(throws: expected) { try parse(text) }
    }

    static let memoryAllowed = "\"auto\", or a size of at least 64M such as \"512M\", \"6G\" or \"6GiB\" (K, M, G, T are powers of 1024), or bytes as an integer"
    static let modeAllowed = "permission bits from 0 to 0777, written 0o660 or \"0660\""

    @Test("a TOML syntax error names the line")
    func syntaxError() throws {
        let error = #expect(throws: ConfigError.self) { try parse("[job]\nsparsity = 0.5\nmethod = wanda\n") }
        guard case let .syntax(file, line, _, _) = error else { Issue.record("not a syntax error: \(String(describing: error))"); return }
        #expect(file == Self.file && line == 3)
        #expect("\(error!)".hasPrefix("/etc/losad/losad.toml:3:"))
    }

    @Test("a missing file is reported as unreadable with its path")
    func missingFile() throws {
        let error = #expect(throws: ConfigError.self) { try DaemonConfig.load(path: "/no/such/losad.toml") }
        guard case .unreadable(let file, _) = error else { Issue.record("not unreadable: \(String(describing: error))"); return }
        #expect(file == "/no/such/losad.toml")
    }

    @Test("error sentences read as the operator needs them")
    func sentences() {
        #expect(ConfigError.unknownKey(file: "a.toml", key: "watch.setle", suggestion: "watch.settle_seconds").description
                == "a.toml: unknown key watch.setle; did you mean watch.settle_seconds?")
        #expect(ConfigError.invalidValue(file: "a.toml", key: "scheduler.priority", value: "\"low\"", allowed: "one of \"idle\"").description
                == "a.toml: scheduler.priority = \"low\" is not allowed; expected one of \"idle\"")
        #expect(DaemonConfig.editDistance("kitten", "sitting") == 3)
        #expect(DaemonConfig.editDistance("", "abc") == 3)
    }
}
