import Dispatch
import TestSupport
import Testing
import Logging
import MicroHTTPServer
import FanoutSync

/// 8 KiB chunks written by `/flood`: 32 MiB, well over what loopback socket buffers hold.
let floodChunks = 4096

/// What the test handler's streams observed.
final class StreamProbe: Sendable {
    struct State {
        var cancelled = 0
        /// `/observed` producers told of their close (``ResponseStream/onClose(_:)``).
        var closesObserved = 0
        var bytesWritten = 0
        var writesFailed = 0
        /// `/gate` requests waiting in `respond(to:)` for ``StreamProbe/openGate()``.
        var gated: [CheckedContinuation<Void, Never>] = []
        var gateOpen = false
        /// Requests whose body reached `respond(to:)`.
        var bodiesRead = 0
        /// `/driven` producers that called their `ending`.
        var drivenEnded = 0
    }

    let state = Locked(State())
    var snapshot: (cancelled: Int, closesObserved: Int, bytesWritten: Int, writesFailed: Int, gated: Int, bodiesRead: Int, drivenEnded: Int) {
        state.withLock { ($0.cancelled, $0.closesObserved, $0.bytesWritten, $0.writesFailed, $0.gated.count, $0.bodiesRead, $0.drivenEnded) }
    }

    /// Waits until the test opens the gate.
    func passGate() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if state.gateOpen { return true }
                state.gated.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    func openGate() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.gateOpen = true
            defer { state.gated = [] }
            return state.gated
        }
        for continuation in waiting { continuation.resume() }
    }
}

/// Fired once, from any thread; waited for by one task.
final class Signal: Sendable {
    private let state = Locked<(fired: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func fire() {
        state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.fired = true
            return state.waiter.take()
        }?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let fired = state.withLock { state -> Bool in
                if !state.fired { state.waiter = continuation }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }
}

/// A handler exercising every response shape the server offers.
struct TestHandler: HTTPHandler {
    let probe: StreamProbe

    /// `/echo` and `/gate` read their body; `/refuse` is answered on the head; the rest are GETs.
    func head(_ request: HTTPRequest) -> HeadDecision {
        switch request.path {
        case "/echo", "/gate":
            if request.bodyTooLarge { return .respond(HTTPResponse(status: 413, contentType: "text/plain", text: "too large")) }
            return .readBody
        case "/refuse":
            return .respond(HTTPResponse(status: 403, contentType: "text/plain", text: "refused on the head"))
        default:
            return .respond(answer(request))
        }
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        if request.bodyTooLarge { return HTTPResponse(status: 413, contentType: "text/plain", text: "too large") }
        probe.state.withLock { $0.bodiesRead += 1 }
        switch request.path {
        case "/echo":
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream")], body: .bytes(request.body))
        case "/gate":
            await probe.passGate()
            return HTTPResponse(status: 200, contentType: "text/plain", text: "\(request.body.count)")
        default:
            return HTTPResponse(status: 404, contentType: "text/plain", text: "no")
        }
    }

    func answer(_ request: HTTPRequest) -> HTTPResponse {
        let probe = self.probe
        switch request.path {
        case "/hello":
            return HTTPResponse(status: 200, contentType: "text/plain", text: "hello")
        case "/headers":
            return HTTPResponse(status: 200, contentType: "text/plain", text: request.headers["X-Probe"] ?? "none")
        case "/peer":
            return HTTPResponse(status: 200, contentType: "text/plain", text: request.peer ?? "none")
        case "/stream":
            return HTTPResponse(status: 200, headers: [("Content-Type", "application/x-ndjson")], body: .stream { stream in
                try? await stream.write(Array("line1\n".utf8))
                try? await Task.sleep(for: TestTime.scaled(.milliseconds(400)))
                try? await stream.write(Array("line2\n".utf8))
            })
        case "/forever":
            return HTTPResponse(status: 200, body: .stream { stream in
                try? await stream.write(Array("started\n".utf8))
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    probe.state.withLock { $0.cancelled += 1 }
                }
            })
        case "/observed":
            // Runs in the server's own task (nothing cancels it): it waits until it is told.
            return HTTPResponse(status: 200, body: .closeObservingStream(ClosureProducer { stream in
                try? await stream.write(Array("started\n".utf8))
                let told = Signal()
                stream.onClose { told.fire() }
                await told.wait()
                probe.state.withLock { $0.closesObserved += 1 }
            }))
        case "/driven":
            // No task: a line now, one from a queue 200 ms later, then the end.
            return HTTPResponse(status: 200, body: .drivenStream(DrivenProducer(probe: probe, endsAfterSecondLine: true)))
        case "/driven-held":
            // No task: a line now, then the end only once told of the close (100 ms later).
            return HTTPResponse(status: 200, body: .drivenStream(DrivenProducer(probe: probe, endsAfterSecondLine: false)))
        case "/sixteen":
            // 16 writes of 8 KiB, each larger than MHD's read block.
            return HTTPResponse(status: 200, body: .stream { stream in
                for index in 0..<16 {
                    try? await stream.write([UInt8](repeating: UInt8(ascii: "a") + UInt8(index), count: 8192))
                }
            })
        case "/flood":
            return HTTPResponse(status: 200, body: .stream { stream in
                let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 8192)
                for _ in 0..<floodChunks {
                    do {
                        try await stream.write(chunk)
                        probe.state.withLock { $0.bytesWritten += chunk.count }
                    } catch {
                        probe.state.withLock { $0.writesFailed += 1 }
                        return
                    }
                }
            })
        default:
            return HTTPResponse(status: 404, contentType: "text/plain", text: "no")
        }
    }
}

/// Runs `body` against a started server on 127.0.0.1 with an ephemeral port, then shuts it down.
/// The server's tasks (``HTTPServer/run()``) run beside `body`.
func withTestServer<T>(
    maxBodyBytes: Int = 1024,
    maxPendingBodyBytes: Int = 64 * 1024 * 1024,
    streamBufferBytes: Int = 16 * 1024,
    _ body: (HTTPServer, Int, StreamProbe) async throws -> T
) async throws -> T {
    let probe = StreamProbe()
    let server = HTTPServer(
        configuration: HTTPServerConfiguration(
            host: "127.0.0.1", port: 0, threads: 2, connectionLimit: 256,
            maxBodyBytes: maxBodyBytes, maxPendingBodyBytes: maxPendingBodyBytes,
            streamBufferBytes: streamBufferBytes, watchdogIntervalMilliseconds: 100
        ),
        handler: TestHandler(probe: probe),
        logger: Logger(label: "test")
    )
    try server.start()
    let port = try #require(server.port)
    async let serving: Void = server.run()
    do {
        let result = try await body(server, port, probe)
        probe.openGate()
        await server.shutdown(gracePeriod: .seconds(1))
        await serving
        return result
    } catch {
        probe.openGate()
        await server.shutdown(gracePeriod: .seconds(1))
        await serving
        throw error
    }
}


/// A ``StreamProducer`` made of a closure, for the tests' streams.
final class ClosureProducer: StreamProducer {
    let body: @Sendable (ResponseStream) async -> Void

    init(_ body: @escaping @Sendable (ResponseStream) async -> Void) {
        self.body = body
    }

    func produce(into stream: ResponseStream) async {
        await body(stream)
    }
}

/// A ``DrivenStreamProducer`` whose writes come from a Dispatch queue, not from a task.
final class DrivenProducer: DrivenStreamProducer {
    let probe: StreamProbe
    let endsAfterSecondLine: Bool

    init(probe: StreamProbe, endsAfterSecondLine: Bool) {
        self.probe = probe
        self.endsAfterSecondLine = endsAfterSecondLine
    }

    func start(into stream: ResponseStream, ending: StreamEnding) {
        let probe = self.probe
        let end: @Sendable () -> Void = {
            probe.state.withLock { $0.drivenEnded += 1 }
            ending()
        }
        stream.write([Array("started\n".utf8)]) { _ in }
        if endsAfterSecondLine {
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(200)) {
                stream.write([Array("later\n".utf8)]) { _ in end() }
            }
        } else {
            stream.onClose {
                probe.state.withLock { $0.closesObserved += 1 }
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100), execute: end)
            }
        }
    }
}

/// Opens `count` connections, each a GET of `path` whose stream has written its `started` line.
func openStartedStreams(_ count: Int, path: String, port: Int) async throws -> [RawConnection] {
    var connections: [RawConnection] = []
    for _ in 0..<count {
        let connection = try await RawConnection.connect(port: port)
        try await connection.send(RawRequest.text(method: "GET", path: path))
        let head = try await connection.readHead()
        #expect(try await connection.readLine(head) == "started")
        connections.append(connection)
    }
    return connections
}

/// Expects the server to have closed each connection (within 2 s), and closes it.
func expectClosedByServer(_ connections: [RawConnection]) async throws {
    for connection in connections {
        #expect(try await connection.peerClosed(within: .seconds(2)))
        connection.close()
    }
}
