import FanoutSync

/// The job being followed, shared by the follower and the Ctrl-C handler: its id once known,
/// the last `seq` written out, and whether the user interrupted.
final class JobCursor: Sendable {
    private struct State {
        var id: String?
        var seq = 0
        var interrupted = false
        var cancelSent = false
    }

    private let state = Locked(State())

    var id: String? { state.withLock { $0.id } }
    var seq: Int { state.withLock { $0.seq } }
    var interrupted: Bool { state.withLock { $0.interrupted } }

    /// Records the job's id; returns it when a Ctrl-C came first and the job must be cancelled now.
    func learn(id: String) -> String? {
        state.withLock { state in
            state.id = id
            guard state.interrupted, !state.cancelSent else { return nil }
            state.cancelSent = true
            return id
        }
    }

    /// Whether `seq` is new (greater than every seq seen); if so it becomes the cursor.
    func advance(to seq: Int) -> Bool {
        state.withLock { state in
            guard seq > state.seq else { return false }
            state.seq = seq
            return true
        }
    }

    /// Marks the interrupt; returns the id to cancel when it is known (else `learn` returns it later).
    func interrupt() -> String? {
        state.withLock { state in
            state.interrupted = true
            guard let id = state.id, !state.cancelSent else { return nil }
            state.cancelSent = true
            return id
        }
    }
}
