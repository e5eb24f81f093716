import FanoutSync

/// The bytes of request bodies the server holds at once, across all connections
/// (``HTTPServerConfiguration/maxPendingBodyBytes``). A body announced with `Content-Length`
/// reserves its length on the head; a chunked one reserves as it arrives. The reservation is given
/// back once the handler's ``HTTPHandler/respond(to:)`` returned, or when the request ends.
final class BodyBudget: Sendable {
    let limit: Int
    private let used = Locked(0)

    init(limit: Int) { self.limit = max(limit, 0) }

    /// Reserves `bytes`, or returns false (and reserves nothing) if they do not fit.
    func reserve(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        return used.withLock { used in
            guard bytes <= limit - used else { return false }
            used += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used.withLock { $0 -= bytes }
    }

    /// Bytes reserved now.
    var pending: Int { used.withLock { $0 } }
}
