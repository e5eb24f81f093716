import FanoutJobs
import FanoutSync
import Prometheus

/// Metrics of retained jobs: what the store holds (read at scrape time), readers, resumes, replays.
final class RetainedJobMetrics: Sendable {
    /// What the store holds, and whether it can be reached (always, for the memory store).
    private let storeGauges: ScrapedGauges<(available: Bool, usage: JobStoreUsage?)>
    private let readers: Gauge
    private let resumes: Counter
    private let replays: Counter
    /// Reads the store's usage at scrape time.
    let usage: Locked<(@Sendable () -> JobStoreUsage)?> = Locked(nil)
    /// Reads whether the store can be reached, for `/readyz` and the gauge.
    let available: Locked<(@Sendable () -> Bool)?> = Locked(nil)
    var storeAvailable: Bool { available.withLock { $0 }?() ?? true }

    init(registry: PrometheusCollectorRegistry) {
        storeGauges = ScrapedGauges(registry, [
            ("fanout_retained_jobs", "Retained jobs in the store, running or ended.", { store in store.usage.map { Double($0.jobs) } }),
            ("fanout_retained_jobs_running", "Retained jobs still running.", { store in store.usage.map { Double($0.running) } }),
            ("fanout_retained_bytes", "Bytes of lines the store holds for retained jobs.", { store in store.usage.map { Double($0.bytes) } }),
            ("fanout_retained_lines", "Lines the store holds for retained jobs.", { store in store.usage.map { Double($0.lines) } }),
            (
                "fanout_job_store_up", "1 while the job store (jobs.store) can be reached, 0 while the PostgreSQL store cannot.",
                { store in store.available ? 1 : 0 }
            ),
        ])
        readers = registry.makeGauge(descriptor: .named("fanout_job_readers", "Readers following a retained job's events now."))
        resumes = registry.makeCounter(
            descriptor: .named("fanout_job_resumes_total", "Event reads that resumed after a cursor (after or Last-Event-ID above 0).")
        )
        replays = registry.makeCounter(
            descriptor: .named("fanout_idempotent_replays_total", "Job submissions answered from an earlier one with the same Idempotency-Key.")
        )
    }

    /// Updates the gauges from the store; called before each exposition.
    func record() {
        storeGauges.record((available: storeAvailable, usage: usage.withLock { $0 }?()))
    }

    func readerStarted(resuming: Bool) {
        readers.increment()
        if resuming { resumes.increment() }
    }

    func readerEnded() { readers.decrement() }

    func idempotentReplay() { replays.increment() }
}
