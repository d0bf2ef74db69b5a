import Ledger

// Ledger and Control (the varlink interface) both name a `JobState` and a `JobEvent`. A file that
// imports both cannot spell the ledger's as `Ledger.JobState` (the class `Ledger` hides the
// module's name), so the control service uses these names for the ledger's types.

/// The ledger's job state (`Ledger.JobState`), which has `refused` besides the interface's five.
typealias LedgerJobState = JobState

/// A line of a job's history as the ledger keeps it.
typealias LedgerJobEvent = JobEvent
