import Daemon

// ============================================================================================
// THE PLACE WHERE THE COMPRESSION ENGINE PLUGS INTO THE DAEMON.
//
// `losad run` hands every job to this adapter. It is to map `JobSpec` (input, settings, output
// and checkpoint folders, threads) onto `CompressionJob`, forward its progress to
// `context.report`, its checkpoints to `context.checkpointWritten`, its per-layer rows to
// `context.record(layerStatistics:)`, pass `context.shouldStop` as its stop check, and return
// the written model, report.json and figures as a `JobOutcome`; `estimateMemory` is to size the
// job's peak from its profile's shapes with `MemoryEstimate.Inputs`.
//
// Until `CompressionJob` exists, this build has no engine: every job fails with the sentence
// below (recorded in the ledger), and the rest of the daemon works as it will.
// ============================================================================================

/// The daemon's job runner: the adapter between `JobRunner` and the compression engine.
struct CompressionRunner: JobRunner {
    struct NotWired: Error, CustomStringConvertible {
        var description: String {
            "this build of losad has no compression engine wired into the daemon (Sources/losad/CompressionRunner.swift)"
        }
    }

    func estimateMemory(_ job: JobSpec) throws -> MemoryEstimate { throw NotWired() }

    func run(_ job: JobSpec, context: JobContext) throws -> JobOutcome { throw NotWired() }
}
