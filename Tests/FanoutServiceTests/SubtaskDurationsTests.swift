import Prometheus
import Testing

@testable import FanoutService

/// `fanout_subtask_duration_seconds` is kept outside the registry (atomic adds instead of a lock
/// per value); scrapers must not see the difference.
@Suite("Subtask durations")
struct SubtaskDurationsTests {
    /// The exposition swift-prometheus writes for the same values in a `ValueHistogram` with the
    /// same name, help, labels and buckets: the lines, in the registry's order within each series.
    private static func reference(_ valuesByKind: [(String, [Double])]) -> String {
        let registry = PrometheusCollectorRegistry()
        for (kind, values) in valuesByKind {
            let histogram = registry.makeValueHistogram(
                descriptor: .named(SubtaskDurations.name, SubtaskDurations.help), labels: [("kind", kind)],
                buckets: ServiceMetrics.durationBuckets
            )
            for value in values { histogram.record(value) }
        }
        return registry.emitToString()
    }

    private static func emitted(_ valuesByKind: [(String, [Double])]) -> String {
        let series = valuesByKind.map { kind, values in
            let durations = SubtaskDurations(kind: kind, bounds: ServiceMetrics.durationBuckets)
            for value in values { durations.record(seconds: value) }
            return durations
        }
        var text = ""
        SubtaskDurations.emit(series, into: &text)
        return text
    }

    /// The registry prints one label set's series after another in no fixed order; within each,
    /// the lines keep their order.
    private static func seriesInOrder(_ text: String) -> [String: [String]] {
        var series: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let key = line.hasPrefix("#") ? "#" : String(line.firstMatch(of: #/kind="[^"]*"/#)?.0 ?? "?")
            series[key, default: []].append(String(line))
        }
        return series
    }

    /// Values whose sum is exact in seconds and in microseconds, below, between, on and above the
    /// buckets; a kind with none, and one with many.
    @Test func printsAsTheRegistryPrintsAHistogram() {
        let values: [(String, [Double])] = [
            ("echo", [0, 0.5, 0.25, 1, 2, 60, 75, 3600, 0.5, 0.125]),
            ("http", []),
            ("other", (0..<1000).map { Double($0 % 64) / 8 }),
        ]
        let emitted = Self.emitted(values)
        #expect(Self.seriesInOrder(emitted) == Self.seriesInOrder(Self.reference(values)))
        #expect(emitted.hasPrefix("# HELP \(SubtaskDurations.name) \(SubtaskDurations.help)\n# TYPE \(SubtaskDurations.name) histogram\n"))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="0.25"} 3"#))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="+Inf"} 10"#))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_sum{kind="echo"} 3739.375"#))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_count{kind="http"} 0"#))
    }

    /// A value equal to a bound is in that bound's bucket (`le`), as in the registry; the sum, kept
    /// in microseconds, is the registry's within rounding.
    @Test func aValueOnABoundIsInItsBucket() throws {
        let values = [("echo", ServiceMetrics.durationBuckets + ServiceMetrics.durationBuckets.map { $0 + 0.000_001 })]
        let emitted = Self.seriesInOrder(Self.emitted(values))
        let reference = Self.seriesInOrder(Self.reference(values))
        let isSum = { (line: String) in line.contains("_sum{") }
        #expect(emitted.mapValues { $0.filter { !isSum($0) } } == reference.mapValues { $0.filter { !isSum($0) } })
        let sum = { (lines: [String]) in Double(lines.first(where: isSum)?.split(separator: " ").last ?? "") }
        let emittedSum = try #require(sum(emitted[#"kind="echo""#] ?? []))
        let referenceSum = try #require(sum(reference[#"kind="echo""#] ?? []))
        #expect(abs(emittedSum - referenceSum) < 1e-9)
    }

    /// A value no clock gives (negative, NaN, infinite, past a year) is counted, never a trap.
    @Test func aValueOutOfRangeIsCountedAtItsBound() {
        let emitted = Self.emitted([("echo", [-1, .nan, .infinity, 1e300, 0.5])])
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="0.005"} 2"#))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="0.5"} 3"#))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_count{kind="echo"} 5"#))
        #expect(emitted.contains(#"fanout_subtask_duration_seconds_sum{kind="echo"} 63072000.5"#))
    }

    /// Recorded from several threads at once, every value is counted once.
    @Test func countsEveryValueRecordedConcurrently() async {
        let durations = SubtaskDurations(kind: "echo", bounds: ServiceMetrics.durationBuckets)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for step in 0..<10_000 { durations.record(seconds: Double((worker * 10_000 + step) % 100) / 1000) }
                }
            }
        }
        var text = ""
        SubtaskDurations.emit([durations], into: &text)
        #expect(text.contains(#"fanout_subtask_duration_seconds_count{kind="echo"} 40000"#))
        // 0–99 ms, 400 times each: 0–5 ms are 6 values a round, 0–10 ms 11.
        #expect(text.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="0.005"} 2400"#))
        #expect(text.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="0.01"} 4400"#))
        #expect(text.contains(#"fanout_subtask_duration_seconds_bucket{kind="echo",le="0.1"} 40000"#))
        #expect(text.contains(#"fanout_subtask_duration_seconds_sum{kind="echo"} 1980.0"#))
    }
}
