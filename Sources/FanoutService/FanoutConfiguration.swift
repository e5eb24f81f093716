public import Logging

/// The service's whole configuration, as read from `config/fanoutd.json`, `FANOUT_*` variables and
/// flags (see ``ConfigurationLoader``). Every key is documented in `config/README.md`.
public struct FanoutConfiguration: Sendable, Equatable {
    public struct Server: Sendable, Equatable {
        public var host = "127.0.0.1"
        public var port = 8080
        /// Port of the admin listener (`/livez`, `/readyz`, `/healthz`, `/metrics` only, on a daemon of
        /// its own, same host), so probes are answered when the main listener is full; nil for none.
        public var adminPort: Int? = 8081
        /// libmicrohttpd polling threads (epoll each); 0 means one per core.
        public var threads = 0
        public var connectionLimit = 10_000
        public var connectionTimeoutSeconds = 120
        /// Seconds a client has to send a request's head (and, between body bytes, its body): the
        /// slowloris deadline, apart from the idle timeout of a keep-alive or streaming connection.
        public var requestTimeoutSeconds = 10
        public var connectionMemoryBytes = 8 * 1024
        public var maxBodyBytes = 16 * 1024 * 1024
        /// Request bodies held at once across connections; 64 MiB: four maximal bodies, 1/8 of a
        /// 512 MiB pod, leaving the rest for decoding, streams and the runtime.
        public var maxPendingBodyBytes = 64 * 1024 * 1024
        /// Job bodies up to this size are decoded on the server thread, larger ones in a task.
        public var inlineBodyBytes = 16 * 1024
    }

    public struct Limits: Sendable, Equatable {
        public var maxTasks = 100_000
        public var maxConcurrency = 100_000
        public var maxConcurrentJobs = 10_000
        public var maxJobTimeoutMilliseconds = 3_600_000
        public var maxResponseBytes = 1024 * 1024
        /// Bytes a job's stream buffers before the dispatcher waits for the client.
        public var streamBufferBytes = 64 * 1024
        /// Memory all running jobs may be charged together (their estimated cost; see JobAdmission).
        /// 256 MiB: half of a 512 MiB pod, leaving the rest for request bodies being read, the
        /// upstream clients' buffers, the runtime (~30 MB) and what the allocator keeps after frees.
        public var maxJobMemoryBytes = 256 * 1024 * 1024
    }

    public struct Defaults: Sendable, Equatable {
        public var concurrency = 1_000
        public var timeoutMilliseconds = 60_000
        /// nil: a subtask is bounded only by the job's deadline.
        public var taskTimeoutMilliseconds: Int? = nil
        public var heartbeatMilliseconds = 15_000
    }

    public struct Upstream: Sendable, Equatable {
        /// Most connections (and so requests in flight) to one host:port.
        public var maxConnectionsPerHost = 64
        public var connectTimeoutMilliseconds = 2_000
        /// Idle pooled upstream connections are closed after this; below upstreams' keep-alive timeouts.
        public var idleTimeoutMilliseconds = 4_000
        /// Event loop threads of the outbound HTTP client; 0 means one per core.
        public var eventLoopThreads = 0
    }

    public struct Egress: Sendable, Equatable {
        /// Hosts and CIDRs that `http` tasks may reach besides public addresses.
        public var allow: [String] = []
        /// Whether public addresses are reachable without an allow-list entry; off for allow-list only.
        public var allowPublic = true
    }

    public struct Auth: Sendable, Equatable {
        /// Bearer tokens; auth is off when empty.
        public var tokens: [String] = []
        /// Whether `/metrics` needs a token too (health endpoints never do).
        public var protectMetrics = false
    }

    public struct Shutdown: Sendable, Equatable {
        /// Seconds running jobs may go on after SIGTERM before the rest is cancelled.
        public var graceSeconds = 25
    }

    /// Retained jobs (SPEC "Jobs that outlive their connection").
    public struct Jobs: Sendable, Equatable {
        /// Where retained lines are kept: `memory` (in-process) or a PostgreSQL URL shared by replicas.
        public var store = "memory"
        /// Most connections to PostgreSQL per replica (the LISTEN connection included).
        public var poolSize = 10
        /// Seconds a replica's lease on the jobs it runs lasts; renewed every second (PostgreSQL store).
        public var leaseSeconds = 15
        /// Seconds a retained job's lines are kept after its end line.
        public var retentionSeconds = 900
        /// Bound on retained lines (bytes plus a per-line overhead). 128 MiB: the Deployment's 512 MiB
        /// limit minus the worst-case stream buffers (2000 jobs × 64 KiB = 125 MiB) and the runtime
        /// leaves room for this and headroom.
        public var maxRetainedBytes = 128 * 1024 * 1024
    }

    /// Cross-origin access for browser pages (CORS); off while `allowOrigins` is empty.
    public struct CORS: Sendable, Equatable {
        /// Serialized origins (`https://app.example.com`) whose pages may call the API; `*` for any.
        public var allowOrigins: [String] = []
        /// Whether such pages may send credentials (cookies, TLS client certificates); not with `*`.
        public var allowCredentials = false
        /// How long a browser may cache a preflight's answer.
        public var maxAgeSeconds = 600
    }

    /// W3C trace context is always read and passed on; spans are exported only with an endpoint.
    public struct Tracing: Sendable, Equatable {
        /// The OTLP/HTTP collector (`http://host:4318`, spans go to `/v1/traces`; a URL with a
        /// path is used as it is); empty: no spans are recorded.
        public var otlpEndpoint = ""
        /// `http/protobuf` or `http/json`.
        public var otlpProtocol = "http/protobuf"
        /// The `service.name` of the exported spans.
        public var serviceName = "fanoutd"
        /// Share of new traces recorded; a continued trace follows its `sampled` flag.
        public var sampleRatio = 1.0

        public init(otlpEndpoint: String = "", otlpProtocol: String = "http/protobuf", serviceName: String = "fanoutd", sampleRatio: Double = 1.0) {
            self.otlpEndpoint = otlpEndpoint
            self.otlpProtocol = otlpProtocol
            self.serviceName = serviceName
            self.sampleRatio = sampleRatio
        }
    }

    public struct Log: Sendable, Equatable {
        public enum Format: String, Sendable, Equatable {
            /// `text` on a terminal, `json` otherwise.
            case auto
            case text
            case json
        }

        public var level: Logger.Level = .info
        public var format: Format = .auto
    }

    public var server = Server()
    public var limits = Limits()
    public var defaults = Defaults()
    public var upstream = Upstream()
    public var egress = Egress()
    public var auth = Auth()
    public var shutdown = Shutdown()
    public var log = Log()
    public var jobs = Jobs()
    public var cors = CORS()
    public var tracing = Tracing()

    public init() {}
}
