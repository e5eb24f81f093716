import FanoutSync

/// At most `limit` requests in flight per key (`host:port`), the rest waiting in FIFO order: the
/// first subtask to queue for a host is the first to get a slot. A cancelled waiter leaves the queue
/// at once. Hosts with nothing in flight and nobody waiting are forgotten, so memory follows the
/// hosts in use, not every host ever called.
final class HostLimiter: Sendable {
    private struct HostState {
        var inUse = 0
        /// Waiter ids in arrival order from `head`; ids no longer in `waiters` were cancelled.
        var queue: [UInt64] = []
        var head = 0
        var live = 0

        /// Takes a slot if one is free and nobody is queued for it (FIFO: a waiter goes first).
        mutating func takeFreeSlot(limit: Int) -> Bool {
            guard inUse < limit, live == 0 else { return false }
            inUse += 1
            return true
        }

        mutating func popLive(from waiters: inout [UInt64: Waiter]) -> Waiter? {
            while head < queue.count {
                let id = queue[head]
                head += 1
                if head > 64, head * 2 > queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                if let waiter = waiters.removeValue(forKey: id) {
                    live -= 1
                    return waiter
                }
            }
            return nil
        }
    }

    private struct Waiter {
        let key: String
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var hosts: [String: HostState] = [:]
        var waiters: [UInt64: Waiter] = [:]
        /// Ids handed out whose continuation is not installed yet, and those cancelled meanwhile.
        var pending: Set<UInt64> = []
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    let limit: Int
    private let state = Locked(State())

    init(limit: Int) {
        precondition(limit > 0, "the per-host limit must be at least 1")
        self.limit = limit
    }

    /// Waits for a slot for `key`. Every successful call must be paired with ``release(_:)``.
    /// A free slot with nobody queued is taken at once, without suspending.
    /// - Throws: `CancellationError` when the calling task is cancelled while waiting (or before).
    func acquire(_ key: String) async throws {
        if Task.isCancelled { throw CancellationError() }
        if takeFreeSlot(key) { return }
        let id = state.withLock { state in
            state.nextID += 1
            state.pending.insert(state.nextID)
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let granted: Bool? = state.withLock { state in
                    state.pending.remove(id)
                    if state.cancelledEarly.remove(id) != nil { return nil }
                    var host = state.hosts[key, default: HostState()]
                    defer { state.hosts[key] = host }
                    if host.takeFreeSlot(limit: limit) { return true }
                    host.queue.append(id)
                    host.live += 1
                    state.waiters[id] = Waiter(key: key, continuation: continuation)
                    return false
                }
                switch granted {
                case true?: continuation.resume()
                case false?: break
                case nil: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                if state.pending.contains(id) {
                    state.cancelledEarly.insert(id)
                    return nil
                }
                guard let waiter = state.waiters.removeValue(forKey: id) else { return nil }
                state.hosts[waiter.key]?.live -= 1
                Self.forgetIfIdle(waiter.key, in: &state)
                return waiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Takes a slot if one is free and no one is waiting for it.
    private func takeFreeSlot(_ key: String) -> Bool {
        state.withLock { state in
            var host = state.hosts[key, default: HostState()]
            guard host.takeFreeSlot(limit: limit) else { return false }
            state.hosts[key] = host
            return true
        }
    }

    /// Frees a slot: hands it to the longest waiting live waiter, if any.
    func release(_ key: String) {
        let next: Waiter? = state.withLock { state in
            guard var host = state.hosts[key] else { return nil }
            let next = host.popLive(from: &state.waiters)
            if next == nil { host.inUse -= 1 }
            state.hosts[key] = host
            Self.forgetIfIdle(key, in: &state)
            return next
        }
        next?.continuation.resume()
    }

    /// Requests in flight and waiting for `key` (for messages and tests).
    func load(_ key: String) -> (inUse: Int, waiting: Int) {
        state.withLock { state in
            let host = state.hosts[key]
            return (host?.inUse ?? 0, host?.live ?? 0)
        }
    }

    private static func forgetIfIdle(_ key: String, in state: inout State) {
        if let host = state.hosts[key], host.inUse == 0, host.live == 0 {
            state.hosts[key] = nil
        }
    }
}
