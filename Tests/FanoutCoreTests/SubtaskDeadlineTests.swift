import Testing

@testable import FanoutCore

@Suite("Subtask deadline")
struct SubtaskDeadlineTests {
    /// Work still running at the deadline has its task cancelled then, not before.
    @Test func cancelsTheTaskAtTheDeadline() async {
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(50)
        let outcome = await Task {
            await SubtaskDeadline.run(until: deadline) {
                do {
                    try await Task.sleep(for: .seconds(10))
                    return .ok(.string("slept"))
                } catch {
                    return ContinuousClock.now >= deadline ? .timeout("cancelled at the deadline") : .cancelled("cancelled early")
                }
            }
        }.value
        #expect(outcome.status == .timeout, "\(outcome)")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// Work that returns in time leaves its task as it was: the timer fires on nothing later.
    @Test func leavesTheTaskAloneOnceTheWorkReturned() async {
        let stillRunning = await Task {
            // Taken inside the task: under a parallel test run the task may start later than 30 ms
            // after it is made, and work that starts after its deadline has not returned in time.
            let deadline = ContinuousClock.now + .milliseconds(30)
            let outcome = await SubtaskDeadline.run(until: deadline) { .ok(.null) }
            #expect(outcome.status == .ok)
            try? await Task.sleep(until: deadline + .milliseconds(100))
            return !Task.isCancelled
        }.value
        #expect(stillRunning, "the task was cancelled after the work had returned")
    }

    /// Cancellation from elsewhere (the job stopping) still reaches the work before the deadline.
    @Test func theCallersCancellationStillComesThrough() async {
        let task = Task {
            await SubtaskDeadline.run(until: .now + .seconds(30)) {
                do {
                    try await Task.sleep(for: .seconds(10))
                    return .ok(.null)
                } catch {
                    return .cancelled("cancelled")
                }
            }
        }
        try? await Task.sleep(for: .milliseconds(20))
        task.cancel()
        #expect(await task.value.status == .cancelled)
    }
}

/// The one rule for a subtask's deadline, used on both time scales (a task's `Instant`, a timer's
/// `MonotonicTime`): its own when sooner than the job's, else the job's.
@Suite("Subtask deadline rule")
struct SubtaskDeadlineRuleTests {
    @Test func theSoonerDeadlineWinsAndATieIsTheJobs() {
        #expect(DispatchLoop.deadline(own: 5, job: 10) == (5, false))
        #expect(DispatchLoop.deadline(own: 10, job: 10) == (10, true))
        #expect(DispatchLoop.deadline(own: 15, job: 10) == (10, true))
        #expect(DispatchLoop.deadline(own: nil, job: 10) == (10, true))
        let start = MonotonicTime(nanoseconds: 1_000)
        let job = start.advanced(byMicroseconds: 60_000_000)
        #expect(DispatchLoop.deadline(own: start.advanced(byMicroseconds: 150_000), job: job) == (start.advanced(byMicroseconds: 150_000), false))
        let now = ContinuousClock.now
        #expect(DispatchLoop.deadline(own: now + .seconds(2), job: now + .seconds(1)) == (now + .seconds(1), true))
    }
}
