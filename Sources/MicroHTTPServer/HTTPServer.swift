internal import CMicroHTTPD
internal import CMicroHTTPDShims
import Glibc
public import Logging
import FanoutSync

/// An HTTP/1.1 server on libmicrohttpd: an epoll thread pool, keep-alive, `100 Continue`, and streamed
/// responses that suspend their connection while they have nothing to send.
public final class HTTPServer: Sendable {
    private enum State {
        case idle
        case running(daemon: OpaquePointerBox, port: Int)
        case stopped
    }

    /// `OpaquePointer` is not `Sendable`; the daemon handle is only used under `state`'s lock or by
    /// the single caller of `shutdown`.
    private struct OpaquePointerBox: @unchecked Sendable { let pointer: OpaquePointer }

    public let configuration: HTTPServerConfiguration
    private let context: ServerContext
    private let watchdog: DisconnectWatchdog
    private let state = Locked(State.idle)
    private let logger: Logger

    public init(configuration: HTTPServerConfiguration, handler: any HTTPHandler, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.context = ServerContext(handler: handler, configuration: configuration, logger: logger)
        self.watchdog = DisconnectWatchdog(
            registry: context.registry,
            intervalMilliseconds: configuration.watchdogIntervalMilliseconds
        )
    }

    /// The bound port once started (the real one when configured with port 0), else nil.
    public var port: Int? {
        state.withLock { state in
            if case .running(_, let port) = state { return port }
            return nil
        }
    }

    /// Streamed responses whose connection is still open.
    public var openStreams: Int { context.registry.count }

    /// Binds and starts serving. Raises the open-file limit to fit the connection limit first.
    /// - Throws: ``HTTPServerError`` when the address is invalid or cannot be bound.
    public func start() throws {
        FileLimits.raise(toFit: configuration.connectionLimit + 256, logger: logger)
        var address = try SocketAddress(host: configuration.host, port: configuration.port)
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()
        let daemon = address.withSockaddr { sockaddr -> OpaquePointer? in
            var options: [MHD_OptionItem] = [
                MHD_OptionItem(option: .CONNECTION_LIMIT, value: configuration.connectionLimit, ptr_value: nil),
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
        state.withLock { $0 = .running(daemon: OpaquePointerBox(pointer: daemon), port: port) }
        watchdog.start()
        logger.debug("libmicrohttpd daemon started", metadata: ["http.port": "\(port)", "http.threads": "\(configuration.threads)"])
    }

    /// Stops in the order libmicrohttpd survives: give open streams up to `gracePeriod` to end on
    /// their own, then end the rest with an error (which resumes every suspended one, and makes any
    /// stream opened from now on end at once), wait for their connections to close, and only then
    /// stop the daemon, off the cooperative pool. Calling `MHD_stop_daemon` with a suspended
    /// connection would abort the process.
    ///
    /// - Note: `MHD_quiesce_daemon` is not used: in 0.9.75, with epoll and internal threads, it
    ///   races the worker that removes the listening socket from its epoll set, and the loser calls
    ///   `MHD_PANIC` ("Failed to remove listen FD from epoll set"), aborting the process. The
    ///   service above refuses new jobs while draining, so the listening socket may stay open
    ///   until `MHD_stop_daemon` closes it.
    public func shutdown(gracePeriod: Duration = .seconds(5)) async {
        let daemon = state.withLock { state -> OpaquePointerBox? in
            guard case .running(let daemon, _) = state else { return nil }
            state = .stopped
            return daemon
        }
        guard let daemon else { return }
        await waitForStreams(upTo: gracePeriod)
        context.registry.cancelAll()
        await waitForStreams(upTo: .seconds(2))
        watchdog.stop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.run {
                MHD_stop_daemon(daemon.pointer)
                continuation.resume()
            }
        }
        logger.debug("libmicrohttpd daemon stopped")
    }

    private func waitForStreams(upTo limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while context.registry.count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
