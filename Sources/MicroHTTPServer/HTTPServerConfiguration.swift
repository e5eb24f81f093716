/// How the server listens and what it allows each connection.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind: an IPv4 or IPv6 literal, or `localhost`.
    public var host: String
    /// Port to bind; 0 picks a free one (see ``HTTPServer/port``).
    public var port: Int
    /// Polling threads (libmicrohttpd's thread pool, epoll each).
    public var threads: Int
    /// Most connections open at once, idle keep-alive and suspended streams included.
    public var connectionLimit: Int
    /// Seconds of socket inactivity (while not suspended) before a connection is closed; 0 for never.
    public var connectionTimeoutSeconds: Int
    /// Per-connection memory pool (request head, read buffer, one write chunk).
    public var connectionMemoryBytes: Int
    /// Largest request body read; a longer one is discarded and the handler sees ``HTTPRequest/bodyTooLarge``.
    public var maxBodyBytes: Int
    /// Request bodies held at once across all connections (a `Content-Length` is reserved on the
    /// head, a chunked body as it arrives, given back once the handler returned). A body that does
    /// not fit is answered 503 at once (``HTTPHandler/bodyBudgetExceeded(_:)``). Keep it at least
    /// ``maxBodyBytes``, or a body between the two can never be read.
    public var maxPendingBodyBytes: Int
    /// Bodies up to this size are first offered to ``HTTPHandler/respondInline(to:)`` on the server
    /// thread; larger ones (and all, at 0) are answered by ``HTTPHandler/respond(to:)`` in a task.
    public var inlineBodyBytes: Int
    /// Bytes a response stream buffers before its writer waits for the client to read (backpressure).
    public var streamBufferBytes: Int
    /// How often suspended streams are checked for a vanished client, in milliseconds.
    public var watchdogIntervalMilliseconds: Int
    public var listenBacklog: Int
    /// Seconds a client has to send a request's head and body once it starts one (or once it
    /// connects): the read deadline, separate from the idle timeout (``connectionTimeoutSeconds``),
    /// which applies once a response is queued (streams, keep-alive between requests). MHD counts
    /// it from the last byte received. 0: only the idle timeout.
    public var requestTimeoutSeconds: Int
    /// Connections accepted beyond ``connectionLimit`` only to be answered `503` with `Retry-After`
    /// and closed, so that clients over the limit hear at once instead of waiting in the backlog.
    /// Past `connectionLimit + overLimitHeadroom` new connections wait in the backlog again.
    public var overLimitHeadroom: Int
    /// Longest a socket lingers after an early final answer (RFC 9112 §9.6), reading and discarding
    /// what the client still sends so that closing does not reset the answer away, in milliseconds.
    public var lingerMilliseconds: Int
    /// Most bytes read and discarded from one lingering socket before it is closed.
    public var lingerBytes: Int
    /// Most sockets lingering at once; past that a socket is closed at once, as before. 0 disables lingering.
    public var maxLingeringSockets: Int
    /// How often sockets not answering a request are checked for a client that went away (MHD misses
    /// some, see `DeadConnectionSweeper`), in milliseconds; a dead one is freed within two checks.
    public var deadConnectionSweepMilliseconds: Int
    /// Prefix of the `type` URI of the problem+json answers the server gives on its own
    /// (malformed framing, over capacity); a stable slug is appended.
    public var problemTypeBase: String
    public static let defaultProblemTypeBase = "https://fanoutd.dev/problems/"

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        threads: Int = 2,
        connectionLimit: Int = 10_000,
        connectionTimeoutSeconds: Int = 120,
        connectionMemoryBytes: Int = 8 * 1024,
        maxBodyBytes: Int = 16 * 1024 * 1024,
        maxPendingBodyBytes: Int = 64 * 1024 * 1024,
        inlineBodyBytes: Int = 16 * 1024,
        streamBufferBytes: Int = 64 * 1024,
        watchdogIntervalMilliseconds: Int = 250,
        listenBacklog: Int = 4096,
        requestTimeoutSeconds: Int = 10,
        overLimitHeadroom: Int = 256,
        lingerMilliseconds: Int = 2000,
        lingerBytes: Int = 4 * 1024 * 1024,
        maxLingeringSockets: Int = 256,
        deadConnectionSweepMilliseconds: Int = 250,
        problemTypeBase: String = HTTPServerConfiguration.defaultProblemTypeBase
    ) {
        self.host = host
        self.port = port
        self.threads = threads
        self.connectionLimit = connectionLimit
        self.connectionTimeoutSeconds = connectionTimeoutSeconds
        self.connectionMemoryBytes = connectionMemoryBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxPendingBodyBytes = maxPendingBodyBytes
        self.inlineBodyBytes = inlineBodyBytes
        self.streamBufferBytes = streamBufferBytes
        self.watchdogIntervalMilliseconds = watchdogIntervalMilliseconds
        self.listenBacklog = listenBacklog
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.overLimitHeadroom = overLimitHeadroom
        self.lingerMilliseconds = lingerMilliseconds
        self.lingerBytes = lingerBytes
        self.maxLingeringSockets = maxLingeringSockets
        self.deadConnectionSweepMilliseconds = deadConnectionSweepMilliseconds
        self.problemTypeBase = problemTypeBase
    }
}

/// Why the server could not start.
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
