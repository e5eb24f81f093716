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
