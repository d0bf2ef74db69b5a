/// Durations, byte counts and fractions as losad's tools write them for people: `losactl`'s tables, the
/// daemon's status line and log lines, `losad compress`'s progress. One place, so that every tool writes
/// "3m07s" and "2.8 GiB" the same way (here because the daemon and `losactl` both import this module).
public enum Quantities {
    /// "45s", "3m07s", "2h05m", "1d03h"; "?" for a negative or infinite time.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m" + twoDigits(total % 60) + "s" }
        if total < 86_400 { return "\(total / 3600)h" + twoDigits(total % 3600 / 60) + "m" }
        return "\(total / 86_400)d" + twoDigits(total % 86_400 / 3600) + "h"
    }

    /// "512 B", "1.5 KiB", "2.8 GiB" (powers of 1024, one decimal).
    public static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(count), unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        guard unit > 0 else { return "\(count) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(abs(tenths) % 10) \(units[unit])"
    }

    /// "41%": the fraction clamped to 0…1, rounded down.
    public static func percent(_ fraction: Double) -> String {
        guard fraction.isFinite else { return "0%" }
        return "\(Int((min(max(fraction, 0), 1) * 100).rounded(.down)))%"
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
