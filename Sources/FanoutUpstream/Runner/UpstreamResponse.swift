public import FanoutCore

/// An upstream's complete answer, and its rendering as the result's `value` (or `response`):
/// `{"status":200,"headers":{...},"body":...,"attempts":N}`.
///
/// - `headers`: names in lower case; a repeated field's values joined with `", "` in arrival order.
/// - `body`: the parsed JSON when the `Content-Type` is JSON (`application/json` or any
///   `application/*+json` type) and the bytes parse as JSON; otherwise the text when the bytes are valid UTF-8;
///   otherwise the bytes in standard base64, and then the object also carries
///   `"body_encoding":"base64"` (absent in every other case). Nothing is ever replaced or lost.
public struct UpstreamResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func == (lhs: UpstreamResponse, rhs: UpstreamResponse) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body
            && lhs.headers.count == rhs.headers.count && zip(lhs.headers, rhs.headers).allSatisfy { $0 == $1 }
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { ASCII.equalIgnoringCase($0.name.utf8, name.utf8) }?.value
    }

    /// Whether the `Content-Type` says JSON (``MediaType/isJSON(_:)``).
    public var isJSON: Bool { MediaType.isJSON(header("content-type")) }

    /// `value` / `response` of the result line.
    public func rendered(attempts: Int) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("status", .number(Double(status))),
            ("headers", .object(renderedHeaders)),
        ]
        if isJSON, let parsed = try? JSONParser.parse(body) {
            members.append(("body", parsed))
        } else if let text = String(validating: body, as: UTF8.self) {
            members.append(("body", .string(text)))
        } else {
            members.append(("body", .string(Base64.encode(body))))
            members.append(("body_encoding", .string("base64")))
        }
        members.append(("attempts", .number(Double(attempts))))
        return .object(members)
    }

    /// Names lower-cased, repeats joined in arrival order. A response has a few headers: they are
    /// found by a scan, and by an index only past `scanLimit` names (a hostile upstream's thousands).
    private var renderedHeaders: [(String, JSONValue)] {
        let scanLimit = 16
        var rendered: [(name: String, value: String)] = []
        rendered.reserveCapacity(headers.count)
        var index: [String: Int] = [:]
        for (name, value) in headers {
            let name = name.lowercased()
            let position = rendered.count <= scanLimit ? rendered.firstIndex { $0.name == name } : index[name]
            if let position {
                rendered[position].value += ", " + value
                continue
            }
            rendered.append((name, value))
            if rendered.count == scanLimit + 1 {
                for (position, header) in rendered.enumerated() { index[header.name] = position }
            } else if rendered.count > scanLimit + 1 {
                index[name] = rendered.count - 1
            }
        }
        return rendered.map { ($0.name, .string($0.value)) }
    }
}
