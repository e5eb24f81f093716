/// What happened to a job: the end line's counts, plus what the service logs and measures.
public struct JobSummary: Sendable, Equatable {
    public var total: Int
    public var ok = 0
    public var error = 0
    public var timeout = 0
    public var cancelled = 0
    public var elapsedMilliseconds = 0.0
    /// Bytes of NDJSON handed to the stream.
    public var bytes = 0
    /// The client went away before the end line: the rest of the job was cancelled.
    public var clientGone = false
    /// Subtask ends by kind and status, for metrics (a job has one or two kinds: a short list).
    /// Every subtask is in it once the job ends: those a client hang-up left unreported as
    /// `cancelled` (``count(_:kind:)`` is what the lines say; these are not in the other counts).
    public var byKind: [KindCounts] = []

    public struct KindCounts: Sendable, Equatable {
        public var kind: String
        public private(set) var ok = 0, error = 0, timeout = 0, cancelled = 0

        mutating func count(_ status: SubtaskOutcome.Status) {
            switch status {
            case .ok: ok += 1
            case .error: error += 1
            case .timeout: timeout += 1
            case .cancelled: cancelled += 1
            }
        }
    }

    public init(total: Int) { self.total = total }

    /// Results delivered so far.
    public var done: Int { ok + error + timeout + cancelled }

    /// A subtask the client's hang-up left without a line: `cancelled` in ``byKind`` only.
    mutating func countAbandoned(kind: String) {
        countByKind(.cancelled, kind: kind)
    }

    mutating func count(_ status: SubtaskOutcome.Status, kind: String) {
        switch status {
        case .ok: ok += 1
        case .error: error += 1
        case .timeout: timeout += 1
        case .cancelled: cancelled += 1
        }
        countByKind(status, kind: kind)
    }

    private mutating func countByKind(_ status: SubtaskOutcome.Status, kind: String) {
        if let index = byKind.firstIndex(where: { $0.kind == kind }) {
            byKind[index].count(status)
        } else {
            var counts = KindCounts(kind: kind)
            counts.count(status)
            byKind.append(counts)
        }
    }
}

/// Where a job's lines go: the response stream, or a job store. `send` waits while the client is
/// slow to read (or the store is slow to write).
public protocol LineSink: Sendable {
    /// - Throws: when the client is gone; the dispatcher then cancels the rest of the job.
    func send(_ bytes: [UInt8]) async throws
}

/// A sink that queues lines at once and calls back when it has room for more (a response stream):
/// the dispatcher then needs no task per send, nor a task group for them.
public protocol NonBlockingLineSink: LineSink {
    /// Queues `pieces` (whole lines each, in order); calls `ready` once: `true` when the sink has
    /// room for more (at once, on the calling thread, if it has now), `false` when the client is gone.
    func offer(_ pieces: [[UInt8]], ready: @escaping @Sendable (Bool) -> Void)
}

extension NonBlockingLineSink {
    /// Offers `pieces`; the sink's answer reaches the dispatcher's loop as ``DispatchEvent/sent(_:)``.
    func offer(_ pieces: [[UInt8]], reportingTo events: JobControl) {
        offer(pieces) { events.post(.sent($0)) }
    }
}
