internal import AsyncHTTPClient
internal import FanoutCore
internal import NIOCore
internal import NIOHTTP1

/// The connection could not be made or broke (refused, reset, timed out, cut mid-stream):
/// worth retrying with the same Idempotency-Key or resuming from the last seq.
struct TransportFailure: Error, CustomStringConvertible {
    var description: String
    /// The server's `Retry-After`, when it asked to come back later (429/503/409).
    var retryAfter: Duration?
}

/// fanoutd's HTTP API as the client sees it. One HTTP client for the whole run.
final class FanoutClient: Sendable {
    let base: String
    let token: String?
    private let http: HTTPClient

    init(base: String, token: String?) {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.token = token
        var configuration = HTTPClient.Configuration()
        // A stream is silent at most `heartbeat_ms` (15 s by default): a minute of silence is a dead link.
        // AsyncHTTPClient retries a refused connect until the connect timeout, so that timeout is
        // also how long one attempt against a server that is down takes: keep it short.
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(60))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async { try? await http.shutdown() }

    /// Sends a request; transport errors become `TransportFailure`.
    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            // The deadline covers the answer's head only (a submission's upload and validation),
            // not the streamed body.
            return try await http.execute(request, deadline: .now() + .seconds(120))
        } catch {
            throw TransportFailure(description: "\(base): \(Self.describe(error))")
        }
    }

    /// A whole JSON answer; an error status becomes the server's problem as a `CLIFailure`.
    func json(_ method: HTTPMethod, _ path: String) async throws -> JSONValue {
        let response = try await send(method, path)
        let body = try await Self.collect(response)
        guard (200..<300).contains(response.status.code) else { throw CLIFailure.answer(status: Int(response.status.code), body: body) }
        do { return try JSONParser.parse(body) } catch {
            throw CLIFailure(message: "the server's answer to \(method) \(path) is not JSON: \(error)")
        }
    }

    static func collect(_ response: HTTPClientResponse) async throws -> [UInt8] {
        do {
            let buffer = try await response.body.collect(upTo: 16 << 20)
            return Array(buffer.readableBytesView)
        } catch {
            throw TransportFailure(description: "reading the answer: \(describe(error))")
        }
    }

    /// The `Retry-After` seconds of an answer, if any.
    static func retryAfter(_ response: HTTPClientResponse) -> Duration? {
        guard let value = response.headers.first(name: "Retry-After"), let seconds = Int(value) else { return nil }
        return .seconds(max(0, seconds))
    }

    /// An error in words, without the type names a user cannot act on.
    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("readTimeout") { return "no data for 60 s" }
        if text.contains("connectTimeout") { return "connect timed out" }
        if text.contains("remoteConnectionClosed") || text.contains("Connection reset") { return "connection closed by the server" }
        return text
    }
}
