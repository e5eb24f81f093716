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
        listenBacklog: Int = 4096
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
    }
}

/// Why the server could not start.
public struct HTTPServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
