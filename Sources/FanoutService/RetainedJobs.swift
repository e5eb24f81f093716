import FanoutCore
import FanoutJobs
import Logging
import FanoutSync

/// Runs retained jobs in tasks tied to no connection: ``run()`` owns a discarding task group fed
/// with the jobs to start, and sweeps expired jobs from the store once a second. Each job holds its
/// admission slot like any job, so the drain's `cancelAll` ends it with `cancelled` lines and the
/// end line, which reach the store (see ``JobStore/stopWaitingForSpace()``).
final class RetainedJobs: Sendable {
    struct Start: Sendable {
        var job: Job
        var id: String
        var ticket: UInt64
        var control: JobControl
        var client: String
        /// The job's point in its trace, from the POST that submitted it.
        var trace: TraceScope
    }

    let store: any JobStore
    let tracing: JobTracing
    private let admission: JobAdmission
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let starts: AsyncStream<Start>
    private let continuation: AsyncStream<Start>.Continuation

    init(store: any JobStore, admission: JobAdmission, metrics: ServiceMetrics, tracing: JobTracing, logger: Logger) {
        self.store = store
        self.tracing = tracing
        self.admission = admission
        self.metrics = metrics
        self.logger = logger
        let (starts, continuation) = AsyncStream.makeStream(of: Start.self)
        self.starts = starts
        self.continuation = continuation
    }

    /// Runs jobs until ``finish()``, then waits for those still running.
    func run() async {
        let store = self.store
        let sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                _ = await store.expire()
            }
        }
        await withDiscardingTaskGroup { group in
            for await start in starts {
                group.addTask { await self.execute(start) }
            }
        }
        sweeper.cancel()
        await sweeper.value
    }

    /// Queues a job (already admitted and created in the store) to run.
    func start(_ start: Start) {
        if case .terminated = continuation.yield(start) {
            // run() is over (the service stopped): end the job at once so its slot and readers are freed.
            start.control.cancelRemaining(reason: "the server is shutting down")
            Task { await self.execute(start) }
        }
    }

    /// No more jobs: ``run()`` returns once the running ones end.
    func finish() { continuation.finish() }

    private func execute(_ start: Start) async {
        let began = ContinuousClock.now
        let summary = await Dispatcher.run(
            start.job, id: start.id, control: start.control, observer: metrics, trace: start.trace,
            sink: SequencedSink(id: start.id, store: store)
        )
        let duration = ContinuousClock.now - began
        metrics.jobEnded(summary, duration: duration)
        JobTracing.end(start.trace, summary: summary)
        logger.info(
            "job finished",
            metadata: [
                "job.id": "\(start.id)",
                "job.retained": "true",
                "job.client": "\(start.client)",
                "job.tasks": "\(summary.total)",
                "job.ok": "\(summary.ok)",
                "job.error": "\(summary.error)",
                "job.timeout": "\(summary.timeout)",
                "job.cancelled": "\(summary.cancelled)",
                "job.duration_ms": "\(Int(duration.milliseconds.rounded()))",
                "job.bytes": "\(summary.bytes)",
                "trace_id": .string(start.trace.context.traceIDHex),
                "span_id": .string(start.trace.context.spanIDHex),
            ]
        )
        // Last, as for a plain job: whoever sees the slot free sees the job's metrics and log line.
        admission.release(start.ticket)
    }
}
