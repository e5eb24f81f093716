import FanoutSync

/// Holds a subtask that does work to its deadline: the task it runs in is cancelled when
/// ``SubtaskContext/deadline`` passes, and the runner, finding itself cancelled with
/// ``SubtaskContext/deadlinePassed`` true, reports a timeout. This costs a timer entry, where a
/// racing timer task per subtask (as the `http` runner had) cost two more tasks and a task group.
public enum SubtaskDeadline {
    /// Runs `work` in the calling task and cancels that task at `deadline` if `work` has not
    /// returned by then. Call it from a task that exists to run this one subtask (the dispatcher's
    /// child task for it): the cancellation is the whole task's, and it stays.
    public static func run(
        until deadline: ContinuousClock.Instant,
        _ work: () async -> SubtaskOutcome
    ) async -> SubtaskOutcome {
        guard let canceller = withUnsafeCurrentTask(body: { $0.map(TaskCanceller.init) }) else {
            return await work()
        }
        let timer = DeadlineTimer.shared
        let token = timer.schedule(at: deadline) { canceller.fire() }
        let outcome = await work()
        canceller.disarm()
        timer.cancel(token)
        return outcome
    }
}

/// Cancels one task from the timer thread, only while that task is still inside
/// ``SubtaskDeadline/run(until:_:)``: `disarm()`, which the task calls before it leaves, waits for a
/// `fire()` in progress and makes later ones do nothing, so the task is never touched after.
private final class TaskCanceller: Sendable {
    /// `UnsafeCurrentTask` is not Sendable because it must not outlive its task; the lock above
    /// is what guarantees that here.
    private struct Target: @unchecked Sendable {
        let task: UnsafeCurrentTask
    }

    private let target: Locked<Target?>

    init(_ task: UnsafeCurrentTask) {
        target = Locked(Target(task: task))
    }

    func fire() {
        target.withLock { target in
            target?.task.cancel()
            target = nil
        }
    }

    func disarm() {
        target.withLock { $0 = nil }
    }
}
