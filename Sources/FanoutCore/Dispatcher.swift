/// Runs a job's subtasks concurrently and streams one line per subtask as it finishes.
///
/// At most `concurrency` subtasks are in flight. Subtasks that do work (`http`) are children of a
/// discarding task group, freed as soon as they post their outcome to the job's inbox
/// (``JobEvents``); subtasks whose outcome is known in advance (`echo`) are entries on the shared
/// ``DeadlineTimer``, as are the job's deadline and heartbeat. The loop (``DispatchLoop``) takes
/// what has arrived in batches and turns it into lines (``JobRun``). While the sink waits for a slow
/// client no new subtask starts: backpressure, not buffering. The send is a task of its own,
/// so the loop meanwhile still ends the job at its deadline. In input order, lines held for an
/// earlier one count against `bufferBytes`: while they fill it, no new subtask starts either.
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
        guard job.tasks.allImmediate else { return nil }
        let start = ContinuousClock.now
        let run = JobRun(job: job, id: id, start: start)
        for index in job.tasks.indices where !run.stopped {
            guard case .immediate(let outcome) = job.tasks.work(at: index) else { return nil }
            run.record(index: index, outcome: outcome, at: start)
            if run.outgoingCount > maxBytes { return nil }
        }
        let lines = run.takeOutgoing()
        return (lines, run.summary)
    }

    /// Runs `job`, sending its lines to `sink`; returns when the end line is with the sink, or the
    /// client is gone (the sink threw, or the calling task was cancelled).
    /// - Parameter bufferBytes: The stream's buffer (`limits.stream_buffer_bytes`): in input order,
    ///   lines waiting for an earlier one may take this much before no new subtask starts.
    /// - Parameter trace: The job's point in its trace; with a span, each subtask that starts gets
    ///   a child span, ended with its line.
    public static func run(
        _ job: Job,
        id: String,
        control: JobControl? = nil,
        observer: (any DispatchObserver)? = nil,
        timer: DeadlineTimer = .shared,
        bufferBytes: Int = 64 * 1024,
        trace: TraceScope? = nil,
        sink: some LineSink
    ) async -> JobSummary {
        let loop = DispatchLoop(job: job, id: id, observer: observer, timer: timer, bufferBytes: bufferBytes, trace: trace)
        control?.attach(loop.events)
        defer { control?.detach() }
        // Subtasks that do work are children of one group, which a stop cancels; sends are children
        // of another, so that a cancelled job still hands its last lines to the client.
        await withDiscardingTaskGroup { sends in
            await withDiscardingTaskGroup { subtasks in
                await loop.run(
                    spawn: { work, context, index, events in
                        subtasks.addTask {
                            let outcome = await work(context)
                            events.post(.finished(index: index, outcome: outcome, at: .now))
                        }
                    },
                    send: { bytes, events in
                        sends.addTask {
                            let delivered: Bool
                            do {
                                try await sink.send(bytes)
                                delivered = true
                            } catch {
                                delivered = false
                            }
                            events.post(.sent(delivered))
                        }
                    },
                    cancelTasks: { subtasks.cancelAll() }
                )
            }
        }
        return loop.jobRun.summary
    }
}

/// Told when subtasks start and end (metrics: subtasks in flight, their durations).
public protocol DispatchObserver: Sendable {
    func subtaskStarted(kind: String)
    func subtaskEnded(kind: String, duration: Duration)
}
