/// The few answers the server gives on its own, when no handler decision applies: problem+json
/// with `about:blank` types, since the server knows nothing of the service's problem URIs.
enum ServerProblem {
    /// A problem document; `detail` must need no JSON escaping (the callers pass constants).
    static func response(status: Int, title: String, detail: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        let json = #"{"type":"about:blank","title":"\#(title)","status":\#(status),"detail":"\#(detail)"}"# + "\n"
        return HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")] + headers,
            body: .bytes(Array(json.utf8))
        )
    }

    static let bodyBudgetExceeded = response(
        status: 503, title: "Service Unavailable",
        detail: "too many request bodies are being read at once; retry later", headers: [("Retry-After", "1")]
    )

    /// The handler chose to read a body announced over the cap; the server refuses it unread.
    static let bodyTooLarge = response(
        status: 413, title: "Content Too Large", detail: "the request body is over the server's limit"
    )

    /// A request completed while the server stops: no task is left to answer it.
    static let stopping = response(
        status: 503, title: "Service Unavailable", detail: "the server is stopping", headers: [("Retry-After", "5")]
    )
}
