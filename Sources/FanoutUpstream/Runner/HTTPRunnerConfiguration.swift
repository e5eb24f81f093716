public import Logging

extension HTTPRunner {
    /// What the `http` runner is built with (the service fills it from `upstream.*`,
    /// `limits.max_response_bytes` and `egress.allow`).
    public struct Configuration: Sendable {
        /// Most requests in flight (and so connections) per upstream `host:port`; further requests
        /// wait in FIFO order. The time waiting counts against the subtask's deadline.
        public var maxConnectionsPerHost: Int
        /// Longest a TCP connect (per attempt) may take before it fails as `connect`.
        public var connectTimeout: Duration
        /// How long a pooled upstream connection may stay idle before it is closed; keep it below
        /// the upstreams' keep-alive timeouts (Node's default is 5 s).
        public var idleConnectionTimeout: Duration
        /// Largest response body accepted; a longer one ends the subtask as `too_large`.
        public var maxResponseBytes: Int
        public var egress: EgressPolicy
        public var resolver: any HostResolver
        public var retry: RetryPolicy
        /// Event loop threads of the runner's own group; 0 for one per core.
        public var eventLoopThreads: Int
        /// Called once per attempt that got an answer (`2xx` … `5xx`) or failed to connect, and
        /// once per failed name resolution (`error`). Attempts cut short by cancellation (hedging
        /// losers, deadlines, `fail_fast`, a vanished client) are not reported.
        public var onAttempt: (@Sendable (String) -> Void)?
        public var logger: Logger

        public init(
            maxConnectionsPerHost: Int = 64,
            connectTimeout: Duration = .seconds(2),
            idleConnectionTimeout: Duration = .seconds(4),
            maxResponseBytes: Int = 1024 * 1024,
            egress: EgressPolicy = EgressPolicy(),
            resolver: any HostResolver = SystemResolver(),
            retry: RetryPolicy = RetryPolicy(),
            eventLoopThreads: Int = 0,
            onAttempt: (@Sendable (String) -> Void)? = nil,
            logger: Logger = Logger(label: "fanoutd.http")
        ) {
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.connectTimeout = connectTimeout
            self.idleConnectionTimeout = idleConnectionTimeout
            self.maxResponseBytes = maxResponseBytes
            self.egress = egress
            self.resolver = resolver
            self.retry = retry
            self.eventLoopThreads = eventLoopThreads
            self.onAttempt = onAttempt
            self.logger = logger
        }
    }
}
