import Control
import Foundation

/// How losactl writes durations, fractions, times and jobs for people.
enum Formatting {
    /// `42s`, `3m05s`, `2h07m`, `3d04h`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded())
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m" + pad(total % 60) + "s" }
        if total < 86_400 { return "\(total / 3600)h" + pad(total % 3600 / 60) + "m" }
        return "\(total / 86_400)d" + pad(total % 86_400 / 3600) + "h"
    }

    private static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// `42%`.
    static func percent(_ fraction: Double) -> String {
        "\(Int((min(max(fraction, 0), 1) * 100).rounded(.down)))%"
    }

    /// An RFC 3339 time as local `yyyy-MM-dd HH:mm`, or as it came when it does not parse.
    static func time(_ text: String?) -> String {
        guard let text else { return "-" }
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime]
        var date = parser.date(from: text)
        if date == nil {
            parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            date = parser.date(from: text)
        }
        guard let date else { return text }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.string(from: date)
    }

    /// `0.5 wanda unstructured, rmi, losa, quick`.
    static func settings(_ settings: JobSettings) -> String {
        "\(number(settings.sparsity)) \(settings.method) \(settings.pattern), \(settings.allocation), "
            + "\(settings.recovery), \(settings.profile)"
    }

    /// Where a job is: its stage, iteration and step, or its state.
    static func progress(_ job: Job) -> String {
        guard let progress = job.progress else { return "-" }
        var parts = [progress.stage]
        if let iteration = progress.iteration, let iterations = progress.iterations { parts.append("it \(iteration)/\(iterations)") }
        if let step = progress.step, let steps = progress.steps { parts.append("step \(step)/\(steps)") }
        parts.append(percent(progress.fraction))
        if let eta = progress.etaSeconds { parts.append("ETA \(duration(eta))") }
        return parts.joined(separator: " ")
    }

    /// A number in its shortest form, at most 4 significant decimals.
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e12 { return String(Int64(value)) }
        return String(format: "%.4g", value)
    }

    /// `1.3 GiB`.
    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count), unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f", value) + " " + units[unit]
    }

    /// `134,515,008`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return value < 0 ? "-" + result : result
    }
}
