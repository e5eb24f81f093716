public import FanoutCore
import Logging
import NIOCore

/// The `http` subtask kind: one request (with retries and hedging) to an upstream through
/// AsyncHTTPClient, behind the egress policy. See SPEC "The job" and "Egress policy".
///
/// Per subtask: the URL's host is resolved and checked once (``EgressGate``); then each attempt
/// waits for a slot for its `host:port` (FIFO, ``Configuration/maxConnectionsPerHost``), sends
/// the request to a checked address and reads the body up to ``Configuration/maxResponseBytes``.
///
/// Results: `ok` with `{status, headers, body, attempts}` for a status below 400 (a 3xx included:
/// redirects are not followed); `error` with code `http_status` and that object as `response` for
/// 400 and up; `connect` for refused, reset, unreachable, connect timeout, DNS and TLS failures;
/// `too_large`; `forbidden`; `timeout` at the subtask's deadline, which covers everything,
/// including time spent queued for a host slot and backing off; `cancelled` when its task is
/// cancelled, which cancels the outbound requests (their connections are closed) at once.
///
/// The runner owns its clients and event loop threads, created on first use:
/// call ``shutdown()`` once it has run `http` subtasks and is no longer needed.
public final class HTTPRunner: SubtaskRunner {
    public typealias Payload = HTTPSubtask

    public let kind = "http"
    public var fields: Set<String> { HTTPSubtask.fields }

    public let configuration: Configuration
    let gate: EgressGate
    let limiter: HostLimiter
    let clients: UpstreamClients

    /// Allowance past the subtask's deadline given to AsyncHTTPClient's own deadline, so that the
    /// subtask's cancellation at its deadline (whose outcome says where it was) always comes first.
    static let clientDeadlineSlack = Duration.seconds(1)

    public init(configuration: Configuration) {
        self.configuration = configuration
        self.gate = EgressGate(policy: configuration.egress, resolver: configuration.resolver)
        self.limiter = HostLimiter(limit: max(configuration.maxConnectionsPerHost, 1))
        self.clients = UpstreamClients(
            settings: .init(
                perHostLimit: max(configuration.maxConnectionsPerHost, 1),
                connectTimeout: configuration.connectTimeout,
                eventLoopThreads: configuration.eventLoopThreads > 0 ? configuration.eventLoopThreads : System.coreCount,
                connectionIdleTimeout: configuration.idleConnectionTimeout
            ),
            logger: configuration.logger
        )
    }

    public func decode(_ task: JSONValue, path: FieldPath) throws(JobValidationError) -> HTTPSubtask {
        try HTTPSubtask.decode(task, path: path, maxRetries: configuration.retry.maxRetries)
    }

    /// Runs in the dispatcher's task for the subtask, which is cancelled at the deadline: every
    /// wait here (host slot, request, body, backoff) ends on that cancellation, and the outcome is
    /// then a timeout saying where the subtask was.
    public func run(_ payload: HTTPSubtask, context: SubtaskContext) async -> SubtaskOutcome {
        if Task.isCancelled { return .cancelled("the task was cancelled") }
        let progress = SubtaskProgress()
        let outcome = await perform(payload, deadline: context.deadline, trace: context.trace, progress: progress)
        guard outcome.status == .cancelled, context.deadlinePassed else { return outcome }
        let which = context.deadlineIsJobDeadline ? "the job's deadline passed" : "the task's timeout passed"
        return .timeout("\(which) while \(progress.current)")
    }

    /// Shuts the clients and the event loop group down; requests still in flight fail, and later
    /// subtasks end as `cancelled`.
    public func shutdown() async throws {
        try await clients.shutdown()
    }

    /// Where one pass of ``perform(_:deadline:progress:)`` got to.
    private enum Step {
        /// The subtask's result.
        case done(SubtaskOutcome)
        /// A failure that is the result unless a retry is allowed and made.
        case failed(SubtaskOutcome, retryable: Bool, retryAfter: Duration?)
    }

    /// Resolve and check, then attempt, retrying what may be retried while the deadline allows.
    private func perform(_ task: HTTPSubtask, deadline: ContinuousClock.Instant, trace: TraceScope?, progress: SubtaskProgress) async -> SubtaskOutcome {
        var addresses: [IPAddress] = []
        var attempts = 0
        var retriesMade = 0
        while true {
            let step: Step
            if addresses.isEmpty {
                progress.set(.resolving(task.url))
                switch await gate.check(task.url) {
                case .connect(let checked):
                    addresses = checked
                    step = await attemptStep(task, addresses: addresses, attempts: &attempts, deadline: deadline, trace: trace, progress: progress)
                case .forbidden(let reason):
                    step = .done(.error(code: "forbidden", message: reason))
                case .cancelled:
                    step = .done(.cancelled("the task was cancelled"))
                case .unresolvable(let reason):
                    configuration.onAttempt?("error")
                    step = .failed(.error(code: "connect", message: reason), retryable: true, retryAfter: nil)
                }
            } else {
                step = await attemptStep(task, addresses: addresses, attempts: &attempts, deadline: deadline, trace: trace, progress: progress)
            }

            let (failure, retryable, retryAfter): (SubtaskOutcome, Bool, Duration?)
            switch step {
            case .done(let outcome): return outcome
            case .failed(let outcome, let canRetry, let wait): (failure, retryable, retryAfter) = (outcome, canRetry, wait)
            }
            guard retryable, retriesMade < task.effectiveRetries else { return failure }
            retriesMade += 1
            let wait = retryAfter ?? configuration.retry.backoff(beforeRetry: retriesMade)
            guard ContinuousClock.now + wait < deadline else { return failure }
            progress.set(.waitingToRetry(wait, retry: retriesMade))
            do {
                try await DeadlineTimer.shared.sleep(until: .now + wait)
            } catch {
                return .cancelled("the task was cancelled")
            }
        }
    }

    /// One attempt (or a hedged pair), turned into a step. Each round starts at the next checked
    /// address, so a retry moves on from an address that refused.
    private func attemptStep(
        _ task: HTTPSubtask,
        addresses: [IPAddress],
        attempts: inout Int,
        deadline: ContinuousClock.Instant,
        trace: TraceScope?,
        progress: SubtaskProgress
    ) async -> Step {
        let round = await attemptRound(task, addresses: addresses, first: attempts, deadline: deadline, trace: trace, progress: progress)
        attempts += round.started
        switch round.outcome {
        case .response(let response):
            let rendered = response.rendered(attempts: attempts)
            guard response.status >= 400 else { return .done(.ok(rendered)) }
            return .failed(
                .error(code: "http_status", message: "the upstream answered \(response.status)" + Self.attemptsSuffix(attempts), response: rendered),
                retryable: RetryPolicy.retryableStatuses.contains(response.status),
                retryAfter: response.header("retry-after").flatMap { RetryAfter.delay($0) }
            )
        case .tooLarge(let message):
            return .done(.error(code: "too_large", message: message))
        case .failed(let message, let retryable):
            return .failed(.error(code: "connect", message: message + Self.attemptsSuffix(attempts)), retryable: retryable, retryAfter: nil)
        case .timeout:
            return .done(.timeout("the task's deadline passed while \(progress.current)"))
        case .cancelled:
            return .done(.cancelled("the task was cancelled"))
        }
    }

    private static func attemptsSuffix(_ attempts: Int) -> String {
        attempts > 1 ? " (after \(attempts) attempts)" : ""
    }
}
