import FanoutSync
import Synchronization
import Testing

@testable import FanoutCore

@Suite("Deadline timer")
struct SharedTimerTests {
    /// Actions run on the timer thread in deadline order, never early.
    /// A burst of 100,000 timers holds 131,072 slots: each stays at 32 bytes.
    @Test func aSlotTakesThirtyTwoBytes() {
        #expect(DeadlineTimer.slotStride == 32)
    }

    @Test func firesInDeadlineOrder() async throws {
        final class Log: Sendable {
            let fired = Locked<[Int]>([])
        }
        let log = Log()
        let start = ContinuousClock.now
        for delay in [60, 5, 30, 15] {
            DeadlineTimer.shared.schedule(at: start + .milliseconds(delay)) {
                #expect(ContinuousClock.now - start >= .milliseconds(delay), "never early")
                log.fired.withLock { $0.append(delay) }
            }
        }
        #expect(await waitUntil(within: .seconds(5)) { log.fired.withLock { $0.count } == 4 })
        #expect(log.fired.withLock { $0 } == [5, 15, 30, 60])
    }

    /// The heap through thousands of entries: deadlines in random order, `cancelled` in `of`
    /// cancelled, the rest run in deadline order, each once. Five in six of 6,000 makes the
    /// heap rebuild itself without the cancelled ones (past 4,096, and most of it) on the way.
    @Test(arguments: [(timers: 1000, cancelled: 1, of: 4), (timers: 6000, cancelled: 5, of: 6)])
    func firesInDeadlineOrderWithCancelledOnesAmongThem(timers: Int, cancelled share: UInt64, of: UInt64) async throws {
        let fired = Locked<[ContinuousClock.Instant]>([])
        let start = ContinuousClock.now
        var random = SplitMix(seed: 7)
        var kept = 0
        var cancelled: [DeadlineTimer.Token] = []
        for _ in 0..<timers {
            let deadline = start + .microseconds(300_000 + Int64(random.next() % 100_000))
            let token = DeadlineTimer.shared.schedule(at: deadline) { fired.withLock { $0.append(deadline) } }
            if random.next() % of < share { cancelled.append(token) } else { kept += 1 }
        }
        for token in cancelled { #expect(DeadlineTimer.shared.cancel(token)) }
        #expect(await waitUntil(within: .seconds(10)) { fired.withLock { $0.count } >= kept })
        try await Task.sleep(for: .milliseconds(50))
        let order = fired.withLock { $0 }
        #expect(order.count == kept, "each once, none of the cancelled")
        #expect(zip(order, order.dropFirst()).allSatisfy { $0 <= $1 }, "in deadline order")
    }

    /// A target's timers fire with their own tags, in deadline order; a cancelled one never does.
    @Test func aTargetIsToldEachTagOnce() async throws {
        final class Target: TimerTarget {
            let fired = Locked<[Int]>([])
            func timerFired(_ tag: Int) { fired.withLock { $0.append(tag) } }
        }
        let target = Target()
        let start = ContinuousClock.now
        for tag in [3, 1, 4, 2] {
            DeadlineTimer.shared.schedule(at: start + .milliseconds(10 * tag), target: target, tag: tag)
        }
        let cancelled = DeadlineTimer.shared.schedule(at: start + .milliseconds(25), target: target, tag: 99)
        #expect(DeadlineTimer.shared.cancel(cancelled))
        #expect(await waitUntil(within: .seconds(5)) { target.fired.withLock { $0.count } == 4 })
        try await Task.sleep(for: .milliseconds(30))
        #expect(target.fired.withLock { $0 } == [1, 2, 3, 4])
    }

    /// Deadlines are kept as nanoseconds from the timer's start: one centuries away saturates (it
    /// never fires, and does not overflow into the past), one long past fires at once.
    @Test func farDeadlinesNeitherOverflowNorFireEarly() async throws {
        let fired = Locked<[String]>([])
        let now = ContinuousClock.now
        let never = DeadlineTimer.shared.schedule(at: now + .seconds(Int64.max / 2)) { fired.withLock { $0.append("never") } }
        defer { DeadlineTimer.shared.cancel(never) }
        DeadlineTimer.shared.schedule(at: now - .seconds(Int64.max / 2)) { fired.withLock { $0.append("past") } }
        DeadlineTimer.shared.schedule(at: now + .milliseconds(20)) { fired.withLock { $0.append("soon") } }
        #expect(await waitUntil(within: .seconds(5)) { fired.withLock { $0.count } == 2 })
        try await Task.sleep(for: .milliseconds(50))
        #expect(fired.withLock { $0 } == ["past", "soon"])
    }

    func waitUntil(within limit: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while !condition(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
        return condition()
    }

    @Test func wakesEverySleeperNoEarlierThanItsDeadline() async throws {
        let start = ContinuousClock.now
        let woken = try await withThrowingTaskGroup(of: Int.self) { group in
            for delay in [60, 5, 30, 15] {
                group.addTask {
                    try await DeadlineTimer.shared.sleep(until: start + .milliseconds(delay))
                    #expect(ContinuousClock.now - start >= .milliseconds(delay), "never early")
                    return delay
                }
            }
            var woken: [Int] = []
            for try await delay in group { woken.append(delay) }
            return woken
        }
        #expect(woken.sorted() == [5, 15, 30, 60])
    }

    @Test func cancellationEndsASleepAtOnce() async {
        let start = ContinuousClock.now
        let sleeper = Task { try await DeadlineTimer.shared.sleep(until: .now + .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(20))
        sleeper.cancel()
        let result = await sleeper.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func cancelledEntriesDoNotPileUp() async throws {
        let timer = DeadlineTimer.shared
        let far = ContinuousClock.now + .seconds(3600)
        let before = timer.pendingEntries
        for _ in 0..<20_000 {
            timer.cancel(timer.schedule(at: far) {})
        }
        #expect(timer.pendingEntries - before < 10_000, "the heap is rebuilt once cancelled entries are most of it")
        // What still counts keeps firing in order.
        let fired = Atomic<Int>(0)
        timer.schedule(at: .now + .milliseconds(10)) { fired.add(1, ordering: .relaxed) }
        try await Task.sleep(for: .milliseconds(80))
        #expect(fired.load(ordering: .relaxed) == 1)
    }

    @Test func aCancelledActionNeverRuns() async throws {
        let ran = Atomic<Bool>(false)
        let token = DeadlineTimer.shared.schedule(at: .now + .milliseconds(20)) { ran.store(true, ordering: .relaxed) }
        #expect(DeadlineTimer.shared.cancel(token))
        try await Task.sleep(for: .milliseconds(60))
        #expect(ran.load(ordering: .relaxed) == false)
    }

    /// Tokens name a slot and its generation: once an action has run or been cancelled, its token
    /// no longer matches, even after the slot holds another action.
    @Test func aStaleTokenCancelsNothingOnceItsSlotIsReused() async throws {
        let timer = DeadlineTimer.shared
        let first = timer.schedule(at: .now + .seconds(3600)) {}
        #expect(timer.cancel(first))
        #expect(!timer.cancel(first), "cancelled once")
        // The freed slot goes to the next action scheduled (this one, or one of a test running
        // beside it): the stale token must cancel neither.
        let ran = Atomic<Int>(0)
        let second = timer.schedule(at: .now + .milliseconds(10)) { ran.add(1, ordering: .relaxed) }
        #expect(second != first)
        #expect(!timer.cancel(first))
        #expect(await waitUntil(within: .seconds(5)) { ran.load(ordering: .relaxed) == 1 })
        #expect(!timer.cancel(second), "it ran")
    }
}
