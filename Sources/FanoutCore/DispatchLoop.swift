import Dispatch

/// One job's pass through the dispatcher: starts subtasks as slots free up, takes what has happened
/// from its inbox in batches, turns it into lines and sends them, until every subtask has its line.
///
/// A send runs beside the loop (``Send``) and reports back through the inbox, so while a slow client
/// holds it the loop still handles the job's deadline and stops: in-flight subtasks are cancelled
/// on time, and their lines wait for the client. While a send is out, no new subtask starts.
///
/// Its mutable properties, like ``JobRun``'s, opt out of the runtime's dynamic exclusivity checks:
/// only the loop's task (or, for a job of timers only, its ``Driver``) touches them, one pass at a
/// time.
final class DispatchLoop {
    /// The job, held once (by ``jobRun``): an open stream pays for every copy.
    var job: Job { jobRun.job }
    let jobRun: JobRun
    /// The job's inbox: the service's ``JobControl`` for it, or one of its own.
    let events: JobControl
    let timer: DeadlineTimer
    let start: ContinuousClock.Instant
    let jobDeadline: ContinuousClock.Instant
    let heartbeat: Duration
    /// Input order: most bytes of lines held for an earlier one before no new subtask starts.
    let bufferBytes: Int
    @exclusivity(unchecked) private var next = 0
    @exclusivity(unchecked) private var inFlight = 0
    /// Lines are with the sink and it has not said it is done with them.
    @exclusivity(unchecked) private var sending = false
    @exclusivity(unchecked) private var clientGone = false
    /// Timers of subtasks with a planned outcome, by index, until they fire or are cancelled.
    @exclusivity(unchecked) private var planned = PlannedTimers()
    @exclusivity(unchecked) private var deadlineTimer: DeadlineTimer.Token?
    @exclusivity(unchecked) private var heartbeatTimer: DeadlineTimer.Token?

    init(
        job: Job, id: String, events: JobControl, observer: (any DispatchObserver)?, timer: DeadlineTimer, bufferBytes: Int,
        trace: TraceScope? = nil
    ) {
        self.events = events
        self.timer = timer
        self.start = ContinuousClock.now
        self.jobDeadline = start + .milliseconds(job.timeoutMilliseconds)
        self.heartbeat = .milliseconds(job.heartbeatMilliseconds)
        self.bufferBytes = bufferBytes
        self.jobRun = JobRun(job: job, id: id, start: start, observer: observer, trace: trace)
    }

    typealias Spawn = (
        _ work: @escaping @Sendable (SubtaskContext) async -> SubtaskOutcome,
        _ context: SubtaskContext,
        _ index: Int,
        _ events: JobControl
    ) -> Void

    /// Hands lines to the sink without waiting (offered to the stream, or sent in a task of its
    /// own), in pieces of whole lines (``JobRun/takeOutgoing()``); ``DispatchEvent/sent(_:)`` is
    /// posted once when the sink is done with all of them.
    typealias Send = (_ pieces: [[UInt8]], _ events: JobControl) -> Void

    /// A subtask may start: a slot is free, one is left, the client has taken the last lines and
    /// lines held for an earlier one do not fill the buffer.
    private var mayLaunch: Bool {
        !sending && inFlight < job.concurrency && next < job.tasks.count && !jobRun.stopped
            && jobRun.waitingBytes < bufferBytes
    }

    /// What the loop does after a pass.
    private enum Next {
        case pass, yield, wait, finished, clientGone
    }

    /// Runs the job to its end line, or until the client is gone. Only the waits are here; each
    /// pass is a function of its own, so this async frame (which an open stream's task holds for
    /// the stream's life) has none of the pass's temporaries.
    func run(spawn: Spawn, send: Send, cancelTasks: () -> Void) async {
        startTimers()
        var resumed = false
        while true {
            switch pass(resumed: resumed, spawn: spawn, send: send, cancelTasks: cancelTasks) {
            case .pass:
                resumed = false
            case .yield:
                resumed = false
                await Task.yield()
            case .wait:
                await events.wait()
                resumed = true
            case .finished:
                return end(clientGone: false, cancelTasks: cancelTasks)
            case .clientGone:
                return end(clientGone: true, cancelTasks: cancelTasks)
            }
        }
    }

    /// Runs a job of timers only (nothing to spawn) with no task of its own, its lines offered to
    /// `sink`: passes run here, then whenever an event arrives, on a global queue (``Driver``).
    /// The last pass, once the end line is with the sink or the client is gone, closes the inbox
    /// and calls `ended`.
    func start(offeringTo sink: any NonBlockingLineSink, ended: @escaping @Sendable () -> Void) {
        startTimers()
        Driver(loop: self, sink: sink, ended: ended).step(resumed: false)
    }

    /// The end of a run: its timers are cancelled and, if the client is gone (the task was
    /// cancelled, a send failed, or the stream closed), everything else is stopped.
    @inline(never)
    private func end(clientGone: Bool, cancelTasks: () -> Void) {
        if clientGone {
            jobRun.summary.clientGone = true
            cancelPlanned()
            cancelTasks()
            jobRun.abandon()
        }
        cancelTimers()
    }

    /// Drives a loop that has no task: each step runs passes until the loop must wait, then parks
    /// the driver in the inbox, whose next post wakes it on a global queue. One step at a time:
    /// a step begins only at the start, at a wake (the inbox hands out each park once) or after a
    /// yield, each after the previous step ended; the inbox's lock orders them.
    final class Driver: @unchecked Sendable {
        // One object for what a stream without a task holds: no closure per part.
        private let loop: DispatchLoop
        private let sink: any NonBlockingLineSink
        private let ended: @Sendable () -> Void

        init(loop: DispatchLoop, sink: any NonBlockingLineSink, ended: @escaping @Sendable () -> Void) {
            self.loop = loop
            self.sink = sink
            self.ended = ended
        }

        private static func noSpawn(_: @escaping @Sendable (SubtaskContext) async -> SubtaskOutcome, _: SubtaskContext, _: Int, _: JobControl) {
            preconditionFailure("a planned subtask never runs in a task")
        }

        func step(resumed: Bool) {
            let sink = self.sink
            var resumed = resumed
            while true {
                let next = loop.pass(
                    resumed: resumed, spawn: Self.noSpawn,
                    send: { sink.offer($0, reportingTo: $1) }, cancelTasks: {}
                )
                switch next {
                case .pass:
                    resumed = false
                case .yield:
                    DispatchQueue.global().async { self.step(resumed: false) }
                    return
                case .wait:
                    if loop.events.park(self) { return }
                    resumed = true
                case .finished:
                    return finish(clientGone: false)
                case .clientGone:
                    return finish(clientGone: true)
                }
            }
        }

        private func finish(clientGone: Bool) {
            loop.end(clientGone: clientGone, cancelTasks: {})
            loop.events.close()
            ended()
        }

        /// Called by the inbox's post, on the poster's thread (a timer's, an MHD thread): the
        /// step runs elsewhere, so that the poster is not held up by the pass.
        func wake() {
            DispatchQueue.global().async { self.step(resumed: true) }
        }
    }

    @inline(never)
    private func startTimers() {
        let events = self.events
        deadlineTimer = timer.schedule(at: jobDeadline) { events.post(.deadline) }
        if job.heartbeatMilliseconds > 0 {
            heartbeatTimer = timer.schedule(at: start + heartbeat) { events.post(.heartbeatTick) }
        }
    }

    /// Starts what may start and takes what has arrived (`resumed`: only takes, after a wait),
    /// turns it into lines and hands them to the sink; says whether to pass again, wait or stop.
    @inline(never)
    private func pass(resumed: Bool, spawn: Spawn, send: Send, cancelTasks: () -> Void) -> Next {
        if !resumed { launch(spawn: spawn) }
        var batch = events.take()
        if !resumed, batch.isEmpty {
            // Immediate outcomes ready to send go on at once; otherwise start more, or wait.
            if sending || !jobRun.hasOutgoing { return mayLaunch ? .yield : .wait }
        }
        if Task.isCancelled { return .clientGone }
        if batch.count > 1 { batch = Self.finishOrder(batch) }
        for event in batch { handle(event) }
        if clientGone { return .clientGone }
        if jobRun.stopped {
            cancelPlanned()
            cancelTasks()
        }
        guard !sending else { return .pass }
        if jobRun.hasOutgoing {
            // Only once these lines are with the client may new subtasks start.
            sending = true
            send(jobRun.takeOutgoing(), events)
        } else if jobRun.finished {
            return .finished
        }
        return .pass
    }

    /// Outcomes in the order their subtasks finished (tasks on different threads may post in a
    /// slightly different order than they finished), then the other events in arrival order.
    /// Sorts stamps and positions, then moves each event once.
    static func finishOrder(_ batch: [DispatchEvent]) -> [DispatchEvent] {
        if isInFinishOrder(batch) { return batch }
        var finished: [(at: MonotonicTime, position: Int)] = []
        var others: [Int] = []
        for (position, event) in batch.enumerated() {
            if case .finished(_, _, let at) = event { finished.append((at, position)) } else { others.append(position) }
        }
        if finished.count > 1 { finished.sort { ($0.at, $0.position) < ($1.at, $1.position) } }
        var ordered: [DispatchEvent] = []
        ordered.reserveCapacity(batch.count)
        for item in finished { ordered.append(batch[item.position]) }
        for position in others { ordered.append(batch[position]) }
        return ordered
    }

    /// The batch is in finish order already: outcomes by stamp (the timer thread posts a burst in
    /// deadline order), then the other events. One look at each, instead of a sort and a copy.
    static func isInFinishOrder(_ batch: [DispatchEvent]) -> Bool {
        var last: MonotonicTime?
        var seenOther = false
        for event in batch {
            guard case .finished(_, _, let at) = event else {
                seenOther = true
                continue
            }
            if seenOther { return false }
            if let last, at < last { return false }
            last = at
        }
        return true
    }

    /// Starts subtasks while they may start, up to ``Dispatcher/launchBatch`` per pass.
    private func launch(spawn: Spawn) {
        var launched = 0
        while mayLaunch, launched < Dispatcher.launchBatch {
            let index = next
            next += 1
            launched += 1
            if let delay = job.tasks.plannedDelayMicroseconds(at: index), delay > 0 {
                inFlight += 1
                let now = MonotonicTime.now
                jobRun.timerStarted(index: index, at: now)
                schedule(index: index, now: now, delayMicroseconds: delay)
                continue
            }
            let work = job.tasks.work(at: index)
            if case .immediate(let outcome) = work {
                // What finished before now goes first, so lines stay in finish order (`now` is read
                // under the inbox's lock, after every outcome taken and before every later one).
                let (earlier, now) = events.takeStamped()
                for event in Self.finishOrder(earlier) { handle(event) }
                if !jobRun.stopped { jobRun.record(index: index, outcome: outcome, at: now) }
                continue
            }
            guard case .run(let body) = work else { preconditionFailure("a planned delay is a timer, started above") }
            inFlight += 1
            let trace = jobRun.started(index: index)
            let now = ContinuousClock.now
            let (deadline, isJobs) = Self.deadline(own: job.tasks.timeoutMilliseconds(at: index).map { now + .milliseconds($0) }, job: jobDeadline)
            spawn(body, SubtaskContext(deadline: deadline, deadlineIsJobDeadline: isJobs, trace: trace), index, events)
        }
    }

    /// A planned outcome fires when due, or as a timeout at the subtask's own deadline (counted,
    /// as a task's, from `now`, its start); past the job's deadline nothing is scheduled: the
    /// job's deadline reports it. The loop is the timers' target (``timerFired(_:)``), the tag the
    /// index and whether it is the timeout. On the timer's scale throughout: no `Instant` per timer.
    private func schedule(index: Int, now: MonotonicTime, delayMicroseconds: Int64) {
        let due = now.advanced(byMicroseconds: delayMicroseconds)
        // `jobDeadline` on the timer's scale, made here rather than held: every open stream's loop
        // would pay for it.
        let jobDeadlineTime = jobRun.startTime.advanced(byMicroseconds: Int64(job.timeoutMilliseconds) * 1000)
        let own = job.tasks.timeoutMilliseconds(at: index).map { now.advanced(byMicroseconds: Int64($0) * 1000) }
        let (deadline, isJobs) = Self.deadline(own: own, job: jobDeadlineTime)
        let (at, tag): (MonotonicTime, Int)
        if due <= deadline {
            (at, tag) = (due, index << 1)
        } else if !isJobs {
            (at, tag) = (deadline, index << 1 | 1)
        } else {
            return
        }
        // Room for the timers that can be in flight at once (a few hundred at most up front); the
        // closure passed as it is written, so that its context stays on the stack.
        planned.insert(timer.schedule(at: at, target: self, tag: tag), for: index) {
            min(self.job.tasks.count - index, self.job.concurrency, 512)
        }
    }

    /// A subtask's deadline, for a task and a timer alike: its own (its timeout counted from its
    /// start) if that comes before the job's, else the job's (`isJobs`: the job's deadline, which
    /// the job reports, so the subtask's line is not a timeout of its own).
    static func deadline<Time: Comparable>(own: Time?, job: Time) -> (deadline: Time, isJobs: Bool) {
        if let own, own < job { return (own, false) }
        return (job, true)
    }

    private func handle(_ event: DispatchEvent) {
        switch event {
        case .finished(let index, let outcome, let at):
            inFlight -= 1
            planned.remove(index)
            jobRun.record(index: index, outcome: outcome, at: at)
        case .deadline:
            jobRun.stop(with: .timeout("the job's deadline (\(job.timeoutMilliseconds) ms) passed"))
        case .heartbeatTick:
            let events = self.events
            // A client that is not taking lines gets no heartbeats either: check again in a while.
            if !sending { jobRun.heartbeatIfIdle(every: heartbeat) }
            let due = sending ? ContinuousClock.now + heartbeat : jobRun.nextHeartbeat(every: heartbeat)
            heartbeatTimer = timer.schedule(at: due) { events.post(.heartbeatTick) }
        case .stop(let reason):
            jobRun.stop(with: .cancelled(reason))
        case .sent(let delivered):
            sending = false
            if delivered { jobRun.sent() } else { clientGone = true }
        case .clientGone:
            clientGone = true
        }
    }

    private func cancelPlanned() {
        planned.removeAll { timer.cancel($0) }
    }

    private func cancelTimers() {
        cancelPlanned()
        if let deadlineTimer { timer.cancel(deadlineTimer) }
        if let heartbeatTimer { timer.cancel(heartbeatTimer) }
    }
}

/// A planned outcome's timer fired, on the timer thread: its outcome goes to the inbox. This reads
/// only constants (the inbox, the job), which is what makes the loop safe to hand to the timer;
/// everything it mutates stays with its passes.
extension DispatchLoop: @unchecked Sendable, TimerTarget {
    func timerFired(_ tag: Int) {
        let index = tag >> 1
        if tag & 1 == 1 {
            events.postFinished(index: index, outcome: .ownTimeout)
        } else if let outcome = job.tasks.plannedOutcome(at: index) {
            events.postFinished(index: index, outcome: outcome)
        }
    }
}
