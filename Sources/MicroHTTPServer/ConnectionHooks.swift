internal import CMicroHTTPD
internal import CMicroHTTPDShims
import Glibc
import FanoutSync
import Synchronization

/// What the connection hooks share across MHD's threads: the limits they enforce, how many sockets
/// are open, and the lingering-close thread.
final class ConnectionGuard: Sendable {
    let connectionLimit: Int
    let requestTimeoutSeconds: Int
    let connectionTimeoutSeconds: Int
    let problemTypeBase: String
    let lingering: LingeringClose
    let sweeper: DeadConnectionSweeper
    /// Sockets MHD has accepted and not yet closed.
    let open = Atomic<Int>(0)

    /// Starts the head's read deadline (none when the request timeout is 0); `afterIdle` (between
    /// kept-alive requests) adds the idle timeout, and sets none when that is 0 (never).
    func startHeadDeadline(_ entry: DeadConnectionSweeper.Entry, afterIdle: Bool = false) {
        guard requestTimeoutSeconds > 0, !afterIdle || connectionTimeoutSeconds > 0 else {
            entry.headDeadline.store(0, ordering: .relaxed)
            return
        }
        let seconds = UInt64(requestTimeoutSeconds + (afterIdle ? connectionTimeoutSeconds : 0))
        entry.headDeadline.store(DeadConnectionSweeper.now() + seconds * 1_000_000_000, ordering: .relaxed)
    }

    init(configuration: HTTPServerConfiguration) {
        connectionLimit = configuration.connectionLimit
        requestTimeoutSeconds = configuration.requestTimeoutSeconds
        connectionTimeoutSeconds = configuration.connectionTimeoutSeconds
        problemTypeBase = configuration.problemTypeBase
        lingering = LingeringClose(
            milliseconds: configuration.lingerMilliseconds,
            bytes: configuration.lingerBytes,
            maxSockets: configuration.maxLingeringSockets
        )
        sweeper = DeadConnectionSweeper(intervalMilliseconds: configuration.deadConnectionSweepMilliseconds)
    }
}

/// `void *(*)(void *cls, const char *uri, struct MHD_Connection *)`, MHD_OPTION_URI_LOG_CALLBACK's type
/// (the header declares no typedef for it).
typealias URILogCallback = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer?

/// The per-connection side of the server: framing checks on the head, the request read deadline versus
/// the idle timeout, answers to connections over the limit, and lingering close after early answers.
/// The C callbacks are installed by ``HTTPServer``; `screen`, `responseQueued` and `requestCompleted`
/// are called from the access and completion callbacks in ``Callbacks``.
enum ConnectionHooks {
    /// `MHD_NotifyConnectionCallback`: a socket was accepted (its state is created and the short
    /// request timeout set) or closed (its state released).
    static let notify: MHD_NotifyConnectionCallback = { cls, connection, socketContext, code in
        guard let cls, let connection, let socketContext else { return }
        let guardian = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue().connections
        switch code {
        case .CONNECTION_NOTIFY_STARTED:
            let open = guardian.open.wrappingAdd(1, ordering: .relaxed).newValue
            let fd = cmhd_connection_fd(connection)
            let state = ConnectionState(fd: fd, overLimit: open > guardian.connectionLimit, sweep: guardian.sweeper.add(fd: fd))
            guardian.startHeadDeadline(state.sweep)
            // Pattern "long-lived context": released below when MHD closes the socket.
            socketContext.pointee = Unmanaged.passRetained(state).toOpaque()
            // Over the limit the client gets little time to send the request its 503 answers.
            if guardian.requestTimeoutSeconds > 0 {
                setTimeout(connection, seconds: state.overLimit ? min(guardian.requestTimeoutSeconds, 2) : guardian.requestTimeoutSeconds)
            }
        default:
            guardian.open.subtract(1, ordering: .relaxed)
            guard let pointer = socketContext.pointee else { return }
            socketContext.pointee = nil
            let state = Unmanaged<ConnectionState>.fromOpaque(pointer).takeRetainedValue()
            guardian.sweeper.remove(state.sweep)
        }
    }

    /// MHD_OPTION_URI_LOG_CALLBACK: a request line was parsed (the target is still raw here). Starts the
    /// request's read deadline, and notes what the NUL check needs. Returns nil: `*req_cls` stays empty.
    static let requestLine: URILogCallback = { cls, uri, connection in
        guard let cls, let connection, let state = state(of: connection) else { return nil }
        let guardian = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue().connections
        state.screened = false
        state.inHeadPhase = false
        state.answeredEarly = false
        state.chunkedBody = false
        state.bodyBytes = 0
        state.bodyBytesOverLimit = 0
        state.wroteOwnAnswer = false
        if let uri {
            let length = strlen(uri)
            state.rawTarget = (uri, length)
            state.targetHasEncodedNUL = strstr(uri, "%00") != nil
        } else {
            state.rawTarget = nil
            state.targetHasEncodedNUL = false
        }
        if !state.overLimit, guardian.requestTimeoutSeconds > 0 { setTimeout(connection, seconds: guardian.requestTimeoutSeconds) }
        if state.sweep.headDeadline.load(ordering: .relaxed) == 0 { guardian.startHeadDeadline(state.sweep) }
        return nil
    }

    /// Called on every access-handler call, before anything else. On the first (head-only) call, refuses
    /// a connection over the limit (503) or a malformed head (400/413/501), queueing the problem itself;
    /// returns the handler's result then, nil to go on.
    static func screen(
        _ connection: OpaquePointer,
        method: UnsafePointer<CChar>?,
        url: UnsafePointer<CChar>?,
        version: UnsafePointer<CChar>?,
        firstCall: Bool,
        server: ServerContext
    ) -> MHD_Result? {
        guard let state = state(of: connection) else { return nil }
        guard firstCall else {
            state.inHeadPhase = false
            return nil
        }
        state.screened = true
        state.inHeadPhase = true
        // The head is complete; the body has MHD's inactivity timeout (the request timeout still).
        state.sweep.headDeadline.store(0, ordering: .relaxed)
        let guardian = server.connections
        let problem: ServerProblem?
        if state.overLimit {
            problem = ServerProblem(
                status: 503, title: "Service Unavailable",
                detail: "the server is at its connection limit; retry shortly", slug: "over-capacity", retryAfterSeconds: 1
            )
        } else {
            var headers: [RawHeader] = []
            headers.reserveCapacity(16)
            withUnsafeMutablePointer(to: &headers) { headers in
                _ = MHD_get_connection_values_n(connection, .HEADER_KIND, collectRawHeader, headers)
            }
            // The head starts at the method (MHD parses it in place) and is header_size bytes long.
            let headSize = UInt(cmhd_request_header_size(connection))
            let headEnd = method.map { headSize > 0 ? UInt(bitPattern: $0) + headSize : 0 } ?? 0
            state.chunkedBody = headers.contains { $0.named("transfer-encoding") }
            problem = RequestFraming.refusal(
                version: version.map(Callbacks.knownVersion) ?? "",
                headers: headers,
                headEnd: headEnd,
                targetHasNUL: targetHasNUL(state, url: url, version: version)
            )
        }
        guard let problem else { return nil }
        let queued = problem.queue(on: connection, typeBase: guardian.problemTypeBase)
        if queued == .YES { responseQueued(connection, server: server) }
        return queued
    }

    /// A response was queued for the current request: it has been read (or refused), so the connection
    /// now has the idle timeout; queued on the head-only call, the answer was early and the connection
    /// closes lingeringly.
    static func responseQueued(_ connection: OpaquePointer, server: ServerContext) {
        guard let state = state(of: connection) else { return }
        if state.inHeadPhase { state.answeredEarly = true }
        state.sweep.responding.store(true, ordering: .relaxed)
        if server.connections.requestTimeoutSeconds > 0 {
            setTimeout(connection, seconds: server.connections.connectionTimeoutSeconds)
        }
    }

    /// The request is over (MHD_OPTION_NOTIFY_COMPLETED, before MHD shuts the socket down). After an
    /// early answer, or one MHD gave on its own (it closes after those), the socket lingers.
    static func requestCompleted(_ connection: OpaquePointer?, code: MHD_RequestTerminationCode, server: ServerContext) {
        guard let connection, let state = state(of: connection) else { return }
        if state.wroteOwnAnswer || (code == .REQUEST_TERMINATED_COMPLETED_OK && (state.answeredEarly || !state.screened)) {
            server.connections.lingering.adopt(state.fd)
        }
        state.answeredEarly = false
        state.rawTarget = nil
        // Kept alive, the next head must be complete within the idle timeout plus the request timeout:
        // the request-line callback only comes once a whole line is in, and MHD's timeout restarts
        // with every byte, so nothing else bounds a request line dripped byte by byte.
        server.connections.startHeadDeadline(state.sweep, afterIdle: true)
        state.sweep.responding.store(false, ordering: .relaxed)
    }

    /// Called on each access-handler call with upload data. MHD 0.9.75 cannot queue a response in the
    /// middle of an upload, and a chunked body over the limit is otherwise drained to its end to keep
    /// the connection: a first chunk that announces more than the limit (`ffffffffffffffff`), or a body
    /// more than the limit past it, will not end soon. Then the server writes a 413 to the socket
    /// itself and returns true: the handler returns `MHD_NO`, MHD closes, and the socket lingers.
    static func uploadIsHopeless(
        _ connection: OpaquePointer,
        data: UnsafePointer<CChar>?,
        size: Int,
        over: Bool,
        server: ServerContext
    ) -> Bool {
        guard let state = state(of: connection), state.chunkedBody else { return false }
        let limit = server.maxBodyBytes
        let first = state.bodyBytes == 0
        state.bodyBytes += size
        if over { state.bodyBytesOverLimit += size }
        var hopeless = state.bodyBytesOverLimit > limit
        if first, let data, let announced = announcedChunkSize(before: data), announced > UInt64(limit) { hopeless = true }
        guard hopeless else { return false }
        let bytes = ServerProblem(
            status: 413, title: "Content Too Large",
            detail: "the request body is over the limit of \(limit) bytes", slug: "body-too-large"
        ).wireBytes(typeBase: server.connections.problemTypeBase)
        let sent = bytes.withUnsafeBytes { send(state.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        state.wroteOwnAnswer = sent == bytes.count
        return true
    }

    /// The size line of the first chunk, read back from MHD's buffer just before the first chunk's data:
    /// MHD parses chunk lines in place and hands over the data that follows, and before that line lies
    /// the head it has parsed (its line ends overwritten with zeros), never hex digits and CR LF. Only
    /// a plain `HEX CR LF` line (at most 16 digits) is recognised; nil when it is not there.
    private static func announcedChunkSize(before data: UnsafePointer<CChar>) -> UInt64? {
        let raw = UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self)
        guard raw[-1] == 10, raw[-2] == 13 else { return nil }
        var digits = 0
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while digits < 17 {
            let byte = raw[-3 - digits]
            let nibble: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = UInt64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = UInt64(byte - UInt8(ascii: "A") + 10)
            default:
                return digits == 0 ? nil : value
            }
            guard digits < 16 else { return nil }
            value |= nibble << shift
            shift += 4
            digits += 1
        }
        return nil
    }

    /// The raw target held a NUL: its C-string length at the request line falls short of the span MHD
    /// parsed (up to the space before the version), or it held `%00`.
    private static func targetHasNUL(_ state: ConnectionState, url: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?) -> Bool {
        if state.targetHasEncodedNUL { return true }
        guard let url, let version, let raw = state.rawTarget, raw.start == url else { return false }
        let span = url.distance(to: version) - 1
        return span > 0 && span < 1 << 20 && raw.length < span
    }

    /// The peer's address, e.g. `127.0.0.1:53012`, formatted once per connection.
    static func peer(of connection: OpaquePointer) -> String? {
        guard let state = state(of: connection) else { return Callbacks.peerAddress(connection) }
        if let peer = state.peer { return peer }
        let peer = Callbacks.peerAddress(connection)
        state.peer = .some(peer)
        return peer
    }

    private static func state(of connection: OpaquePointer) -> ConnectionState? {
        cmhd_socket_context(connection).map { Unmanaged<ConnectionState>.fromOpaque($0).takeUnretainedValue() }
    }

    /// This connection's inactivity timeout from now on; 0 for none.
    private static func setTimeout(_ connection: OpaquePointer, seconds: Int) {
        _ = cmhd_set_connection_timeout(connection, UInt32(max(seconds, 0)))
    }

    /// `MHD_KeyValueIteratorN` collecting headers with their exact lengths.
    private static let collectRawHeader: MHD_KeyValueIteratorN = { cls, _, key, keySize, value, valueSize in
        guard let cls, let key else { return .YES }
        let headers = cls.assumingMemoryBound(to: [RawHeader].self)
        let name = UnsafeRawBufferPointer(start: key, count: keySize)
        let bytes = UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : valueSize)
        let lineStart = UInt(bitPattern: key)
        let valueEnd = value.map { UInt(bitPattern: $0) + UInt(valueSize) } ?? 0
        headers.pointee.append(RawHeader(name: name, value: bytes, lineStart: lineStart, valueEnd: valueEnd))
        return .YES
    }
}
