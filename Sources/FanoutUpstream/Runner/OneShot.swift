import FanoutSync

/// A continuation resumed at most once, by whichever comes first: the result or a cancellation.
final class OneShot<Value: Sendable>: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<Value, any Error>)
        case done
    }

    private let state = Locked(State.idle)

    /// Stores the continuation; if the outcome came first (cancelled before we got here), resumes it
    /// with `CancellationError` and returns false.
    func install(_ continuation: CheckedContinuation<Value, any Error>) -> Bool {
        let alreadyDone = state.withLock { state -> Bool in
            guard case .idle = state else { return true }
            state = .waiting(continuation)
            return false
        }
        if alreadyDone { continuation.resume(throwing: CancellationError()) }
        return !alreadyDone
    }

    func resume(with result: Result<Value, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            switch state {
            case .waiting(let continuation):
                state = .done
                return continuation
            case .idle:
                state = .done
                return nil
            case .done:
                return nil
            }
        }
        continuation?.resume(with: result)
    }
}
