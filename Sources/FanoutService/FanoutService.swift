import FanoutCore
import FanoutUpstream
public import Logging
import MicroHTTPServer
public import ServiceLifecycle
import Glibc
import Synchronization

/// fanoutd as a `Service`: the HTTP server, the job admission and the runners, with the graceful
/// drain of SPEC "Lifecycle" on shutdown.
public final class FanoutService: Service {
    public let configuration: FanoutConfiguration
    let server: HTTPServer
    let admission: JobAdmission
    let metrics: ServiceMetrics
    /// The `http` kind; owns the outbound clients, shut down at the end of ``drain()``.
    let httpRunner: HTTPRunner
    /// An invalid `egress.allow` entry found by `init`; ``start()`` throws it, so the service
    /// refuses to start (with the key named) instead of running with a policy nobody asked for.
    private let configurationError: ConfigurationError?
    private let logger: Logger

    public init(configuration: FanoutConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let metrics = ServiceMetrics()
        let admission = JobAdmission(
            limit: configuration.limits.maxConcurrentJobs, memoryBudget: configuration.limits.maxJobMemoryBytes
        )
        var runners = RunnerRegistry()
        runners.register(EchoRunner())
        var egress = EgressPolicy()
        do {
            egress = try EgressPolicy(allow: configuration.egress.allow)
            egress.allowsPublicAddresses = configuration.egress.allowPublic
            configurationError = nil
        } catch {
            configurationError = ConfigurationError("egress.allow: \(error)")
        }
        let httpRunner = HTTPRunner(
            configuration: HTTPRunner.Configuration(
                maxConnectionsPerHost: configuration.upstream.maxConnectionsPerHost,
                connectTimeout: .milliseconds(configuration.upstream.connectTimeoutMilliseconds),
                maxResponseBytes: configuration.limits.maxResponseBytes,
                egress: egress,
                eventLoopThreads: configuration.upstream.eventLoopThreads,
                onAttempt: { statusClass in metrics.upstreamRequest(statusClass: statusClass) },
                logger: logger
            )
        )
        runners.register(httpRunner)
        let policy = JobPolicy(
            maxTasks: configuration.limits.maxTasks,
            maxConcurrency: configuration.limits.maxConcurrency,
            maxTimeoutMilliseconds: configuration.limits.maxJobTimeoutMilliseconds,
            defaultConcurrency: min(configuration.defaults.concurrency, configuration.limits.maxConcurrency),
            defaultTimeoutMilliseconds: configuration.defaults.timeoutMilliseconds,
            defaultTaskTimeoutMilliseconds: configuration.defaults.taskTimeoutMilliseconds,
            defaultHeartbeatMilliseconds: configuration.defaults.heartbeatMilliseconds
        )
        let jobs = JobEndpoint(
            decoder: JobDecoder(policy: policy, runners: runners),
            admission: admission,
            metrics: metrics,
            maxBodyBytes: configuration.server.maxBodyBytes,
            streamBufferBytes: configuration.limits.streamBufferBytes,
            logger: logger
        )
        let handler = FanoutHandler(
            jobs: jobs,
            admission: admission,
            auth: BearerAuth(tokens: configuration.auth.tokens, protectMetrics: configuration.auth.protectMetrics),
            metrics: metrics,
            logger: logger
        )
        let server = configuration.server
        self.server = HTTPServer(
            configuration: HTTPServerConfiguration(
                host: server.host,
                port: server.port,
                threads: server.threads > 0 ? server.threads : System.coreCount,
                connectionLimit: server.connectionLimit,
                connectionTimeoutSeconds: server.connectionTimeoutSeconds,
                connectionMemoryBytes: server.connectionMemoryBytes,
                maxBodyBytes: server.maxBodyBytes,
                streamBufferBytes: configuration.limits.streamBufferBytes
            ),
            handler: handler,
            logger: logger
        )
        self.admission = admission
        self.metrics = metrics
        self.httpRunner = httpRunner
        let httpServer = self.server
        metrics.openStreamCount.withLock { $0 = { httpServer.openStreams } }
    }

    /// The bound port once started.
    public var port: Int? { server.port }

    /// Binds the listening socket. ``run()`` calls it if it was not called before.
    public func start() throws {
        if let configurationError { throw configurationError }
        guard server.port == nil else { return }
        try server.start()
        logger.info(
            "fanoutd listening",
            metadata: ["http.host": "\(configuration.server.host)", "http.port": "\(server.port ?? 0)"]
        )
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`), then drains:
    /// `/readyz` and new jobs get 503 at once, running jobs go on for up to `shutdown.grace_s`,
    /// then what still runs ends as `cancelled` lines plus the end line.
    public func run() async throws {
        try start()
        try? await gracefulShutdown()
        await drain()
    }

    /// The drain of SPEC "Lifecycle", then the server's ordered stop.
    public func drain() async {
        admission.beginDraining()
        logger.info("draining", metadata: ["jobs.running": "\(admission.running)", "shutdown.grace_s": "\(configuration.shutdown.graceSeconds)"])
        await waitForJobs(upTo: .seconds(configuration.shutdown.graceSeconds))
        if admission.running > 0 {
            logger.warning("grace period over: cancelling running jobs", metadata: ["jobs.running": "\(admission.running)"])
            admission.cancelAll(reason: "the server is shutting down")
            await waitForJobs(upTo: .seconds(5))
        }
        await server.shutdown(gracePeriod: .seconds(5))
        try? await httpRunner.shutdown()
        logger.info("fanoutd stopped")
    }

    private func waitForJobs(upTo limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while admission.running > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

enum System {
    /// Online processors, at least 1.
    static var coreCount: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
}
