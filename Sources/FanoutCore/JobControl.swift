import FanoutSync

/// A job's inbox, and the service's handle on it (one object, one lock: every open stream has one).
///
/// Subtasks, timers, the sink and the service post events from any thread; the dispatcher's loop
/// takes everything that has arrived at once, so lines that are ready together leave in one write.
/// The service ends a running job early through it: on graceful shutdown (or a `DELETE`) what has
/// not finished ends as `cancelled` lines, then the end line, as for `fail_fast`
/// (``cancelRemaining(reason:)``); when its client goes away, the job stops as if its task were
/// cancelled: no more lines, subtasks cancelled (``clientGone()``). Both are events, so what is
/// asked before the loop starts is what its first pass takes. A job without one from the service
/// gets its own.
public final class JobControl: Sendable {
    /// Who waits for the next event: a loop's task, or a loop with no task (``DispatchLoop/Driver``).
    private enum Waiter {
        case task(UnsafeContinuation<Void, Never>)
        case driver(DispatchLoop.Driver)

        func wake() {
            switch self {
            case .task(let continuation): continuation.resume()
            case .driver(let driver): driver.wake()
            }
        }
    }

    private struct State {
        var events: [DispatchEvent] = []
        var waiter: Waiter?
        var stopAsked = false
        var clientGoneTold = false
        /// The loop has ended (``close()``): later posts are dropped.
        var closed = false
    }

    private let state = Locked(State())

    public init() {}

    /// Ends the job: running and pending subtasks become `cancelled` with `reason` as message.
    /// Only the first call counts.
    public func cancelRemaining(reason: String) {
        post(.stop(reason: reason), once: \.stopAsked)
    }

    /// The job's client went away: the dispatcher stops at once, as when a send fails (for a
    /// stream whose task is not cancelled when its client leaves).
    public func clientGone() {
        post(.clientGone, once: \.clientGoneTold)
    }

    private func post(_ event: DispatchEvent, once asked: WritableKeyPath<State, Bool>) {
        let waiter = state.withLock { state -> Waiter? in
            guard !state[keyPath: asked], !state.closed else { return nil }
            state[keyPath: asked] = true
            state.events.append(event)
            return state.waiter.take()
        }
        waiter?.wake()
    }

    /// The loop has ended: nothing posted from now on is kept.
    func close() {
        state.withLock { state in
            state.closed = true
            state.events = []
        }
    }

    func post(_ event: DispatchEvent) {
        let waiter = state.withLock { state -> Waiter? in
            guard !state.closed else { return nil }
            state.events.append(event)
            return state.waiter.take()
        }
        waiter?.wake()
    }

    /// A subtask's outcome, stamped with the time under the inbox's lock (not before taking it, as
    /// `post(.finished(…, at: .now))` would be): then every stamp is earlier than the ones posted
    /// after it and than ``takeStamped()``'s time, so lines in stamp order are in finish order.
    func postFinished(index: Int, outcome: SubtaskOutcome) {
        let waiter = state.withLock { state -> Waiter? in
            guard !state.closed else { return nil }
            state.events.append(.finished(index: index, outcome: outcome, at: .now))
            return state.waiter.take()
        }
        waiter?.wake()
    }

    /// Everything posted so far, and the time read under the same lock: every outcome taken is
    /// stamped before it, every later one after it.
    func takeStamped() -> (events: [DispatchEvent], now: MonotonicTime) {
        state.withLock { state in
            defer { state.events = [] }
            return (state.events, .now)
        }
    }

    /// Everything posted so far (possibly nothing).
    func take() -> [DispatchEvent] {
        state.withLock { state in
            guard !state.events.isEmpty else { return [] }
            defer { state.events = [] }
            return state.events
        }
    }

    /// Waits until an event is posted. The task's cancellation does not end the wait: whoever runs
    /// the loop turns it into an event (``Dispatcher``'s entries for their caller's task, the
    /// response stream's close for a stream's), so that no cancellation record and handler frames
    /// sit in the task allocator of every open stream for its life.
    func wait() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if !state.events.isEmpty { return true }
                state.waiter = .task(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// As ``wait()``, for a loop with no task: false if an event is here already (take it now),
    /// else `driver` is woken by the next post.
    func park(_ driver: DispatchLoop.Driver) -> Bool {
        state.withLock { state in
            if !state.events.isEmpty { return false }
            state.waiter = .driver(driver)
            return true
        }
    }
}
