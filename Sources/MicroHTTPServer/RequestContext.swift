/// What the server keeps for one request between MHD's handler calls.
/// Touched only on the MHD thread that owns the connection.
final class RequestContext {
    let method: String
    let path: String
    let version: String
    var headers = HTTPHeaders()
    /// Query arguments, percent-decoded, in arrival order.
    var query = HTTPHeaders()
    var body: [UInt8] = []
    var bodyTooLarge = false
    /// A response is queued; later handler calls only discard upload data.
    var responded = false
    /// The streamed response, if the request got one.
    var stream: ResponseStream?

    init(method: String, path: String, version: String) {
        self.method = method
        self.path = path
        self.version = version
    }

    /// Appends upload data unless the body is already over `limit`, in which case it is discarded.
    func receive(_ data: UnsafeRawBufferPointer, limit: Int) {
        guard !bodyTooLarge else { return }
        if body.count + data.count > limit {
            bodyTooLarge = true
            body = []
        } else {
            body.append(contentsOf: data)
        }
    }

    func request(peer: String?) -> HTTPRequest {
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
