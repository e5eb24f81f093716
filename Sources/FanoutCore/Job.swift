/// A validated fan-out job, ready to dispatch.
public struct Job: Sendable {
    public enum Order: String, Sendable {
        /// Lines leave as subtasks finish.
        case completion
        /// Lines leave in input order, each as soon as it and every line before it are done.
        case input
    }

    /// The subtasks in input order, stored compactly (``SubtaskList``).
    public var tasks: SubtaskList
    /// Most subtasks in flight at once.
    public var concurrency: Int
    /// Deadline for the whole job, from its start.
    public var timeoutMilliseconds: Int
    public var order: Order
    /// After the first non-`ok` result, the rest end as `cancelled`.
    public var failFast: Bool
    /// After this many `ok` results, the rest end as `cancelled`.
    public var first: Int?
    /// Send a heartbeat line after this long without output; 0 for never.
    public var heartbeatMilliseconds: Int

    // MARK: Retained jobs (SPEC v1.1)
    /// What a client going away does to a streamed job.
    public enum DisconnectPolicy: String, Sendable {
        /// The job is cancelled (v1).
        case cancel
        /// The job goes on and keeps its lines (it is retained).
        case `continue`
    }

    /// `"detach": true`: answer 202 at once and run the job with no connection attached.
    public var detach = false
    /// `"on_disconnect"`.
    public var onDisconnect = DisconnectPolicy.cancel

    public init(
        tasks: [Subtask],
        concurrency: Int,
        timeoutMilliseconds: Int,
        order: Order = .completion,
        failFast: Bool = false,
        first: Int? = nil,
        heartbeatMilliseconds: Int = 0
    ) {
        var list = SubtaskList()
        for task in tasks {
            list.append(id: task.id == String(list.count) ? nil : task.id, kind: task.kind, timeoutMilliseconds: task.timeoutMilliseconds, work: task.work)
        }
        self.init(
            tasks: list, concurrency: concurrency, timeoutMilliseconds: timeoutMilliseconds, order: order,
            failFast: failFast, first: first, heartbeatMilliseconds: heartbeatMilliseconds
        )
    }

    init(
        tasks: SubtaskList,
        concurrency: Int,
        timeoutMilliseconds: Int,
        order: Order = .completion,
        failFast: Bool = false,
        first: Int? = nil,
        heartbeatMilliseconds: Int = 0
    ) {
        self.tasks = tasks
        self.concurrency = concurrency
        self.timeoutMilliseconds = timeoutMilliseconds
        self.order = order
        self.failFast = failFast
        self.first = first
        self.heartbeatMilliseconds = heartbeatMilliseconds
    }
}

extension Job {
    /// Estimated heap the job holds while it runs: its subtasks, what they carry, and the
    /// dispatcher's bookkeeping per subtask. What admission charges against
    /// `limits.max_job_memory_bytes` (scripts/job-memory.sh compares it with what is measured).
    public var estimatedBytes: Int { Self.estimatedBytes(of: tasks) }

    /// Most bytes all of this job's lines can take when every outcome is planned (`echo`), for
    /// `bodyBytes` of JSON: 512 bytes of fields per line (and per heartbeat it may send), plus 8×
    /// the body for the values, ids and messages it echoes (re-encoded, a value's JSON grows at
    /// most 4×: `9e15` prints as 16 digits). Nil when some subtask does work: an `http` answer may
    /// be up to its response limit.
    public func plannedOutputBound(bodyBytes: Int) -> Int? {
        guard tasks.allPlanned else { return nil }
        let heartbeats = heartbeatMilliseconds > 0 ? timeoutMilliseconds / heartbeatMilliseconds + 1 : 0
        return (tasks.count + 1 + heartbeats) * 512 + 8 * bodyBytes
    }

    static func estimatedBytes(of tasks: SubtaskList) -> Int {
        tasks.estimatedBytes + tasks.count * JobRun.bytesPerSubtask + 4096
    }
}

/// One subtask of a job: its identity, its timeout and the runner call that performs it.
public struct Subtask: Sendable {
    public var id: String
    public var index: Int
    public var kind: String
    /// This subtask's own timeout (the job's `task_timeout_ms` when it names none), if any.
    public var timeoutMilliseconds: Int?
    /// What performing it takes; bound to its runner and decoded payload at validation time.
    public var work: SubtaskWork

    public init(id: String, index: Int, kind: String, timeoutMilliseconds: Int?, work: SubtaskWork) {
        self.id = id
        self.index = index
        self.kind = kind
        self.timeoutMilliseconds = timeoutMilliseconds
        self.work = work
    }

    public init(
        id: String,
        index: Int,
        kind: String,
        timeoutMilliseconds: Int?,
        run: @escaping @Sendable (SubtaskContext) async -> SubtaskOutcome
    ) {
        self.init(id: id, index: index, kind: kind, timeoutMilliseconds: timeoutMilliseconds, work: .run(run))
    }
}

/// What a runner is told about the subtask it runs.
public struct SubtaskContext: Sendable {
    /// When the subtask must be over: the earlier of its own timeout and the job's deadline.
    /// The dispatcher cancels the subtask's task then (``SubtaskDeadline``; at the job's deadline,
    /// with the whole job); a runner cancelled once it has passed returns ``SubtaskOutcome/timeout(_:)``.
    public var deadline: ContinuousClock.Instant
    /// Whether `deadline` is the job's deadline rather than the subtask's own timeout.
    public var deadlineIsJobDeadline: Bool
    /// Where the subtask is in its job's trace: what its upstream requests are children of.
    /// nil when the job runs outside any trace (unit tests of the dispatcher).
    public var trace: TraceScope?

    public init(deadline: ContinuousClock.Instant, deadlineIsJobDeadline: Bool = false, trace: TraceScope? = nil) {
        self.deadline = deadline
        self.deadlineIsJobDeadline = deadlineIsJobDeadline
        self.trace = trace
    }

    /// Whether `deadline` has passed: a runner that finds itself cancelled asks this to tell its
    /// timeout from its job's stop.
    public var deadlinePassed: Bool { ContinuousClock.now >= deadline }
}
