/// Runs a job's subtasks concurrently and streams one line per subtask as it finishes.
///
/// Structured concurrency: a discarding task group holds at most `concurrency` subtasks in flight
/// (plus a deadline timer and a heartbeat timer); each child reports its outcome on an
/// `AsyncStream` and is freed at once, and the loop here turns outcomes into lines. While the sink
/// waits for a slow client, the loop waits, so no new subtask starts: backpressure, not buffering.
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

/// One job's pass through the dispatcher: starts subtasks as slots free up, takes what has happened
/// from its inbox in batches, turns it into lines and sends them, until every subtask has its line.
final class DispatchLoop {
    let job: Job
    let jobRun: JobRun
    let events = JobEvents()
    let timer: DeadlineTimer
    let start: ContinuousClock.Instant
    let jobDeadline: ContinuousClock.Instant
    let heartbeat: Duration
    private var next = 0
    private var inFlight = 0
    /// Timers of subtasks with a planned outcome, by index, until they fire or are cancelled.
    private var planned: [Int: DeadlineTimer.Token] = [:]
    private var deadlineTimer: DeadlineTimer.Token?
    private var heartbeatTimer: DeadlineTimer.Token?

    init(job: Job, id: String, observer: (any DispatchObserver)?, timer: DeadlineTimer) {
        self.job = job
        self.timer = timer
        self.start = ContinuousClock.now
        self.jobDeadline = start + .milliseconds(job.timeoutMilliseconds)
        self.heartbeat = .milliseconds(job.heartbeatMilliseconds)
        self.jobRun = JobRun(job: job, id: id, start: start, observer: observer)
    }

    typealias Spawn = (
        _ work: @escaping @Sendable (SubtaskContext) async -> SubtaskOutcome,
        _ context: SubtaskContext,
        _ index: Int,
        _ events: JobEvents
    ) -> Void

    func run(sink: some LineSink, spawn: Spawn, cancelTasks: () -> Void) async {
        let events = self.events
        deadlineTimer = timer.schedule(at: jobDeadline) { events.post(.deadline) }
        if job.heartbeatMilliseconds > 0 {
            heartbeatTimer = timer.schedule(at: start + heartbeat) { events.post(.heartbeatTick) }
        }
        defer { cancelTimers() }
        while true {
            launch(spawn: spawn)
            let moreToLaunch = inFlight < job.concurrency && next < job.tasks.count && !jobRun.stopped
            var batch = events.take()
            if batch.isEmpty, jobRun.hasOutgoing {
                // Immediate outcomes are ready: send them before waiting for more.
            } else if batch.isEmpty {
                if moreToLaunch {
                    await Task.yield()
                    continue
                }
                await events.wait()
                batch = events.take()
            }
            if Task.isCancelled { break }
            if batch.count > 1 { batch = Self.finishOrder(batch) }
            for event in batch { handle(event) }
            if jobRun.stopped {
                cancelPlanned()
                cancelTasks()
            }
            // Only once the lines are with the client may new subtasks start.
            if await !jobRun.flush(to: sink) { break }
            if jobRun.finished { return }
        }
        // The client is gone (the task was cancelled, or a send failed): stop everything.
        jobRun.summary.clientGone = true
        cancelPlanned()
        cancelTasks()
        jobRun.abandon()
    }

    /// Outcomes in the order their subtasks finished (tasks on different threads may post in a
    /// slightly different order than they finished), then the other events in arrival order.
    static func finishOrder(_ batch: [DispatchEvent]) -> [DispatchEvent] {
        var finished: [(at: ContinuousClock.Instant, event: DispatchEvent)] = []
        var others: [DispatchEvent] = []
        for event in batch {
            if case .finished(_, _, let at) = event { finished.append((at, event)) } else { others.append(event) }
        }
        guard finished.count > 1 else { return finished.map(\.event) + others }
        return finished.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element.event) + others
    }

    /// Starts subtasks while slots are free, up to ``Dispatcher/launchBatch`` per pass.
    private func launch(spawn: Spawn) {
        var launched = 0
        while inFlight < job.concurrency, next < job.tasks.count, !jobRun.stopped, launched < Dispatcher.launchBatch {
            let task = job.tasks[next]
            next += 1
            launched += 1
            if case .immediate(let outcome) = task.work {
                // What finished before now goes first, so lines stay in finish order.
                for event in Self.finishOrder(events.take()) { handle(event) }
                if !jobRun.stopped { jobRun.record(index: task.index, outcome: outcome, at: .now) }
                continue
            }
            inFlight += 1
            jobRun.started(index: task.index)
            // A subtask's own timeout counts from when it starts, within the job's deadline.
            let now = ContinuousClock.now
            let deadline: ContinuousClock.Instant
            if let timeout = task.timeoutMilliseconds, now + .milliseconds(timeout) < jobDeadline {
                deadline = now + .milliseconds(timeout)
            } else {
                deadline = jobDeadline
            }
            switch task.work {
            case .immediate:
                break
            case .run(let work):
                spawn(work, SubtaskContext(deadline: deadline, deadlineIsJobDeadline: deadline == jobDeadline), task.index, events)
            case .delayed(let outcome, let delay):
                schedule(index: task.index, outcome: outcome, due: now + delay, deadline: deadline)
            }
        }
    }

    /// A planned outcome fires when due, or as a timeout at the subtask's own deadline; past the
    /// job's deadline nothing is scheduled: the job's deadline reports it.
    private func schedule(index: Int, outcome: SubtaskOutcome, due: ContinuousClock.Instant, deadline: ContinuousClock.Instant) {
        let events = self.events
        if due <= deadline {
            planned[index] = timer.schedule(at: due) { events.post(.finished(index: index, outcome: outcome, at: .now)) }
        } else if deadline < jobDeadline {
            let timeout = SubtaskOutcome.timeout("the task did not finish within its timeout")
            planned[index] = timer.schedule(at: deadline) { events.post(.finished(index: index, outcome: timeout, at: .now)) }
        }
    }

    private func handle(_ event: DispatchEvent) {
        switch event {
        case .finished(let index, let outcome, let at):
            inFlight -= 1
            planned.removeValue(forKey: index)
            jobRun.record(index: index, outcome: outcome, at: at)
        case .deadline:
            jobRun.stop(with: .timeout("the job's deadline (\(job.timeoutMilliseconds) ms) passed"))
        case .heartbeatTick:
            jobRun.heartbeatIfIdle(every: heartbeat)
            let events = self.events
            heartbeatTimer = timer.schedule(at: jobRun.nextHeartbeat(every: heartbeat)) { events.post(.heartbeatTick) }
        case .stop(let reason):
            jobRun.stop(with: .cancelled(reason))
        }
    }

    private func cancelPlanned() {
        for token in planned.values { timer.cancel(token) }
        planned.removeAll()
    }

    private func cancelTimers() {
        cancelPlanned()
        if let deadlineTimer { timer.cancel(deadlineTimer) }
        if let heartbeatTimer { timer.cancel(heartbeatTimer) }
    }
}

/// Told when subtasks start and end (metrics: subtasks in flight, their durations).
public protocol DispatchObserver: Sendable {
    func subtaskStarted(kind: String)
    func subtaskEnded(kind: String, duration: Duration)
}

/// The dispatcher loop's bookkeeping for one job: which subtasks are reported, the lines waiting to
/// be sent, and the counts. A class, so the loop's async frames hold a reference rather than all of
/// it (every open stream pays for its task's frames).
final class JobRun {
    let job: Job
    let id: String
    let start: ContinuousClock.Instant
    var summary: JobSummary
    /// Outcome recorded, per subtask; once set, later outcomes for it are ignored.
    private var reported: [Bool]
    private var recorded = 0
    /// Input order: encoded lines not yet sent, by index, and the next index to send.
    private var waiting: [Int: [UInt8]] = [:]
    private var nextToSend = 0
    /// Lines ready to send on the next flush.
    private var outgoing = JSONWriter(capacity: 512)
    private var lastSend: ContinuousClock.Instant
    private(set) var stopped = false
    private(set) var finished = false
    private let observer: (any DispatchObserver)?
    /// When each started subtask started, for the observer (empty without one).
    private var startedAt: [ContinuousClock.Instant?] = []

    init(job: Job, id: String, start: ContinuousClock.Instant, observer: (any DispatchObserver)? = nil) {
        self.job = job
        self.id = id
        self.start = start
        self.summary = JobSummary(total: job.tasks.count)
        self.reported = Array(repeating: false, count: job.tasks.count)
        self.lastSend = start
        self.observer = observer
        if observer != nil { startedAt = Array(repeating: nil, count: job.tasks.count) }
    }

    /// A subtask began (a task or a timer).
    func started(index: Int) {
        guard let observer else { return }
        startedAt[index] = .now
        observer.subtaskStarted(kind: job.tasks[index].kind)
    }

    /// The client is gone: what started and has no line ends for the observer too.
    func abandon() {
        guard let observer else { return }
        let now = ContinuousClock.now
        for index in startedAt.indices where !reported[index] {
            if let began = startedAt[index] {
                startedAt[index] = nil
                observer.subtaskEnded(kind: job.tasks[index].kind, duration: now - began)
            }
        }
    }

    func record(index: Int, outcome: SubtaskOutcome, at: ContinuousClock.Instant) {
        guard !reported[index] else { return }
        reported[index] = true
        recorded += 1
        let task = job.tasks[index]
        if let observer, let began = startedAt[index] {
            startedAt[index] = nil
            observer.subtaskEnded(kind: task.kind, duration: at - began)
        }
        let elapsed = (at - start).milliseconds
        summary.count(outcome.status, kind: task.kind)
        switch job.order {
        case .completion:
            LineEncoder.result(
                id: task.id, index: index, outcome: outcome, elapsedMilliseconds: elapsed,
                done: summary.done, total: summary.total, into: &outgoing
            )
        case .input:
            var line = JSONWriter(capacity: 128)
            // In input order the n-th line sent is subtask n's, so `done` is index + 1.
            LineEncoder.result(
                id: task.id, index: index, outcome: outcome, elapsedMilliseconds: elapsed,
                done: index + 1, total: summary.total, into: &line
            )
            waiting[index] = line.bytes
            while let ready = waiting.removeValue(forKey: nextToSend) {
                outgoing.bytes.append(contentsOf: ready)
                nextToSend += 1
            }
        }
        if !stopped {
            if job.failFast, outcome.status != .ok {
                stop(with: .cancelled("cancelled by fail_fast: task \"\(task.id)\" ended \(outcome.status.rawValue)"))
            } else if let first = job.first, summary.ok >= first, outcome.status == .ok {
                stop(with: .cancelled("cancelled: the first \(first) results arrived"))
            }
        }
        if recorded == job.tasks.count, !finished {
            finished = true
            summary.elapsedMilliseconds = (ContinuousClock.now - start).milliseconds
            LineEncoder.end(job: id, summary: summary, into: &outgoing)
        }
    }

    /// Reports every subtask without an outcome yet as `outcome`, in input order.
    func stop(with outcome: SubtaskOutcome) {
        guard !stopped else { return }
        stopped = true
        let now = ContinuousClock.now
        for index in reported.indices where !reported[index] {
            record(index: index, outcome: outcome, at: now)
        }
    }

    func heartbeatIfIdle(every interval: Duration) {
        let now = ContinuousClock.now
        guard !finished, now - lastSend >= interval, outgoing.bytes.isEmpty else { return }
        LineEncoder.heartbeat(
            done: summary.done, total: summary.total, elapsedMilliseconds: (now - start).milliseconds, into: &outgoing
        )
    }

    /// Takes the lines ready to send, counting them as sent.
    func takeOutgoing() -> [UInt8] {
        let bytes = outgoing.bytes
        outgoing.bytes.removeAll(keepingCapacity: true)
        summary.bytes += bytes.count
        return bytes
    }

    /// Lines are waiting to be sent.
    var hasOutgoing: Bool { !outgoing.bytes.isEmpty }
    var outgoingCount: Int { outgoing.bytes.count }

    /// When the next heartbeat is due if nothing is sent before.
    func nextHeartbeat(every interval: Duration) -> ContinuousClock.Instant {
        max(lastSend + interval, ContinuousClock.now + .milliseconds(1))
    }

    /// Sends what is ready; false when the client is gone.
    func flush(to sink: some LineSink) async -> Bool {
        guard !outgoing.bytes.isEmpty else { return true }
        let bytes = takeOutgoing()
        do {
            try await sink.send(bytes)
        } catch {
            return false
        }
        lastSend = .now
        return true
    }
}
