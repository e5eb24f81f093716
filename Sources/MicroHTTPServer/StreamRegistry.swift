import FanoutSync

/// The connections the server must see through before `MHD_stop_daemon`: streams whose connection
/// is open (for the disconnect watchdog and for shutdown) and deferred responses not yet queued
/// (their connections are suspended, or resumed to queue them). Shutdown waits on it without polling.
final class StreamRegistry: ZeroWaitable {
    private struct State {
        var streams: [ObjectIdentifier: ResponseStream] = [:]
        /// ``HTTPHandler/respond(to:)`` answers not yet queued on their connection.
        var deferred = 0
        /// The server is stopping: streams are cancelled as they register.
        var draining = false
        var waiters = ZeroWaiters()

        var isIdle: Bool { streams.isEmpty && deferred == 0 }

        mutating func wakeIfIdle() -> [CheckedContinuation<Bool, Never>] {
            isIdle ? waiters.takeAll() : []
        }
    }

    private let state = Locked(State())

    func add(_ stream: ResponseStream) {
        let draining = state.withLock { state -> Bool in
            state.streams[ObjectIdentifier(stream)] = stream
            return state.draining
        }
        if draining { stream.cancel() }
    }

    func remove(_ stream: ResponseStream) {
        let waiters = state.withLock { state in
            state.streams.removeValue(forKey: ObjectIdentifier(stream))
            return state.wakeIfIdle()
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    func deferredBegan() {
        state.withLock { $0.deferred += 1 }
    }

    func deferredEnded() {
        let waiters = state.withLock { state in
            state.deferred -= 1
            return state.wakeIfIdle()
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Open streams.
    var count: Int { state.withLock { $0.streams.count } }

    func snapshot() -> [ResponseStream] {
        state.withLock { Array($0.streams.values) }
    }

    /// From now on every stream, open or new, ends with an error at its next read.
    func cancelAll() {
        let streams = state.withLock { state -> [ResponseStream] in
            state.draining = true
            return Array(state.streams.values)
        }
        for stream in streams { stream.cancel() }
    }

    func addZeroWaiter(_ waiter: CheckedContinuation<Bool, Never>) -> Int? {
        state.withLock { $0.isIdle ? nil : $0.waiters.add(waiter) }
    }

    func removeZeroWaiter(_ id: Int) -> CheckedContinuation<Bool, Never>? {
        state.withLock { $0.waiters.remove(id) }
    }
}
