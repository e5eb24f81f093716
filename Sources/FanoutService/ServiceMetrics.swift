import FanoutCore
import FanoutSync
import Prometheus
import Synchronization

/// The service's metrics on a Prometheus registry of its own (tests never share state), exposed at
/// `GET /metrics`. Every family is made here with its `# HELP`; label values are snake_case.
/// The series a job touches (outcomes, each kind's statuses and durations) exist from the start,
/// so recording is a few atomic adds: no lookup by string, no allocation. The subtasks' durations
/// and the subtasks in flight, touched twice for every subtask, are kept beside the registry
/// (``SubtaskDurations``, two counters) and written into the exposition when it is scraped.
final class ServiceMetrics: DispatchObserver {
    let registry = PrometheusCollectorRegistry()

    private let jobsInFlight: Gauge
    private let subtasksInFlight: Gauge
    /// Subtasks started and ended: the in-flight gauge is their difference, set when scraped (a
    /// gauge's add is a compare-and-swap loop on a `Double`, twice for every subtask).
    private let subtasksStarted = Atomic<Int>(0)
    private let subtasksEnded = Atomic<Int>(0)
    private let openStreams: Gauge
    private let clientDisconnects: Counter
    private let bytesStreamed: Counter
    private let jobDuration: ValueHistogram
    private let jobsOK: Counter
    private let jobsFailed: Counter
    private let jobsClientGone: Counter
    /// The subtask kinds' series; kinds are few (`echo`, `http`), so a linear search finds them.
    private let kinds: [KindMetrics]
    /// Series of a kind not known at start (none today), made on first use.
    private let otherKinds: Locked<[String: KindMetrics]> = Locked([:])
    private let rejections: Locked<[String: Counter]> = Locked([:])
    private let upstream: Locked<[String: Counter]> = Locked([:])
    /// Reads the server's open stream count at scrape time.
    let openStreamCount: Locked<(@Sendable () -> Int)?> = Locked(nil)
    let retained: RetainedJobMetrics
    let process: ProcessMetrics

    /// Seconds; they print as `0.005` … `1.0` … `60.0`.
    static let durationBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// The subtask kinds whose series exist from the start.
    static let knownKinds = ["echo", "http"]

    init() {
        let registry = registry
        retained = RetainedJobMetrics(registry: registry)
        process = ProcessMetrics(registry: registry)
        jobsInFlight = registry.makeGauge(descriptor: .named("fanout_jobs_in_flight", "Jobs running now, streamed and retained."))
        subtasksInFlight = registry.makeGauge(descriptor: .named("fanout_subtasks_in_flight", "Subtasks started and not yet ended."))
        openStreams = registry.makeGauge(descriptor: .named("fanout_open_streams", "Response streams open on the main listener."))
        clientDisconnects = registry.makeCounter(
            descriptor: .named("fanout_client_disconnects_total", "Streamed jobs whose client went away before the end line.")
        )
        bytesStreamed = registry.makeCounter(descriptor: .named("fanout_stream_bytes_total", "Bytes of NDJSON lines handed to job streams."))
        jobDuration = registry.makeValueHistogram(
            descriptor: .named("fanout_job_duration_seconds", "Time from a job's start to its end."), buckets: Self.durationBuckets
        )
        func jobs(_ outcome: String) -> Counter {
            registry.makeCounter(
                descriptor: .named("fanout_jobs_total", "Jobs ended, by outcome: ok (every subtask ok), failed (some not ok), client_gone."),
                labels: [("outcome", outcome)]
            )
        }
        jobsOK = jobs("ok")
        jobsFailed = jobs("failed")
        jobsClientGone = jobs("client_gone")
        kinds = Self.knownKinds.map { KindMetrics(kind: $0, registry: registry) }
        registry.makeGauge(
            descriptor: .named("fanout_build_info", "Always 1; the version label is the running fanoutd's."),
            labels: [("version", FanoutService.version)]
        ).set(to: 1)
    }

    /// Prometheus text exposition of everything.
    func exposition() -> String {
        if let count = openStreamCount.withLock({ $0 }) { openStreams.set(to: Double(count())) }
        // Ended first: a subtask counted as ended was counted as started before it.
        let ended = subtasksEnded.load(ordering: .relaxed)
        subtasksInFlight.set(to: Double(subtasksStarted.load(ordering: .relaxed) - ended))
        retained.record()
        process.record()
        var text = registry.emitToString()
        SubtaskDurations.emit(kinds.map(\.duration) + otherKinds.withLock { $0.values.map(\.duration) }, into: &text)
        return text
    }

    func jobStarted() { jobsInFlight.increment() }

    /// A job ended: its outcome, duration and bytes, and every subtask's end by status (a job whose
    /// client went away has its unreported subtasks counted `cancelled`: see ``JobRun``).
    func jobEnded(_ summary: JobSummary, duration: Duration) {
        jobsInFlight.decrement()
        jobDuration.record(duration.milliseconds / 1000)
        bytesStreamed.increment(by: Int64(summary.bytes))
        if summary.clientGone {
            jobsClientGone.increment()
            clientDisconnects.increment()
        } else if summary.ok == summary.total {
            jobsOK.increment()
        } else {
            jobsFailed.increment()
        }
        for counts in summary.byKind {
            let series = kindMetrics(counts.kind)
            if counts.ok > 0 { series.ended[0].increment(by: Int64(counts.ok)) }
            if counts.error > 0 { series.ended[1].increment(by: Int64(counts.error)) }
            if counts.timeout > 0 { series.ended[2].increment(by: Int64(counts.timeout)) }
            if counts.cancelled > 0 { series.ended[3].increment(by: Int64(counts.cancelled)) }
        }
    }

    func subtaskStarted(kind: String) { subtasksStarted.wrappingAdd(1, ordering: .relaxed) }

    func subtaskEnded(kind: String, seconds: Double) {
        subtasksEnded.wrappingAdd(1, ordering: .relaxed)
        duration(of: kind).record(seconds: seconds)
    }

    /// A request refused with `problem`: counted under its slug in snake_case
    /// (`not-found` → `not_found`, `malformed-json` → `malformed_json`).
    func rejected(_ problem: Problem) {
        let registry = registry
        Self.cached(rejections, problem.slug) {
            registry.makeCounter(
                descriptor: .named(
                    "fanout_rejections_total", "Requests refused with a problem document, by reason (the problem's type, in snake_case)."
                ),
                labels: [("reason", Self.snakeCase(problem.slug))]
            )
        }.increment()
    }

    /// An upstream request's answer, by status class (`2xx` … `5xx`) or `error`.
    func upstreamRequest(statusClass: String) {
        let registry = registry
        Self.cached(upstream, statusClass) {
            registry.makeCounter(
                descriptor: .named(
                    "fanout_upstream_requests_total",
                    "Requests sent upstream by http subtasks (retries and hedges included), by answer: 2xx to 5xx, or error."
                ),
                labels: [("class", statusClass)]
            )
        }.increment()
    }

    static func snakeCase(_ slug: String) -> String {
        String(slug.map { $0 == "-" ? "_" : $0 })
    }

    /// A kind's duration histogram, reached by index: returning the whole ``KindMetrics`` copied
    /// its three references (a retain and a release each) for every line of every job.
    private func duration(of kind: String) -> SubtaskDurations {
        for index in kinds.indices where kinds[index].kind == kind { return kinds[index].duration }
        return kindMetrics(kind).duration
    }

    private func kindMetrics(_ kind: String) -> KindMetrics {
        for series in kinds where series.kind == kind { return series }
        let registry = registry
        return Self.cached(otherKinds, kind) { KindMetrics(kind: kind, registry: registry) }
    }

    /// The metric stored under `key`, made on first use (labels are few: reasons, status classes).
    private static func cached<Metric>(_ cache: borrowing Locked<[String: Metric]>, _ key: String, make: () -> Metric) -> Metric {
        cache.withLock { metrics in
            if let metric = metrics[key] { return metric }
            let metric = make()
            metrics[key] = metric
            return metric
        }
    }
}

/// One subtask kind's series: its ends by status and its duration histogram.
struct KindMetrics: Sendable {
    let kind: String
    /// By status: ok, error, timeout, cancelled.
    let ended: [Counter]
    /// Seconds (`fanout_subtask_duration_seconds{kind=…}`), outside the registry: see
    /// ``SubtaskDurations``. The buckets print as they did (`0.005` … `60.0`).
    let duration: SubtaskDurations

    init(kind: String, registry: PrometheusCollectorRegistry) {
        self.kind = kind
        ended = ["ok", "error", "timeout", "cancelled"].map { status in
            registry.makeCounter(
                descriptor: .named(
                    "fanout_subtasks_total", "Subtasks ended, by kind and status; every subtask of every job is counted once, whatever ended it."
                ),
                labels: [("kind", kind), ("status", status)]
            )
        }
        duration = SubtaskDurations(kind: kind, bounds: ServiceMetrics.durationBuckets)
    }
}

extension MetricNameDescriptor {
    /// A family's whole name (no namespace or unit parts to join) and its `# HELP` text.
    static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
