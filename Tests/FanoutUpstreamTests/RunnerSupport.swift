import FanoutCore
import FanoutUpstream
import FanoutSync
import Testing

/// A resolver answering from a table and never touching the network; unknown names fail.
/// Counts lookups, so tests can check that a subtask resolves its host once.
final class StubResolver: HostResolver {
    let table: [String: [IPAddress]]
    private let lookups = Locked<[String]>([])

    init(_ table: [String: [String]]) {
        self.table = table.mapValues { $0.compactMap { IPAddress($0) } }
    }

    var calls: [String] { lookups.withLock { $0 } }

    func resolve(_ host: String) async throws -> [IPAddress] {
        lookups.withLock { $0.append(host) }
        guard let addresses = table[host] else { throw ResolutionError(host: host, reason: "not in the stub's table") }
        return addresses
    }
}

/// A resolver that never answers (until cancelled).
struct HangingResolver: HostResolver {
    func resolve(_ host: String) async throws -> [IPAddress] {
        try await Task.sleep(for: .seconds(60))
        throw ResolutionError(host: host, reason: "woke up")
    }
}

/// The test configuration: only 127.0.0.1 allowed, names from a stub (so no test can send a DNS
/// query off the machine), short backoffs, one event loop thread.
func testConfiguration(
    allow: [String] = ["127.0.0.1"],
    resolver: any HostResolver = StubResolver(["localhost": ["127.0.0.1"]])
) throws -> HTTPRunner.Configuration {
    HTTPRunner.Configuration(
        maxConnectionsPerHost: 64,
        connectTimeout: .seconds(1),
        maxResponseBytes: 1024 * 1024,
        egress: try EgressPolicy(allow: allow),
        resolver: resolver,
        retry: RetryPolicy(baseDelay: .milliseconds(10), maxDelay: .milliseconds(50)),
        eventLoopThreads: 1
    )
}

/// Runs `body` with a runner built from `configuration`, then shuts the runner down.
func withRunner<T>(
    _ configuration: HTTPRunner.Configuration? = nil,
    _ body: (HTTPRunner) async throws -> T
) async throws -> T {
    let runner = HTTPRunner(configuration: try configuration ?? testConfiguration())
    do {
        let result = try await body(runner)
        try await runner.shutdown()
        return result
    } catch {
        try? await runner.shutdown()
        throw error
    }
}

/// An `http` subtask's JSON.
func httpTask(_ url: String, _ fields: (String, JSONValue)...) -> JSONValue {
    .object([("kind", .string("http")), ("url", .string(url))] + fields)
}

extension HTTPRunner {
    /// Decodes and runs one subtask with a deadline `timeout` from now, as the dispatcher runs it:
    /// in a task of its own, cancelled at the deadline.
    func run(_ task: JSONValue, timeout: Duration = .seconds(5), isJobDeadline: Bool = false) async throws -> SubtaskOutcome {
        let payload = try decode(task, path: "tasks[0]")
        let context = SubtaskContext(deadline: .now + timeout, deadlineIsJobDeadline: isJobDeadline)
        async let outcome = SubtaskDeadline.run(until: context.deadline) { await self.run(payload, context: context) }
        return await outcome
    }
}

extension SubtaskOutcome {
    /// `value` of an `ok` outcome, else `response` (the upstream's answer for `http_status`).
    var answer: JSONValue? { value ?? response }
    var attempts: Int? { answer?["attempts"]?.numberValue.map(Int.init) }
    var upstreamStatus: Int? { answer?["status"]?.numberValue.map(Int.init) }
}

/// The suites that run real upstreams, sockets and timers: one test at a time. They wait on
/// timers, not on the CPU, so this costs a few seconds; started all at once they would load a
/// small machine enough to skew the timing checks of other modules' tests running beside them.
@Suite(.serialized)
struct UpstreamEndToEnd {}
