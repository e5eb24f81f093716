import FanoutSync
import Testing

@testable import FanoutCore

/// The small structures an open job keeps: its planned timers, its subtasks' kinds, and the marks
/// that say which subtasks have a line (and, for metrics, when each started).
@Suite("Job bookkeeping")
struct JobBookkeepingTests {
    /// The first timer sits in place and the rest in a table: each is found and cancelled once,
    /// whichever came first, and the place is reused once its timer has fired.
    @Test func plannedTimersKeepTheFirstInPlaceAndTheRestInATable() {
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
        #expect(expectedAsked == 1, "one table, sized once, for the timers after the first")
        planned.remove(0)  // the one in place fired
        planned.remove(2)  // one in the table fired
        let reused = timer.schedule(at: .now + .seconds(3600)) {}
        planned.insert(reused, for: 7) { 8 }
        var cancelled: [DeadlineTimer.Token] = []
        planned.removeAll { cancelled.append($0) }
        #expect(Set(cancelled) == [tokens[1]!, tokens[3]!, reused])
        for token in cancelled { #expect(timer.cancel(token) != nil) }
        for index in [0, 2] { #expect(timer.cancel(tokens[index]!) != nil) }
        var none: [DeadlineTimer.Token] = []
        planned.removeAll { none.append($0) }
        #expect(none.isEmpty, "emptied")
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
