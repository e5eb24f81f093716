import FanoutSync

/// Wakes this replica's readers waiting for a job's next lines. Each notification of a job (its
/// NOTIFY, or an append made here) bumps the job's generation; a reader takes the generation before
/// it queries, and ``wait(for:since:atMost:)`` returns at once if it moved meanwhile, so a
/// notification between the query and the wait is not lost. `atMost` is the fallback poll.
final class ReaderWakeups: Sendable {
    private struct Watch {
        var generation: UInt64 = 0
        var watchers = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private enum Wait {
        case pending
        case parked
        /// Timed out before its continuation was parked: it must not park.
        case fired
    }

    private struct State {
        var jobs: [String: Watch] = [:]
        /// Waits in progress; a wait that is over has no entry.
        var waits: [Int: Wait] = [:]
        var nextToken = 0
    }

    private let state = Locked(State())

    /// Starts watching `job`; returns its generation now. Pair with ``unwatch(_:)``.
    func watch(_ job: String) -> UInt64 {
        state.withLock { state in
            state.jobs[job, default: Watch()].watchers += 1
            return state.jobs[job]!.generation
        }
    }

    func unwatch(_ job: String) {
        state.withLock { state in
            state.jobs[job]?.watchers -= 1
            if state.jobs[job]?.watchers ?? 0 <= 0 { state.jobs[job] = nil }
        }
    }

    /// Something changed for `job`: its readers read again.
    func notify(_ job: String) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard var watch = state.jobs[job] else { return [] }
            watch.generation &+= 1
            let waiters = Array(watch.waiters.values)
            for token in watch.waiters.keys { state.waits[token] = nil }
            watch.waiters = [:]
            state.jobs[job] = watch
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Every job changed (the listening connection was lost: notifications may have been missed).
    func notifyAll() {
        let jobs = state.withLock { Array($0.jobs.keys) }
        for job in jobs { notify(job) }
    }

    /// Returns when `job` is notified after `generation`, after `atMost`, or when the task is cancelled.
    func wait(for job: String, since generation: UInt64, atMost: Duration) async {
        let token = state.withLock { state in
            state.nextToken += 1
            state.waits[state.nextToken] = .pending
            return state.nextToken
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.park(job, token: token, since: generation) }
            group.addTask { try? await Task.sleep(for: atMost) }
            await group.next()
            self.fire(job, token: token)
            group.cancelAll()
        }
    }

    private func park(_ job: String, token: Int, since generation: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let parked = state.withLock { state -> Bool in
                guard state.waits[token] == .pending, let watch = state.jobs[job], watch.generation == generation else {
                    state.waits[token] = nil
                    return false
                }
                state.jobs[job]!.waiters[token] = continuation
                state.waits[token] = .parked
                return true
            }
            if !parked { continuation.resume() }
        }
    }

    /// Ends the wait of `token`: resumes its continuation, or marks it so it does not park.
    private func fire(_ job: String, token: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state.waits[token] {
            case .parked:
                state.waits[token] = nil
                return state.jobs[job]?.waiters.removeValue(forKey: token)
            case .pending:
                state.waits[token] = .fired
                return nil
            case .fired, nil:
                return nil
            }
        }
        waiter?.resume()
    }
}
