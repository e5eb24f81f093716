/// Records spans: FanoutTracing's OTLP exporter implements it. The service, the dispatcher and the
/// runners know spans only through this, and only when tracing exports them: with tracing off
/// there is no recorder and no span object, just ``TraceContext`` values.
public protocol SpanRecorder: Sendable {
    /// The span of a job: a server span continuing `parent` (the request's trace context), or the
    /// root of a new trace.
    func jobSpan(_ name: String, parent: TraceContext?) -> any RecordingSpan
}

/// A span being recorded; it is exported once ended.
public protocol RecordingSpan: Sendable {
    /// This span's IDs, flags and state, for the `traceparent` of what it calls.
    var traceContext: TraceContext { get }
    /// Starts a child span.
    func child(_ name: String, kind: SpanRole) -> any RecordingSpan
    func set(_ key: String, _ value: String)
    func set(_ key: String, _ value: Int)
    /// Ends the span; a failure marks its status as an error with that description.
    func end(failure: String?)
}

/// What a span stands for in its trace (OpenTelemetry's span kinds that fanoutd uses).
public enum SpanRole: Sendable {
    /// A job: the request that it answers.
    case server
    /// A request to an upstream.
    case client
    /// A subtask, inside its job.
    case `internal`
}

/// A point in a trace that work descends from: its trace context and, when spans are recorded,
/// its span. A job has one (from its request), each of its subtasks one (its span, or the job's
/// point when spans are off), and each upstream request a child of its subtask's.
public struct TraceScope: Sendable {
    public var context: TraceContext
    public var span: (any RecordingSpan)?

    public init(context: TraceContext, span: (any RecordingSpan)? = nil) {
        self.context = context
        self.span = span
    }

    /// A job's point: a server span continuing `incoming` when `recorder` records spans; else a
    /// new span ID in `incoming`'s trace, or in a new one (sampled only if spans are recorded).
    public static func job(_ name: String, incoming: TraceContext?, recorder: (any SpanRecorder)?) -> TraceScope {
        if let recorder {
            let span = recorder.jobSpan(name, parent: incoming)
            return TraceScope(context: span.traceContext, span: span)
        }
        return TraceScope(context: incoming?.child() ?? .newTrace(sampled: false))
    }

    /// A child for one piece of work (a subtask, an upstream request): a span when spans are
    /// recorded, else only a new span ID.
    public func child(_ name: String, kind: SpanRole) -> TraceScope {
        guard let span else { return TraceScope(context: context.child()) }
        let child = span.child(name, kind: kind)
        return TraceScope(context: child.traceContext, span: child)
    }
}
