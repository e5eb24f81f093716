internal import CMicroHTTPD
internal import CMicroHTTPDShims

/// An `application/problem+json` answer (RFC 9457) the server gives on its own, before or instead of
/// the handler: malformed framing, over capacity, a body over the limit mid-upload.
struct ServerProblem: Sendable, Equatable {
    var status: Int
    var title: String
    var detail: String
    /// A stable slug, appended to ``HTTPServerConfiguration/problemTypeBase`` to make the `type` URI.
    var slug: String
    var retryAfterSeconds: Int?

    static func badRequest(_ detail: String) -> ServerProblem {
        ServerProblem(status: 400, title: "Bad Request", detail: detail, slug: "malformed-request")
    }

    /// As a response for the ordinary handler path (queued by the request flow like any other).
    func response(typeBase: String = HTTPServerConfiguration.defaultProblemTypeBase) -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")]
        if let retryAfterSeconds { headers.append(("Retry-After", "\(retryAfterSeconds)")) }
        return HTTPResponse(status: status, headers: headers, body: .bytes(body(typeBase: typeBase)))
    }

    /// The handler's default when the in-flight body budget cannot hold a body.
    static let bodyBudgetExceeded = ServerProblem(
        status: 503, title: "Service Unavailable",
        detail: "too many request bodies are being read at once; retry later", slug: "body-budget-exceeded",
        retryAfterSeconds: 1
    ).response()

    /// The handler chose to read a body announced over the cap; the server refuses it unread.
    static let bodyTooLarge = ServerProblem(
        status: 413, title: "Content Too Large", detail: "the request body is over the server's limit", slug: "body-too-large"
    ).response()

    /// A request completed while the server stops: no task is left to answer it.
    static let stopping = ServerProblem(
        status: 503, title: "Service Unavailable", detail: "the server is stopping", slug: "draining", retryAfterSeconds: 5
    ).response()

    func body(typeBase: String) -> [UInt8] {
        var json = "{\"type\":" + Self.quoted(typeBase + slug)
        json += ",\"title\":" + Self.quoted(title)
        json += ",\"status\":\(status)"
        json += ",\"detail\":" + Self.quoted(detail) + "}\n"
        return Array(json.utf8)
    }

    /// The head and body as bytes, for the rare answers written to the socket directly (MHD 0.9.75
    /// cannot queue a response in the middle of an upload).
    func wireBytes(typeBase: String) -> [UInt8] {
        let body = body(typeBase: typeBase)
        var head = "HTTP/1.1 \(status) \(title)\r\nContent-Type: application/problem+json\r\n"
        head += "Cache-Control: no-store\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        if let retryAfterSeconds { head += "Retry-After: \(retryAfterSeconds)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }

    /// Queues this problem with `Connection: close`. Only valid where MHD accepts a response (the first
    /// or the last access-handler call).
    func queue(on connection: OpaquePointer, typeBase: String) -> MHD_Result {
        let bytes = body(typeBase: typeBase)
        let response = bytes.withUnsafeBytes { raw in
            MHD_create_response_from_buffer(raw.count, UnsafeMutableRawPointer(mutating: raw.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let response else { return .NO }
        _ = MHD_add_response_header(response, "Content-Type", "application/problem+json")
        _ = MHD_add_response_header(response, "Cache-Control", "no-store")
        _ = MHD_add_response_header(response, "Connection", "close")
        if let retryAfterSeconds { _ = MHD_add_response_header(response, "Retry-After", "\(retryAfterSeconds)") }
        let queued = MHD_queue_response(connection, UInt32(status), response)
        MHD_destroy_response(response)
        return queued
    }

    /// A JSON string literal. The server module has no JSON writer of its own (that lives in FanoutCore,
    /// a layer above), and its problems hold only short texts, so this escapes just what JSON requires.
    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
