/// What ``HTTPHandler/head(_:)`` decides once a request's head has been read.
public enum HeadDecision: Sendable {
    /// Answer now, without reading the body: no `100 Continue` is sent and nothing is buffered.
    /// A request announcing a body is answered at once with `Connection: close` (right for a
    /// rejection); one without a body is answered on the next call and keeps its connection alive.
    case respond(HTTPResponse)
    /// Read the whole body (within ``HTTPServerConfiguration/maxBodyBytes`` and the server's
    /// in-flight body budget), then call ``HTTPHandler/respond(to:)`` off the server threads.
    case readBody
}

/// Answers requests in two steps: ``head(_:)`` on the server thread as soon as the head is in
/// (route, auth, method, media type, admission), ``respond(to:)`` in a task of
/// ``HTTPServer/run()`` once the body has been read.
public protocol HTTPHandler: Sendable {
    /// Called on a server thread with the head only (`body` is empty; ``HTTPRequest/bodyTooLarge``
    /// is set when the announced `Content-Length` is over the cap). Must be quick and never block.
    func head(_ request: HTTPRequest) -> HeadDecision

    /// Called in a task of ``HTTPServer/run()`` with the whole request (or with
    /// ``HTTPRequest/bodyTooLarge`` set and no body) after ``head(_:)`` chose
    /// ``HeadDecision/readBody``. The connection waits, suspended, until it returns.
    func respond(to request: HTTPRequest) async -> HTTPResponse

    /// A body of at most ``HTTPServerConfiguration/inlineBodyBytes``, answered at once on the
    /// server thread, or nil to take ``respond(to:)`` in a task. For work that costs less than the
    /// hop to a task and back (suspend, task, resume: see BENCHMARKS.md). The default is nil.
    func respondInline(to request: HTTPRequest) -> HTTPResponse?

    /// The answer when the server's in-flight body budget
    /// (``HTTPServerConfiguration/maxPendingBodyBytes``) cannot hold this request's body: a 503.
    /// Called on a server thread. The default is a problem+json 503 with `Retry-After: 1`.
    func bodyBudgetExceeded(_ request: HTTPRequest) -> HTTPResponse
}

extension HTTPHandler {
    public func respondInline(to request: HTTPRequest) -> HTTPResponse? { nil }

    public func bodyBudgetExceeded(_ request: HTTPRequest) -> HTTPResponse {
        ServerProblem.bodyBudgetExceeded
    }
}
