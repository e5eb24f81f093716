import FanoutCore
import Logging
import MicroHTTPServer
import FanoutSync
import TestSupport
import Testing

@testable import FanoutService

/// Submits a job with `"detach": true` (merged into `job`'s object) and returns the 202's status document.
func detach(_ job: String, port: Int, headers: [(String, String)] = []) async throws -> (exchange: HTTPExchange, status: JSONValue) {
    let body = "{\"detach\":true," + job.dropFirst()
    let exchange = try await HTTPExchange.send(
        port: port, method: "POST", path: "/v1/jobs", headers: [("Content-Type", "application/json")] + headers, body: body
    )
    #expect(exchange.head.status == 202, "\(exchange.text)")
    return (exchange, try JSONParser.parse(exchange.body))
}

/// `GET path` answered with JSON.
func getJSON(_ path: String, port: Int, headers: [(String, String)] = []) async throws -> (status: Int, json: JSONValue?) {
    let exchange = try await HTTPExchange.send(port: port, method: "GET", path: path, headers: headers)
    return (exchange.head.status, try? JSONParser.parse(exchange.body))
}

/// The status code of a request whose answer may have no body (204).
func statusCode(_ method: String, _ path: String, port: Int, headers: [(String, String)] = []) async throws -> Int {
    let connection = try await RawConnection.connect(port: port)
    defer { connection.close() }
    try await connection.send(RawRequest.text(method: method, path: path, headers: headers))
    return try await connection.readHead().status
}

/// A job's events read to the end as NDJSON lines (each as text, and parsed).
func readEvents(_ id: String, port: Int, query: String = "", headers: [(String, String)] = []) async throws -> [(text: String, json: JSONValue)] {
    let connection = try await RawConnection.connect(port: port)
    defer { connection.close() }
    try await connection.send(RawRequest.text(method: "GET", path: "/v1/jobs/\(id)/events\(query)", headers: headers))
    let head = try await connection.readHead()
    #expect(head.status == 200)
    #expect(head.header("Content-Type") == "application/x-ndjson")
    var lines: [(String, JSONValue)] = []
    while let line = try await connection.readLine(head) { lines.append((line, try JSONParser.parse(Array(line.utf8)))) }
    return lines
}

/// One Server-Sent Event.
struct ServerSentEvent: Equatable {
    var id: String?
    var event: String?
    var data: String
}

/// Parses an SSE body: the `retry:` hint and the events.
func parseEvents(_ text: String) -> (retry: Int?, events: [ServerSentEvent]) {
    var retry: Int?
    var events: [ServerSentEvent] = []
    for block in text.split(separator: "\n\n", omittingEmptySubsequences: true) {
        var event = ServerSentEvent(data: "")
        var sawData = false
        for line in block.split(separator: "\n") {
            if line.hasPrefix("retry: ") { retry = Int(line.dropFirst(7)) }
            if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
            if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") { event.data = String(line.dropFirst(6)); sawData = true }
        }
        if sawData { events.append(event) }
    }
    return (retry, events)
}

/// `seq` of each line, which must be `from, from + 1, …`.
func checkContiguous(_ lines: [JSONValue], from first: Int, sourceLocation: SourceLocation = #_sourceLocation) {
    let seqs = lines.compactMap { $0["seq"]?.numberValue.map(Int.init) }
    #expect(seqs == Array(first..<(first + lines.count)), sourceLocation: sourceLocation)
}

/// A loopback upstream that counts requests per path and answers `{"ok":true}` after the
/// milliseconds its last path segment names.
struct CountingUpstream {
    final class Handler: HTTPHandler {
        let hits = Locked<[String: Int]>([:])

        func head(_ request: HTTPRequest) -> HeadDecision {
            .respond(answer(request))
        }

        func respond(to request: HTTPRequest) async -> HTTPResponse {
            answer(request)
        }

        private func answer(_ request: HTTPRequest) -> HTTPResponse {
            hits.withLock { $0[request.path, default: 0] += 1 }
            let delay = Int(request.path.split(separator: "/").last ?? "") ?? 0
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: .stream { stream in
                try? await Task.sleep(for: .milliseconds(delay))
                try? await stream.write(Array(#"{"ok":true}"#.utf8))
            })
        }
    }

    let handler = Handler()
    let server: HTTPServer

    init() throws {
        server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, threads: 1, connectionTimeoutSeconds: 30),
            handler: handler, logger: Logger(label: "upstream")
        )
        try server.start()
        // Its streams run in `run()`, which returns once `shutdown()` has stopped the server.
        Task { [server] in await server.run() }
    }

    var port: Int { server.port ?? 0 }
    func count(_ path: String) -> Int { handler.hits.withLock { $0[path, default: 0] } }
    var total: Int { handler.hits.withLock { $0.values.reduce(0, +) } }
}
