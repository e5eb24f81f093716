/// The dispatcher loop's bookkeeping for one job: which subtasks are reported, the lines waiting to
/// be sent, and the counts. A class, so the loop's async frames hold a reference rather than all of
/// it (every open stream pays for its task's frames).
///
/// Confined to its loop (one pass at a time, in its task or its driver), so its mutable
/// properties opt out of the runtime's dynamic exclusivity checks (`@exclusivity(unchecked)`; the
/// compile-time checks stay): recording a line made six to eight of them, ~90 instructions each
/// (5 % of a 100,000-line job).
final class JobRun {
    let job: Job
    let id: String
    let start: ContinuousClock.Instant
    /// `start`, as the outcomes' stamps are kept.
    let startTime: MonotonicTime
    @exclusivity(unchecked) var summary: JobSummary
    /// Per subtask: ``reportedMark`` once its outcome is recorded (later ones are ignored), else
    /// when it started, for the observer: microseconds after `start` plus one (0: not started, or
    /// no observer). 4 bytes a subtask, one array for both; a job lasts at most an hour
    /// (`limits.max_timeout_ms`), 3.6e9 µs, below the mark.
    @exclusivity(unchecked) private var marks: [UInt32]
    @exclusivity(unchecked) private var recorded = 0
    /// Input order: encoded lines not yet sent, by index, and the next index to send.
    @exclusivity(unchecked) private var waiting: [Int: [UInt8]] = [:]
    @exclusivity(unchecked) private var nextToSend = 0
    /// Input order: bytes of the lines held for an earlier one; they count against the stream's
    /// buffer, so the loop starts nothing new while they fill it.
    @exclusivity(unchecked) private(set) var waitingBytes = 0
    /// Lines ready to hand to the sink: the last piece, after the full ones (``fullPieces``).
    /// Empty, with no buffer, between sends: an open stream waiting for its subtasks holds none
    /// (``reserveOutgoing()`` gives it one for the next lines).
    @exclusivity(unchecked) private var outgoing = JSONWriter(capacity: 0)
    /// Pieces of about ``pieceBytes`` of whole lines, cut from `outgoing` while a send is out:
    /// lines that arrive faster than the client takes them (a burst of timers) are held once, in
    /// pieces, rather than in one buffer that doubles and is then copied whole.
    @exclusivity(unchecked) private var fullPieces: [[UInt8]] = []
    @exclusivity(unchecked) private var lastSend: ContinuousClock.Instant
    @exclusivity(unchecked) private(set) var stopped = false
    @exclusivity(unchecked) private(set) var finished = false
    /// The job's trace records spans: every started subtask gets one (``started(index:)``).
    let recordsSpans: Bool
    private let observer: (any DispatchObserver)?

    /// The job's point in its trace; with a span, started subtasks get spans (``spans``).
    let trace: TraceScope?
    /// Spans of started subtasks without a line yet, by index (only when spans are recorded).
    @exclusivity(unchecked) private var spans: [Int: any RecordingSpan] = [:]
    /// Subtask spans started so far; past ``maxSubtaskSpans`` subtasks get none.
    @exclusivity(unchecked) private var subtaskSpans = 0

    /// Most subtasks of one job that get spans (their attempts too): a span costs about a
    /// kilobyte until exported, and the exporter queues 2048 at most anyway. Later subtasks' upstream
    /// requests still carry the trace, with span IDs of their own that are not exported.
    static let maxSubtaskSpans = 1000

    /// Bytes of lines past which the next line starts a new piece (the stream buffer's default).
    static let pieceBytes = 64 * 1024

    /// Heap per subtask this bookkeeping takes (``marks``), for ``Job/estimatedBytes``.
    static let bytesPerSubtask = MemoryLayout<UInt32>.stride

    private static let reportedMark = UInt32.max

    init(job: Job, id: String, start: ContinuousClock.Instant, observer: (any DispatchObserver)? = nil, trace: TraceScope? = nil) {
        self.job = job
        self.trace = trace
        self.recordsSpans = trace?.span != nil
        self.id = id
        self.start = start
        self.startTime = MonotonicTime(start)
        self.summary = JobSummary(total: job.tasks.count)
        self.marks = Array(repeating: 0, count: job.tasks.count)
        self.lastSend = start
        self.observer = observer
    }

    /// A subtask began (a task or a timer); returns its point in the trace: its own span when
    /// spans are recorded, else the job's.
    func started(index: Int) -> TraceScope? {
        let scope = trace.map { trace in
            guard let jobSpan = trace.span else { return trace }
            guard subtaskSpans < Self.maxSubtaskSpans else { return TraceScope(context: trace.context) }
            subtaskSpans += 1
            let span = jobSpan.child("subtask \(job.tasks.id(at: index))", kind: .internal)
            span.set("fanout.task.id", job.tasks.id(at: index))
            span.set("fanout.task.index", index)
            span.set("fanout.task.kind", job.tasks.kind(at: index))
            spans[index] = span
            return TraceScope(context: span.traceContext, span: span)
        }
        observe(startOf: index)
        return scope
    }

    /// A subtask that is a timer began at `now`: it needs no point in the trace unless it gets a
    /// span of its own, so none is made (a burst of timers copied an optional scope twice each).
    func timerStarted(index: Int, at now: MonotonicTime) {
        if recordsSpans {
            _ = started(index: index)
        } else {
            observe(startOf: index, at: now)
        }
    }

    private func observe(startOf index: Int, at now: MonotonicTime = .now) {
        guard let observer else { return }
        marks[index] = min(UInt32(clamping: now.microseconds(since: startTime) + 1), Self.reportedMark - 1)
        observer.subtaskStarted(kind: job.tasks.kind(at: index))
    }

    /// The client is gone: every subtask without a line ends as `cancelled` in the summary's
    /// `byKind` (so metrics count each subtask once), and what started ends for the observer too.
    func abandon() {
        for (_, span) in spans {
            span.set("fanout.task.status", "cancelled")
            span.end(failure: "the client went away")
        }
        spans.removeAll()
        let now = MonotonicTime.now
        for index in marks.indices where marks[index] != Self.reportedMark {
            let started = marks[index]
            marks[index] = Self.reportedMark
            let kind = job.tasks.kind(at: index)
            summary.countAbandoned(kind: kind)
            if let observer, started != 0 {
                observer.subtaskEnded(kind: kind, seconds: Self.seconds(from: started, to: now, since: startTime))
            }
        }
    }

    /// Seconds from a subtask's start (its mark: microseconds after `start`, plus one) to `end`.
    private static func seconds(from mark: UInt32, to end: MonotonicTime, since start: MonotonicTime) -> Double {
        Double(end.microseconds(since: start) - (Int64(mark) - 1)) / 1e6
    }

    func record(index: Int, outcome: SubtaskOutcome, at: MonotonicTime) {
        let started = marks[index]
        guard started != Self.reportedMark else { return }
        marks[index] = Self.reportedMark
        reserveOutgoing()
        recorded += 1
        let kind = job.tasks.kind(at: index)
        let taskID = job.tasks.ownID(at: index)
        if let observer, started != 0 {
            observer.subtaskEnded(kind: kind, seconds: Self.seconds(from: started, to: at, since: startTime))
        }
        if !spans.isEmpty, let span = spans.removeValue(forKey: index) {
            span.set("fanout.task.status", outcome.status.rawValue)
            span.end(failure: outcome.status == .ok ? nil : outcome.errorMessage ?? outcome.status.rawValue)
        }
        let elapsed = at.milliseconds(since: startTime)
        summary.count(outcome.status, kind: kind)
        switch job.order {
        case .completion:
            LineEncoder.result(
                id: taskID, index: index, outcome: outcome, elapsedMilliseconds: elapsed,
                done: summary.done, total: summary.total, into: &outgoing
            )
        case .input:
            var line = JSONWriter(capacity: 128)
            // In input order the n-th line sent is subtask n's, so `done` is index + 1.
            LineEncoder.result(
                id: taskID, index: index, outcome: outcome, elapsedMilliseconds: elapsed,
                done: index + 1, total: summary.total, into: &line
            )
            if index == nextToSend {
                outgoing.append(line)
                nextToSend += 1
            } else {
                waiting[index] = line.bytes
                waitingBytes += line.count
            }
            while let ready = waiting.removeValue(forKey: nextToSend) {
                waitingBytes -= ready.count
                outgoing.append(ready)
                nextToSend += 1
            }
        }
        if !stopped {
            if job.failFast, outcome.status != .ok {
                stop(with: .cancelled("cancelled by fail_fast: task \"\(taskID ?? String(index))\" ended \(outcome.status.rawValue)"))
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
        let now = MonotonicTime.now
        for index in marks.indices where marks[index] != Self.reportedMark {
            record(index: index, outcome: outcome, at: now)
        }
    }

    func heartbeatIfIdle(every interval: Duration) {
        let now = ContinuousClock.now
        guard !finished, now - lastSend >= interval, !hasOutgoing else { return }
        reserveOutgoing()
        LineEncoder.heartbeat(
            done: summary.done, total: summary.total, elapsedMilliseconds: (now - start).milliseconds, into: &outgoing
        )
    }

    /// Takes the lines ready to send, in pieces of whole lines, counting them as sent.
    func takeOutgoing() -> [[UInt8]] {
        summary.bytes += outgoingCount
        var pieces = fullPieces
        fullPieces = []
        // The writer keeps no buffer: a stream waiting for its subtasks holds none.
        let last = outgoing.take()
        if !last.isEmpty { pieces.append(last) }
        return pieces
    }

    /// Takes the lines ready to send in one buffer, counting them as sent: a job answered at once,
    /// whose lines are few, without an array of pieces.
    func takeOutgoingJoined() -> [UInt8] {
        guard fullPieces.isEmpty else { return Array(takeOutgoing().joined()) }
        let bytes = outgoing.take()
        summary.bytes += bytes.count
        return bytes
    }

    /// Before a line: one allocation for the next batch of lines instead of growing from a few
    /// bytes, or, once the lines make a piece, a new piece in the same buffer.
    @inline(__always) private func reserveOutgoing() {
        if outgoing.isEmpty {
            outgoing.reserve(256)
        } else if outgoing.count >= Self.pieceBytes {
            cutPiece()
        }
    }

    @inline(never) private func cutPiece() {
        fullPieces.append(outgoing.bytes)
        outgoing.removeAll()
    }

    /// Lines are waiting to be sent.
    var hasOutgoing: Bool { !outgoing.isEmpty || !fullPieces.isEmpty }
    /// Bytes of the lines ready to send (the pieces are few: a send takes them all).
    var outgoingCount: Int { fullPieces.reduce(outgoing.count) { $0 + $1.count } }

    /// When the next heartbeat is due if nothing is sent before.
    func nextHeartbeat(every interval: Duration) -> ContinuousClock.Instant {
        max(lastSend + interval, ContinuousClock.now + .milliseconds(1))
    }

    /// The client took the last lines sent.
    func sent() {
        lastSend = .now
    }
}
