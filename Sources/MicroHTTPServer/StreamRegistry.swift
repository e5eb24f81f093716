import FanoutSync

/// The streams whose connections are open, for the disconnect watchdog and for shutdown.
final class StreamRegistry: Sendable {
    private struct State {
        var streams: [ObjectIdentifier: ResponseStream] = [:]
        /// The server is stopping: streams are cancelled as they register.
        var draining = false
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
        _ = state.withLock { $0.streams.removeValue(forKey: ObjectIdentifier(stream)) }
    }

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
}
