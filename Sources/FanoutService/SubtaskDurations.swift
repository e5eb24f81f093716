import Synchronization

/// One kind's series of `fanout_subtask_duration_seconds`: a Prometheus histogram recorded with
/// two relaxed atomic adds (the value's bucket, and the sum in microseconds). swift-prometheus's
/// `Histogram.record` takes a lock and adds to every bucket at or above the value (13 here), about
/// 250 instructions, paid by the dispatch loop for every line of every job; it has no batch API.
/// Printed as the registry prints a histogram (``emit(_:into:)``), so the exposition is unchanged.
final class SubtaskDurations: Sendable {
    static let name = "fanout_subtask_duration_seconds"
    static let help = "Time from a subtask's start to its end (subtasks that never started are not in it)."

    let kind: String
    /// Upper bounds in seconds, ascending (`le`).
    let bounds: [Double]
    /// Per bucket, not cumulative: bucket `i` counts values above `bounds[i - 1]` and at most
    /// `bounds[i]`; the last one, values above every bound. Their total is the count.
    private let buckets: [Cell]
    private let microseconds = Atomic<Int>(0)

    /// An atomic counter of its own (an `Atomic` cannot be an array's element).
    private final class Cell: Sendable {
        let value = Atomic<Int>(0)
    }

    init(kind: String, bounds: [Double]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bucket bounds ascend")
        self.kind = kind
        self.bounds = bounds
        buckets = (0...bounds.count).map { _ in Cell() }
    }

    /// Longest duration added to the sum as it is (a year): past it, or for a value that is not a
    /// number, `Int(_:)` would trap. Durations come from a monotonic clock, so this is a guard only.
    static let longestSeconds = 31_536_000.0

    /// `seconds`: a subtask's duration (to the microsecond). Negative or NaN counts as 0, longer
    /// than ``longestSeconds`` (infinity included) as that.
    func record(seconds: Double) {
        let seconds = seconds >= 0 ? min(seconds, Self.longestSeconds) : 0
        var index = 0
        while index < bounds.count, seconds > bounds[index] { index += 1 }
        buckets[index].value.wrappingAdd(1, ordering: .relaxed)
        microseconds.wrappingAdd(Int((seconds * 1e6).rounded()), ordering: .relaxed)
    }

    /// The family's `# HELP` and `# TYPE` lines, then each series: cumulative `le` buckets,
    /// `+Inf`, `_sum` and `_count`, as swift-prometheus writes them. A series read while subtasks
    /// end is consistent in itself: `+Inf` and `_count` are the total of the buckets as read.
    static func emit(_ series: [SubtaskDurations], into text: inout String) {
        guard !series.isEmpty else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for one in series {
            let labels = "kind=\"\(escapedLabelValue(one.kind))\""
            var cumulative = 0
            for (index, bound) in one.bounds.enumerated() {
                cumulative += one.buckets[index].value.load(ordering: .relaxed)
                text += "\(name)_bucket{\(labels),le=\"\(bound.description)\"} \(cumulative)\n"
            }
            cumulative += one.buckets[one.bounds.count].value.load(ordering: .relaxed)
            let sum = Double(one.microseconds.load(ordering: .relaxed)) / 1e6
            text += "\(name)_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
            text += "\(name)_sum{\(labels)} \(sum.description)\n"
            text += "\(name)_count{\(labels)} \(cumulative)\n"
        }
    }

    /// A label value escaped as the text format asks (backslash, double quote, line feed).
    static func escapedLabelValue(_ value: String) -> String {
        var escaped = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }
}
