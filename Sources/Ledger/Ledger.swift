import Foundation
import GRDB

/// The job ledger: one façade over `losad.sqlite` that owns the schema, runs its migrations when
/// it opens, and changes state only through methods that are each one transaction checking the
/// job's current state first (GRDB's AppDatabase pattern).
///
/// Readers (the control server, `losactl watch`) may use `reader` directly; every write goes
/// through a method here so the state machine cannot be bypassed.
public final class Ledger: Sendable {
    /// The file name the daemon uses inside its state folder.
    public static let fileName = "losad.sqlite"

    let writer: any DatabaseWriter
    let clock: @Sendable () -> Date

    /// Read access for queries and observation (e.g. GRDB `ValueObservation`).
    public var reader: any DatabaseReader { writer }

    /// Wraps an open database and migrates it to the current schema.
    /// - Parameter clock: the source of timestamps (injected by tests).
    public init(_ writer: any DatabaseWriter, clock: @escaping @Sendable () -> Date = Date.init) throws {
        self.writer = writer
        self.clock = clock
        try Ledger.migrator.migrate(writer)
    }

    /// Opens (creating if needed) the ledger file at `path` in WAL mode with foreign keys enforced.
    public static func open(path: String, clock: @escaping @Sendable () -> Date = Date.init) throws -> Ledger {
        do {
            // DatabasePool puts the file in WAL mode: readers never block the writer.
            return try Ledger(DatabasePool(path: path, configuration: configuration()), clock: clock)
        } catch let error as DatabaseError {
            throw LedgerError.cannotOpen(path: path, reason: error.message ?? error.description)
        }
    }

    /// A private in-memory ledger (tests, dry runs).
    public static func inMemory(clock: @escaping @Sendable () -> Date = Date.init) throws -> Ledger {
        try Ledger(DatabaseQueue(configuration: configuration()), clock: clock)
    }

    static func configuration() -> Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        // The daemon writes from one process; a reader (sqlite3 by hand) may hold a lock briefly.
        configuration.busyMode = .timeout(5)
        configuration.label = "losad.ledger"
        return configuration
    }

    /// Copies the write-ahead log into the database file and empties it (a clean stop calls it, so the
    /// state folder holds one complete file); a no-op for an in-memory ledger.
    public func checkpointWriteAheadLog() throws {
        guard writer is DatabasePool else { return }
        try writer.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    /// The journal mode SQLite reports ("wal" for a file ledger).
    public func journalMode() throws -> String {
        try writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// Names of the migrations applied to this database, oldest first.
    public func appliedMigrations() throws -> [String] {
        try writer.read { db in try Ledger.migrator.appliedMigrations(db) }
    }
}
