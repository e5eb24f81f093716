internal import CMicroHTTPD
import FanoutSync

/// The writing end of a streamed response body.
///
/// A producer task writes; the MHD thread owning the connection reads from the buffer in its content
/// reader callback. When the buffer is empty the reader suspends the connection (never spins); a write
/// resumes it. When more than ``HTTPServerConfiguration/streamBufferBytes`` are buffered, `write`
/// waits until the client has read half of it: a slow reader slows the producer, nothing is dropped.
///
/// `@unchecked Sendable`: all mutable state is in `state`, behind its lock; `connection` is only
/// suspended under that lock on the owning MHD thread and resumed by whoever cleared `suspended`,
/// while MHD cannot free a suspended connection.
public final class ResponseStream: @unchecked Sendable {
    let connection: OpaquePointer
    /// The connection's socket, polled by the watchdog while the stream is suspended.
    let socket: Int32
    let state: Locked<StreamBuffer>

    init(connection: OpaquePointer, socket: Int32, highWater: Int) {
        self.connection = connection
        self.socket = socket
        self.state = Locked(StreamBuffer(highWater: highWater))
    }

    /// Queues `bytes` for the client, then waits while the buffer is over its high-water mark.
    /// - Throws: ``ResponseStreamError/closed`` once the client is gone or the server is stopping.
    public func write(_ bytes: [UInt8]) async throws {
        let (resume, wait) = try state.withLock { state throws -> (Bool, Bool) in
            guard !state.closed, !state.cancelled else { throw ResponseStreamError.closed }
            state.append(bytes)
            return (state.takeSuspended(), state.buffered > state.highWater)
        }
        if resume { MHD_resume_connection(connection) }
        if wait { try await waitForSpace() }
    }

    /// Whether the client is gone (or the server is stopping): writes would throw.
    public var isClosed: Bool {
        state.withLock { $0.closed || $0.cancelled }
    }

    private func waitForSpace() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: Result<Void, any Error>? = state.withLock { state in
                if state.closed || state.cancelled { return .failure(ResponseStreamError.closed) }
                if state.buffered <= state.lowWater { return .success(()) }
                state.writer = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    // MARK: Called by the server

    /// Queues the whole body and marks it finished, before MHD first reads.
    func prefill(_ bytes: [UInt8]) {
        state.withLock { state in
            state.append(bytes)
            state.finished = true
        }
    }

    func attach(producer: Task<Void, Never>) {
        let closed = state.withLock { state -> Bool in
            if state.closed { return true }
            state.producer = producer
            return false
        }
        if closed { producer.cancel() }
    }

    /// The producer returned: end the body once the client has read what is buffered.
    func finish() {
        let resume = state.withLock { state -> Bool in
            state.finished = true
            state.producer = nil
            return state.takeSuspended()
        }
        if resume { MHD_resume_connection(connection) }
    }

    /// End the body with an error at once (watchdog: client gone; server: stopping).
    /// Returns false if the stream had already closed.
    @discardableResult
    func cancel(onlyIfSuspended: Bool = false) -> Bool {
        let (resume, writer, acted) = state.withLock { state -> (Bool, CheckedContinuation<Void, any Error>?, Bool) in
            if state.closed || (onlyIfSuspended && !state.suspended) { return (false, nil, false) }
            state.cancelled = true
            let writer = state.writer
            state.writer = nil
            return (state.takeSuspended(), writer, true)
        }
        if resume { MHD_resume_connection(connection) }
        writer?.resume(throwing: ResponseStreamError.closed)
        return acted
    }

    /// MHD completed the request (any reason): fail the writer and cancel the producer.
    func markClosed() {
        let (writer, producer) = state.withLock { state in
            state.closed = true
            state.suspended = false
            defer {
                state.writer = nil
                state.producer = nil
            }
            return (state.writer, state.producer)
        }
        writer?.resume(throwing: ResponseStreamError.closed)
        producer?.cancel()
    }

    /// The socket to poll for a hang-up if the stream is suspended now, else nil.
    func suspendedSocket() -> Int32? {
        state.withLock { $0.suspended && !$0.closed ? socket : nil }
    }

    /// MHD's content reader: runs on the connection's MHD thread with MHD's response lock held.
    /// Copies what is buffered; with nothing buffered, ends the body or suspends the connection.
    func read(into buffer: UnsafeMutableRawPointer, max: Int) -> Int {
        let (result, writer) = state.withLock { state -> (Int, CheckedContinuation<Void, any Error>?) in
            if state.cancelled { return (Int(MHD_CONTENT_READER_END_WITH_ERROR), nil) }
            if !state.isEmpty {
                let copied = state.drain(into: buffer, max: max)
                return (copied, state.takeWriterIfDrained())
            }
            if state.finished { return (Int(MHD_CONTENT_READER_END_OF_STREAM), nil) }
            // Suspend under the lock: a producer sees `suspended` only once MHD has recorded it.
            state.suspended = true
            MHD_suspend_connection(connection)
            return (0, nil)
        }
        writer?.resume()
        return result
    }
}

/// Why a stream write failed.
public enum ResponseStreamError: Error, Sendable {
    /// The client went away, or the server is stopping.
    case closed
}
