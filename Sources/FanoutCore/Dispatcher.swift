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

    /// Runs a job whose every outcome is known already (see ``SubtaskRunner/immediateOutcome(_:)``)
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
        timer: DeadlineTimer = .shared,
        sink: some LineSink
    ) async -> JobSummary {
        let start = ContinuousClock.now
        let jobDeadline = start + .milliseconds(job.timeoutMilliseconds)
        let run = JobRun(job: job, id: id, start: start)
        let events = JobEvents()
        control?.attach(events)
        let deadlineTimer = timer.schedule(at: jobDeadline) { events.post(.deadline) }
        let heartbeat = Duration.milliseconds(job.heartbeatMilliseconds)
        var heartbeatTimer = job.heartbeatMilliseconds > 0 ? timer.schedule(at: start + heartbeat) { events.post(.heartbeatTick) } : nil
        defer {
            control?.detach()
            timer.cancel(deadlineTimer)
            if let heartbeatTimer { timer.cancel(heartbeatTimer) }
        }

        await withDiscardingTaskGroup { group in
            var next = 0
            var inFlight = 0
            while true {
                var launched = 0
                while inFlight < job.concurrency, next < job.tasks.count, !run.stopped, launched < launchBatch {
                    let task = job.tasks[next]
                    next += 1
                    launched += 1
                    let body: @Sendable (SubtaskContext) async -> SubtaskOutcome
                    switch task.work {
                    case .immediate(let outcome):
                        run.record(index: task.index, outcome: outcome, at: .now)
                        continue
                    case .run(let work):
                        body = work
                    }
                    inFlight += 1
                    // A subtask's own timeout counts from when it starts, within the job's deadline.
                    let deadline: ContinuousClock.Instant
                    if let timeout = task.timeoutMilliseconds, ContinuousClock.now + .milliseconds(timeout) < jobDeadline {
                        deadline = ContinuousClock.now + .milliseconds(timeout)
                    } else {
                        deadline = jobDeadline
                    }
                    let context = SubtaskContext(deadline: deadline, deadlineIsJobDeadline: deadline == jobDeadline)
                    group.addTask {
                        let outcome = await body(context)
                        events.post(.finished(index: task.index, outcome: outcome, at: .now))
                    }
                }
                let moreToLaunch = inFlight < job.concurrency && next < job.tasks.count && !run.stopped
                var batch = events.take()
                if batch.isEmpty, run.hasOutgoing {
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
                for event in batch {
                    switch event {
                    case .finished(let index, let outcome, let at):
                        inFlight -= 1
                        run.record(index: index, outcome: outcome, at: at)
                    case .deadline:
                        run.stop(with: .timeout("the job's deadline (\(job.timeoutMilliseconds) ms) passed"))
                    case .heartbeatTick:
                        run.heartbeatIfIdle(every: heartbeat)
                        heartbeatTimer = timer.schedule(at: run.nextHeartbeat(every: heartbeat)) { events.post(.heartbeatTick) }
                    case .stop(let reason):
                        run.stop(with: .cancelled(reason))
                    }
                }
                if run.stopped { group.cancelAll() }
                // Only once the lines are with the client may new subtasks start.
                if await !run.flush(to: sink) {
                    run.summary.clientGone = true
                    group.cancelAll()
                    break
                }
                if run.finished { break }
            }
            if !run.finished, !run.summary.clientGone {
                run.summary.clientGone = true
                group.cancelAll()
            }
        }
        return run.summary
    }
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

    init(job: Job, id: String, start: ContinuousClock.Instant) {
        self.job = job
        self.id = id
        self.start = start
        self.summary = JobSummary(total: job.tasks.count)
        self.reported = Array(repeating: false, count: job.tasks.count)
        self.lastSend = start
    }

    func record(index: Int, outcome: SubtaskOutcome, at: ContinuousClock.Instant) {
        guard !reported[index] else { return }
        reported[index] = true
        recorded += 1
        let task = job.tasks[index]
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
