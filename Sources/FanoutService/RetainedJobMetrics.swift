import CoreMetrics
import FanoutJobs
import Metrics
import Prometheus
import FanoutSync

/// Metrics of retained jobs: what the store holds (read at scrape time), readers, resumes, replays.
final class RetainedJobMetrics: Sendable {
    private let jobs: Metrics.Gauge
    private let runningJobs: Metrics.Gauge
    private let bytes: Metrics.Gauge
    private let lines: Metrics.Gauge
    /// 1 while the job store can be reached (always, for the memory store).
    private let storeUp: Metrics.Gauge
    private let readers: Meter
    private let resumes: CoreMetrics.Counter
    private let replays: CoreMetrics.Counter
    /// Reads the store's usage at scrape time.
    let usage: Locked<(@Sendable () -> JobStoreUsage)?> = Locked(nil)
    /// Reads whether the store can be reached, for `/readyz` and the gauge.
    let available: Locked<(@Sendable () -> Bool)?> = Locked(nil)
    var storeAvailable: Bool { available.withLock { $0 }?() ?? true }

    init(factory: PrometheusMetricsFactory) {
        jobs = Metrics.Gauge(label: "fanout_retained_jobs", factory: factory)
        runningJobs = Metrics.Gauge(label: "fanout_retained_jobs_running", factory: factory)
        bytes = Metrics.Gauge(label: "fanout_retained_bytes", factory: factory)
        lines = Metrics.Gauge(label: "fanout_retained_lines", factory: factory)
        storeUp = Metrics.Gauge(label: "fanout_job_store_up", factory: factory)
        readers = Meter(label: "fanout_job_readers", factory: factory)
        resumes = CoreMetrics.Counter(label: "fanout_job_resumes_total", factory: factory)
        replays = CoreMetrics.Counter(label: "fanout_idempotent_replays_total", factory: factory)
        readers.set(0)
    }

    /// Updates the gauges from the store; called before each exposition.
    func record() {
        storeUp.record(storeAvailable ? 1 : 0)
        guard let usage = usage.withLock({ $0 })?() else { return }
        jobs.record(usage.jobs)
        runningJobs.record(usage.running)
        bytes.record(usage.bytes)
        lines.record(usage.lines)
    }

    func readerStarted(resuming: Bool) {
        readers.increment()
        if resuming { resumes.increment() }
    }

    func readerEnded() { readers.decrement() }

    func idempotentReplay() { replays.increment() }
}
