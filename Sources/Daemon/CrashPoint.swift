#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The steps of a job's success path, where a test may make the daemon die (`LOSAD_TEST_CRASH_AT`).
///
/// A test-only hook: with `LOSAD_TEST_CRASH_AT=<step>` in its environment the daemon kills itself with
/// SIGKILL when a job reaches that step, so a test can check what a crash there leaves in the ledger and
/// the outbox after a restart. Without the variable, `reach` does nothing.
public enum CrashPoint: String, Sendable, CaseIterable {
    /// The runner returned; its output is still hidden in the outbox.
    case beforePublishing = "before-publishing"
    /// The output is in place under its final name; the ledger does not know yet.
    case afterPublishing = "after-publishing"
    /// The ledger recorded the success; the job's state folder is still there.
    case afterRecording = "after-recording"

    /// The step named by the environment, read once.
    static let armed: CrashPoint? = ProcessInfo.processInfo.environment["LOSAD_TEST_CRASH_AT"].flatMap(CrashPoint.init(rawValue:))

    /// Dies here if the environment asked for this step.
    static func reach(_ point: CrashPoint) {
        if armed == point { kill(getpid(), SIGKILL) }
    }
}
