/// What the server keeps for one request between MHD's handler calls.
/// Touched only on the MHD thread that owns the connection.
final class RequestContext {
    enum Phase {
        /// Head decided, the body (if any) is being read.
        case reading
        /// ``HTTPHandler/respond(to:)`` runs in a task; the connection is suspended until it is done.
        case awaiting(DeferredResponse)
        /// A response is queued; later handler calls only discard upload data.
        case answered
    }

    let method: String
    let path: String
    let version: String
    var headers = HTTPHeaders()
    /// Query arguments, percent-decoded, in arrival order.
    var query = HTTPHeaders()
    var peer: String?
    var body: [UInt8] = []
    var bodyTooLarge = false
    /// A body of unknown length outgrew the server's body budget: the rest is discarded and the
    /// request gets ``HTTPHandler/bodyBudgetExceeded(_:)`` on the final call.
    var overBudget = false
    /// Bytes of the server's ``BodyBudget`` this request holds.
    var reserved = 0
    /// The head's answer to a request without a body, queued on the final call (keeps keep-alive).
    var headResponse: HTTPResponse?
    var phase = Phase.reading
    /// The streamed response, if the request got one.
    var stream: ResponseStream?

    init(method: String, path: String, version: String) {
        self.method = method
        self.path = path
        self.version = version
    }

    var isReading: Bool {
        if case .reading = phase { return true }
        return false
    }

    /// Appends upload data, within `limit` and the server's budget; over either, the body is
    /// dropped (its reservation given back) and the rest is discarded.
    func receive(_ data: UnsafeRawBufferPointer, limit: Int, budget: BodyBudget) {
        guard isReading, !bodyTooLarge, !overBudget, headResponse == nil else { return }
        if body.count + data.count > limit {
            bodyTooLarge = true
            dropBody(budget)
            return
        }
        // A body announced with Content-Length reserved all of it on the head.
        let needed = body.count + data.count - reserved
        if needed > 0 {
            guard budget.reserve(needed) else {
                overBudget = true
                dropBody(budget)
                return
            }
            reserved += needed
        }
        body.append(contentsOf: data)
    }

    /// Drops the request's headers and query once its stream is queued: the context lives as long
    /// as the stream (MHD hands it to the completion callback), nothing reads them after the answer.
    func releaseHead() {
        headers = HTTPHeaders()
        query = HTTPHeaders()
    }

    /// Frees the body and gives its reservation back.
    func dropBody(_ budget: BodyBudget) {
        body = []
        budget.release(reserved)
        reserved = 0
    }

    func request() -> HTTPRequest {
        HTTPRequest(
            method: method,
            path: path,
            version: version,
            headers: headers,
            query: query,
            body: body,
            bodyTooLarge: bodyTooLarge,
            peer: peer
        )
    }
}
