#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization
import Testing
@testable import Daemon

@Suite("JournalLogHandler")
struct JournalLogHandlerTests {
    @Test("an entry carries MESSAGE, PRIORITY, code location and JOB_ID, MODEL, STAGE from metadata")
    func fields() {
        let recorded = Mutex<[[String]]>([])
        var logger = Logger(label: "losad.job") { label in
            JournalLogHandler(label: label, level: .debug, sink: { fields in recorded.withLock { $0.append(fields) } })
        }
        logger[metadataKey: "job_id"] = "7"
        logger[metadataKey: "model"] = "SmolLM2-135M"
        logger.warning("iteration 2 took 41 s\nsecond line", metadata: ["stage": "losa", "iteration": "2"], file: "Runner.swift", function: "run()", line: 12)
        logger.trace("not at this level")
        let entries = recorded.withLock { $0 }
        #expect(entries.count == 1)
        #expect(entries.first == [
            "MESSAGE=iteration 2 took 41 s\nsecond line",
            "PRIORITY=4",
            "SYSLOG_IDENTIFIER=losad",
            "LOGGER=losad.job",
            "CODE_FILE=Runner.swift",
            "CODE_LINE=12",
            "CODE_FUNC=run()",
            "ITERATION=2",
            "JOB_ID=7",
            "MODEL=SmolLM2-135M",
            "STAGE=losa",
        ])
    }

    @Test("levels map to syslog priorities and metadata keys to valid field names")
    func names() {
        #expect([Logger.Level.trace, .debug, .info, .notice, .warning, .error, .critical].map(JournalLogHandler.priority)
                == [7, 7, 6, 5, 4, 3, 2])
        #expect(JournalLogHandler.fieldName("job-id") == "JOB_ID")
        #expect(JournalLogHandler.fieldName("_SYSTEMD_UNIT") == "SYSTEMD_UNIT")   // _ fields are journald's own
        #expect(JournalLogHandler.fieldName("9lives") == "LIVES")
        #expect(JournalLogHandler.fieldName("ümlaut") == "MLAUT")
        #expect(JournalLogHandler.fieldName("") == "FIELD")
        #expect(JournalLogHandler.fieldName(String(repeating: "a", count: 100)).count == 64)
        let fields = JournalLogHandler.fields(level: .info, message: "m", metadata: ["message": "spoof"], label: "l",
                                              file: "f", function: "g", line: 1)
        #expect(fields.first == "MESSAGE=m" && fields.last == "META_MESSAGE=spoof")
    }

    @Test("the journal is chosen only when JOURNAL_STREAM names standard error's device and inode")
    func journalStream() throws {
        var info = stat()
        #expect(fstat(2, &info) == 0)
        #expect(JournalLogHandler.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]))
        #expect(!JournalLogHandler.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino &+ 1)"]))
        #expect(!JournalLogHandler.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "garbage"]))
        #expect(!JournalLogHandler.standardErrorIsJournal(environment: [:]))
        #expect(JournalLogHandler.make(label: "x", level: .info, environment: [:]) is StreamLogHandler)
        #expect(JournalLogHandler.make(label: "x", level: .info,
                                       environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]) is JournalLogHandler)
    }

    @Test("sending to the journal works or falls back to standard error, without crashing")
    func send() {
        var fellBack: [String] = []
        let sent = JournalLogHandler.sendToJournal(["MESSAGE=losad test entry (JournalLogHandlerTests)", "PRIORITY=7",
                                                    "SYSLOG_IDENTIFIER=losad-test"], fallback: { fellBack.append($0) })
        // Taken by the journal, or (no journal here) written to the fallback instead: never both, never neither.
        #expect(fellBack == (sent ? [] : ["losad test entry (JournalLogHandlerTests)"]))
        // An entry libsystemd refuses (a field without "=") goes to the fallback.
        fellBack = []
        #expect(!JournalLogHandler.sendToJournal(["MESSAGE=refused entry", "NOT A FIELD"], fallback: { fellBack.append($0) }))
        #expect(fellBack == ["refused entry"])
    }
}
