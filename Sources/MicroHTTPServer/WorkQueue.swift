import FanoutSync

/// Work the MHD threads hand to ``HTTPServer/run()``: stream producers and deferred responses.
/// One consumer; unlike an `AsyncStream`, ``next()`` ignores task cancellation, so work handed over
/// before ``finish()`` always runs (a suspended connection whose work were dropped would never be
/// resumed, and `MHD_stop_daemon` aborts on a suspended connection).
final class WorkQueue: Sendable {
    typealias Work = @Sendable () async -> Void

    /// Work as a value, not a closure: a closure stored in an array or a continuation would be
    /// reabstracted there and back, and each stream's task would hold the thunks' frames.
    enum Item: Sendable {
        /// A deferred response's handler.
        case work(Work)
        /// A stream's producer, in a child task cancelled when the connection closes.
        case supervisedStream(ResponseStream, @Sendable (ResponseStream) async -> Void)
        /// A stream's producer, in this task, told of the close.
        case observingStream(ResponseStream, any StreamProducer)

        func run() async {
            switch self {
            case .work(let work): await work()
            case .supervisedStream(let stream, let producer): await stream.runSupervised(producer)
            case .observingStream(let stream, let producer): await stream.run(producer)
            }
        }
    }

    private struct State {
        var items: [Item] = []
        var head = 0
        var consumer: CheckedContinuation<Item?, Never>?
        var finished = false
        var claimed = false
    }

    private let state = Locked(State())

    /// Hands `work` to the consumer; false once ``finish()`` was called.
    func enqueue(_ work: @escaping Work) -> Bool {
        enqueue(.work(work))
    }

    /// Hands `item` to the consumer; false once ``finish()`` was called.
    func enqueue(_ item: Item) -> Bool {
        let (accepted, consumer) = state.withLock { state -> (Bool, CheckedContinuation<Item?, Never>?) in
            if state.finished { return (false, nil) }
            if let consumer = state.consumer {
                state.consumer = nil
                return (true, consumer)
            }
            state.items.append(item)
            return (true, nil)
        }
        consumer?.resume(returning: item)
        return accepted
    }

    /// Claims the single consumer role; false if it was claimed before.
    func claim() -> Bool {
        state.withLock { state in
            if state.claimed { return false }
            state.claimed = true
            return true
        }
    }

    /// The next work, waiting for it; nil once finished and empty.
    func next() async -> Item? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Item?, Never>) in
            let ready = state.withLock { state -> Item?? in
                if state.head < state.items.count {
                    let work = state.items[state.head]
                    state.head += 1
                    if state.head == state.items.count {
                        state.items.removeAll(keepingCapacity: state.items.capacity <= 64)
                        state.head = 0
                    }
                    return .some(work)
                }
                if state.finished { return .some(nil) }
                state.consumer = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// No more work is accepted; the consumer gets what is queued, then nil.
    func finish() {
        let consumer = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            state.finished = true
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: nil)
    }
}
