import FanoutCore
import FanoutJobs
import FanoutPostgres
import FanoutTracing
import FanoutUpstream
public import Logging
import MicroHTTPServer
public import ServiceLifecycle
import Glibc
import FanoutSync

/// fanoutd as a `Service`: the HTTP server, the job admission and the runners, with the graceful
/// drain of SPEC "Lifecycle" on shutdown.
public final class FanoutService: Service {
    public let configuration: FanoutConfiguration
    let server: HTTPServer
    /// The admin listener (`server.admin_port`), if configured.
    let adminServer: HTTPServer?
    let admission: JobAdmission
    let metrics: ServiceMetrics
    /// The `http` kind; owns the outbound clients, shut down at the end of ``drain()``.
    let httpRunner: HTTPRunner
    /// Runs retained jobs (``run()`` runs it beside the server).
    let retainedJobs: RetainedJobs
    /// The shared store when `jobs.store` is a PostgreSQL URL (``connectStore()`` starts it).
    let postgresStore: PostgresJobStore?
    private let storeConnected = Locked(false)
    /// Span export, when `tracing.otlp_endpoint` is set; runs beside the server, flushed last.
    let tracing: OTLPTracing?
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
        var configurationError: ConfigurationError?
        do {
            egress = try EgressPolicy(allow: configuration.egress.allow)
            egress.allowsPublicAddresses = configuration.egress.allowPublic
        } catch {
            configurationError = ConfigurationError("egress.allow: \(error)")
        }
        var tracing: OTLPTracing?
        if !configuration.tracing.otlpEndpoint.isEmpty {
            do {
                tracing = try OTLPTracing(
                    settings: .init(
                        endpoint: configuration.tracing.otlpEndpoint, protocolName: configuration.tracing.otlpProtocol,
                        serviceName: configuration.tracing.serviceName, sampleRatio: configuration.tracing.sampleRatio
                    ),
                    logger: logger
                )
            } catch {
                configurationError = configurationError ?? ConfigurationError("tracing: \(error)")
            }
        }
        self.tracing = tracing
        let jobTracing = JobTracing(recorder: tracing?.recorder)
        let httpRunner = HTTPRunner(
            configuration: HTTPRunner.Configuration(
                maxConnectionsPerHost: configuration.upstream.maxConnectionsPerHost,
                connectTimeout: .milliseconds(configuration.upstream.connectTimeoutMilliseconds),
                idleConnectionTimeout: .milliseconds(configuration.upstream.idleTimeoutMilliseconds),
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
        var jobs = JobEndpoint(
            decoder: JobDecoder(policy: policy, runners: runners),
            admission: admission,
            metrics: metrics,
            maxBodyBytes: configuration.server.maxBodyBytes,
            streamBufferBytes: configuration.limits.streamBufferBytes,
            reclaimer: MemoryReclaimer(),
            tracing: jobTracing,
            logger: logger
        )
        let auth = BearerAuth(tokens: configuration.auth.tokens, protectMetrics: configuration.auth.protectMetrics)
        // Retained jobs (SPEC v1.1): the store, the runner of jobs tied to no connection, their routes.
        let store: any JobStore
        var postgresStore: PostgresJobStore?
        if PostgresURL.isPostgres(configuration.jobs.store) {
            do {
                let settings = PostgresJobStore.Settings(
                    url: try PostgresURL(configuration.jobs.store), poolSize: configuration.jobs.poolSize,
                    leaseSeconds: Double(configuration.jobs.leaseSeconds), retentionSeconds: Double(configuration.jobs.retentionSeconds)
                )
                postgresStore = try PostgresJobStore(settings: settings, logger: logger)
            } catch {
                configurationError = configurationError ?? ConfigurationError("jobs.store: \(error)")
            }
        }
        if let postgresStore {
            store = postgresStore
        } else {
            store = MemoryJobStore(maxBytes: configuration.jobs.maxRetainedBytes, retentionSeconds: Double(configuration.jobs.retentionSeconds))
        }
        self.postgresStore = postgresStore
        self.configurationError = configurationError
        metrics.retained.available.withLock { $0 = { store.isAvailable } }
        metrics.retained.usage.withLock { $0 = { store.usage() } }
        let retainedJobs = RetainedJobs(store: store, admission: admission, metrics: metrics, tracing: jobTracing, logger: logger)
        let plain = jobs
        jobs.retained = RetainedJobRoutes(
            runner: retainedJobs, admission: admission, auth: auth, metrics: metrics,
            reject: { problem, request in plain.reject(problem, request) }
        )
        self.retainedJobs = retainedJobs
        let handler = FanoutHandler(
            jobs: jobs,
            admission: admission,
            auth: auth,
            metrics: metrics,
            logger: logger
        )
        self.adminServer = configuration.server.adminPort.map { adminPort in
            HTTPServer(
                configuration: HTTPServerConfiguration(
                    host: configuration.server.host,
                    port: adminPort,
                    threads: 1,
                    connectionLimit: 64,
                    connectionTimeoutSeconds: 10,
                    maxBodyBytes: 1024,
                    requestTimeoutSeconds: 5
                ),
                handler: AdminHandler(endpoints: handler.operational),
                logger: logger
            )
        }
        let server = configuration.server
        let cors = CORSPolicy(configuration.cors)
        self.server = HTTPServer(
            configuration: HTTPServerConfiguration(
                host: server.host,
                port: server.port,
                threads: server.threads > 0 ? server.threads : System.coreCount,
                connectionLimit: server.connectionLimit,
                connectionTimeoutSeconds: server.connectionTimeoutSeconds,
                connectionMemoryBytes: server.connectionMemoryBytes,
                maxBodyBytes: server.maxBodyBytes,
                maxPendingBodyBytes: server.maxPendingBodyBytes,
                inlineBodyBytes: server.inlineBodyBytes,
                streamBufferBytes: configuration.limits.streamBufferBytes,
                requestTimeoutSeconds: server.requestTimeoutSeconds
            ),
            handler: cors.isEnabled ? CORSHandler(inner: handler, policy: cors) : handler,
            logger: logger
        )
        self.admission = admission
        self.metrics = metrics
        self.httpRunner = httpRunner
        // Weak: the server holds the handler, which holds the metrics (no cycle, the service is freed).
        let httpServer = self.server
        metrics.openStreamCount.withLock { $0 = { [weak httpServer] in httpServer?.openStreams ?? 0 } }
    }

    /// The bound port once started.
    public var port: Int? { server.port }
    /// The admin listener's bound port once started, if there is one.
    public var adminPort: Int? { adminServer?.port }

    /// Starts the PostgreSQL store (`jobs.store`): connects, migrates its schema, starts its
    /// listener and leases. Throws a ``ConfigurationError`` naming `jobs.store` when the database
    /// cannot be reached (fanoutd then exits 64). Nothing to do for the memory store; once only.
    public func connectStore() async throws {
        guard let postgresStore, storeConnected.withLock({ connected in
            defer { connected = true }
            return !connected
        }) else { return }
        do {
            try await postgresStore.start()
        } catch {
            storeConnected.withLock { $0 = false }
            throw ConfigurationError("jobs.store: cannot reach PostgreSQL at \(PostgresURL.redacted(configuration.jobs.store)): \(error)")
        }
        logger.info("job store connected", metadata: [
            "jobs.store": "\(PostgresURL.redacted(configuration.jobs.store))", "jobs.store.replica": "\(postgresStore.replica)",
        ])
    }

    /// Binds the listening socket. ``run()`` calls it if it was not called before.
    public func start() throws {
        if let configurationError { throw configurationError }
        guard server.port == nil else { return }
        do {
            try adminServer?.start()
        } catch {
            throw ConfigurationError("server.admin_port: \(error)")
        }
        do {
            try server.start()
        } catch {
            // The admin daemon served nothing yet; stop it rather than leave it bound.
            if let adminServer { Task.detached { await adminServer.shutdown(gracePeriod: .zero) } }
            throw error
        }
        var metadata: Logger.Metadata = ["http.host": "\(configuration.server.host)", "http.port": "\(server.port ?? 0)"]
        if let adminPort { metadata["http.admin_port"] = "\(adminPort)" }
        logger.info("fanoutd listening", metadata: metadata)
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`), then drains:
    /// `/readyz` and new jobs get 503 at once, running jobs go on for up to `shutdown.grace_s`,
    /// then what still runs ends as `cancelled` lines plus the end line. The server's tasks (every
    /// stream and body decode) run in `server.run()`, a child of this task, beside the wait.
    public func run() async throws {
        try await connectStore()
        try start()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.serve() }
            try? await gracefulShutdown()
            await drain()
        }
    }

    /// Runs the tasks the service owns — every stream and deferred answer of the main and admin
    /// listeners, the retained jobs and the span export — until ``drain()`` has stopped them all.
    public func serve() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.server.run() }
            if let adminServer { group.addTask { await adminServer.run() } }
            group.addTask { await self.retainedJobs.run() }
            if let tracing { group.addTask { await tracing.run() } }
        }
    }

    /// The drain of SPEC "Lifecycle", then the server's ordered stop.
    public func drain() async {
        admission.beginDraining()
        logger.info("draining", metadata: ["jobs.running": "\(admission.running)", "shutdown.grace_s": "\(configuration.shutdown.graceSeconds)"])
        await waitForJobs(upTo: .seconds(configuration.shutdown.graceSeconds))
        if admission.running > 0 {
            logger.warning("grace period over: cancelling running jobs", metadata: ["jobs.running": "\(admission.running)"])
            retainedJobs.store.stopWaitingForSpace()
            admission.cancelAll(reason: "the server is shutting down")
            await waitForJobs(upTo: .seconds(5))
        }
        retainedJobs.finish()
        await server.shutdown(gracePeriod: .seconds(5))
        // Last, so probes see /readyz 503 for the whole drain.
        await adminServer?.shutdown(gracePeriod: .zero)
        try? await httpRunner.shutdown()
        await postgresStore?.stop()
        // Every job has ended its spans: export what is still queued.
        await tracing?.shutdown()
        logger.info("fanoutd stopped")
    }

    /// Resumed when the last job ends, or at the deadline; a cancelled task does not wait (once).
    private func waitForJobs(upTo limit: Duration) async {
        _ = await admission.waitForZero(upTo: limit)
    }
}

extension FanoutService {
    /// Process-wide settings to make before the service starts threads: caps glibc's malloc arenas
    /// at two per core (the default, eight per core, lets each of MHD's, NIO's and Swift's threads
    /// keep freed memory in an arena of its own).
    public static func prepareProcess() {
        MemoryReclaimer.capArenas(2 * System.coreCount)
    }
}

enum System {
    /// Online processors, at least 1.
    static var coreCount: Int { max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1) }
}
