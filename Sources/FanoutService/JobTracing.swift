import FanoutCore
import MicroHTTPServer

/// How a job joins a trace: it continues the request's W3C `traceparent` (a missing or invalid one
/// starts a new trace, never a refusal), its subtasks' upstream requests carry children of it, and
/// its log line names it. With a ``SpanRecorder`` (tracing.otlp_endpoint set) the job is a server
/// span, each subtask a span inside it and each upstream attempt a client span.
struct JobTracing: Sendable {
    let recorder: (any SpanRecorder)?

    /// The job's point in its trace, from the request's headers.
    func start(_ request: HTTPRequest, job id: String) -> TraceScope {
        let scope = TraceScope.job("POST /v1/jobs", incoming: Self.incoming(request), recorder: recorder)
        if let span = scope.span {
            span.set("http.request.method", "POST")
            span.set("http.route", "/v1/jobs")
            span.set("fanout.job.id", id)
        }
        return scope
    }

    /// The request's trace context: nil without a `traceparent`, with an invalid one, or with
    /// more than one (W3C: then the trace restarts). Several `tracestate` fields are one list.
    static func incoming(_ request: HTTPRequest) -> TraceContext? {
        guard let traceparent = request.headers["traceparent"] else { return nil }
        var parents = 0
        var states: [String] = []
        for (name, value) in request.headers {
            switch name.lowercased() {
            case "traceparent": parents += 1
            case "tracestate": states.append(value)
            default: break
            }
        }
        guard parents == 1 else { return nil }
        return TraceContext(traceparent: traceparent, tracestate: states.isEmpty ? nil : states.joined(separator: ","))
    }

    /// Ends the job's span (if any) with its counts. The span's status stays unset: a job whose
    /// subtasks failed still answered 200, and its subtasks' spans carry their errors.
    static func end(_ scope: TraceScope, summary: JobSummary) {
        guard let span = scope.span else { return }
        span.set("fanout.job.tasks", summary.total)
        span.set("fanout.job.ok", summary.ok)
        span.set("fanout.job.error", summary.error)
        span.set("fanout.job.timeout", summary.timeout)
        span.set("fanout.job.cancelled", summary.cancelled)
        if summary.clientGone { span.set("fanout.job.client_gone", "true") }
        span.end(failure: nil)
    }
}
