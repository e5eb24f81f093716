internal import CMicroHTTPD
internal import CMicroHTTPDShims
import Glibc
public import Logging
import FanoutSync
import Synchronization

/// An HTTP/1.1 server on libmicrohttpd: an epoll thread pool, keep-alive, `100 Continue`, and streamed
/// responses that suspend their connection while they have nothing to send.
public final class HTTPServer: Sendable {
    private enum State {
        case idle
        /// `start()` is binding; a second `start()` fails instead of making a second daemon.
        case starting
        case running(daemon: OpaquePointerBox, port: Int, watchdog: DisconnectWatchdog)
        case stopped
    }

    /// `OpaquePointer` is not `Sendable`; the daemon handle is only used under `state`'s lock or by
    /// the single caller of `shutdown`.
    private struct OpaquePointerBox: @unchecked Sendable { let pointer: OpaquePointer }

    public let configuration: HTTPServerConfiguration
    private let context: ServerContext
    private let state = Locked(State.idle)
    private let logger: Logger

    public init(configuration: HTTPServerConfiguration, handler: any HTTPHandler, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.context = ServerContext(handler: handler, configuration: configuration, logger: logger)
    }

    /// The bound port once started (the real one when configured with port 0), else nil.
    public var port: Int? {
        state.withLock { state in
            if case .running(_, let port, _) = state { return port }
            return nil
        }
    }

    /// Client sockets accepted and not yet closed, those over the limit (answered 503) included.
    public var openConnections: Int { context.connections.open.load(ordering: .relaxed) }

    /// Sockets lingering after an early answer (see ``HTTPServerConfiguration/lingerMilliseconds``).
    public var lingeringSockets: Int { context.connections.lingering.count }

    /// Streamed responses whose connection is still open.
    public var openStreams: Int { context.registry.count }

    /// Request-body bytes reserved now against ``HTTPServerConfiguration/maxPendingBodyBytes``.
    public var pendingBodyBytes: Int { context.budget.pending }

    /// Runs every stream producer and every ``HTTPHandler/respond(to:)`` call in one discarding
    /// task group, until ``shutdown(gracePeriod:)`` has stopped the daemon and they have all
    /// returned. Requests with a body and streamed responses are only answered while this runs.
    /// Cancelling its task cancels the producers and ends every stream, open or new, with an
    /// error (as ``shutdown(gracePeriod:)`` does after its grace: a `closeObservingStream` producer
    /// learns of it from `onClose`, not from its task), but keeps it serving, since a suspended
    /// connection left without its task would never be resumed. A second call returns at once.
    public func run() async {
        guard context.work.claim() else {
            logger.warning("HTTPServer.run() called twice; the second call returns at once")
            return
        }
        await serve()
    }

    /// The task group of ``run()``, for whoever claimed the work queue.
    private func serve() async {
        let registry = context.registry
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                while let work = await context.work.next() {
                    group.addTask { await work.run() }
                }
            }
        } onCancel: {
            registry.cancelAll()
        }
    }

    /// Binds and starts serving. Raises the open-file limit to fit the connection limit first.
    /// - Throws: ``HTTPServerError`` when the address is invalid or cannot be bound, or when the
    ///   server was started before (a server starts once).
    public func start() throws {
        try state.withLock { state throws(HTTPServerError) in
            guard case .idle = state else { throw HTTPServerError("the server was already started") }
            state = .starting
        }
        do {
            try bind()
        } catch {
            state.withLock { $0 = .idle }
            throw error
        }
    }

    private func bind() throws {
        let mhdLimit = configuration.connectionLimit + max(configuration.overLimitHeadroom, 0)
        FileLimits.raise(toFit: mhdLimit + configuration.maxLingeringSockets + 256, logger: logger)
        var address = try SocketAddress(host: configuration.host, port: configuration.port)
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()
        let daemon = address.withSockaddr { sockaddr -> OpaquePointer? in
            var options: [MHD_OptionItem] = [
                // The headroom above the configured limit is answered 503 by ConnectionHooks.
                MHD_OptionItem(option: .CONNECTION_LIMIT, value: mhdLimit, ptr_value: nil),
                MHD_OptionItem(option: .CONNECTION_TIMEOUT, value: configuration.connectionTimeoutSeconds, ptr_value: nil),
                MHD_OptionItem(option: .CONNECTION_MEMORY_LIMIT, value: configuration.connectionMemoryBytes, ptr_value: nil),
                MHD_OptionItem(option: .LISTEN_BACKLOG_SIZE, value: configuration.listenBacklog, ptr_value: nil),
                MHD_OptionItem(option: .SOCK_ADDR, value: 0, ptr_value: UnsafeMutableRawPointer(mutating: sockaddr)),
                MHD_OptionItem(
                    option: .NOTIFY_COMPLETED,
                    value: Int(bitPattern: unsafeBitCast(Callbacks.completed, to: UnsafeRawPointer.self)),
                    ptr_value: contextPointer
                ),
                MHD_OptionItem(
                    option: .NOTIFY_CONNECTION,
                    value: Int(bitPattern: unsafeBitCast(ConnectionHooks.notify, to: UnsafeRawPointer.self)),
                    ptr_value: contextPointer
                ),
                MHD_OptionItem(
                    option: .URI_LOG_CALLBACK,
                    value: Int(bitPattern: unsafeBitCast(ConnectionHooks.requestLine, to: UnsafeRawPointer.self)),
                    ptr_value: contextPointer
                ),
                MHD_OptionItem(
                    option: .EXTERNAL_LOGGER,
                    value: Int(bitPattern: unsafeBitCast(Callbacks.log, to: UnsafeRawPointer.self)),
                    ptr_value: contextPointer
                ),
            ]
            if configuration.threads > 1 {
                options.append(MHD_OptionItem(option: .THREAD_POOL_SIZE, value: configuration.threads, ptr_value: nil))
            }
            options.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
            return options.withUnsafeBufferPointer { options in
                cmhd_start_daemon(flags | MHD_USE_ERROR_LOG.rawValue, Callbacks.access, contextPointer, options.baseAddress!)
            }
        }
        guard let daemon else {
            throw HTTPServerError("cannot listen on \(configuration.host):\(configuration.port) (address in use, or not permitted)")
        }
        let port = Int(cmhd_bind_port(daemon))
        let watchdog = DisconnectWatchdog(registry: context.registry, intervalMilliseconds: configuration.watchdogIntervalMilliseconds)
        state.withLock { $0 = .running(daemon: OpaquePointerBox(pointer: daemon), port: port, watchdog: watchdog) }
        context.connections.sweeper.start()
        logger.debug("libmicrohttpd daemon started", metadata: ["http.port": "\(port)", "http.threads": "\(configuration.threads)"])
    }

    /// Stops in the order libmicrohttpd survives: give open streams (and running
    /// ``HTTPHandler/respond(to:)`` calls) up to `gracePeriod` to end on their own, then end the rest
    /// with an error (which resumes every suspended one, and makes any stream opened from now on
    /// end at once), wait for their connections to close, and only then stop the daemon, off the
    /// cooperative pool; finally let ``run()`` return. Calling `MHD_stop_daemon` with a suspended
    /// connection would abort the process. The waits are not polls: the registry resumes them
    /// when its count reaches zero. A cancelled task skips the grace period, never the last wait.
    ///
    /// - Note: `MHD_quiesce_daemon` is not used: in 0.9.75, with epoll and internal threads, it
    ///   races the worker that removes the listening socket from its epoll set, and the loser calls
    ///   `MHD_PANIC` ("Failed to remove listen FD from epoll set"), aborting the process. The
    ///   service above refuses new jobs while draining, so the listening socket may stay open
    ///   until `MHD_stop_daemon` closes it.
    public func shutdown(gracePeriod: Duration = .seconds(5)) async {
        let running = state.withLock { state -> (OpaquePointerBox, DisconnectWatchdog)? in
            switch state {
            case .running(let daemon, _, let watchdog):
                state = .stopped
                return (daemon, watchdog)
            case .idle:
                state = .stopped
                return nil
            case .starting, .stopped:
                return nil
            }
        }
        guard let (daemon, watchdog) = running else {
            context.work.finish()
            return
        }
        // Nobody ran run(): serve what is queued here, so that no connection is left suspended
        // (with its work never run) when `MHD_stop_daemon` comes.
        let orphaned = context.work.claim()
        if orphaned { logger.warning("HTTPServer.shutdown() without run(): the server's tasks run now") }
        async let served: Void = orphaned ? serve() : ()
        _ = await context.registry.waitForZero(upTo: gracePeriod)
        context.registry.cancelAll()
        _ = await context.registry.waitForZero(upTo: .seconds(2), honoursCancellation: false)
        watchdog.stop()
        context.connections.sweeper.stop()
        let lingering = context.connections.lingering
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.run {
                MHD_stop_daemon(daemon.pointer)
                lingering.stop()
                continuation.resume()
            }
        }
        context.work.finish()
        await served
        logger.debug("libmicrohttpd daemon stopped")
    }
}
