import FanoutPostgres
import Glibc
public import Logging

/// Bootstraps swift-log once, for the executable: text on a terminal, JSON lines otherwise.
public enum LogSetup {
    public static func bootstrap(_ log: FanoutConfiguration.Log) {
        let json: Bool
        switch log.format {
        case .json: json = true
        case .text: json = false
        case .auto: json = isatty(STDERR_FILENO) == 0
        }
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = log.level
            return handler
        }
    }
}

extension FanoutConfiguration {
    /// The effective configuration for the start-up log line, secrets redacted.
    public var redactedMetadata: Logger.Metadata {
        [
            "server.host": "\(server.host)",
            "server.port": "\(server.port)",
            "server.admin_port": "\(server.adminPort.map(String.init) ?? "none")",
            "server.threads": "\(server.threads)",
            "server.connection_limit": "\(server.connectionLimit)",
            "server.connection_timeout_s": "\(server.connectionTimeoutSeconds)",
            "server.request_timeout_s": "\(server.requestTimeoutSeconds)",
            "server.connection_memory_bytes": "\(server.connectionMemoryBytes)",
            "server.max_body_bytes": "\(server.maxBodyBytes)",
            "server.max_pending_body_bytes": "\(server.maxPendingBodyBytes)",
            "server.inline_body_bytes": "\(server.inlineBodyBytes)",
            "limits.max_tasks": "\(limits.maxTasks)",
            "limits.max_concurrency": "\(limits.maxConcurrency)",
            "limits.max_concurrent_jobs": "\(limits.maxConcurrentJobs)",
            "limits.max_job_timeout_ms": "\(limits.maxJobTimeoutMilliseconds)",
            "limits.max_response_bytes": "\(limits.maxResponseBytes)",
            "limits.stream_buffer_bytes": "\(limits.streamBufferBytes)",
            "limits.max_job_memory_bytes": "\(limits.maxJobMemoryBytes)",
            "defaults.concurrency": "\(defaults.concurrency)",
            "defaults.timeout_ms": "\(defaults.timeoutMilliseconds)",
            "defaults.task_timeout_ms": "\(defaults.taskTimeoutMilliseconds.map(String.init) ?? "none")",
            "defaults.heartbeat_ms": "\(defaults.heartbeatMilliseconds)",
            "upstream.max_connections_per_host": "\(upstream.maxConnectionsPerHost)",
            "upstream.connect_timeout_ms": "\(upstream.connectTimeoutMilliseconds)",
            "upstream.idle_timeout_ms": "\(upstream.idleTimeoutMilliseconds)",
            "upstream.event_loop_threads": "\(upstream.eventLoopThreads)",
            "egress.allow": "\(egress.allow.joined(separator: ","))",
            "egress.allow_public": "\(egress.allowPublic)",
            "auth.tokens": "\(auth.tokens.isEmpty ? "none (auth off)" : "\(auth.tokens.count) redacted")",
            "auth.protect_metrics": "\(auth.protectMetrics)",
            "shutdown.grace_s": "\(shutdown.graceSeconds)",
            "jobs.store": "\(PostgresURL.redacted(jobs.store))",
            "jobs.pool_size": "\(jobs.poolSize)",
            "jobs.lease_s": "\(jobs.leaseSeconds)",
            "jobs.retention_s": "\(jobs.retentionSeconds)",
            "jobs.max_retained_bytes": "\(jobs.maxRetainedBytes)",
            "tracing.otlp_endpoint": "\(tracing.otlpEndpoint.isEmpty ? "none (no spans)" : tracing.otlpEndpoint)",
            "tracing.otlp_protocol": "\(tracing.otlpProtocol)",
            "tracing.service_name": "\(tracing.serviceName)",
            "tracing.sample_ratio": "\(tracing.sampleRatio)",
            "log.level": "\(log.level)",
            "log.format": "\(log.format.rawValue)",
        ]
    }
}
