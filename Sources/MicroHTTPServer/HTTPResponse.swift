/// A response to queue: a fixed body, or a stream the server feeds to the client as it is written.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        /// A complete body, sent with `Content-Length`.
        case bytes([UInt8])
        /// A body of unknown length (chunked on HTTP/1.1, close-delimited on HTTP/1.0).
        /// The server runs the closure in a task of ``HTTPServer/run()`` once the head is queued and
        /// ends the body when it returns. The task is cancelled when the client goes away.
        case stream(@Sendable (ResponseStream) async -> Void)
        /// As ``stream(_:)``, but the producer runs in the task of ``HTTPServer/run()`` itself, with
        /// no second task to cancel it: it is not cancelled when the client goes away, it is told
        /// (``ResponseStream/onClose(_:)``, and every write from then on throws), as it is when the
        /// server stops or its task is cancelled. One task per open stream instead of two, for
        /// producers that can stop on being told.
        case closeObservingStream(any StreamProducer)
        /// As ``closeObservingStream(_:)``, but with no task at all: the producer is started on the
        /// connection's thread as soon as the head is queued, and goes on from whatever threads its
        /// own events run on (``DrivenStreamProducer``). It saves an open stream its task (~1.4 KiB).
        case drivenStream(any DrivenStreamProducer)
        /// A streamed body (chunked, or close-delimited on HTTP/1.0) whose bytes are all known now:
        /// sent like ``stream(_:)`` but with no task and no suspension.
        case finishedStream([UInt8])
    }

    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: Body

    public init(status: Int, headers: [(name: String, value: String)] = [], body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response with a text body of the given content type.
    public init(status: Int, contentType: String, text: String, headers: [(name: String, value: String)] = []) {
        self.init(status: status, headers: [("Content-Type", contentType)] + headers, body: .bytes(Array(text.utf8)))
    }
}

/// Writes a ``HTTPResponse/Body/closeObservingStream(_:)`` body. The task of an open stream holds
/// its async frames for the stream's life: an object's method called straight from the server's
/// task (a class existential is two words), not a closure behind thunks, keeps them small.
public protocol StreamProducer: AnyObject, Sendable {
    /// Writes the body; the server ends it when this returns.
    func produce(into stream: ResponseStream) async
}

/// Writes a ``HTTPResponse/Body/drivenStream(_:)`` body with no task of its own: ``start(into:ending:)``
/// runs on an MHD thread (keep it short) and returns, and the producer writes from the threads its
/// own events arrive on (timers, the stream's `ready` callbacks). It is told of the close as a
/// `closeObservingStream` producer is (``ResponseStream/onClose(_:)``); it also runs when the
/// server is stopping (the stream is closed then), so that it gives back what it holds. Shutdown
/// waits for its `ending` as for an open stream.
public protocol DrivenStreamProducer: AnyObject, Sendable {
    /// Starts writing the body; calls `ending` exactly once, from any thread, when it is done.
    func start(into stream: ResponseStream, ending: StreamEnding)
}

/// Ends a ``DrivenStreamProducer``'s body once the client has read what is buffered, and tells
/// the server the producer is done. Call it exactly once.
public struct StreamEnding: Sendable {
    let stream: ResponseStream
    let registry: StreamRegistry

    public func callAsFunction() {
        stream.finish()
        registry.drivenEnded()
    }
}
