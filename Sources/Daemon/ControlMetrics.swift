import Control
import Foundation
import Ledger

/// The daemon's counters and gauges in the Prometheus data model (`Metrics`, `losactl metrics`):
/// the daemon's own (`losad_*`) and each recent job's figures (`losad_job_*`, labelled by job and model).
enum ControlMetrics {
    /// What the daemon knows now, besides the jobs' recorded figures.
    struct Live {
        var status: DaemonStatus
        /// Control connections open now.
        var connections: Int
        /// `Watch` streams subscribed to the scheduler's updates now.
        var watchStreams: Int
    }

    static func families(_ live: Live, jobs: [JobMetrics]) -> [Metric] {
        let status = live.status
        var metrics: [Metric] = [
            Metric(name: "losad_info", kind: .gauge, help: "The running daemon's version (always 1).",
                   samples: [MetricSample(labels: ["version": status.version], value: 1)]),
            Metric(name: "losad_uptime_seconds", kind: .gauge, help: "Seconds since the daemon started.",
                   samples: [MetricSample(value: status.uptimeSeconds)]),
            Metric(name: "losad_jobs", kind: .gauge, help: "Jobs in the ledger by state.",
                   samples: JobRecord.State.allCases.map {
                       MetricSample(labels: ["state": $0.rawValue], value: Double(status.jobCounts[$0] ?? 0))
                   }),
            Metric(name: "losad_queue_paused", kind: .gauge, help: "1 while the queue is paused (no job starts).",
                   samples: [MetricSample(value: status.paused ? 1 : 0)]),
            Metric(name: "losad_running_jobs_limit", kind: .gauge, help: "Jobs that may run at the same time.",
                   samples: [MetricSample(value: Double(status.runningJobsLimit))]),
            Metric(name: "losad_job_progress_ratio", kind: .gauge, help: "Fraction done of each running job.",
                   samples: status.running.map { listing in
                       MetricSample(labels: ["job": "\(listing.job.id ?? 0)", "model": listing.modelName,
                                             "stage": listing.progress?.stage.rawValue ?? listing.job.stage ?? "starting"],
                                    value: ControlReplies.fraction(listing.progress?.fraction ?? listing.job.progress))
                   }),
            Metric(name: "losad_control_connections", kind: .gauge, help: "Connections open on the control socket.",
                   samples: [MetricSample(value: Double(live.connections))]),
            Metric(name: "losad_watch_streams", kind: .gauge, help: "Watch streams following jobs.",
                   samples: [MetricSample(value: Double(live.watchStreams))]),
        ]
        if let available = status.memory.machineAvailable {
            metrics.append(Metric(name: "losad_memory_available_bytes", kind: .gauge,
                                  help: "Memory the machine has available (MemAvailable).",
                                  samples: [MetricSample(value: Double(available))]))
        }
        metrics += jobFamilies(jobs)
        return metrics
    }

    /// One family per figure name, one sample per job: `perplexity.<kind>.<text>` becomes
    /// `losad_job_perplexity{kind,text}`; any other name becomes `losad_job_<name>` with its unit
    /// as the suffix Prometheus's conventions ask for (a fraction is a `_ratio`).
    static func jobFamilies(_ jobs: [JobMetrics]) -> [Metric] {
        var families: [String: (help: String, samples: [MetricSample])] = [:]
        for job in jobs {
            let labels = ["job": "\(job.jobID)", "model": job.modelName]
            for figure in job.metrics where figure.value.isFinite {
                let name: String
                var sampleLabels = labels
                let help: String
                if let (kind, text) = ControlReplies.perplexityName(figure.name) {
                    name = "losad_job_perplexity"
                    sampleLabels["kind"] = kind
                    sampleLabels["text"] = text
                    help = "Perplexity of the job's model on an evaluation text: dense, pruned only, and final."
                } else {
                    name = familyName(figure.name, unit: figure.unit)
                    help = "The job's \(figure.name)" + (figure.unit.isEmpty ? "." : " (\(figure.unit)).")
                }
                families[name, default: (help, [])].samples.append(MetricSample(labels: sampleLabels, value: figure.value))
            }
        }
        return families.sorted { $0.key < $1.key }.map { Metric(name: $0.key, kind: .gauge, help: $0.value.help, samples: $0.value.samples) }
    }

    /// "memory.peak" in bytes → "losad_job_memory_peak_bytes"; "sparsity" as a fraction → "losad_job_sparsity_ratio".
    static func familyName(_ name: String, unit: String) -> String {
        var base = "losad_job_" + sanitized(name)
        let suffix: String
        switch unit {
        case "": suffix = ""
        case "fraction": suffix = "ratio"
        default: suffix = sanitized(unit)
        }
        if !suffix.isEmpty && !base.hasSuffix("_" + suffix) { base += "_" + suffix }
        return base
    }

    /// Letters, digits and underscores only (Prometheus metric names), lowercased.
    static func sanitized(_ text: String) -> String {
        String(text.lowercased().unicodeScalars.map { scalar -> Character in
            ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) ? Character(scalar) : "_"
        })
    }
}
