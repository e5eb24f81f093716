/// One request and its whole response, for tests that do not care about timing.
public struct HTTPExchange: Sendable {
    public var head: RawConnection.Head
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Sends one request on a new connection and reads the whole response.
    public static func send(
        port: Int,
        method: String,
        path: String,
        headers: [(String, String)] = [],
        body: String? = nil,
        version: String = "HTTP/1.1"
    ) async throws -> HTTPExchange {
        let connection = try await RawConnection.connect(port: port)
        defer { connection.close() }
        try await connection.send(RawRequest.text(method: method, path: path, headers: headers, body: body, version: version))
        let head = try await connection.readHead()
        let bytes = try await connection.readBody(head)
        return HTTPExchange(head: head, body: bytes)
    }
}

/// Builds request text.
public enum RawRequest {
    public static func text(
        method: String,
        path: String,
        headers: [(String, String)] = [],
        body: String? = nil,
        version: String = "HTTP/1.1"
    ) -> String {
        var text = "\(method) \(path) \(version)\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n"
        if let body { text += body }
        return text
    }

    /// A `POST /v1/jobs` with a JSON body.
    public static func job(_ json: String, version: String = "HTTP/1.1", extraHeaders: [(String, String)] = []) -> String {
        text(method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")] + extraHeaders, body: json, version: version)
    }
}
