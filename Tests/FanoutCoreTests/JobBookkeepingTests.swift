import FanoutSync
import Testing

@testable import FanoutCore

/// The small structures an open job keeps: its planned timers, its subtasks' kinds, and the marks
/// that say which subtasks have a line (and, for metrics, when each started).
@Suite("Job bookkeeping")
struct JobBookkeepingTests {
    /// The first timer sits in place and the rest in a window: each is found and cancelled once,
    /// whichever came first, and the place is reused once its timer has fired.
    @Test func plannedTimersKeepTheFirstInPlaceAndTheRestInAWindow() {
        let timer = DeadlineTimer.shared
        var tokens: [Int: DeadlineTimer.Token] = [:]
        for index in 0..<4 { tokens[index] = timer.schedule(at: .now + .seconds(3600)) {} }
        var planned = PlannedTimers()
        var expectedAsked = 0
        for index in 0..<4 {
            planned.insert(tokens[index]!, for: index) {
                expectedAsked += 1
                return 8
            }
        }
        #expect(expectedAsked == 1, "one window, sized once, for the timers after the first")
        planned.remove(0)  // the one in place fired
        planned.remove(2)  // one in the table fired
        let reused = timer.schedule(at: .now + .seconds(3600)) {}
        planned.insert(reused, for: 7) { 8 }
        var cancelled: [DeadlineTimer.Token] = []
        planned.removeAll { cancelled.append($0) }
        #expect(Set(cancelled) == [tokens[1]!, tokens[3]!, reused])
        for token in cancelled { #expect(timer.cancel(token)) }
        for index in [0, 2] { #expect(timer.cancel(tokens[index]!)) }
        var none: [DeadlineTimer.Token] = []
        planned.removeAll { none.append($0) }
        #expect(none.isEmpty, "emptied")
    }

    /// Against a plain table, through gaps (indices with no timer), timers that fire in any order,
    /// one long timer holding the window's start while hundreds after it fire, then the window
    /// moving on: whatever is left is exactly what removeAll hands out, each timer once.
    @Test func plannedTimersMatchASetThroughGapsAndOutOfOrderFiring() {
        let timer = DeadlineTimer.shared
        var random = SplitMix(seed: 12)
        var planned = PlannedTimers()
        var live: [Int: DeadlineTimer.Token] = [:]
        var scheduled: [DeadlineTimer.Token] = []
        var index = 0
        var long: Int?
        for round in 0..<40 {
            // Start up to 30 subtasks, one index in two or three with a timer.
            for _ in 0..<Int(random.next() % 30) {
                index += 1 + Int(random.next() % 3)
                let token = timer.schedule(at: .now + .seconds(3600)) {}
                scheduled.append(token)
                planned.insert(token, for: index) { 16 }
                live[index] = token
                if round == 2, long == nil { long = index }
            }
            // About three in four of what is live fire, in random order; the long one not before
            // round 25, and then it does (the window then moves on past hundreds of nils).
            let kept = round < 25 ? long : nil
            for firing in live.keys.shuffled(using: &random) where firing != kept && (firing == long || random.next() % 4 != 0) {
                planned.remove(firing)
                live[firing] = nil
            }
            // Indices with no timer (not yet started, or already fired) change nothing.
            planned.remove(index + 1_000)
            planned.remove(0)
        }
        #expect(long != nil && live[long!] == nil)
        #expect(index > 500)
        // From the oldest timer left to the newest index: nils at the window's start are at most
        // as many as the rest, or fewer than 64.
        let span = index - (live.keys.min() ?? index) + 1
        #expect(planned.windowLength <= max(2 * span, 64 + span), "the window gave back the room of the nils at its start")
        var cancelled: [DeadlineTimer.Token] = []
        planned.removeAll { cancelled.append($0) }
        #expect(cancelled.count == live.count, "each timer once")
        #expect(Set(cancelled) == Set(live.values))
        var none: [DeadlineTimer.Token] = []
        planned.removeAll { none.append($0) }
        #expect(none.isEmpty, "emptied")
        for token in scheduled { timer.cancel(token) }
    }

    /// A job of one kind keeps no per-subtask codes; a second kind brings them in, and every
    /// subtask keeps its own kind, before and after.
    @Test func subtaskKindsAreKeptOncePerKindAndCodedOnlyWhenMixed() {
        let kinds = ["echo", "echo", "http", "echo", "probe", "http"]
        var list = SubtaskList()
        for kind in kinds { list.append(id: nil, kind: kind, timeoutMilliseconds: nil, work: .immediate(.ok(.null))) }
        #expect(list.indices.map { list.kind(at: $0) } == kinds)
        var single = SubtaskList()
        for _ in 0..<3 { single.append(id: nil, kind: "echo", timeoutMilliseconds: nil, work: .immediate(.ok(.null))) }
        #expect(single.indices.map { single.kind(at: $0) } == ["echo", "echo", "echo"])
        #expect(single.estimatedBytes < list.estimatedBytes)
    }

    /// Every started subtask ends for the observer exactly once — with a line, when stopped, or
    /// when the client leaves — and a second outcome for a reported subtask changes nothing.
    @Test func eachStartedSubtaskEndsOnceForTheObserver() {
        let observer = CountingObserver()
        let tasks = (0..<4).map { Subtask(id: "t\($0)", index: $0, kind: "echo", timeoutMilliseconds: nil, work: .delayed(.ok(.null), after: .seconds(1))) }
        let run = JobRun(job: .make(tasks), id: "j", start: .now, observer: observer)
        for index in 0..<3 { _ = run.started(index: index) }
        run.record(index: 1, outcome: .ok(.null), at: .now)
        run.record(index: 1, outcome: .error(code: "task_error", message: "late"), at: .now)
        #expect(observer.started == 3 && observer.balance == 2)
        #expect(run.summary.ok == 1 && run.summary.error == 0, "a late outcome is ignored")
        run.abandon()
        #expect(observer.balance == 0, "what started and had no line ends when the client leaves")
        #expect(run.summary.byKind.first?.cancelled == 3, "the three without a line count as cancelled")

        let stopped = JobRun(job: .make(tasks), id: "j", start: .now, observer: observer)
        _ = stopped.started(index: 0)
        stopped.stop(with: .cancelled("stop"))
        #expect(stopped.summary.cancelled == 4 && stopped.finished)
        #expect(observer.balance == 0)
    }
}

