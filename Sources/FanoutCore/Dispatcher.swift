/// Runs a job's subtasks concurrently and streams one line per subtask as it finishes.
///
/// At most `concurrency` subtasks are in flight. Subtasks that do work (`http`) are children of a
/// discarding task group, freed as soon as they post their outcome to the job's inbox
/// (``JobEvents``); subtasks whose outcome is known in advance (`echo`) are entries on the shared
/// ``DeadlineTimer``, as are the job's deadline and heartbeat. The loop (``DispatchLoop``) takes
/// what has arrived in batches and turns it into lines (``JobRun``). While the sink waits for a slow
/// client, the loop waits, so no new subtask starts: backpressure, not buffering.
///
/// Every subtask gets exactly one result line, then the end line comes last. When the job's
/// deadline passes, or `fail_fast`/`first`/``JobControl`` stop it, what has not finished is
/// reported at once (`timeout` or `cancelled`) and cancelled; a late outcome is then ignored.
public enum Dispatcher {
    /// Subtasks started per pass of the loop before it looks at what has finished, so the first
    /// lines of a huge job leave while the rest are still being started.
    static let launchBatch = 512

    /// Runs a job whose every outcome is known already (see ``SubtaskRunner/plannedOutcome(_:)``)
    /// on the calling thread, with no task: returns all its lines, or nil if some subtask must run
    /// or the lines would take more than `maxBytes` (a big job streams, so a slow reader holds it back).
    public static func runImmediately(_ job: Job, id: String, maxBytes: Int) -> (lines: [UInt8], summary: JobSummary)? {
        var outcomes: [SubtaskOutcome] = []
        outcomes.reserveCapacity(job.tasks.count)
        for task in job.tasks {
            guard case .immediate(let outcome) = task.work else { return nil }
            outcomes.append(outcome)
        }
        let start = ContinuousClock.now
        let run = JobRun(job: job, id: id, start: start)
        for (index, outcome) in outcomes.enumerated() where !run.stopped {
            run.record(index: index, outcome: outcome, at: start)
            if run.outgoingCount > maxBytes { return nil }
        }
        let lines = run.takeOutgoing()
        return (lines, run.summary)
    }

    public static func run(
        _ job: Job,
        id: String,
        control: JobControl? = nil,
        observer: (any DispatchObserver)? = nil,
        timer: DeadlineTimer = .shared,
        sink: some LineSink
    ) async -> JobSummary {
        let loop = DispatchLoop(job: job, id: id, observer: observer, timer: timer)
        control?.attach(loop.events)
        defer { control?.detach() }
        let needsTasks = job.tasks.contains { if case .run = $0.work { true } else { false } }
        if needsTasks {
            await withDiscardingTaskGroup { group in
                await loop.run(
                    sink: sink,
                    spawn: { work, context, index, events in
                        group.addTask {
                            let outcome = await work(context)
                            events.post(.finished(index: index, outcome: outcome, at: .now))
                        }
                    },
                    cancelTasks: { group.cancelAll() }
                )
            }
        } else {
            // Immediate and timed outcomes only (echo): no task group, no task per subtask.
            await loop.run(sink: sink, spawn: { _, _, _, _ in }, cancelTasks: {})
        }
        return loop.jobRun.summary
    }
}

/// Told when subtasks start and end (metrics: subtasks in flight, their durations).
public protocol DispatchObserver: Sendable {
    func subtaskStarted(kind: String)
    func subtaskEnded(kind: String, duration: Duration)
}
