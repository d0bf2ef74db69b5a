import GRDB

// Migrations are history: once shipped, never edited — a schema change is a new named migration.
extension Ledger {
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-models-jobs-events-statistics-metrics") { db in
            try db.create(table: "models") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("content_hash", .text).notNull().unique()
                t.column("path", .text).notNull()
                t.column("format", .text).notNull().check { ["gguf", "huggingface"].contains($0) }
                t.column("size_bytes", .integer).notNull().check { $0 >= 0 }
                t.column("name", .text).notNull()
                t.column("config_summary", .text).notNull()
                t.column("first_seen", .datetime).notNull()
            }
            try db.create(table: "jobs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("model_id", .integer).notNull().indexed().references("models", onDelete: .restrict)
                t.column("input_path", .text).notNull()
                t.column("state", .text).notNull().indexed().check { JobRecord.State.allCases.map(\.rawValue).contains($0) }
                t.column("stage", .text)
                t.column("progress", .double).notNull().defaults(to: 0).check { $0 >= 0 && $0 <= 1 }
                t.column("iteration", .integer)
                t.column("step", .integer)
                t.column("settings", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("started_at", .datetime)
                t.column("finished_at", .datetime)
                t.column("error", .text)
                t.column("output_path", .text)
                t.column("checkpoint_path", .text)
                t.column("attempts", .integer).notNull().defaults(to: 0)
            }
            try db.create(table: "job_events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job_id", .integer).notNull().indexed().references("jobs", onDelete: .cascade)
                t.column("time", .datetime).notNull()
                t.column("kind", .text).notNull().check { JobEventRecord.Kind.allCases.map(\.rawValue).contains($0) }
                t.column("stage", .text)
                t.column("message", .text).notNull()
            }
            try db.create(table: "layer_statistics") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job_id", .integer).notNull().references("jobs", onDelete: .cascade)
                t.column("iteration", .integer).notNull()
                t.column("layer", .integer).notNull()
                t.column("sparsity", .double).notNull()
                t.column("rank", .integer).notNull()
                t.column("importance", .double).notNull()
                t.column("reconstruction_error", .double).notNull()
                t.uniqueKey(["job_id", "iteration", "layer"])
            }
            try db.create(table: "metrics") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job_id", .integer).notNull().references("jobs", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("value", .double).notNull()
                t.column("unit", .text).notNull()
                t.uniqueKey(["job_id", "name"])
            }
        }
        return migrator
    }()
}
