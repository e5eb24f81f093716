import FanoutCore
import FanoutPostgres
import Logging

/// One configuration key: its dotted name (`limits.max_tasks`), what it holds, and where it goes.
struct ConfigurationKey: Sendable {
    enum Kind: Sendable {
        case integer(ClosedRange<Int>)
        case optionalInteger(ClosedRange<Int>)
        case string
        case boolean
        case list
        /// A number from 0 to 1.
        case fraction
    }

    let name: String
    let kind: Kind
    let apply: @Sendable (inout FanoutConfiguration, ConfigurationValue) throws(ConfigurationError) -> Void

    /// `FANOUT_` + the name in capitals with `_` for `.`: `limits.max_tasks` → `FANOUT_LIMITS_MAX_TASKS`.
    var environmentName: String {
        "FANOUT_" + name.replacingDots().uppercased()
    }
}

/// A value as read from the file (JSON) or from a variable or flag (text), checked against its key.
enum ConfigurationValue: Sendable {
    case integer(Int?)
    case string(String)
    case boolean(Bool)
    case list([String])
    case fraction(Double)

    var fraction: Double { if case .fraction(let value) = self { value } else { 0 } }
    var int: Int? { if case .integer(let value) = self { value } else { nil } }
    var string: String { if case .string(let value) = self { value } else { "" } }
    var bool: Bool { if case .boolean(let value) = self { value } else { false } }
    var list: [String] { if case .list(let value) = self { value } else { [] } }
}

/// Why the configuration was refused; names the key and the source.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    func replacingDots() -> String { String(map { $0 == "." ? "_" : $0 }) }
}

extension ConfigurationKey {
    private static func int(
        _ name: String, _ range: ClosedRange<Int>, _ path: any WritableKeyPath<FanoutConfiguration, Int> & Sendable
    ) -> ConfigurationKey {
        ConfigurationKey(name: name, kind: .integer(range)) { config, value in config[keyPath: path] = value.int ?? 0 }
    }

    /// Every key the service understands. Anything else in a file is refused.
    static let all: [ConfigurationKey] = [
        .init(name: "server.host", kind: .string) { config, value in config.server.host = value.string },
        int("server.port", 0...65535, \.server.port),
        .init(name: "server.admin_port", kind: .optionalInteger(0...65535)) { config, value in config.server.adminPort = value.int },
        int("server.threads", 0...256, \.server.threads),
        int("server.connection_limit", 16...1_000_000, \.server.connectionLimit),
        int("server.connection_timeout_s", 0...86_400, \.server.connectionTimeoutSeconds),
        int("server.request_timeout_s", 1...3_600, \.server.requestTimeoutSeconds),
        int("server.connection_memory_bytes", 8 * 1024...16 * 1024 * 1024, \.server.connectionMemoryBytes),
        int("server.max_body_bytes", 1024...1024 * 1024 * 1024, \.server.maxBodyBytes),
        int("server.inline_body_bytes", 0...1024 * 1024, \.server.inlineBodyBytes),
        int("server.max_pending_body_bytes", 1024...64 * 1024 * 1024 * 1024, \.server.maxPendingBodyBytes),
        int("limits.max_tasks", 1...10_000_000, \.limits.maxTasks),
        int("limits.max_concurrency", 1...10_000_000, \.limits.maxConcurrency),
        int("limits.max_concurrent_jobs", 1...1_000_000, \.limits.maxConcurrentJobs),
        int("limits.max_job_timeout_ms", 1...86_400_000, \.limits.maxJobTimeoutMilliseconds),
        int("limits.max_response_bytes", 0...1024 * 1024 * 1024, \.limits.maxResponseBytes),
        int("limits.stream_buffer_bytes", 1024...1024 * 1024 * 1024, \.limits.streamBufferBytes),
        int("limits.max_job_memory_bytes", 64 * 1024...1 << 40, \.limits.maxJobMemoryBytes),
        int("defaults.concurrency", 1...10_000_000, \.defaults.concurrency),
        int("defaults.timeout_ms", 1...86_400_000, \.defaults.timeoutMilliseconds),
        .init(name: "defaults.task_timeout_ms", kind: .optionalInteger(1...86_400_000)) { config, value in
            config.defaults.taskTimeoutMilliseconds = value.int
        },
        int("defaults.heartbeat_ms", 0...86_400_000, \.defaults.heartbeatMilliseconds),
        int("upstream.max_connections_per_host", 1...100_000, \.upstream.maxConnectionsPerHost),
        int("upstream.connect_timeout_ms", 1...600_000, \.upstream.connectTimeoutMilliseconds),
        int("upstream.idle_timeout_ms", 1...3_600_000, \.upstream.idleTimeoutMilliseconds),
        int("upstream.event_loop_threads", 0...256, \.upstream.eventLoopThreads),
        .init(name: "egress.allow", kind: .list) { config, value in config.egress.allow = value.list },
        .init(name: "egress.allow_public", kind: .boolean) { config, value in config.egress.allowPublic = value.bool },
        .init(name: "auth.tokens", kind: .list) { config, value in config.auth.tokens = value.list },
        .init(name: "auth.protect_metrics", kind: .boolean) { config, value in config.auth.protectMetrics = value.bool },
        int("shutdown.grace_s", 0...86_400, \.shutdown.graceSeconds),
        .init(name: "jobs.store", kind: .string) { (config, value) throws(ConfigurationError) in
            if value.string != "memory" {
                guard PostgresURL.isPostgres(value.string) else {
                    throw ConfigurationError("jobs.store: \"\(PostgresURL.redacted(value.string))\" is neither \"memory\" nor a postgres:// URL")
                }
                do {
                    _ = try PostgresURL(value.string)
                } catch {
                    throw ConfigurationError("jobs.store: \(error) in \"\(PostgresURL.redacted(value.string))\"")
                }
            }
            config.jobs.store = value.string
        },
        int("jobs.pool_size", 2...1000, \.jobs.poolSize),
        int("jobs.lease_s", 2...3600, \.jobs.leaseSeconds),
        int("jobs.retention_s", 1...604_800, \.jobs.retentionSeconds),
        int("jobs.max_retained_bytes", 1024...1 << 40, \.jobs.maxRetainedBytes),
        .init(name: "cors.allow_origins", kind: .list) { config, value in config.cors.allowOrigins = value.list },
        .init(name: "cors.allow_credentials", kind: .boolean) { config, value in config.cors.allowCredentials = value.bool },
        int("cors.max_age_s", 0...86_400, \.cors.maxAgeSeconds),
        .init(name: "tracing.otlp_endpoint", kind: .string) { (config, value) throws(ConfigurationError) in
            guard value.string.isEmpty || value.string.hasPrefix("http://") || value.string.hasPrefix("https://") else {
                throw ConfigurationError("tracing.otlp_endpoint: \"\(value.string)\" is not an http:// or https:// URL (or empty, for no export)")
            }
            config.tracing.otlpEndpoint = value.string
        },
        .init(name: "tracing.otlp_protocol", kind: .string) { (config, value) throws(ConfigurationError) in
            guard ["http/protobuf", "http/json"].contains(value.string) else {
                throw ConfigurationError("tracing.otlp_protocol: \"\(value.string)\" is not one of http/protobuf, http/json")
            }
            config.tracing.otlpProtocol = value.string
        },
        .init(name: "tracing.service_name", kind: .string) { (config, value) throws(ConfigurationError) in
            guard !value.string.isEmpty else { throw ConfigurationError("tracing.service_name: must not be empty") }
            config.tracing.serviceName = value.string
        },
        .init(name: "tracing.sample_ratio", kind: .fraction) { config, value in config.tracing.sampleRatio = value.fraction },
        .init(name: "log.level", kind: .string) { (config, value) throws(ConfigurationError) in
            guard let level = Logger.Level(rawValue: value.string) else {
                throw ConfigurationError("log.level: \"\(value.string)\" is not one of trace, debug, info, notice, warning, error, critical")
            }
            config.log.level = level
        },
        .init(name: "log.format", kind: .string) { (config, value) throws(ConfigurationError) in
            guard let format = FanoutConfiguration.Log.Format(rawValue: value.string) else {
                throw ConfigurationError("log.format: \"\(value.string)\" is not one of auto, text, json")
            }
            config.log.format = format
        },
    ]

    static let byName: [String: ConfigurationKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
