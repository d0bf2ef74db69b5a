import Foundation

/// The daemon's metrics in the Prometheus data model, and their text
/// exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).

public enum MetricKind: String, Codable, Sendable, CaseIterable {
    case counter, gauge
}

/// One value of a metric, told apart from its siblings by its labels.
public struct MetricSample: Codable, Sendable, Equatable {
    public var labels: [String: String]
    public var value: Double

    public init(labels: [String: String] = [:], value: Double) {
        self.labels = labels
        self.value = value
    }
}

/// A metric family, named like `losad_jobs_total`.
public struct Metric: Codable, Sendable, Equatable {
    public var name: String
    public var kind: MetricKind
    public var help: String
    public var samples: [MetricSample]

    public init(name: String, kind: MetricKind, help: String, samples: [MetricSample]) {
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = samples
    }

    /// `metrics` in the Prometheus text format, version 0.0.4: a HELP and a
    /// TYPE line per family, then one line per sample with its labels sorted.
    public static func prometheusText(_ metrics: [Metric]) -> String {
        var text = ""
        for metric in metrics {
            text += "# HELP \(metric.name) \(escapeHelp(metric.help))\n"
            text += "# TYPE \(metric.name) \(metric.kind.rawValue)\n"
            for sample in metric.samples {
                text += metric.name
                if !sample.labels.isEmpty {
                    let labels = sample.labels.sorted { $0.key < $1.key }
                        .map { "\($0.key)=\"\(escapeLabelValue($0.value))\"" }
                    text += "{" + labels.joined(separator: ",") + "}"
                }
                text += " \(formatValue(sample.value))\n"
            }
        }
        return text
    }

    /// Integral values without a fraction, others in Swift's shortest round-trip form.
    static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeLabelValue(_ text: String) -> String {
        escapeHelp(text).replacingOccurrences(of: "\"", with: "\\\"")
    }
}
