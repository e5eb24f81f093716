import Synchronization

/// Lets the service end a running job early (graceful shutdown): what has not finished ends as
/// `cancelled` lines, then the end line, as for `fail_fast`.
public final class JobControl: Sendable {
    private struct State {
        var continuation: AsyncStream<DispatchEvent>.Continuation?
        var stopReason: String?
    }

    private let state = Mutex(State())

    public init() {}

    /// Ends the job: running and pending subtasks become `cancelled` with `reason` as message.
    public func cancelRemaining(reason: String) {
        let continuation = state.withLock { state -> AsyncStream<DispatchEvent>.Continuation? in
            guard state.stopReason == nil else { return nil }
            state.stopReason = reason
            return state.continuation
        }
        continuation?.yield(.stop(reason: reason))
    }

    func attach(_ continuation: AsyncStream<DispatchEvent>.Continuation) {
        let reason = state.withLock { state -> String? in
            state.continuation = continuation
            return state.stopReason
        }
        if let reason { continuation.yield(.stop(reason: reason)) }
    }

    func detach() {
        state.withLock { $0.continuation = nil }
    }
}

/// What wakes the dispatcher's loop.
enum DispatchEvent: Sendable {
    case finished(index: Int, outcome: SubtaskOutcome, at: ContinuousClock.Instant)
    case deadline
    case heartbeatTick
    case stop(reason: String)
}
