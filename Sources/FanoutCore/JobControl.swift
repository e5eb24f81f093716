import FanoutSync

/// Lets the service end a running job early: on graceful shutdown (or a `DELETE`) what has not
/// finished ends as `cancelled` lines, then the end line, as for `fail_fast`; when its client goes
/// away, the job stops as if its task were cancelled (no more lines, subtasks cancelled).
public final class JobControl: Sendable {
    private struct State {
        var events: JobEvents?
        var stopReason: String?
        var clientGone = false
    }

    private let state = Locked(State())

    public init() {}

    /// Ends the job: running and pending subtasks become `cancelled` with `reason` as message.
    public func cancelRemaining(reason: String) {
        let events = state.withLock { state -> JobEvents? in
            guard state.stopReason == nil else { return nil }
            state.stopReason = reason
            return state.events
        }
        events?.post(.stop(reason: reason))
    }

    /// The job's client went away: the dispatcher stops at once, as when a send fails (for a
    /// stream whose task is not cancelled when its client leaves).
    public func clientGone() {
        let events = state.withLock { state -> JobEvents? in
            guard !state.clientGone else { return nil }
            state.clientGone = true
            return state.events
        }
        events?.post(.clientGone)
    }

    func attach(_ events: JobEvents) {
        let (reason, gone) = state.withLock { state -> (String?, Bool) in
            state.events = events
            return (state.stopReason, state.clientGone)
        }
        if let reason { events.post(.stop(reason: reason)) }
        if gone { events.post(.clientGone) }
    }

    func detach() {
        state.withLock { $0.events = nil }
    }
}
