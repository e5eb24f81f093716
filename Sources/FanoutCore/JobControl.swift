import FanoutSync

/// Lets the service end a running job early (graceful shutdown): what has not finished ends as
/// `cancelled` lines, then the end line, as for `fail_fast`.
public final class JobControl: Sendable {
    private struct State {
        var events: JobEvents?
        var stopReason: String?
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

    func attach(_ events: JobEvents) {
        let reason = state.withLock { state -> String? in
            state.events = events
            return state.stopReason
        }
        if let reason { events.post(.stop(reason: reason)) }
    }

    func detach() {
        state.withLock { $0.events = nil }
    }
}
