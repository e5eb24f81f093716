import Dispatch
import FanoutSync

/// Tasks waiting for a count (open streams, running jobs) to reach zero, kept inside the owner's
/// locked state so that the count and its waiters change together. The owner resumes what
/// ``takeAll()`` returns with `true`, after unlocking, whenever the count reaches zero.
public struct ZeroWaiters: Sendable {
    private var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
    private var nextID = 0

    public init() {}

    public mutating func add(_ waiter: CheckedContinuation<Bool, Never>) -> Int {
        nextID += 1
        waiters[nextID] = waiter
        return nextID
    }

    public mutating func remove(_ id: Int) -> CheckedContinuation<Bool, Never>? {
        waiters.removeValue(forKey: id)
    }

    public mutating func takeAll() -> [CheckedContinuation<Bool, Never>] {
        defer { waiters = [:] }
        return Array(waiters.values)
    }
}

/// An owner of a count that tasks can wait on without polling.
public protocol ZeroWaitable: AnyObject, Sendable {
    /// Under the owner's lock: nil if the count is zero now, else stores `waiter` and returns its id.
    func addZeroWaiter(_ waiter: CheckedContinuation<Bool, Never>) -> Int?
    /// Under the owner's lock: takes back the waiter `id`, nil if it was already resumed.
    func removeZeroWaiter(_ id: Int) -> CheckedContinuation<Bool, Never>?
}

extension ZeroWaitable {
    /// Waits until the count is zero, at most `limit`; returns whether it reached zero.
    /// With `honoursCancellation`, a cancelled task stops waiting at once (returns false, once:
    /// no busy loop); without, the wait runs to zero or the deadline whatever the task's state.
    public func waitForZero(upTo limit: Duration, honoursCancellation: Bool = true) async -> Bool {
        let ticket = WaitTicket()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                guard let id = addZeroWaiter(continuation) else {
                    continuation.resume(returning: true)
                    return
                }
                if ticket.set(id), honoursCancellation {
                    removeZeroWaiter(id)?.resume(returning: false)
                    return
                }
                DispatchQueue.global().asyncAfter(deadline: .now() + limit.dispatchInterval) { [weak self] in
                    self?.removeZeroWaiter(id)?.resume(returning: false)
                }
            }
        } onCancel: {
            guard honoursCancellation, let id = ticket.cancel() else { return }
            removeZeroWaiter(id)?.resume(returning: false)
        }
    }
}

/// Which waiter a cancellation handler must take back, and whether it ran before the waiter existed.
private final class WaitTicket: Sendable {
    private let state = Locked<(id: Int?, cancelled: Bool)>((nil, false))

    /// Records the waiter's id; returns whether the task was cancelled already.
    func set(_ id: Int) -> Bool {
        state.withLock { state in
            state.id = id
            return state.cancelled
        }
    }

    /// Marks the task cancelled; returns the waiter's id if it exists yet.
    func cancel() -> Int? {
        state.withLock { state in
            state.cancelled = true
            return state.id
        }
    }
}

extension Duration {
    /// For Dispatch deadlines; negative becomes zero, beyond ~292 years is clamped.
    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return .nanoseconds(0) }
        guard seconds < Int64(Int.max / 1_000_000_000) - 1 else { return .never }
        return .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
    }
}
