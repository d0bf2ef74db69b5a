import Control
import Foundation

/// How losactl writes times and jobs for people (durations, sizes and fractions: `Quantities`).
enum Formatting {
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
    static func settings(_ settings: SubmittedSettings) -> String {
        "\(number(settings.sparsity)) \(settings.method) \(settings.pattern), \(settings.allocation), "
            + "\(settings.recovery), \(settings.profile)"
    }

    /// Where a job is: its stage, iteration and step, or its state.
    static func progress(_ job: Job) -> String {
        guard let progress = job.progress else { return "-" }
        var parts = [progress.stage]
        if let iteration = progress.iteration, let iterations = progress.iterations { parts.append("it \(iteration)/\(iterations)") }
        if let step = progress.step, let steps = progress.steps { parts.append("step \(step)/\(steps)") }
        parts.append(Quantities.percent(progress.fraction))
        if let eta = progress.etaSeconds { parts.append("ETA \(Quantities.duration(eta))") }
        return parts.joined(separator: " ")
    }

    /// A number in its shortest form, at most 4 significant decimals.
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e12 { return String(Int64(value)) }
        return String(format: "%.4g", value)
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
