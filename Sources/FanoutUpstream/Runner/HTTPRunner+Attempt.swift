import FanoutCore
import AsyncHTTPClient
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import FanoutSync

/// How one request to the upstream ended.
enum AttemptOutcome: Sendable {
    /// A complete answer, any status.
    case response(UpstreamResponse)
    /// The body was over the limit; reading stopped and the connection was closed.
    case tooLarge(String)
    /// No answer: refused, reset, unreachable, connect or TLS failure (error code `connect`).
    case failed(String, retryable: Bool)
    case timeout
    case cancelled

    /// Whether this counts as the upstream's answer for hedging (anything but a transport failure).
    var isAnswer: Bool {
        switch self {
        case .response, .tooLarge: true
        case .failed, .timeout, .cancelled: false
        }
    }
}

/// Whether a round's hedge request was sent (its timer fired before the round was decided).
private final class HedgeLaunch: Sendable {
    private let state = Locked(false)

    /// Marks the hedge as sent, unless the calling (timer) task was cancelled already.
    func launchUnlessCancelled() -> Bool {
        state.withLock { launched in
            guard !Task.isCancelled else { return false }
            launched = true
            return true
        }
    }

    var launched: Bool { state.withLock { $0 } }
}

/// An attempt's outcome, and whether a request was actually sent (what `attempts` counts).
struct AttemptReport: Sendable {
    var outcome: AttemptOutcome
    var started: Bool
}

extension HTTPRunner {
    /// One round: a single attempt, or with hedging a first attempt plus, if it has not finished
    /// after `hedge_after_ms`, a second identical one. The first answer wins and the other is
    /// cancelled (its connection closed). A transport failure of one only counts once the other
    /// has failed too, or if the hedge was never sent.
    func attemptRound(
        _ task: HTTPSubtask,
        addresses: [IPAddress],
        first index: Int,
        deadline: ContinuousClock.Instant,
        trace: TraceScope?,
        progress: SubtaskProgress
    ) async -> (outcome: AttemptOutcome, started: Int) {
        let primary = addresses[index % addresses.count]
        guard let hedgeAfter = task.effectiveHedgeAfter else {
            let report = await attempt(task, address: primary, number: index + 1, deadline: deadline, trace: trace, progress: progress)
            return (report.outcome, report.started ? 1 : 0)
        }
        let secondary = addresses[(index + 1) % addresses.count]
        let hedge = HedgeLaunch()
        return await withTaskGroup(of: AttemptReport?.self) { group in
            group.addTask {
                await self.attempt(task, address: primary, number: index + 1, deadline: deadline, trace: trace, progress: progress)
            }
            group.addTask {
                do {
                    try await DeadlineTimer.shared.sleep(until: .now + hedgeAfter)
                } catch {
                    return nil
                }
                guard hedge.launchUnlessCancelled() else { return nil }
                return await self.attempt(task, address: secondary, number: index + 2, hedge: true, deadline: deadline, trace: trace, progress: progress)
            }
            var started = 0
            var decided: AttemptOutcome?
            var firstFailure: AttemptOutcome?
            var pending = 2
            while let report = await group.next() {
                pending -= 1
                guard let report else { continue }
                if report.started { started += 1 }
                guard decided == nil else { continue }
                if report.outcome.isAnswer {
                    decided = report.outcome
                    group.cancelAll()
                    continue
                }
                if firstFailure == nil { firstFailure = report.outcome }
                // The other one is still running: wait for it, unless it is the hedge's timer.
                if pending > 0, !hedge.launched {
                    group.cancelAll()
                }
            }
            return (decided ?? firstFailure ?? .cancelled, started)
        }
    }

    /// One request: a host slot, a client, the request to `address`, the body up to the limit.
    ///
    /// An idempotent request that fails on a reused pooled connection before any of the answer
    /// arrived (the upstream closed the connection as it sat idle: "Connection reset by peer",
    /// "I/O on closed channel") is sent once more at once, on a fresh connection, as Go's net/http
    /// does. That resend is part of this attempt: it counts neither against `retries` nor in
    /// `attempts`, and only the attempt's final outcome is reported to `onAttempt`.
    ///
    /// Each attempt (a hedge too) is a child of the subtask's point in the trace, `trace`: a
    /// client span when spans are recorded, and always the `traceparent` the upstream is sent.
    func attempt(
        _ task: HTTPSubtask,
        address: IPAddress,
        number: Int,
        hedge: Bool = false,
        deadline: ContinuousClock.Instant,
        trace: TraceScope?,
        progress: SubtaskProgress
    ) async -> AttemptReport {
        let call = trace?.child("\(task.method)", kind: .client)
        if let span = call?.span {
            span.set("http.request.method", task.method)
            span.set("server.address", task.url.hostText)
            span.set("server.port", task.url.port)
            span.set("network.peer.address", address.urlHost)
            span.set("fanout.attempt", number)
            if hedge { span.set("fanout.hedge", "true") }
        }
        let report = await attempt(task, address: address, number: number, deadline: deadline, call: call?.context, progress: progress)
        if let span = call?.span { Self.end(span, with: report) }
        return report
    }

    /// Ends an attempt's span with its outcome (an error status from 500 up, as OpenTelemetry's
    /// HTTP conventions say for a client span).
    private static func end(_ span: any RecordingSpan, with report: AttemptReport) {
        switch report.outcome {
        case .response(let response):
            span.set("http.response.status_code", response.status)
            span.end(failure: response.status >= 500 ? "the upstream answered \(response.status)" : nil)
        case .tooLarge(let message): span.end(failure: message)
        case .failed(let message, _): span.end(failure: message)
        case .timeout: span.end(failure: "the deadline passed")
        case .cancelled: span.end(failure: report.started ? "cancelled" : "cancelled before it was sent")
        }
    }

    private func attempt(
        _ task: HTTPSubtask,
        address: IPAddress,
        number: Int,
        deadline: ContinuousClock.Instant,
        call: TraceContext?,
        progress: SubtaskProgress
    ) async -> AttemptReport {
        let key = task.url.hostAndPort
        let load = limiter.load(key)
        if load.inUse >= limiter.limit {
            progress.set(.waitingForSlot(key: key, waiting: load.waiting + 1, inFlight: limiter.limit))
        }
        do {
            try await limiter.acquire(key)
        } catch {
            return AttemptReport(outcome: .cancelled, started: false)
        }
        defer { limiter.release(key) }

        var exchange = await send(task, address: address, number: number, deadline: deadline, call: call, progress: progress, fresh: false)
        if exchange.lostReusedConnection, task.isIdempotent, !Task.isCancelled {
            configuration.logger.debug(
                "resending on a fresh connection: a pooled one was closed before answering",
                metadata: ["upstream": "\(address.urlHost):\(task.url.port)", "method": "\(task.method)"]
            )
            exchange = await send(task, address: address, number: number, deadline: deadline, call: call, progress: progress, fresh: true)
        }
        guard let outcome = exchange.outcome else { return AttemptReport(outcome: .cancelled, started: false) }
        if case .failed = outcome { configuration.onAttempt?("error") }
        return AttemptReport(outcome: outcome, started: true)
    }

    /// How one request on one connection went.
    private struct Exchange {
        /// nil when no client was leased (the runner was shut down).
        var outcome: AttemptOutcome?
        /// It failed before any answer, on a connection that had carried a request before.
        var lostReusedConnection = false
    }

    private func send(
        _ task: HTTPSubtask,
        address: IPAddress,
        number: Int,
        deadline: ContinuousClock.Instant,
        call: TraceContext?,
        progress: SubtaskProgress,
        fresh: Bool
    ) async -> Exchange {
        guard let lease = clients.lease(task.url, address: address, fresh: fresh) else { return Exchange() }
        defer { clients.giveBack(lease) }

        var request = HTTPClientRequest(url: lease.url)
        request.method = HTTPMethod(rawValue: task.method)
        if let host = lease.hostHeader { request.headers.add(name: "host", value: host) }
        for (name, value) in task.headers { request.headers.add(name: name, value: value) }
        // A subtask that names its own trace headers sends those instead.
        if let call, !task.setsTraceHeaders {
            request.headers.add(name: "traceparent", value: call.traceparent)
            if !call.state.isEmpty { request.headers.add(name: "tracestate", value: call.state) }
        }
        if let body = task.body { request.body = .bytes(body) }

        progress.set(.waitingForResponse(address, port: task.url.port, attempt: number))
        let remaining = max(deadline - .now, .zero) + Self.clientDeadlineSlack
        let spy = ConnectionSpy(wrapping: configuration.logger.handler, reuse: clients.reuse)
        var logger = configuration.logger
        logger.handler = spy
        let response: HTTPClientResponse
        do {
            response = try await lease.client.execute(
                request,
                deadline: .now() + .nanoseconds(remaining.wholeNanoseconds),
                logger: logger
            )
        } catch {
            if Task.isCancelled { return Exchange(outcome: .cancelled) }
            let outcome = Self.classify(error, address: address, port: task.url.port)
            // Handed to a pooled connection that had carried a request before; or found the pooled
            // connection closed before it was written to it at all.
            let lost = Self.isConnectionLoss(error)
                && (spy.reusedConnection || (!spy.reachedConnection && Self.isClosedChannel(error)))
            return Exchange(outcome: outcome, lostReusedConnection: lost && !fresh)
        }
        let status = Int(response.status.code)
        configuration.onAttempt?((200...599).contains(status) ? "\(status / 100)xx" : "error")
        progress.set(.readingBody(task.url, attempt: number))
        do {
            return Exchange(outcome: try await readBody(response, status: status))
        } catch {
            if Task.isCancelled { return Exchange(outcome: .cancelled) }
            return Exchange(outcome: Self.classify(error, address: address, port: task.url.port))
        }
    }

    /// The connection went away under the request (closed or reset by the peer, or found closed).
    static func isConnectionLoss(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError { return error == .remoteConnectionClosed }
        if let error = error as? IOError { return [ECONNRESET, EPIPE].contains(error.errnoCode) }
        return isClosedChannel(error)
    }

    private static func isClosedChannel(_ error: any Error) -> Bool {
        guard let error = error as? ChannelError else { return false }
        switch error {
        case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed: return true
        default: return false
        }
    }

    /// Reads the body, stopping as soon as it is over the limit: returning drops the body stream,
    /// which makes AsyncHTTPClient cancel the request and close the connection.
    private func readBody(_ response: HTTPClientResponse, status: Int) async throws -> AttemptOutcome {
        let limit = configuration.maxResponseBytes
        let tooLarge = "the upstream's body (status \(status)) is over limits.max_response_bytes (\(limit) bytes)"
        if let declared = response.headers.first(name: "content-length").flatMap({ Int($0) }), declared > limit {
            return .tooLarge(tooLarge)
        }
        var body: [UInt8] = []
        for try await chunk in response.body {
            guard body.count + chunk.readableBytes <= limit else { return .tooLarge(tooLarge) }
            body.append(contentsOf: chunk.readableBytesView)
        }
        let headers = response.headers.map { (name: $0.name, value: $0.value) }
        return .response(UpstreamResponse(status: status, headers: headers, body: body))
    }

    /// Maps a client error to an outcome. Failures to connect or of the connection are `connect`
    /// and retryable; TLS and protocol errors are `connect` too but not retried (another try
    /// would fail the same way).
    static func classify(_ error: any Error, address: IPAddress, port: Int) -> AttemptOutcome {
        let target = "\(address.urlHost):\(port)"
        if error is CancellationError { return .cancelled }
        if let error = error as? HTTPClientError {
            switch error {
            case .cancelled: return .cancelled
            case .deadlineExceeded: return .timeout
            case .connectTimeout: return .failed("connecting to \(target) timed out", retryable: true)
            case .remoteConnectionClosed: return .failed("\(target) closed the connection before answering in full", retryable: true)
            case .tlsHandshakeTimeout: return .failed("the TLS handshake with \(target) timed out", retryable: true)
            case .readTimeout, .writeTimeout: return .failed("the connection to \(target) stalled", retryable: true)
            default: return .failed("the request to \(target) failed: \(error)", retryable: false)
            }
        }
        if let error = error as? IOError {
            return .failed("connection to \(target) failed: \(String(cString: strerror(error.errnoCode)))", retryable: true)
        }
        if let error = error as? ChannelError {
            return .failed("connection to \(target) failed: \(error)", retryable: true)
        }
        return .failed("the request to \(target) failed: \(error)", retryable: false)
    }
}
