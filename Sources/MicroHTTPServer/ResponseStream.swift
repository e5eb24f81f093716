internal import CMicroHTTPD
import FanoutSync

/// The writing end of a streamed response body.
///
/// A producer task writes; the MHD thread owning the connection reads from the buffer in its content
/// reader callback. When the buffer is empty the reader suspends the connection (never spins); a write
/// resumes it. When more than ``HTTPServerConfiguration/streamBufferBytes`` are buffered, `write`
/// waits until the client has read half of it: a slow reader slows the producer, nothing is dropped.
/// The transitions are ``StreamBuffer``'s; this class performs the actions they return.
///
/// `@unchecked Sendable`: all mutable state is in `state`, behind its lock; `connection` is only
/// suspended under that lock on the owning MHD thread and resumed by whoever left `.suspended`,
/// while MHD cannot free a suspended connection.
public final class ResponseStream: @unchecked Sendable {
    let connection: OpaquePointer
    /// The connection's socket, polled by the watchdog while the stream is suspended.
    let socket: Int32
    let state: Locked<StreamBuffer>

    init(connection: OpaquePointer, socket: Int32, buffer: StreamBuffer) {
        self.connection = connection
        self.socket = socket
        self.state = Locked(buffer)
    }

    /// Queues `bytes` for the client, then waits while the buffer is over its high-water mark.
    /// - Throws: ``ResponseStreamError/closed`` once the client is gone or the server is stopping.
    public func write(_ bytes: [UInt8]) async throws {
        guard let wait = enqueue(CollectionOfOne(bytes)) else { throw ResponseStreamError.closed }
        guard wait else { return }
        let ready = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            whenRoom { continuation.resume(returning: $0) }
        }
        if !ready { throw ResponseStreamError.closed }
    }

    /// Queues `pieces` for the client, in order, without waiting. `ready` is called once: `true` as
    /// soon as the buffer has room for more (at once, on this thread, if it has now; else from the
    /// MHD thread that drained it), `false` if the stream is over (the bytes then go nowhere).
    public func write(_ pieces: [[UInt8]], ready: @escaping @Sendable (Bool) -> Void) {
        guard let wait = enqueue(pieces) else { return ready(false) }
        if wait { whenRoom(ready) } else { ready(true) }
    }

    /// Queues `pieces`, resuming the connection if the reader was suspended: whether the writer must
    /// now wait for room, or nil if the stream is over (nothing queued).
    private func enqueue(_ pieces: some Collection<[UInt8]>) -> Bool? {
        switch state.withLock({ $0.write(contentsOf: pieces) }) {
        case .refused:
            return nil
        case .queued(let resume, let wait):
            if resume { MHD_resume_connection(connection) }
            return wait
        }
    }

    /// Tells `ready` when the buffer is down to its low-water mark (or at once), or that it is over.
    private func whenRoom(_ ready: @escaping @Sendable (Bool) -> Void) {
        if let now = state.withLock({ $0.awaitSpace(ready) }) { ready(now) }
    }

    /// Whether the client is gone (or the server is stopping): writes would throw.
    public var isClosed: Bool {
        state.withLock { !$0.isOpen }
    }

    // MARK: Called by the server

    /// Runs `producer` in this task (``HTTPResponse/Body/closeObservingStream(_:)``), told of the
    /// close by ``onClose(_:)``, and ends the body when it returns. Runs in a task of ``HTTPServer/run()``.
    func run(_ producer: any StreamProducer) async {
        await producer.produce(into: self)
        finish()
    }

    /// Runs `producer` (``HTTPResponse/Body/stream(_:)``) in a child task, cancelled as soon as the
    /// connection closes (the client left, or the server stopped), and ends the body when it
    /// returns. Runs in a task of ``HTTPServer/run()``.
    func runSupervised(_ producer: @escaping @Sendable (ResponseStream) async -> Void) async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await producer(self)
                self.finish()
            }
            await withCheckedContinuation { (supervisor: CheckedContinuation<Void, Never>) in
                if !state.withLock({ $0.awaitEnd(supervisor) }) { supervisor.resume() }
            }
            group.cancelAll()
        }
    }

    /// Calls `observer` once, on whichever thread ends the stream, when the client goes away or the
    /// server stops it — at once if that has happened already. Never after the producer returned.
    public func onClose(_ observer: @escaping @Sendable () -> Void) {
        if !state.withLock({ $0.observeClose(observer) }) { observer() }
    }

    /// The producer returned: end the body once the client has read what is buffered.
    func finish() {
        perform(state.withLock { $0.finish() })
    }

    /// End the body with an error at once (watchdog: client gone; server: stopping).
    /// Returns false if nothing changed (already closed, or not suspended with `onlyIfSuspended`).
    @discardableResult
    func cancel(onlyIfSuspended: Bool = false) -> Bool {
        guard let wakeups = state.withLock({ $0.cancel(onlyIfSuspended: onlyIfSuspended) }) else { return false }
        perform(wakeups)
        return true
    }

    /// MHD completed the request (any reason): fail the writer and cancel the producer.
    func markClosed() {
        perform(state.withLock { $0.close() })
    }

    private func perform(_ wakeups: StreamBuffer.Wakeups) {
        if wakeups.resume { MHD_resume_connection(connection) }
        wakeups.writer?(false)
        wakeups.supervisor?.resume()
        wakeups.closeObserver?()
    }

    /// The socket to poll for a hang-up if the stream is suspended now, else nil.
    func suspendedSocket() -> Int32? {
        state.withLock { $0.state == .suspended ? socket : nil }
    }

    /// MHD's content reader: runs on the connection's MHD thread with MHD's response lock held.
    /// Copies what is buffered; with nothing buffered, ends the body or suspends the connection.
    func read(into buffer: UnsafeMutableRawPointer, max: Int) -> Int {
        let action = state.withLock { state -> StreamBuffer.ReadAction in
            let action = state.read(into: buffer, max: max)
            // Suspend under the lock: a writer sees `.suspended` only once MHD has recorded it.
            if case .suspend = action { MHD_suspend_connection(connection) }
            return action
        }
        switch action {
        case .copied(let count, let writer):
            writer?(true)
            return count
        case .suspend, .nothing:
            return 0
        case .endOfStream:
            return Int(MHD_CONTENT_READER_END_OF_STREAM)
        case .endWithError:
            return Int(MHD_CONTENT_READER_END_WITH_ERROR)
        }
    }
}

/// Why a stream write failed.
public enum ResponseStreamError: Error, Sendable {
    /// The client went away, or the server is stopping.
    case closed
}
