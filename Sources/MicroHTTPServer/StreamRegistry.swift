import FanoutSync

/// The connections the server must see through before `MHD_stop_daemon`: streams whose connection
/// is open (for the disconnect watchdog and for shutdown), deferred responses not yet queued
/// (their connections are suspended, or resumed to queue them) and task-less stream producers not
/// yet ended. Shutdown waits on it without polling.
final class StreamRegistry: ZeroWaitable {
    private struct State {
        var streams: [ObjectIdentifier: ResponseStream] = [:]
        /// ``HTTPHandler/respond(to:)`` answers not yet queued on their connection.
        var deferred: [ObjectIdentifier: DeferredResponse] = [:]
        /// ``DrivenStreamProducer``s started (or about to be) and not ended: no task of
        /// ``HTTPServer/run()`` waits for them, so the registry does.
        var driven = 0
        /// The server is stopping: streams are cancelled as they register.
        var draining = false
        var waiters = ZeroWaiters()

        var isIdle: Bool { streams.isEmpty && deferred.isEmpty && driven == 0 }

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
        ending { $0.streams.removeValue(forKey: ObjectIdentifier(stream)) }
    }

    func drivenBegan() {
        state.withLock { $0.driven += 1 }
    }

    func drivenEnded() {
        ending { $0.driven -= 1 }
    }

    /// Once the server is stopping, the answer is ``ServerProblem/stopping`` at once.
    func deferredBegan(_ response: DeferredResponse) {
        let draining = state.withLock { state -> Bool in
            state.deferred[ObjectIdentifier(response)] = response
            return state.draining
        }
        if draining { response.complete(ServerProblem.stopping) }
    }

    func deferredEnded(_ response: DeferredResponse) {
        ending { $0.deferred.removeValue(forKey: ObjectIdentifier(response)) }
    }

    /// Something the server waits for has ended (`change` forgets it): if nothing is left, the
    /// waiters are resumed, after the lock.
    private func ending(_ change: (inout State) -> Void) {
        let waiters = state.withLock { state in
            change(&state)
            return state.wakeIfIdle()
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Open streams.
    var count: Int { state.withLock { $0.streams.count } }

    func snapshot() -> [ResponseStream] {
        state.withLock { Array($0.streams.values) }
    }

    /// From now on every stream, open or new, ends with an error at its next read, and every
    /// request whose handler has not answered yet is answered ``ServerProblem/stopping`` (503):
    /// `MHD_stop_daemon` aborts the process if a connection is still suspended.
    func cancelAll() {
        let (streams, deferred) = state.withLock { state in
            state.draining = true
            return (Array(state.streams.values), Array(state.deferred.values))
        }
        for stream in streams { stream.cancel() }
        for response in deferred { response.complete(ServerProblem.stopping) }
    }

    func addZeroWaiter(_ waiter: CheckedContinuation<Bool, Never>) -> Int? {
        state.withLock { $0.isIdle ? nil : $0.waiters.add(waiter) }
    }

    func removeZeroWaiter(_ id: Int) -> CheckedContinuation<Bool, Never>? {
        state.withLock { $0.waiters.remove(id) }
    }
}
