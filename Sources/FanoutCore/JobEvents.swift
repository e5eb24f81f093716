import FanoutSync

/// What wakes the dispatcher's loop.
enum DispatchEvent: Sendable {
    case finished(index: Int, outcome: SubtaskOutcome, at: MonotonicTime)
    case deadline
    case heartbeatTick
    case stop(reason: String)
    /// The lines handed to the sink are with the client (true), or the client is gone (false).
    case sent(Bool)
    /// The client went away (``JobControl/clientGone()``): stop as when a send fails.
    case clientGone
}

/// The dispatcher's inbox: subtasks, timers and ``JobControl`` post events from any thread; the
/// loop takes everything that has arrived at once, so lines that are ready together leave in one write.
final class JobEvents: Sendable {
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
    }

    private let state = Locked(State())

    func post(_ event: DispatchEvent) {
        let waiter = state.withLock { state in
            state.events.append(event)
            return state.waiter.take()
        }
        waiter?.wake()
    }

    /// A subtask's outcome, stamped with the time under the inbox's lock (not before taking it, as
    /// `post(.finished(…, at: .now))` would be): then every stamp is earlier than the ones posted
    /// after it and than ``takeStamped()``'s time, so lines in stamp order are in finish order.
    func postFinished(index: Int, outcome: SubtaskOutcome) {
        let waiter = state.withLock { state in
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
