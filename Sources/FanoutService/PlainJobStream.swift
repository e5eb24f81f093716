import FanoutCore
import Logging
import MicroHTTPServer

/// What ends every plain (not retained) job: records its metrics, ends its span, logs its line,
/// tells the reclaimer its body is gone and, last, frees its admission slot. One per service.
final class JobCompletion: Sendable {
    let admission: JobAdmission
    let metrics: ServiceMetrics
    let reclaimer: MemoryReclaimer
    let logger: Logger

    init(admission: JobAdmission, metrics: ServiceMetrics, reclaimer: MemoryReclaimer, logger: Logger) {
        self.admission = admission
        self.metrics = metrics
        self.reclaimer = reclaimer
        self.logger = logger
    }

    /// Not inlined: called from a stream's async function, its temporaries (the log line's
    /// metadata) would otherwise be laid out in that task's frame, held for the stream's life.
    @inline(never)
    func finished(id: String, client: String, ticket: UInt64, summary: JobSummary, duration: Duration, trace: TraceScope, bodyBytes: Int) {
        metrics.jobEnded(summary, duration: duration)
        JobTracing.end(trace, summary: summary)
        logger.info(
            "job finished",
            // One literal with the trace's ids: adding them to a finished dictionary copied it.
            metadata: [
                "job.id": .string(id),
                "job.client": .string(client),
                "job.tasks": .string(String(summary.total)),
                "job.ok": .string(String(summary.ok)),
                "job.error": .string(String(summary.error)),
                "job.timeout": .string(String(summary.timeout)),
                "job.cancelled": .string(String(summary.cancelled)),
                "job.client_gone": .string(String(summary.clientGone)),
                "job.duration_ms": .string(String(Int(duration.milliseconds.rounded()))),
                "job.bytes": .string(String(summary.bytes)),
                "trace_id": .string(trace.context.traceIDHex),
                "span_id": .string(trace.context.spanIDHex),
            ]
        )
        reclaimer.noteRelease(bytes: bodyBytes)
        // Last: whoever sees the slot free (a drain, a test) sees the job's metrics and log line too.
        admission.release(ticket)
    }
}

/// A plain job streamed to its client: everything its stream needs after the head is sent, in one
/// object (every open stream pays for those bytes). A job of timers only (`echo`) runs with no task
/// (``body``: `drivenStream`); any other runs in the server's own task for the stream
/// (`closeObservingStream`), its async frames holding one reference. Either way a client that goes
/// away stops the dispatcher through ``JobControl``. The job is held once, by the prepared loop.
final class PlainJobStream: StreamProducer, DrivenStreamProducer {
    /// Made by `init`, used only by ``produce(into:)`` or ``start(into:ending:)``, which the server
    /// calls once, after `init` returned (the response carrying this object orders the two); the
    /// loop is never shared. It holds the job's id, control, trace and start once for everyone
    /// (every open stream pays for a copy).
    nonisolated(unsafe) let prepared: Dispatcher.Prepared
    let client: String
    let ticket: UInt64
    let bodyBytes: Int
    let completion: JobCompletion

    /// Prepares the job to run (``Dispatcher/prepare(_:id:control:observer:timer:bufferBytes:trace:)``):
    /// its deadline, `elapsed_ms` and its duration (log line, metrics) run from now.
    init(
        job: Job, id: String, client: String, ticket: UInt64, control: JobControl, trace: TraceScope, bodyBytes: Int,
        bufferBytes: Int, completion: JobCompletion
    ) {
        self.prepared = Dispatcher.prepare(job, id: id, control: control, observer: completion.metrics, bufferBytes: bufferBytes, trace: trace)
        self.client = client
        self.ticket = ticket
        self.bodyBytes = bodyBytes
        self.completion = completion
    }

    /// The response body that runs this job: with no task when it can (``Dispatcher/Prepared/runsWithoutTask``).
    var body: HTTPResponse.Body {
        prepared.runsWithoutTask ? .drivenStream(self) : .closeObservingStream(self)
    }

    /// A job of timers only: started here, ended by its last pass (``Dispatcher/start(_:offeringTo:ended:)``).
    func start(into stream: ResponseStream, ending: StreamEnding) {
        observeClose(of: stream)
        Dispatcher.start(prepared, offeringTo: StreamSink(stream: stream)) { [self] in
            finished(prepared.summary)
            ending()
        }
    }

    /// Everything before and after the wait is in functions of their own: while the job runs, this
    /// frame holds little more than the stream and this object.
    func produce(into stream: ResponseStream) async {
        observeClose(of: stream)
        await Dispatcher.run(prepared, offeringTo: StreamSink(stream: stream))
        finished(prepared.summary)
    }

    @inline(never)
    private func observeClose(of stream: ResponseStream) {
        let control = prepared.control
        stream.onClose { control.clientGone() }
    }

    @inline(never)
    private func finished(_ summary: JobSummary) {
        guard let trace = prepared.trace else { preconditionFailure("a plain job is prepared with its trace") }
        completion.finished(
            id: prepared.id, client: client, ticket: ticket, summary: summary, duration: .now - prepared.start, trace: trace,
            bodyBytes: bodyBytes
        )
    }
}

/// The dispatcher's lines go to the response stream, queued at once; the dispatcher starts nothing
/// new while the client reads slowly (the buffer is over its high-water mark).
struct StreamSink: NonBlockingLineSink {
    let stream: ResponseStream

    func send(_ bytes: [UInt8]) async throws {
        try await stream.write(bytes)
    }

    func offer(_ pieces: [[UInt8]], ready: @escaping @Sendable (Bool) -> Void) {
        stream.write(pieces, ready: ready)
    }
}
