import TestSupport
import FanoutSync
import Testing

@testable import FanoutCore

/// `Dispatcher.start`: a job of timers only, run with no task of its own (each pass on a global
/// queue when an event arrives), as a response stream runs one.
extension DispatcherTests {
    /// Starts `job` without a task and waits for its `ended`, which must come exactly once.
    func runWithoutTask(
        _ job: Job, control: JobControl? = nil, observer: (any DispatchObserver)? = nil, sink: OfferingSink
    ) async -> JobSummary {
        let prepared = Dispatcher.prepare(job, id: "j", control: control, observer: observer)
        #expect(prepared.runsWithoutTask)
        let endings = Locked(0)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Dispatcher.start(prepared, offeringTo: sink) {
                if endings.withLock({ count in
                    count += 1
                    return count
                }) == 1 {
                    continuation.resume()
                }
            }
        }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(endings.withLock { $0 } == 1, "ended is called once")
        return prepared.summary
    }

    static func timed(_ index: Int, _ milliseconds: Int, _ outcome: SubtaskOutcome = .ok(.null), timeout: Int? = nil) -> Subtask {
        Subtask(
            id: "t\(index)", index: index, kind: "echo", timeoutMilliseconds: timeout,
            work: .delayed(outcome, after: .milliseconds(milliseconds))
        )
    }

    @Test func aTimerOnlyJobRunsWithoutATaskInFinishOrder() async {
        let sink = OfferingSink()
        let observer = CountingObserver()
        let tasks = [
            Self.timed(0, TestTime.ms(300)),
            Self.timed(1, TestTime.ms(10), .error(code: "task_error", message: "x")),
            Self.timed(2, TestTime.ms(150)),
            Self.timed(3, TestTime.ms(5_000), timeout: TestTime.ms(200)),
            Subtask(id: "t4", index: 4, kind: "echo", timeoutMilliseconds: nil, work: .delayed(.ok(.null), after: .zero)),
        ]
        let summary = await runWithoutTask(.make(tasks), observer: observer, sink: sink)
        #expect(sink.results.compactMap { $0["index"]?.int } == [4, 1, 2, 3, 0])
        #expect(summary.ok == 3 && summary.error == 1 && summary.timeout == 1 && !summary.clientGone)
        #expect(observer.balance == 0)
        checkInvariants(sink.lines, total: 5)
    }

    /// More timers than one pass starts (``Dispatcher/launchBatch``): the loop yields to the queue
    /// between batches, and every subtask still gets its one line.
    @Test func aLargeTimerOnlyJobYieldsBetweenBatches() async {
        let sink = OfferingSink()
        let tasks = (0..<2_000).map { Self.timed($0, 1 + $0 % 7) }
        let summary = await runWithoutTask(.make(tasks, concurrency: 1_500), sink: sink)
        #expect(summary.ok == 2_000)
        checkInvariants(sink.lines, total: 2_000)
    }

    /// Lines that come faster than the client takes them (a burst of timers, a held sink) are
    /// offered in pieces of whole lines of about ``JobRun/pieceBytes`` each, not in one buffer.
    @Test func aBurstOfLinesIsOfferedInPiecesOfWholeLines() async throws {
        let sink = OfferingSink(held: true)
        let tasks = (0..<5_000).map { Self.timed($0, TestTime.ms(20) + $0 % 3) }
        async let summary = runWithoutTask(.make(tasks, concurrency: 5_000), sink: sink)
        try await Task.sleep(for: TestTime.scaled(.milliseconds(300)))
        sink.release()
        #expect(await summary.ok == 5_000)
        checkInvariants(sink.lines, total: 5_000)
        let offers = sink.offers
        #expect(offers.contains { $0.count > 1 }, "\(offers)")
        for pieces in offers {
            for size in pieces.dropLast() {
                #expect(size >= JobRun.pieceBytes && size < JobRun.pieceBytes + 512, "a full piece: \(size) bytes")
            }
        }
        #expect(offers.joined().reduce(0, +) == (await summary).bytes, "every byte is offered once")
    }

    @Test func aHeldSinkHoldsBackNewTimers() async throws {
        let sink = OfferingSink(held: true)
        let observer = CountingObserver()
        let tasks = (0..<50).map { Self.timed($0, 1) }
        async let summary = runWithoutTask(.make(tasks, concurrency: 5), observer: observer, sink: sink)
        try await Task.sleep(for: TestTime.scaled(.milliseconds(150)))
        #expect(observer.started == 5, "no timer starts while the sink has no room")
        sink.release()
        #expect(await summary.ok == 50)
        checkInvariants(sink.lines, total: 50)
    }

    @Test func heartbeatsWithoutATask() async {
        let sink = OfferingSink()
        _ = await runWithoutTask(.make([Self.timed(0, TestTime.ms(400))], heartbeat: TestTime.ms(50)), sink: sink)
        let events = sink.lines.map { $0["event"]?.stringValue ?? "" }
        #expect(events.filter { $0 == "heartbeat" }.count >= 3)
        #expect(Array(events.suffix(2)) == ["result", "end"])
    }

    /// The client is gone at the first lines (the sink says so), or its stream closes (the
    /// control says so): the job ends at once, not at its 60 s timers, with nothing left started.
    @Test func aVanishedClientEndsATasklessJobAtOnce() async {
        let observer = CountingObserver()
        let began = ContinuousClock.now
        let gone = await runWithoutTask(.make([Self.timed(0, 5), Self.timed(1, 60_000)]), observer: observer, sink: OfferingSink(failAfter: 0))
        #expect(gone.clientGone)
        #expect(observer.balance == 0)

        let control = JobControl()
        let sink = OfferingSink()
        async let closed = runWithoutTask(.make([Self.timed(0, 60_000), Self.timed(1, 60_000)]), control: control, sink: sink)
        try? await Task.sleep(for: .milliseconds(50))
        control.clientGone()
        #expect(await closed.clientGone)
        #expect(sink.results.isEmpty)
        #expect(ContinuousClock.now - began < TestTime.scaled(.seconds(3)))
    }

    @Test func controlAndDeadlineEndATasklessJobWithLines() async {
        let control = JobControl()
        let sink = OfferingSink()
        async let stopped = runWithoutTask(.make([Self.timed(0, 10), Self.timed(1, 60_000), Self.timed(2, 60_000)]), control: control, sink: sink)
        #expect(await eventually(within: .seconds(5)) { sink.results.count == 1 }, "t0 finished first")
        control.cancelRemaining(reason: "the server is shutting down")
        let summary = await stopped
        #expect(summary.ok == 1 && summary.cancelled == 2 && !summary.clientGone)
        checkInvariants(sink.lines, total: 3)

        let late = OfferingSink()
        let timedOut = await runWithoutTask(.make([Self.timed(0, 10_000)], timeout: 100), sink: late)
        #expect(timedOut.timeout == 1)
        #expect(late.results.first?["error"]?["message"]?.stringValue?.contains("deadline") == true)
    }
}
