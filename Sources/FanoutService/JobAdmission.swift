import FanoutCore
import FanoutSync
import MicroHTTPServer

/// Which jobs run: at most `limit` at once, within a memory budget, none once draining. Keeps each
/// running job's ``JobControl`` so a drain can end them, and wakes the drain when the last one ends.
///
/// Memory: a job is charged its estimated cost (``FanoutCore/Job/estimatedBytes`` plus its stream's
/// buffers) against `memoryBudget` (`limits.max_job_memory_bytes`). Before its body is decoded it
/// is granted a reservation: the worst the decoding can take (``decodingCost(bodyBytes:)``), or
/// what is free if less. The decoder stops keeping subtasks past the grant, and
/// ``settle(_:cost:)`` then replaces the grant with the decoded job's estimate.
final class JobAdmission: ZeroWaitable {
    enum Refusal: Error, Equatable {
        case saturated
        case draining
        /// The jobs running hold too much of the memory budget for this one now.
        case overBudget
        /// The job alone needs more than the whole budget (its estimated bytes).
        case tooLarge(cost: Int)
    }

    private struct Entry {
        let control: JobControl
        var cost: Int
    }

    private struct State {
        var running: [UInt64: Entry] = [:]
        var nextTicket: UInt64 = 0
        var draining = false
        var charged = 0
        var waiters = ZeroWaiters()
    }

    let limit: Int
    let memoryBudget: Int
    private let state = Locked(State())

    init(limit: Int, memoryBudget: Int = .max) {
        self.limit = limit
        self.memoryBudget = memoryBudget
    }

    /// Heap that decoding a body of this size may take at most before the job's own estimate is
    /// known: the compact job grows to at most ~12× its body (an echo value of one-digit numbers,
    /// `[0,0,…]`: 2 bytes of JSON become a 24-byte value; scripts/job-memory.sh measures 12.0×),
    /// plus one subtask's parse tree at a time; 13× with that margin.
    static func decodingCost(bodyBytes: Int) -> Int { bodyBytes * 13 + 4096 }

    /// An admitted job's ticket, its control, and the memory it was granted.
    struct Admitted {
        let ticket: UInt64
        let control: JobControl
        let grantedBytes: Int
        /// The grant is less than wanted because of what the running jobs hold (not the budget
        /// itself): a job that needs more may fit later.
        let limitedByOthers: Bool
    }

    /// Admits a job, granting it `wanted` bytes of the budget, or what is free if less but at least
    /// `minimum`; or says why not.
    func admit(wanting wanted: Int, minimum: Int) -> Result<Admitted, Refusal> {
        state.withLock { state in
            if state.draining { return .failure(.draining) }
            if state.running.count >= limit { return .failure(.saturated) }
            if minimum > memoryBudget { return .failure(.tooLarge(cost: minimum)) }
            let free = memoryBudget - state.charged
            if free < minimum { return .failure(.overBudget) }
            let granted = min(wanted, free)
            state.nextTicket += 1
            let control = JobControl()
            state.running[state.nextTicket] = Entry(control: control, cost: granted)
            state.charged += granted
            let limited = granted < wanted && free < memoryBudget
            return .success(Admitted(ticket: state.nextTicket, control: control, grantedBytes: granted, limitedByOthers: limited))
        }
    }

    /// Charges an admitted job `cost` instead of what it was charged so far; on a refusal nothing
    /// changes (the caller releases the ticket).
    func settle(_ ticket: UInt64, cost: Int) -> Result<Void, Refusal> {
        state.withLock { state in
            guard let entry = state.running[ticket] else { return .success(()) }
            let charged = state.charged - entry.cost + cost
            if cost > entry.cost {
                if cost > memoryBudget { return .failure(.tooLarge(cost: cost)) }
                if charged > memoryBudget { return .failure(.overBudget) }
            }
            state.running[ticket]!.cost = cost
            state.charged = charged
            return .success(())
        }
    }

    func release(_ ticket: UInt64) {
        let waiters = state.withLock { state in
            if let entry = state.running.removeValue(forKey: ticket) { state.charged -= entry.cost }
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
    /// Bytes charged to the running jobs.
    var chargedBytes: Int { state.withLock { $0.charged } }
    var isDraining: Bool { state.withLock { $0.draining } }
    /// Ready for new jobs: not draining and not saturated.
    var isReady: Bool { state.withLock { !$0.draining && $0.running.count < limit } }

    /// Refuse new jobs from now on.
    func beginDraining() {
        state.withLock { $0.draining = true }
    }

    /// End every running job: what has not finished becomes `cancelled` lines.
    func cancelAll(reason: String) {
        for control in state.withLock({ $0.running.values.map(\.control) }) {
            control.cancelRemaining(reason: reason)
        }
    }
}
