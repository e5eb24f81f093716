import Prometheus

/// Gauges set at each scrape from one reading of what they measure (a `/proc` file, the job
/// store's usage): each family is made once, with its `# HELP`, and the closure that takes its
/// value from the reading (nil: the gauge keeps the value it had).
struct ScrapedGauges<Reading>: Sendable {
    typealias Family = (name: String, help: String, value: @Sendable (Reading) -> Double?)

    private let gauges: [(gauge: Gauge, value: @Sendable (Reading) -> Double?)]

    init(_ registry: PrometheusCollectorRegistry, _ families: [Family]) {
        gauges = families.map { (registry.makeGauge(descriptor: .named($0.name, $0.help)), $0.value) }
    }

    /// Sets every gauge from `reading`; called before each exposition.
    func record(_ reading: Reading) {
        for (gauge, value) in gauges {
            if let value = value(reading) { gauge.set(to: value) }
        }
    }
}
