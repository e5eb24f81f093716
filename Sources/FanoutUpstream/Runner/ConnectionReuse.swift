import Logging
import FanoutSync

/// Which pooled connections have carried a request already, so that a request that fails on a
/// *reused* connection before any answer (the upstream closed it while idle: its keep-alive
/// timeout ran out as the request was sent) can be told from one that fails on a fresh connection.
///
/// AsyncHTTPClient 1.37 does not say which connection a request went on, except by setting the
/// `ahc-connection-id` metadata on the request's logger when the request is handed to a
/// connection (connection ids are unique in the process). ``ConnectionSpy`` is that logger's
/// handler; it asks this tracker whether the id was seen before. Entries not used for
/// `horizon` are dropped (the pool closed those connections long ago; a connection whose entry
/// was dropped counts as fresh, which only means no replay).
final class ConnectionReuse: Sendable {
    private struct State {
        var lastUsed: [String: ContinuousClock.Instant] = [:]
        var lastPrune = ContinuousClock.now
    }

    private let horizon: Duration
    private let state = Locked(State())

    init(horizon: Duration) {
        self.horizon = horizon
    }

    /// Records that a request was handed to connection `id`; true if one was before.
    func markUsed(_ id: String) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { state in
            if now - state.lastPrune > horizon {
                state.lastUsed = state.lastUsed.filter { now - $0.value <= horizon }
                state.lastPrune = now
            }
            return state.lastUsed.updateValue(now, forKey: id) != nil
        }
    }

    /// Connections remembered (for tests).
    var count: Int { state.withLock { $0.lastUsed.count } }
}

/// The log handler of one request's logger: forwards everything to the runner's handler, and
/// notes the connection AsyncHTTPClient hands the request to (see ``ConnectionReuse``).
final class ConnectionSpy: LogHandler, Sendable {
    static let connectionKey = "ahc-connection-id"

    private struct State {
        var inner: any LogHandler
        var connection: String?
        var reused = false
    }

    private let reuse: ConnectionReuse
    private let state: Locked<State>

    init(wrapping inner: any LogHandler, reuse: ConnectionReuse) {
        self.reuse = reuse
        self.state = Locked(State(inner: inner))
    }

    /// The request went on a connection that had carried a request before.
    var reusedConnection: Bool { state.withLock { $0.reused } }
    /// The request was handed to a connection at all.
    var reachedConnection: Bool { state.withLock { $0.connection != nil } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { state.withLock { $0.inner[metadataKey: key] } }
        set {
            if key == Self.connectionKey, let id = newValue.map({ "\($0)" }),
               state.withLock({ $0.connection != id }) {
                let reused = reuse.markUsed(id)
                state.withLock { state in
                    state.connection = id
                    state.reused = reused
                }
            }
            state.withLock { $0.inner[metadataKey: key] = newValue }
        }
    }

    var metadata: Logger.Metadata {
        get { state.withLock { $0.inner.metadata } }
        set { state.withLock { $0.inner.metadata = newValue } }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { state.withLock { $0.inner.metadataProvider } }
        set { state.withLock { $0.inner.metadataProvider = newValue } }
    }

    var logLevel: Logger.Level {
        get { state.withLock { $0.inner.logLevel } }
        set { state.withLock { $0.inner.logLevel = newValue } }
    }

    func log(event: LogEvent) {
        let inner = state.withLock { $0.inner }
        inner.log(event: event)
    }
}
