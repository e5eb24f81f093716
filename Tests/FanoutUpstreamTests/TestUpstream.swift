import TestSupport
import FanoutCore
import Logging
import MicroHTTPServer
import FanoutSync
import Synchronization

/// What the test upstream saw, per path or per token (the path segment that makes a test's
/// stateful endpoint its own, so tests running in parallel never share state).
final class UpstreamProbe: Sendable {
    struct State {
        /// Requests per path.
        var hits: [String: Int] = [:]
        /// Requests per token.
        var calls: [String: Int] = [:]
        /// Streamed responses per token whose client went away before they finished.
        var closed: [String: Int] = [:]
        var inFlight: [String: Int] = [:]
        var maxInFlight: [String: Int] = [:]
        /// Client address:port per token: one per connection used.
        var peers: [String: Set<String>] = [:]
    }

    let state = Locked(State())

    var totalHits: Int { state.withLock { $0.hits.values.reduce(0, +) } }
    func hits(_ path: String) -> Int { state.withLock { $0.hits[path, default: 0] } }
    func calls(_ token: String) -> Int { state.withLock { $0.calls[token, default: 0] } }
    func closed(_ token: String) -> Int { state.withLock { $0.closed[token, default: 0] } }
    func maxInFlight(_ token: String) -> Int { state.withLock { $0.maxInFlight[token, default: 0] } }
    func peers(_ token: String) -> Set<String> { state.withLock { $0.peers[token, default: []] } }

    /// Counts a call for `token` and returns its number (1 for the first).
    func call(_ token: String, peer: String?) -> Int {
        state.withLock { state in
            state.calls[token, default: 0] += 1
            if let peer { state.peers[token, default: []].insert(peer) }
            return state.calls[token, default: 0]
        }
    }

    func markClosed(_ token: String) { state.withLock { $0.closed[token, default: 0] += 1 } }
}

/// The upstream the tests call, on the project's own server.
///
/// | path | answer |
/// | --- | --- |
/// | `/json` | 200 `application/json` `{"hello":"world","n":1}` |
/// | `/text` | 200 `text/plain` |
/// | `/binary` | 200 bytes that are not UTF-8 |
/// | `/echo` | 200 JSON: the request's method, headers and body |
/// | `/status/<code>` | that status, text body `status <code>` |
/// | `/big` | 200 with a 300,000-byte body (`Content-Length`) |
/// | `/redirect` | 302 to `/json` |
/// | `/slow/<ms>` | the body after `<ms>` |
/// | `/flaky/<token>/<n>/<code>` | `<code>` for the first `<n>` calls, then 200 JSON |
/// | `/retry-after/<token>/<s>` | 429 with `Retry-After: <s>` on the first call, then 200 JSON |
/// | `/hang/<token>` | never answers; counts the close |
/// | `/endless/<token>` | an endless body; counts the close |
/// | `/tail/<token>/<ms>` | first call answers after `<ms>` (counts a close), later ones at once |
/// | `/concurrency/<token>/<ms>` | answers after `<ms>`, tracking requests in flight and connections |
/// | `/keep-alive/<token>/<s>` | 200 JSON with `Keep-Alive: timeout=<s>`, tracking connections |
struct UpstreamHandler: HTTPHandler {
    let probe: UpstreamProbe

    static let jsonBody = #"{"hello":"world","n":1}"#
    static let binaryBody: [UInt8] = [0xFF, 0xFE, 0x00, 0x41, 0xC3]

    /// A request with a body is read whole (as a real upstream would); the others are answered on the head.
    func head(_ request: HTTPRequest) -> HeadDecision {
        let hasBody = request.headers["Content-Length"].map { $0 != "0" } ?? false || request.headers["Transfer-Encoding"] != nil
        return hasBody ? .readBody : .respond(answer(request))
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        answer(request)
    }

    func answer(_ request: HTTPRequest) -> HTTPResponse {
        let probe = self.probe
        probe.state.withLock { $0.hits[request.path, default: 0] += 1 }
        let parts = request.path.split(separator: "/").map(String.init)
        let token = parts.count > 1 ? parts[1] : ""
        func number(_ index: Int) -> Int { parts.count > index ? Int(parts[index]) ?? 0 : 0 }
        let ok = HTTPResponse(status: 200, contentType: "application/json", text: #"{"ok":true}"#)

        switch parts.first ?? "" {
        case "json":
            return HTTPResponse(status: 200, contentType: "application/json; charset=utf-8", text: Self.jsonBody)
        case "text":
            return HTTPResponse(status: 200, contentType: "text/plain", text: "plain text")
        case "binary":
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream")], body: .bytes(Self.binaryBody))
        case "echo":
            var headers: [(String, JSONValue)] = []
            for (name, value) in request.headers { headers.append((name.lowercased(), .string(value))) }
            let echo = JSONValue.object([
                ("method", .string(request.method)),
                ("headers", .object(headers)),
                ("body", .string(String(decoding: request.body, as: UTF8.self))),
            ])
            return HTTPResponse(status: 200, contentType: "application/json", text: echo.jsonText)
        case "status":
            return HTTPResponse(status: number(1), contentType: "text/plain", text: "status \(number(1))")
        case "big":
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: .bytes(Array(repeating: UInt8(ascii: "b"), count: 300_000)))
        case "redirect":
            return HTTPResponse(status: 302, headers: [("Location", "/json")], body: .bytes([]))
        case "slow":
            let delay = number(1)
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: .stream { stream in
                try? await Task.sleep(for: .milliseconds(delay))
                try? await stream.write(Array("slow".utf8))
            })
        case "flaky":
            let failures = number(2)
            let code = number(3)
            guard probe.call(token, peer: request.peer) > failures else {
                return HTTPResponse(status: code, contentType: "text/plain", text: "failing \(code)")
            }
            return ok
        case "retry-after":
            guard probe.call(token, peer: request.peer) > 1 else {
                return HTTPResponse(status: 429, contentType: "text/plain", text: "slow down", headers: [("Retry-After", String(number(2)))])
            }
            return ok
        case "hang":
            _ = probe.call(token, peer: request.peer)
            return HTTPResponse(status: 200, body: .stream { _ in
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    probe.markClosed(token)
                }
            })
        case "endless":
            _ = probe.call(token, peer: request.peer)
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: .stream { stream in
                let chunk = [UInt8](repeating: UInt8(ascii: "e"), count: 16 * 1024)
                while true {
                    do {
                        try await stream.write(chunk)
                    } catch {
                        probe.markClosed(token)
                        return
                    }
                }
            })
        case "tail":
            let delay = number(2)
            guard probe.call(token, peer: request.peer) == 1 else { return ok }
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: .stream { stream in
                do {
                    try await Task.sleep(for: .milliseconds(delay))
                    try await stream.write(Array(#"{"ok":"late"}"#.utf8))
                } catch {
                    probe.markClosed(token)
                }
            })
        case "concurrency":
            let delay = number(2)
            _ = probe.call(token, peer: request.peer)
            probe.state.withLock { state in
                state.inFlight[token, default: 0] += 1
                state.maxInFlight[token] = max(state.maxInFlight[token, default: 0], state.inFlight[token, default: 0])
            }
            return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: .stream { stream in
                try? await Task.sleep(for: .milliseconds(delay))
                probe.state.withLock { $0.inFlight[token, default: 0] -= 1 }
                try? await stream.write(Array("done".utf8))
            })
        case "keep-alive":
            _ = probe.call(token, peer: request.peer)
            return HTTPResponse(status: 200, contentType: "application/json", text: #"{"ok":true}"#, headers: [("Keep-Alive", "timeout=\(number(2))")])
        default:
            return HTTPResponse(status: 404, contentType: "text/plain", text: "no such endpoint")
        }
    }
}

/// A started test upstream.
struct TestUpstream: Sendable {
    let server: HTTPServer
    let probe: UpstreamProbe
    let host: String
    let port: Int

    func url(_ path: String) -> String { "http://\(host):\(port)\(path)" }
}

/// Runs `body` against a fresh upstream on `host` (loopback) and an ephemeral port, then stops it.
/// `keepAliveSeconds`: how long the upstream keeps an idle connection open before closing it.
func withUpstream<T>(
    host: String = "127.0.0.1",
    keepAliveSeconds: Int = 30,
    _ body: (TestUpstream) async throws -> T
) async throws -> T {
    let probe = UpstreamProbe()
    let server = HTTPServer(
        configuration: HTTPServerConfiguration(
            host: host, port: 0, threads: 2, connectionTimeoutSeconds: keepAliveSeconds, watchdogIntervalMilliseconds: 20
        ),
        handler: UpstreamHandler(probe: probe),
        logger: Logger(label: "test-upstream")
    )
    try server.start()
    guard let port = server.port else { throw TestFailure("the upstream did not report its port") }
    let upstream = TestUpstream(server: server, probe: probe, host: host, port: port)
    async let serving: Void = server.run()
    do {
        let result = try await body(upstream)
        await server.shutdown(gracePeriod: .zero)
        await serving
        return result
    } catch {
        await server.shutdown(gracePeriod: .zero)
        await serving
        throw error
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A token no other test uses.
enum Token {
    private static let counter = Atomic<Int>(0)

    static func next() -> String {
        "t\(counter.add(1, ordering: .relaxed).newValue)"
    }
}

