import Glibc
import FanoutSync

/// A process-wide timer for very many short waits: one thread and a min-heap of deadlines.
///
/// `Task.sleep` on Linux arms a Dispatch timer source per call, which costs several hundred bytes and
/// a trip through Dispatch's timer heap; a job of 100,000 delayed subtasks, or 10,000 open streams
/// each with a deadline, pays that 100,000 times. Here a wait is a heap entry and a table slot, and
/// firing it resumes a continuation (or runs a short action) from the timer thread.
public final class DeadlineTimer: Sendable {
    public static let shared = DeadlineTimer()

    /// Identifies a scheduled action so it can be cancelled: its slot and that slot's generation.
    public struct Token: Sendable, Hashable {
        fileprivate let slot: UInt32
        fileprivate let generation: UInt32
    }

    /// A ``MonotonicTime``, not a `ContinuousClock.Instant`: with one, every move in the heap went
    /// through value witnesses (a quarter of a 100,000-timer job's instructions, in the sift alone).
    private struct Entry {
        var deadline: MonotonicTime
        var token: Token
    }

    /// An action in a concrete type: a bare closure stored in a generic container (the table, the
    /// list of due ones) is wrapped in a reabstraction thunk, an allocation each time it moves in or
    /// out. A target and its tag need no closure at all.
    private enum Action {
        case closure(@Sendable () -> Void)
        case target(any TimerTarget, tag: Int)

        func run() {
            switch self {
            case .closure(let run): run()
            case .target(let target, let tag): target.timerFired(tag)
            }
        }
    }

    /// Where a scheduled action waits. A slot's generation moves on when its action runs or is
    /// cancelled, so a stale token or heap entry no longer matches the slot's next use (a slot would
    /// have to be reused 2^32 times within one timer's wait to confuse them).
    ///
    /// The action first: its 25 bytes leave room for the generation before the next 8-byte
    /// boundary, so a slot takes 32 bytes, not 40 (a burst of 100,000 timers holds 131,072).
    private struct Slot {
        var action: Action?
        var generation: UInt32 = 0
    }
    /// What a slot takes (for the test that keeps it at 32 bytes).
    static var slotStride: Int { MemoryLayout<Slot>.stride }

    private struct State {
        var heap: [Entry] = []
        /// The scheduled actions, in slots reused through `freeSlots`: found by index, where a
        /// table by id hashed every id twice (schedule, then run or cancel).
        var slots: [Slot] = []
        var freeSlots: [UInt32] = []
        var threadStarted = false
        /// Heap entries whose action was cancelled; they leave the heap when due, or when the heap
        /// is rebuilt because they are most of it (a job's 60 s deadline is usually cancelled
        /// long before it is due, and many jobs a second must not fill memory with them).
        var cancelledEntries = 0

        mutating func add(_ action: Action) -> Token {
            let slot = freeSlots.popLast() ?? {
                slots.append(Slot())
                return UInt32(slots.count - 1)
            }()
            slots[Int(slot)].action = action
            return Token(slot: slot, generation: slots[Int(slot)].generation)
        }

        /// The action `token` names, if it has neither run nor been cancelled; frees its slot.
        mutating func take(_ token: Token) -> Action? {
            let index = Int(token.slot)
            guard slots[index].generation == token.generation, let action = slots[index].action else { return nil }
            slots[index].action = nil
            slots[index].generation &+= 1
            freeSlots.append(token.slot)
            return action
        }
    }

    private let state = Locked(State())
    private let wakeUp = ConditionSignal()

    private init() {}

    /// Runs `action` on the timer thread at `deadline` unless cancelled first. Keep it short: it
    /// delays every other timer.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Token {
        schedule(at: MonotonicTime(deadline), .closure(action))
    }

    /// Calls `target.timerFired(tag)` on the timer thread at `deadline` unless cancelled first: as
    /// `schedule(at:_:)`, without a closure context to allocate and free for every timer.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, target: any TimerTarget, tag: Int) -> Token {
        schedule(at: MonotonicTime(deadline), .target(target, tag: tag))
    }

    /// As ``schedule(at:target:tag:)``, at a deadline already on the timer's own scale: a burst's
    /// timers skip the `Instant`'s conversion (`Duration.components`, ~190 instructions each).
    @discardableResult
    func schedule(at deadline: MonotonicTime, target: any TimerTarget, tag: Int) -> Token {
        schedule(at: deadline, .target(target, tag: tag))
    }

    private func schedule(at deadline: MonotonicTime, _ action: Action) -> Token {
        let (token, earliest, start) = state.withLock { state -> (Token, Bool, Bool) in
            let token = state.add(action)
            state.heap.append(Entry(deadline: deadline, token: token))
            Self.siftUp(&state.heap, from: state.heap.count - 1)
            let start = !state.threadStarted
            state.threadStarted = true
            return (token, state.heap[0].token == token, start)
        }
        if start { startThread() }
        if earliest { wakeUp.signal() }
        return token
    }

    /// Cancels a scheduled action; says whether it had neither run nor been cancelled yet.
    @discardableResult
    public func cancel(_ token: Token) -> Bool {
        state.withLock { state in
            guard state.take(token) != nil else { return false }
            state.cancelledEntries += 1
            if state.cancelledEntries > 4096, state.cancelledEntries * 2 > state.heap.count {
                // An entry whose slot has moved on is stale (ran, was cancelled, or was reused).
                let slots = state.slots
                state.heap.removeAll { slots[Int($0.token.slot)].generation != $0.token.generation }
                for index in stride(from: state.heap.count / 2 - 1, through: 0, by: -1) {
                    Self.siftDown(&state.heap, from: index, placing: state.heap[index])
                }
                state.cancelledEntries = 0
            }
            return true
        }
    }

    /// Heap entries (cancelled ones included), for tests.
    var pendingEntries: Int { state.withLock { $0.heap.count } }

    /// Suspends until `deadline`.
    /// - Throws: `CancellationError` as soon as the calling task is cancelled.
    public func sleep(until deadline: ContinuousClock.Instant) async throws {
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                sleeper.start(continuation, timer: self, deadline: deadline)
            }
        } onCancel: {
            sleeper.cancel(timer: self)
        }
    }

    private func startThread() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<DeadlineTimer>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        precondition(result == 0, "cannot start the timer thread: \(result)")
        pthread_detach(thread)
    }

    /// The timer thread: runs due actions, then waits for the next deadline or a new earlier one.
    private func run() {
        // Kept between wakes (one allocation, not one per wake with something due), unless a
        // burst made it large.
        var due: [Action] = []
        while true {
            let now = MonotonicTime.now
            due.removeAll(keepingCapacity: due.capacity <= 1024)
            let nextDeadline = state.withLock { state -> MonotonicTime? in
                while let top = state.heap.first, top.deadline <= now {
                    Self.popTop(&state.heap)
                    if let action = state.take(top.token) {
                        due.append(action)
                    } else {
                        state.cancelledEntries = max(state.cancelledEntries - 1, 0)
                    }
                }
                return state.heap.first?.deadline
            }
            for action in due { action.run() }
            if !due.isEmpty { continue }
            wakeUp.wait(for: nextDeadline.map { $0 - .now })
        }
    }

    // The heap's moves work on its buffer and move a hole, not swaps: an array's swap checks
    // bounds and uniqueness and writes both entries, each level of a 17-level sift.

    private static func siftUp(_ heap: inout [Entry], from start: Int) {
        heap.withUnsafeMutableBufferPointer { heap in
            let moving = heap[start]
            var hole = start
            while hole > 0 {
                let parent = (hole - 1) / 2
                guard moving.deadline < heap[parent].deadline else { break }
                heap[hole] = heap[parent]
                hole = parent
            }
            heap[hole] = moving
        }
    }

    /// Removes the earliest entry: the last one takes its place.
    private static func popTop(_ heap: inout [Entry]) {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        siftDown(&heap, from: 0, placing: last)
    }

    /// Puts `moving` at `start` (whose entry has been taken or is `moving` itself) and restores the
    /// heap below it, the bottom-up way (Floyd's): the hole goes down to a leaf along the earlier
    /// children, one comparison a level, then `moving` rises from there, no higher than `start`.
    /// A popped top's replacement came from the bottom and belongs there or close (a burst's
    /// deadlines grow with the heap); a plain sift-down compares twice a level.
    private static func siftDown(_ heap: inout [Entry], from start: Int, placing moving: Entry) {
        heap.withUnsafeMutableBufferPointer { heap in
            let count = heap.count
            var hole = start
            while true {
                var child = 2 * hole + 1
                guard child < count else { break }
                if child + 1 < count, heap[child + 1].deadline < heap[child].deadline { child += 1 }
                heap[hole] = heap[child]
                hole = child
            }
            while hole > start {
                let parent = (hole - 1) / 2
                guard moving.deadline < heap[parent].deadline else { break }
                heap[hole] = heap[parent]
                hole = parent
            }
            heap[hole] = moving
        }
    }
}

/// What ``DeadlineTimer/schedule(at:target:tag:)`` calls when a timer fires: an object that has
/// many timers at once (a job's planned outcomes), each told apart by its tag.
public protocol TimerTarget: AnyObject, Sendable {
    /// Called on the timer thread: keep it short, it delays every other timer.
    func timerFired(_ tag: Int)
}

/// One `sleep(until:)`: whichever of the timer and cancellation comes first resumes it, once.
private final class Sleeper: Sendable {
    private struct State {
        var continuation: UnsafeContinuation<Void, any Error>?
        var token: DeadlineTimer.Token?
        var cancelled = false
    }

    private let state = Locked(State())

    func start(_ continuation: UnsafeContinuation<Void, any Error>, timer: DeadlineTimer, deadline: ContinuousClock.Instant) {
        let cancelled = state.withLock { state -> Bool in
            if state.cancelled { return true }
            state.continuation = continuation
            state.token = timer.schedule(at: deadline) { [self] in
                self.state.withLock { $0.continuation.take() }?.resume()
            }
            return false
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
    }

    func cancel(timer: DeadlineTimer) {
        let (continuation, token) = state.withLock { state in
            state.cancelled = true
            return (state.continuation.take(), state.token)
        }
        if let token { timer.cancel(token) }
        continuation?.resume(throwing: CancellationError())
    }
}

/// A condition variable on `CLOCK_MONOTONIC` for the timer thread to wait on.
private final class ConditionSignal: @unchecked Sendable {
    // `@unchecked Sendable`: the pthread objects are made for use from any thread; they are
    // allocated once and never moved.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var signalled = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Signals after unlocking: the woken thread then finds the mutex free instead of waking
    /// only to wait for it (the waiter reads `signalled` under the mutex, so none is lost).
    func signal() {
        pthread_mutex_lock(mutex)
        signalled = true
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(condition)
    }

    /// Waits for a signal, or at most `timeout` (forever when nil).
    func wait(for timeout: Duration?) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if signalled {
            signalled = false
            return
        }
        guard let timeout else {
            pthread_cond_wait(condition, mutex)
            signalled = false
            return
        }
        guard timeout > .zero else { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = timeout.components
        var nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        var deadline = timespec(tv_sec: now.tv_sec + Int(seconds) + nanoseconds / 1_000_000_000, tv_nsec: 0)
        nanoseconds %= 1_000_000_000
        deadline.tv_nsec = nanoseconds
        pthread_cond_timedwait(condition, mutex, &deadline)
        signalled = false
    }
}
