/// Runs a job's subtasks concurrently and streams one line per subtask as it finishes.
///
/// At most `concurrency` subtasks are in flight. Subtasks that do work (`http`) are children of a
/// discarding task group, freed as soon as they post their outcome to the job's inbox
/// (``JobControl``); subtasks whose outcome is known in advance (`echo`) are entries on the shared
/// ``DeadlineTimer``, as are the job's deadline and heartbeat. The loop (``DispatchLoop``) takes
/// what has arrived in batches and turns it into lines (``JobRun``). While the sink waits for a slow
/// client no new subtask starts: backpressure, not buffering. The send does not hold the loop up
/// (lines offered to the response stream, or a task per send to a job store), so the loop
/// meanwhile still ends the job at its deadline. In input order, lines held for an
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
            run.record(index: index, outcome: outcome, at: run.startTime)
            if run.outgoingCount > maxBytes { return nil }
        }
        return (run.takeOutgoingJoined(), run.summary)
    }

    /// Runs `job`, sending its lines to `sink`; returns when the end line is with the sink, or the
    /// client is gone (the sink threw, or the calling task was cancelled: one handler for the whole
    /// run turns that into ``DispatchEvent/clientGone``).
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
        let prepared = prepare(job, id: id, control: control, observer: observer, timer: timer, bufferBytes: bufferBytes, trace: trace)
        let events = prepared.loop.events
        await withTaskCancellationHandler {
            if let direct = sink as? any NonBlockingLineSink {
                await run(prepared, offeringTo: direct)
            } else {
                await run(prepared, sendingTo: sink)
            }
        } onCancel: {
            events.post(.clientGone)
        }
        return prepared.summary
    }

    /// A job made ready to run for a sink that takes lines at once and says when it has room for
    /// more (the response stream): ``run(_:offeringTo:)``. Made on the calling thread and small, so
    /// the async frames that an open stream's task holds for the stream's life stay small too.
    public struct Prepared {
        let loop: DispatchLoop
        /// The job's inbox and handle: the one it was prepared with, or its own.
        public var control: JobControl { loop.events }

        /// The job's counts; final once ``Dispatcher/run(_:offeringTo:)`` has returned.
        public var summary: JobSummary { loop.jobRun.summary }
        public var id: String { loop.jobRun.id }
        public var trace: TraceScope? { loop.jobRun.trace }
        /// When the job was prepared: its deadline and `elapsed_ms` run from here.
        public var start: ContinuousClock.Instant { loop.start }
    }

    /// Prepares `job` for ``run(_:offeringTo:)``; the parameters are those of
    /// ``run(_:id:control:observer:timer:bufferBytes:trace:sink:)``. Not inlined: its temporaries
    /// would be laid out in the caller's async frame.
    @inline(never)
    public static func prepare(
        _ job: Job,
        id: String,
        control: JobControl? = nil,
        observer: (any DispatchObserver)? = nil,
        timer: DeadlineTimer = .shared,
        bufferBytes: Int = 64 * 1024,
        trace: TraceScope? = nil
    ) -> Prepared {
        let loop = DispatchLoop(
            job: job, id: id, events: control ?? JobControl(), observer: observer, timer: timer, bufferBytes: bufferBytes, trace: trace
        )
        return Prepared(loop: loop)
    }

    /// Runs a prepared job, its lines offered to `sink`: no task per send, no group for them; a
    /// job of timers only (`echo`) runs no task at all but the caller's, and has no subtask group.
    /// Returns when the end line is with the sink or the client is gone.
    ///
    /// The calling task's cancellation is not watched while the job waits (that would hold a
    /// cancellation record and its frames for the job's whole life): the caller says the client is
    /// gone through the prepared job's ``JobControl`` (``JobControl/clientGone()``), as the response
    /// stream's close does. ``run(_:id:control:observer:timer:bufferBytes:trace:sink:)`` watches it.
    public static func run(_ prepared: Prepared, offeringTo sink: any NonBlockingLineSink) async {
        let send: DispatchLoop.Send = { sink.offer($0, reportingTo: $1) }
        let loop = prepared.loop
        if loop.job.tasks.allPlanned {
            await loop.run(spawn: { _, _, _, _ in preconditionFailure("a planned subtask never runs in a task") }, send: send, cancelTasks: {})
        } else {
            await runWithSubtasks(loop, send: send)
        }
        prepared.loop.events.close()
    }

    /// Starts a prepared job of timers only (``Prepared/runsWithoutTask``) with no task of its
    /// own, its lines offered to `sink`, and returns: its passes run on a global queue whenever
    /// one of its timers fires, the sink has room again or ``JobControl`` stops it. `ended` is
    /// called once, when the end line is with the sink or the client is gone; the summary is
    /// final then. An open stream then holds no task, no async frames, no task-allocator slab.
    public static func start(_ prepared: Prepared, offeringTo sink: any NonBlockingLineSink, ended: @escaping @Sendable () -> Void) {
        precondition(prepared.runsWithoutTask, "only a job of timers runs without a task")
        prepared.loop.start(offeringTo: sink, ended: ended)
    }
}

extension Dispatcher.Prepared {
    /// Every subtask is a timer (``SubtaskList/allPlanned``): the job may run without a task
    /// (``Dispatcher/start(_:offeringTo:ended:)``).
    public var runsWithoutTask: Bool { loop.job.tasks.allPlanned }
}

extension Dispatcher {
    // Subtasks that do work are children of one group, which a stop cancels. A sink that must wait
    // to take lines (a job store) gets each send as a child of another group, so that a cancelled
    // job still hands its last lines over; a non-blocking one (the response stream) is handed them
    // at once and says when it has room for more (`run(_:offeringTo:)`).

    /// The group's storage is laid out in this frame, not in its caller's: a timer-only job never has one.
    @inline(never)
    private static func runWithSubtasks(_ loop: DispatchLoop, send: DispatchLoop.Send) async {
        await withDiscardingTaskGroup { subtasks in
            await loop.run(
                spawn: { work, context, index, events in spawn(work, context, index, events, in: &subtasks) },
                send: send,
                cancelTasks: { subtasks.cancelAll() }
            )
        }
    }

    private static func run(_ prepared: Prepared, sendingTo sink: some LineSink) async {
        let loop = prepared.loop
        await withDiscardingTaskGroup { sends in
            await withDiscardingTaskGroup { subtasks in
                await loop.run(
                    spawn: { work, context, index, events in spawn(work, context, index, events, in: &subtasks) },
                    send: { pieces, events in
                        sends.addTask {
                            let delivered: Bool
                            do {
                                for piece in pieces { try await sink.send(piece) }
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
        prepared.loop.events.close()
    }

    /// A subtask that does work, as a child of the job's group; it posts its outcome and is freed.
    /// It is cancelled at its own timeout; at the job's deadline, the loop stops it with the job.
    fileprivate static func spawn(
        _ work: @escaping @Sendable (SubtaskContext) async -> SubtaskOutcome,
        _ context: SubtaskContext,
        _ index: Int,
        _ events: JobControl,
        in subtasks: inout DiscardingTaskGroup
    ) {
        subtasks.addTask {
            let outcome = context.deadlineIsJobDeadline
                ? await work(context)
                : await SubtaskDeadline.run(until: context.deadline) { await work(context) }
            events.postFinished(index: index, outcome: outcome)
        }
    }
}

/// Told when subtasks start and end (metrics: subtasks in flight, their durations). A class, so that
/// the reference each job keeps is two words, not a five-word existential.
public protocol DispatchObserver: AnyObject, Sendable {
    func subtaskStarted(kind: String)
    /// `seconds`: how long the subtask ran, in seconds (to the microsecond). A `Double`, which a
    /// histogram compares to its buckets in one instruction each; a `Duration` is 128 bits whose
    /// comparisons and sum are calls.
    func subtaskEnded(kind: String, seconds: Double)
}
