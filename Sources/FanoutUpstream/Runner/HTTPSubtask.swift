import FanoutCore

/// A validated `http` subtask: what ``HTTPRunner/decode(_:path:)`` extracts from its fields.
public struct HTTPSubtask: Sendable {
    /// Upper case, e.g. `GET`.
    public var method: String
    public var url: UpstreamURL
    /// Request headers in the order given; ``body`` JSON adds `content-type: application/json`
    /// unless a content type is given.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// Retries asked for; they apply only when ``isIdempotent``.
    public var retries: Int
    public var hedgeAfter: Duration?

    /// The subtask's `headers` include `traceparent` or `tracestate`: they are sent as given, in
    /// place of the service's own trace context.
    public var setsTraceHeaders: Bool {
        headers.contains { ["traceparent", "tracestate"].contains($0.name.lowercased()) }
    }

    /// GET, HEAD, PUT, DELETE and OPTIONS: the methods that may be retried and hedged.
    public var isIdempotent: Bool { RetryPolicy.idempotentMethods.contains(method) }

    /// The retries that will actually be made at most.
    var effectiveRetries: Int { isIdempotent ? retries : 0 }
    /// The hedge delay, when hedging applies.
    var effectiveHedgeAfter: Duration? { isIdempotent ? hedgeAfter : nil }

    static let fields: Set<String> = ["method", "url", "headers", "body", "retries", "hedge_after_ms"]

    /// Headers the client may not set: the service frames the request and names the host itself.
    static let reservedHeaders: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive",
        "proxy-connection", "te", "trailer",
    ]

    /// Longest `hedge_after_ms` accepted (a day).
    static let maxHedgeMilliseconds = 86_400_000

    static func decode(_ task: JSONValue, path: FieldPath, maxRetries: Int) throws(JobValidationError) -> HTTPSubtask {
        let method = try decodeMethod(task["method"], path: path)

        guard let urlText = try task.string("url", path: path) else {
            throw JobValidationError(field: path.field("url"), detail: "is required")
        }
        let url: UpstreamURL
        do {
            url = try UpstreamURL(parsing: urlText)
        } catch {
            throw JobValidationError(field: path.field("url"), detail: error.reason)
        }

        var headers = try decodeHeaders(task["headers"], path: path)
        var body: [UInt8]?
        switch task["body"] {
        case nil, .null?:
            body = nil
        case .string(let text)?:
            body = Array(text.utf8)
        case let json?:
            var writer = JSONWriter()
            writer.write(json)
            body = writer.bytes
            if !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
                headers.append((name: "content-type", value: "application/json"))
            }
        }

        let retries = try task.integer("retries", path: path, in: 0...maxRetries) ?? 0
        let hedge = try task.integer("hedge_after_ms", path: path, in: 1...maxHedgeMilliseconds)
        return HTTPSubtask(
            method: method,
            url: url,
            headers: headers,
            body: body,
            retries: retries,
            hedgeAfter: hedge.map { .milliseconds($0) }
        )
    }

    private static func decodeMethod(_ value: JSONValue?, path: FieldPath) throws(JobValidationError) -> String {
        guard let value, !value.isNull else { return "GET" }
        guard case .string(let text) = value else {
            throw JobValidationError(field: path.field("method"), detail: "must be a string, got \(value.typeName)")
        }
        let method = text.uppercased()
        guard !method.isEmpty, method.utf8.count <= 32, method.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "-" || $0 == "_") }) else {
            throw JobValidationError(field: path.field("method"), detail: "must be an HTTP method such as GET or POST, got \"\(text)\"")
        }
        guard method != "CONNECT" else {
            throw JobValidationError(field: path.field("method"), detail: "CONNECT is not supported")
        }
        return method
    }

    private static func decodeHeaders(_ value: JSONValue?, path: FieldPath) throws(JobValidationError) -> [(name: String, value: String)] {
        guard let value, !value.isNull else { return [] }
        guard case .object(let members) = value else {
            throw JobValidationError(field: path.field("headers"), detail: "must be an object of strings, got \(value.typeName)")
        }
        var headers: [(name: String, value: String)] = []
        for (name, member) in members {
            guard isToken(name) else {
                throw JobValidationError(field: "\(path.field("headers")).\(name)", detail: "is not a valid header name")
            }
            guard !reservedHeaders.contains(name.lowercased()) else {
                throw JobValidationError(field: "\(path.field("headers")).\(name)", detail: "is set by the service and may not be given")
            }
            guard case .string(let text) = member else {
                throw JobValidationError(field: "\(path.field("headers")).\(name)", detail: "must be a string, got \(member.typeName)")
            }
            guard text.unicodeScalars.allSatisfy({ $0 == "\t" || ($0.value >= 0x20 && $0.value != 0x7F) }) else {
                throw JobValidationError(field: "\(path.field("headers")).\(name)", detail: "must not contain control characters (CR, LF, NUL…)")
            }
            headers.append((name: name, value: text))
        }
        return headers
    }

    /// RFC 9110 token characters.
    private static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default:
                Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
            }
        }
    }
}
