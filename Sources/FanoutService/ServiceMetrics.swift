import CoreMetrics
import FanoutCore
import Metrics
import Prometheus
import FanoutSync

/// The service's metrics (swift-metrics API, Prometheus registry), exposed at `GET /metrics`.
/// Each service instance has its own registry, so tests never share global state.
final class ServiceMetrics: DispatchObserver {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory

    private let jobsInFlight: Meter
    private let subtasksInFlight: Meter
    private let openStreams: Metrics.Gauge
    private let clientDisconnects: CoreMetrics.Counter
    private let bytesStreamed: CoreMetrics.Counter
    private let jobDuration: Metrics.Timer
    private let jobsByOutcome: [String: CoreMetrics.Counter]
    private let subtaskCounters: Locked<[String: CoreMetrics.Counter]>
    private let subtaskDurations: Locked<[String: Metrics.Timer]>
    private let rejections: Locked<[String: CoreMetrics.Counter]>
    private let upstream: Locked<[String: CoreMetrics.Counter]>
    /// Reads the server's open stream count at scrape time.
    let openStreamCount: Locked<(@Sendable () -> Int)?> = Locked(nil)
    let retained: RetainedJobMetrics

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let seconds: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                   .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                   .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]
        factory.defaultDurationHistogramBuckets = seconds
        self.factory = factory
        retained = RetainedJobMetrics(factory: factory)
        jobsInFlight = Meter(label: "fanout_jobs_in_flight", factory: factory)
        subtasksInFlight = Meter(label: "fanout_subtasks_in_flight", factory: factory)
        openStreams = Metrics.Gauge(label: "fanout_open_streams", factory: factory)
        clientDisconnects = CoreMetrics.Counter(label: "fanout_client_disconnects_total", factory: factory)
        bytesStreamed = CoreMetrics.Counter(label: "fanout_stream_bytes_total", factory: factory)
        jobDuration = Metrics.Timer(label: "fanout_job_duration_seconds", factory: factory)
        var outcomes: [String: CoreMetrics.Counter] = [:]
        for outcome in ["ok", "failed", "client_gone"] {
            outcomes[outcome] = CoreMetrics.Counter(label: "fanout_jobs_total", dimensions: [("outcome", outcome)], factory: factory)
        }
        jobsByOutcome = outcomes
        subtaskCounters = Locked([:])
        subtaskDurations = Locked([:])
        rejections = Locked([:])
        upstream = Locked([:])
        jobsInFlight.set(0)
        subtasksInFlight.set(0)
    }

    /// Prometheus text exposition of everything.
    func exposition() -> String {
        if let count = openStreamCount.withLock({ $0 }) { openStreams.record(count()) }
        retained.record()
        return registry.emitToString()
    }

    func jobStarted() { jobsInFlight.increment() }

    func jobEnded(_ summary: JobSummary, duration: Duration) {
        jobsInFlight.decrement()
        jobDuration.recordNanoseconds(Int64(duration.milliseconds * 1_000_000))
        bytesStreamed.increment(by: summary.bytes)
        let outcome = summary.clientGone ? "client_gone" : (summary.ok == summary.total ? "ok" : "failed")
        jobsByOutcome[outcome]?.increment()
        if summary.clientGone { clientDisconnects.increment() }
        for kind in summary.byKind {
            for (status, count) in kind.counts {
                subtaskCounter(kind: kind.kind, status: status.rawValue).increment(by: count)
            }
        }
    }

    func subtaskStarted(kind: String) { subtasksInFlight.increment() }

    func subtaskEnded(kind: String, duration: Duration) {
        subtasksInFlight.decrement()
        subtaskDuration(kind: kind).recordNanoseconds(Int64(duration.milliseconds * 1_000_000))
    }

    func rejected(reason: String) {
        Self.cached(rejections, reason) {
            CoreMetrics.Counter(label: "fanout_rejections_total", dimensions: [("reason", reason)], factory: factory)
        }.increment()
    }

    /// An upstream request's answer, by status class (`2xx` … `5xx`) or `error`.
    func upstreamRequest(statusClass: String) {
        Self.cached(upstream, statusClass) {
            CoreMetrics.Counter(label: "fanout_upstream_requests_total", dimensions: [("class", statusClass)], factory: factory)
        }.increment()
    }

    private func subtaskCounter(kind: String, status: String) -> CoreMetrics.Counter {
        Self.cached(subtaskCounters, kind + "/" + status) {
            CoreMetrics.Counter(label: "fanout_subtasks_total", dimensions: [("kind", kind), ("status", status)], factory: factory)
        }
    }

    private func subtaskDuration(kind: String) -> Metrics.Timer {
        Self.cached(subtaskDurations, kind) {
            Metrics.Timer(label: "fanout_subtask_duration_seconds", dimensions: [("kind", kind)], factory: factory)
        }
    }

    /// The metric stored under `key`, made on first use (labels are few: kinds, statuses, reasons).
    private static func cached<Metric>(_ cache: borrowing Locked<[String: Metric]>, _ key: String, make: () -> Metric) -> Metric {
        cache.withLock { metrics in
            if let metric = metrics[key] { return metric }
            let metric = make()
            metrics[key] = metric
            return metric
        }
    }
}
