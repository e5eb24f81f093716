import TestSupport
import FanoutSync
import Testing

@testable import FanoutCore

@Suite("Dispatcher")
struct DispatcherTests {
    let probe = Probe()

    /// Every subtask has exactly one result line and the end line comes last with matching counts.
    func checkInvariants(_ lines: [JSONValue], total: Int) {
        let results = lines.filter { $0["event"] == .string("result") }
        #expect(results.compactMap { $0["index"]?.int }.sorted() == Array(0..<total))
        #expect(lines.last?["event"] == .string("end"))
        #expect(lines.filter { $0["event"] == .string("end") }.count == 1)
        let end = lines.last
        var counts: [String: Int] = [:]
        for result in results { counts[result["status"]?.stringValue ?? "", default: 0] += 1 }
        for status in ["ok", "error", "timeout", "cancelled"] {
            #expect(end?[status]?.int == counts[status, default: 0], "end line count of \(status)")
        }
        #expect(end?["total"]?.int == total)
    }

    @Test func streamsInCompletionOrder() async throws {
        let sink = CollectingSink()
        let job = Job.make([
            probe.task("a", 0, delay: TestTime.ms(600), value: .object([("x", .number(1))])),
            probe.task("b", 1, delay: TestTime.ms(10), error: "boom"),
            probe.task("c", 2, delay: TestTime.ms(100), value: .string("c")),
        ])
        let summary = await Dispatcher.run(job, id: "j1", sink: sink)
        let results = sink.results
        #expect(results.map { $0["id"]?.stringValue } == ["b", "c", "a"])
        #expect(results.map { $0["done"]?.int } == [1, 2, 3])
        #expect(results[0]["status"] == .string("error"))
        #expect(results[0]["error"]?["code"] == .string("task_error"))
        #expect(results[0]["error"]?["message"] == .string("boom"))
        #expect(results[2]["value"] == .object([("x", .number(1))]))
        // Each line leaves when its subtask finishes, not when the job does: b and c before a finished.
        let times = sink.timedLines.filter { $0.json["event"] == .string("result") }.map(\.at)
        #expect(times[0] < TestTime.scaled(.milliseconds(600)))
        #expect(times[1] >= TestTime.scaled(.milliseconds(100)) && times[1] < TestTime.scaled(.milliseconds(600)))
        #expect(times[2] >= TestTime.scaled(.milliseconds(600)))
        #expect((results[2]["elapsed_ms"]?.numberValue ?? 0) >= Double(TestTime.ms(600)))
        checkInvariants(sink.lines, total: 3)
        #expect(sink.lines.last?["job"] == .string("j1"))
        #expect(summary.ok == 2 && summary.error == 1 && !summary.clientGone)
    }

    @Test func immediateOutcomesAreRecordedWhenTheirTurnComes() async {
        let sink = CollectingSink()
        let tasks = [
            probe.task("slow", 0, delay: 50),
            Subtask(id: "now", index: 1, kind: "echo", timeoutMilliseconds: nil, work: .immediate(.ok(.string("at once")))),
            Subtask(id: "bad", index: 2, kind: "echo", timeoutMilliseconds: nil, work: .immediate(.error(code: "task_error", message: "no"))),
        ]
        let summary = await Dispatcher.run(.make(tasks, concurrency: 1), id: "j", sink: sink)
        // With one slot, "now" and "bad" wait for "slow" to free it, as any subtask would.
        #expect(sink.results.map { $0["id"]?.stringValue } == ["slow", "now", "bad"])
        #expect(summary.ok == 2 && summary.error == 1)
        checkInvariants(sink.lines, total: 3)
    }

    @Test func aJobKnownAtOnceRunsWithoutTasks() throws {
        func instant(_ id: String, _ index: Int, _ outcome: SubtaskOutcome) -> Subtask {
            Subtask(id: id, index: index, kind: "echo", timeoutMilliseconds: nil, work: .immediate(outcome))
        }
        let tasks = [instant("a", 0, .ok(.number(1))), instant("b", 1, .error(code: "task_error", message: "x")), instant("c", 2, .ok(.null))]
        let (bytes, summary) = try #require(Dispatcher.runImmediately(.make(tasks), id: "j", maxBytes: 65536))
        let lines = try bytes.split(separator: 10).map { try JSONParser.parse(Array($0)) }
        #expect(lines.map { $0["id"]?.stringValue } == ["a", "b", "c", nil])
        checkInvariants(lines, total: 3)
        #expect(summary.bytes == bytes.count)

        let (failFast, _) = try #require(Dispatcher.runImmediately(.make(tasks, failFast: true), id: "j", maxBytes: 65536))
        let statuses = try failFast.split(separator: 10).map { try JSONParser.parse(Array($0))["status"]?.stringValue }
        #expect(statuses == ["ok", "error", "cancelled", nil])

        #expect(Dispatcher.runImmediately(.make(tasks), id: "j", maxBytes: 100) == nil, "too big to hold: it streams instead")
        #expect(Dispatcher.runImmediately(.make(tasks + [probe.task("d", 3, delay: 1)]), id: "j", maxBytes: 65536) == nil)
    }

    /// Echo subtasks are timers: the same semantics as tasks, checked through the same invariants.
    @Test func plannedOutcomesBehaveLikeTasks() async {
        func timed(_ id: String, _ index: Int, _ ms: Int, _ outcome: SubtaskOutcome = .ok(.null), timeout: Int? = nil) -> Subtask {
            Subtask(id: id, index: index, kind: "echo", timeoutMilliseconds: timeout, work: .delayed(outcome, after: .milliseconds(ms)))
        }
        let observer = CountingObserver()
        let sink = CollectingSink()
        let job = Job.make(
            [
                timed("a", 0, TestTime.ms(300)),
                timed("b", 1, TestTime.ms(10), .error(code: "task_error", message: "x")),
                timed("c", 2, TestTime.ms(100)),
                timed("d", 3, TestTime.ms(5_000), timeout: TestTime.ms(150)),
            ]
        )
        let summary = await Dispatcher.run(job, id: "j", observer: observer, sink: sink)
        #expect(sink.results.map { $0["id"]?.stringValue } == ["b", "c", "d", "a"])
        #expect(sink.results[2]["status"] == .string("timeout"))
        let times = sink.timedLines.filter { $0.json["event"] == .string("result") }.map(\.at)
        #expect(times[0] < TestTime.scaled(.milliseconds(300)) && times[3] >= TestTime.scaled(.milliseconds(300)))
        #expect(summary.ok == 2 && summary.error == 1 && summary.timeout == 1)
        #expect(observer.balance == 0 && observer.started == 4)
        checkInvariants(sink.lines, total: 4)

        // One slot: each starts when the one before ends.
        let serial = CollectingSink()
        let started = ContinuousClock.now
        _ = await Dispatcher.run(.make([timed("x", 0, 60), timed("y", 1, 60)], concurrency: 1), id: "j", sink: serial)
        #expect(ContinuousClock.now - started >= .milliseconds(120))
        checkInvariants(serial.lines, total: 2)
    }

    @Test func stoppingCancelsPlannedOutcomes() async {
        func timed(_ index: Int, _ ms: Int, _ outcome: SubtaskOutcome = .ok(.null)) -> Subtask {
            Subtask(id: "t\(index)", index: index, kind: "echo", timeoutMilliseconds: nil, work: .delayed(outcome, after: .milliseconds(ms)))
        }
        let observer = CountingObserver()
        let sink = CollectingSink()
        let began = ContinuousClock.now
        let summary = await Dispatcher.run(
            .make([timed(0, 20, .error(code: "task_error", message: "x")), timed(1, 10_000), timed(2, 10_000)], failFast: true),
            id: "j", observer: observer, sink: sink
        )
        #expect(ContinuousClock.now - began < .seconds(2))
        #expect(summary.cancelled == 2)
        #expect(observer.balance == 0)
        checkInvariants(sink.lines, total: 3)

        let gone = CollectingSink(failAfter: 0)
        let leftObserver = CountingObserver()
        let left = await Dispatcher.run(.make([timed(0, 5), timed(1, 10_000)]), id: "j", observer: leftObserver, sink: gone)
        #expect(left.clientGone)
        #expect(leftObserver.balance == 0, "what the vanished client left running is ended too")

        let deadlineSink = CollectingSink()
        let late = await Dispatcher.run(.make([timed(0, 10_000)], timeout: 100), id: "j", sink: deadlineSink)
        #expect(late.timeout == 1)
        #expect(deadlineSink.results.first?["error"]?["message"]?.stringValue?.contains("deadline") == true)
    }

    @Test func keepsAtMostConcurrencyInFlight() async {
        let sink = CollectingSink()
        let tasks = (0..<20).map { probe.task("t\($0)", $0, delay: 15) }
        let summary = await Dispatcher.run(.make(tasks, concurrency: 3), id: "j", sink: sink)
        #expect(probe.snapshot.peak == 3)
        #expect(summary.ok == 20)
        checkInvariants(sink.lines, total: 20)
    }

    @Test func jobDeadlineEndsStragglersAsTimeoutAndCancelsThem() async {
        let sink = CollectingSink()
        let job = Job.make(
            [
                probe.task("fast", 0, delay: TestTime.ms(20)),
                probe.task("slow", 1, delay: TestTime.ms(5_000)),
                probe.task("later", 2, delay: TestTime.ms(5_000)),
            ],
            concurrency: 2, timeout: TestTime.ms(200)
        )
        let started = ContinuousClock.now
        let summary = await Dispatcher.run(job, id: "j", sink: sink)
        #expect(ContinuousClock.now - started < TestTime.scaled(.seconds(2)))
        #expect(summary.ok == 1 && summary.timeout == 2)
        let timedOut = sink.results.filter { $0["status"] == .string("timeout") }
        #expect(timedOut.count == 2)
        #expect(timedOut.allSatisfy { $0["error"]?["code"] == .string("timeout") })
        #expect(timedOut.allSatisfy { ($0["elapsed_ms"]?.numberValue ?? 0) >= Double(TestTime.ms(200) - 5) })
        #expect(probe.snapshot.current == 0, "nothing keeps running after the job ended")
        checkInvariants(sink.lines, total: 3)
    }

    @Test func taskTimeoutEndsOnlyThatTask() async {
        let sink = CollectingSink()
        let job = Job.make([probe.task("slow", 0, delay: 2_000, timeout: 50), probe.task("ok", 1, delay: 100)])
        let summary = await Dispatcher.run(job, id: "j", sink: sink)
        #expect(sink.results.map { $0["id"]?.stringValue } == ["slow", "ok"])
        #expect(sink.results[0]["status"] == .string("timeout"))
        let elapsed = sink.results[0]["elapsed_ms"]?.numberValue ?? 0
        #expect(elapsed >= 50 && elapsed < 1000, "the 2 s subtask ended at its 50 ms timeout")
        #expect(summary.timeout == 1 && summary.ok == 1)
    }

    @Test func aSubtaskTimeoutCountsFromItsOwnStart() async {
        let sink = CollectingSink()
        let job = Job.make([probe.task("first", 0, delay: 150), probe.task("queued", 1, delay: 5_000, timeout: 200)], concurrency: 1)
        _ = await Dispatcher.run(job, id: "j", sink: sink)
        #expect(sink.results.map { $0["status"]?.stringValue } == ["ok", "timeout"])
        let elapsed = sink.results[1]["elapsed_ms"]?.numberValue ?? 0
        #expect(elapsed >= 345, "it waited 150 ms for a slot, then had its full 200 ms: \(elapsed)")
    }

    @Test func failFastCancelsTheRest() async {
        let sink = CollectingSink()
        let job = Job.make(
            [
                probe.task("a", 0, delay: TestTime.ms(1_000)),
                probe.task("b", 1, delay: TestTime.ms(10), error: "bad"),
                probe.task("c", 2, delay: TestTime.ms(1_000)),
            ],
            failFast: true
        )
        let started = ContinuousClock.now
        let summary = await Dispatcher.run(job, id: "j", sink: sink)
        #expect(ContinuousClock.now - started < TestTime.scaled(.milliseconds(500)))
        #expect(sink.results.map { $0["status"]?.stringValue } == ["error", "cancelled", "cancelled"])
        #expect(sink.results[1]["error"]?["code"] == .string("cancelled"))
        #expect(summary.cancelled == 2)
        #expect(probe.snapshot.current == 0)
        checkInvariants(sink.lines, total: 3)
    }

    @Test func firstStopsAfterEnoughOkResults() async {
        let sink = CollectingSink()
        let tasks = [
            probe.task("a", 0, delay: 10), probe.task("b", 1, delay: 800, error: "x"),
            probe.task("c", 2, delay: 30), probe.task("d", 3, delay: 800),
        ]
        let summary = await Dispatcher.run(.make(tasks, first: 2), id: "j", sink: sink)
        #expect(summary.ok == 2 && summary.cancelled == 2)
        #expect(sink.results.prefix(2).map { $0["id"]?.stringValue } == ["a", "c"])
        checkInvariants(sink.lines, total: 4)
    }

    @Test func inputOrderSendsEachLineOnceItsPrefixIsDone() async {
        let sink = CollectingSink()
        let tasks = [probe.task("a", 0, delay: 400), probe.task("b", 1, delay: 10), probe.task("c", 2, delay: 60)]
        _ = await Dispatcher.run(.make(tasks, order: .input), id: "j", sink: sink)
        #expect(sink.results.map { $0["id"]?.stringValue } == ["a", "b", "c"])
        #expect(sink.results.map { $0["done"]?.int } == [1, 2, 3])
        // b and c finished long before a, so they leave together with it.
        let times = sink.timedLines.filter { $0.json["event"] == .string("result") }.map(\.at)
        #expect(times.allSatisfy { $0 >= .milliseconds(400) })
        let elapsed = sink.results.map { $0["elapsed_ms"]?.numberValue ?? 0 }
        #expect(elapsed[1] < elapsed[0] && elapsed[2] < elapsed[0], "elapsed_ms is when each finished, not when it was sent: \(elapsed)")
        checkInvariants(sink.lines, total: 3)
    }

    /// With either sink: the loop's waits do not watch the task, the entry's one handler does.
    @Test(arguments: [false, true]) func cancellingTheJobCancelsItsSubtasks(nonBlocking: Bool) async {
        let tasks = (0..<10).map { probe.task("t\($0)", $0, delay: 10_000) }
        let run = Task {
            nonBlocking
                ? await Dispatcher.run(.make(tasks), id: "j", sink: OfferingSink())
                : await Dispatcher.run(.make(tasks), id: "j", sink: CollectingSink())
        }
        #expect(await eventually(within: .seconds(5)) { probe.snapshot.current == 10 })
        run.cancel()
        let summary = await run.value
        #expect(summary.clientGone)
        #expect(probe.snapshot.current == 0)
        #expect(probe.snapshot.cancelled == 10)
    }

    /// A job of timers only runs in the caller's task with no group: cancelling that task ends it
    /// at once (the generic entry turns the cancellation into the loop's event), not at its
    /// 60 s timers or deadline.
    @Test func cancellingATimerOnlyJobEndsItAtOnce() async {
        let tasks = (0..<3).map { Subtask(id: "t\($0)", index: $0, kind: "echo", timeoutMilliseconds: nil, work: .delayed(.ok(.null), after: .seconds(60))) }
        let sink = OfferingSink()
        let run = Task { await Dispatcher.run(.make(tasks), id: "j", sink: sink) }
        try? await Task.sleep(for: .milliseconds(50))
        let cancelled = ContinuousClock.now
        run.cancel()
        let summary = await run.value
        #expect(ContinuousClock.now - cancelled < TestTime.scaled(.seconds(2)))
        #expect(summary.clientGone)
        #expect(sink.results.isEmpty)
    }

    /// With a sink that sends (a job store's way) and one that is offered lines (the response
    /// stream's): a client gone at the first lines stops the job and cancels what still runs.
    @Test(arguments: [false, true]) func aVanishedClientStopsTheJob(nonBlocking: Bool) async {
        let tasks = [probe.task("a", 0, delay: TestTime.ms(5))] + (1..<6).map { probe.task("t\($0)", $0, delay: TestTime.ms(10_000)) }
        let job = Job.make(tasks)
        let started = ContinuousClock.now
        let summary: JobSummary
        let results: [JSONValue]
        if nonBlocking {
            let sink = OfferingSink(failAfter: 0)
            summary = await Dispatcher.run(job, id: "j", sink: sink)
            results = sink.results
        } else {
            let sink = CollectingSink(failAfter: 0)
            summary = await Dispatcher.run(job, id: "j", sink: sink)
            results = sink.results
        }
        #expect(ContinuousClock.now - started < TestTime.scaled(.seconds(2)))
        #expect(summary.clientGone)
        #expect(results.isEmpty)
        #expect(probe.snapshot.current == 0, "the subtasks still running were cancelled")
        #expect(probe.snapshot.cancelled == 5)
    }

    @Test func heartbeatsWhileIdle() async {
        let sink = CollectingSink()
        _ = await Dispatcher.run(.make([probe.task("a", 0, delay: TestTime.ms(400))], heartbeat: TestTime.ms(50)), id: "j", sink: sink)
        let events = sink.lines.map { $0["event"]?.stringValue ?? "" }
        #expect(events.filter { $0 == "heartbeat" }.count >= 3)
        #expect(Array(events.suffix(2)) == ["result", "end"])
        let heartbeat = sink.lines.first { $0["event"] == .string("heartbeat") }
        #expect(heartbeat?["done"]?.int == 0 && heartbeat?["total"]?.int == 1)
    }

    @Test func controlCancelsRemainingWithLines() async {
        let sink = CollectingSink()
        let control = JobControl()
        let tasks = [probe.task("a", 0, delay: 10), probe.task("b", 1, delay: 10_000), probe.task("c", 2, delay: 10_000)]
        let run = Task { await Dispatcher.run(.make(tasks, concurrency: 2), id: "j", control: control, sink: sink) }
        #expect(await eventually(within: .seconds(5)) { sink.results.count == 1 }, "a finished first")
        control.cancelRemaining(reason: "the server is shutting down")
        let summary = await run.value
        #expect(summary.ok == 1 && summary.cancelled == 2 && !summary.clientGone)
        #expect(sink.results.last?["error"]?["message"] == .string("the server is shutting down"))
        checkInvariants(sink.lines, total: 3)
    }

    /// The response stream's way: lines are offered (no task per send) and readiness comes back
    /// by callback, at once or when the client has read.
    @Test func aNonBlockingSinkGetsEveryLineAndHoldsBackNewSubtasksUntilReady() async throws {
        let sink = OfferingSink(held: true)
        let tasks = (0..<100).map { probe.task("t\($0)", $0, delay: 0) }
        let run = Task { await Dispatcher.run(.make(tasks, concurrency: 5), id: "j", sink: sink) }
        try await Task.sleep(for: TestTime.scaled(.milliseconds(150)))
        #expect(probe.snapshot.started == 5, "no subtask starts while the sink has no room")
        sink.release()
        let summary = await run.value
        #expect(summary.ok == 100 && !summary.clientGone)
        checkInvariants(sink.lines, total: 100)
    }

    /// Timers only (delayed `echo`): the stream's task alone, no group; lines in finish order.
    @Test func aNonBlockingSinkGetsTimerOnlyJobsInFinishOrder() async {
        let sink = OfferingSink()
        let tasks = [300, 10, 150].enumerated().map { index, ms in
            Subtask(id: "t\(index)", index: index, kind: "echo", timeoutMilliseconds: nil, work: .delayed(.ok(.null), after: .milliseconds(TestTime.ms(ms))))
        }
        let summary = await Dispatcher.run(.make(tasks), id: "j", sink: sink)
        #expect(summary.ok == 3 && !summary.clientGone)
        #expect(sink.results.compactMap { $0["index"]?.int } == [1, 2, 0])
        checkInvariants(sink.lines, total: 3)
    }

    @Test func aSlowClientHoldsBackNewSubtasks() async throws {
        let sink = CollectingSink(held: true)
        let tasks = (0..<100).map { probe.task("t\($0)", $0, delay: 0) }
        let run = Task { await Dispatcher.run(.make(tasks, concurrency: 5), id: "j", sink: sink) }
        try await Task.sleep(for: TestTime.scaled(.milliseconds(150)))
        #expect(probe.snapshot.started == 5, "no subtask starts while the client is not reading")
        #expect(sink.results.count <= 5, "only what finished before the first send went out")
        sink.release()
        let summary = await run.value
        #expect(summary.ok == 100)
        checkInvariants(sink.lines, total: 100)
    }

    /// Input order, a slow first subtask and big values: the lines waiting for it count against the
    /// buffer, so nothing new starts while they fill it; then every line arrives, in order.
    @Test func inputOrderHoldsBackNewSubtasksWhileLinesWaitForAnEarlierOne() async {
        let sink = CollectingSink()
        let big = JSONValue.string(String(repeating: "x", count: 2_000))
        let startedBeforeFirstEnded = Box<Int?>(nil)
        let first = Subtask(id: "slow", index: 0, kind: "echo", timeoutMilliseconds: nil) { [probe] _ in
            try? await DeadlineTimer.shared.sleep(until: .now + .milliseconds(500))
            startedBeforeFirstEnded.set(probe.snapshot.started)
            return .ok(.null)
        }
        let tasks = [first] + (1..<300).map { probe.task("t\($0)", $0, delay: 0, value: big) }
        let summary = await Dispatcher.run(
            .make(tasks, concurrency: 4, order: .input), id: "j", bufferBytes: 16 * 1024, sink: sink
        )
        // Lines of ~2.1 KB: the 8th passes 16 KiB; at most 3 others are in flight beside the slow one.
        let started = startedBeforeFirstEnded.get ?? .max
        #expect(started <= 8 + 3, "\(started) subtasks started while the first was running")
        #expect(summary.ok == 300)
        #expect(sink.results.map { $0["index"]?.int } == Array(0..<300))
        checkInvariants(sink.lines, total: 300)
    }

    /// A client that does not read holds a send; the job's deadline still cancels what is in flight
    /// on time, and its lines are written once the client reads again.
    @Test func theDeadlineCancelsSubtasksWhileTheClientIsNotReading() async {
        let sink = CollectingSink(held: true)
        let cancelledAt = Box<Duration?>(nil)
        let clock = ContinuousClock.now
        // Ignores its deadline: only cancellation ends it.
        let stuck = Subtask(id: "stuck", index: 1, kind: "echo", timeoutMilliseconds: nil) { _ in
            do {
                try await DeadlineTimer.shared.sleep(until: .now + .seconds(60))
                return .ok(.null)
            } catch {
                cancelledAt.set(.now - clock)
                return .cancelled("the task was cancelled")
            }
        }
        let tasks = [probe.task("quick", 0, delay: 0), stuck, probe.task("queued", 2, delay: 0)]
        let run = Task { await Dispatcher.run(.make(tasks, concurrency: 2, timeout: 300), id: "j", sink: sink) }
        #expect(await eventually(within: .seconds(20)) { cancelledAt.get != nil }, "cancelled while the send waits")
        #expect((cancelledAt.get ?? .zero) >= .milliseconds(295))
        #expect(sink.results.map { $0["id"]?.stringValue } == ["quick"], "only the first send reached the sink")
        #expect(probe.snapshot.started == 1, "nothing new started while the client was not reading")
        sink.release()
        let summary = await run.value
        #expect(summary.ok == 1 && summary.timeout == 2 && !summary.clientGone)
        #expect(sink.results.map { $0["status"]?.stringValue } == ["ok", "timeout", "timeout"])
        checkInvariants(sink.lines, total: 3)
    }
}

/// A value tests set from inside subtasks and read afterwards.
final class Box<Value: Sendable>: Sendable {
    private let value: Locked<Value>
    init(_ value: Value) { self.value = Locked(value) }
    func set(_ new: Value) { value.withLock { $0 = new } }
    var get: Value { value.withLock { $0 } }
}
