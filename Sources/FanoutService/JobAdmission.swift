import FanoutCore
import MicroHTTPServer
import FanoutSync

/// Which jobs run: at most `limit` at once, none once draining. Keeps each running job's
/// ``JobControl`` so a drain can end them, and wakes the drain when the last one ends.
final class JobAdmission: ZeroWaitable {
    enum Refusal: Error {
        case saturated
        case draining
    }

    private struct State {
        var running: [UInt64: JobControl] = [:]
        var nextTicket: UInt64 = 0
        var draining = false
        var waiters = ZeroWaiters()
    }

    let limit: Int
    private let state = Locked(State())

    init(limit: Int) { self.limit = limit }

    /// Admits a job, or says why not.
    func admit() -> Result<(ticket: UInt64, control: JobControl), Refusal> {
        state.withLock { state in
            if state.draining { return .failure(.draining) }
            if state.running.count >= limit { return .failure(.saturated) }
            state.nextTicket += 1
            let control = JobControl()
            state.running[state.nextTicket] = control
            return .success((state.nextTicket, control))
        }
    }

    func release(_ ticket: UInt64) {
        let waiters = state.withLock { state in
            state.running.removeValue(forKey: ticket)
            return state.running.isEmpty ? state.waiters.takeAll() : []
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    func addZeroWaiter(_ waiter: CheckedContinuation<Bool, Never>) -> Int? {
        state.withLock { $0.running.isEmpty ? nil : $0.waiters.add(waiter) }
    }

    func removeZeroWaiter(_ id: Int) -> CheckedContinuation<Bool, Never>? {
        state.withLock { $0.waiters.remove(id) }
    }

    var running: Int { state.withLock { $0.running.count } }
    var isDraining: Bool { state.withLock { $0.draining } }
    /// Ready for new jobs: not draining and not saturated.
    var isReady: Bool { state.withLock { !$0.draining && $0.running.count < limit } }

    /// Refuse new jobs from now on.
    func beginDraining() {
        state.withLock { $0.draining = true }
    }

    /// End every running job: what has not finished becomes `cancelled` lines.
    func cancelAll(reason: String) {
        for control in state.withLock({ Array($0.running.values) }) {
            control.cancelRemaining(reason: reason)
        }
    }
}
