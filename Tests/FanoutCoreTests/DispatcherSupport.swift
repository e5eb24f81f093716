import FanoutSync
import Testing

@testable import FanoutCore

/// Collects the dispatcher's lines with their arrival times; can hold sends (a slow client) or fail
/// them (a vanished client).
final class CollectingSink: LineSink {
    struct State {
        var lines: [(at: Duration, json: JSONValue)] = []
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var failAfter: Int?
        var sends = 0
    }

    let start = ContinuousClock.now
    let state = Locked(State())

    init(held: Bool = false, failAfter: Int? = nil) {
        state.withLock {
            $0.held = held
            $0.failAfter = failAfter
        }
    }

    struct Gone: Error {}

    func send(_ bytes: [UInt8]) async throws {
        let fail = state.withLock { state -> Bool in
            state.sends += 1
            if let limit = state.failAfter, state.sends > limit { return true }
            return false
        }
        if fail { throw Gone() }
        let at = ContinuousClock.now - start
        var parsed: [(Duration, JSONValue)] = []
        for line in bytes.split(separator: 10) {
            parsed.append((at, try JSONParser.parse(Array(line))))
        }
        #expect(bytes.last == 10, "every send ends with a newline")
        state.withLock { $0.lines += parsed.map { (at: $0.0, json: $0.1) } }
        await withCheckedContinuation { continuation in
            let proceed = state.withLock { state -> Bool in
                if state.held {
                    state.waiters.append(continuation)
                    return false
                }
                return true
            }
            if proceed { continuation.resume() }
        }
    }

    func release() {
        let waiters = state.withLock { state in
            state.held = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var lines: [JSONValue] { state.withLock { $0.lines.map(\.json) } }
    var timedLines: [(at: Duration, json: JSONValue)] { state.withLock { $0.lines } }
    var results: [JSONValue] { lines.filter { $0["event"] == .string("result") } }
}

/// A ``NonBlockingLineSink`` (as the response stream is): lines are taken at once; while `held`,
/// readiness is told only on ``release()``; after `failAfter` offers, the client is gone.
final class OfferingSink: NonBlockingLineSink {
    private struct State {
        var lines: [JSONValue] = []
        /// Each offer's pieces' sizes.
        var offers: [[Int]] = []
        var held: Bool
        var waiting: [@Sendable (Bool) -> Void] = []
        var failAfter: Int?
    }

    private let state: Locked<State>

    init(held: Bool = false, failAfter: Int? = nil) {
        state = Locked(State(held: held, failAfter: failAfter))
    }

    func send(_ bytes: [UInt8]) async throws {
        Issue.record("a non-blocking sink is offered its lines, never sent them")
    }

    func offer(_ pieces: [[UInt8]], ready: @escaping @Sendable (Bool) -> Void) {
        #expect(!pieces.isEmpty, "an offer has lines")
        #expect(pieces.allSatisfy { $0.last == 10 }, "every piece is whole lines")
        let parsed = pieces.flatMap { $0.split(separator: 10).compactMap { try? JSONParser.parse(Array($0)) } }
        let answer = state.withLock { state -> Bool? in
            state.offers.append(pieces.map(\.count))
            if let limit = state.failAfter, state.offers.count > limit { return false }
            state.lines += parsed
            if state.held {
                state.waiting.append(ready)
                return nil
            }
            return true
        }
        if let answer { ready(answer) }
    }

    func release() {
        let waiting = state.withLock { state in
            state.held = false
            defer { state.waiting = [] }
            return state.waiting
        }
        for ready in waiting { ready(true) }
    }

    var lines: [JSONValue] { state.withLock { $0.lines } }
    var results: [JSONValue] { lines.filter { $0["event"] == .string("result") } }
    var offers: [[Int]] { state.withLock { $0.offers } }
}

/// Counts what test subtasks do: how many run at once, started, cancelled.
final class Probe: Sendable {
    struct Counts {
        var current = 0
        var peak = 0
        var started = 0
        var cancelled = 0
    }

    let counts = Locked(Counts())

    func task(_ id: String, _ index: Int, delay: Int, error: String? = nil, value: JSONValue = .null, timeout: Int? = nil) -> Subtask {
        Subtask(id: id, index: index, kind: "echo", timeoutMilliseconds: timeout) { [self] context in
            counts.withLock {
                $0.current += 1
                $0.started += 1
                $0.peak = max($0.peak, $0.current)
            }
            let outcome = await EchoRunner().run(
                EchoRunner.Payload(delayMilliseconds: Double(delay), value: value, error: error),
                context: context
            )
            counts.withLock {
                $0.current -= 1
                if outcome.status == .cancelled { $0.cancelled += 1 }
            }
            return outcome
        }
    }

    var snapshot: Counts { counts.withLock { $0 } }
}

/// Counts subtasks started and ended, as the service's metrics would.
final class CountingObserver: DispatchObserver {
    let counts = Locked((started: 0, ended: 0))
    func subtaskStarted(kind: String) { counts.withLock { $0.started += 1 } }
    func subtaskEnded(kind: String, seconds: Double) { counts.withLock { $0.ended += 1 } }
    var started: Int { counts.withLock { $0.started } }
    var balance: Int { counts.withLock { $0.started - $0.ended } }
}

extension JSONValue {
    var int: Int? { numberValue.map { Int($0) } }
}

extension Job {
    static func make(
        _ tasks: [Subtask],
        concurrency: Int = 100,
        timeout: Int = 10_000,
        order: Order = .completion,
        failFast: Bool = false,
        first: Int? = nil,
        heartbeat: Int = 0
    ) -> Job {
        Job(
            tasks: tasks, concurrency: concurrency, timeoutMilliseconds: timeout, order: order,
            failFast: failFast, first: first, heartbeatMilliseconds: heartbeat
        )
    }
}
