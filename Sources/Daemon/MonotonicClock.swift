#if canImport(Glibc)
import Glibc
#endif

/// The daemon's clock for intervals (settle times, progress throttling, stop budgets): CLOCK_MONOTONIC,
/// which a change of the wall clock does not move.
public enum MonotonicClock {
    /// Seconds since an arbitrary fixed point (the boot).
    public static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
    }
}
