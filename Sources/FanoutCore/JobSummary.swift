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
    /// Result lines by kind and status, for metrics.
    public var byKind: [String: [SubtaskOutcome.Status: Int]] = [:]

    public init(total: Int) { self.total = total }

    /// Results delivered so far.
    public var done: Int { ok + error + timeout + cancelled }

    mutating func count(_ status: SubtaskOutcome.Status, kind: String) {
        switch status {
        case .ok: ok += 1
        case .error: error += 1
        case .timeout: timeout += 1
        case .cancelled: cancelled += 1
        }
        byKind[kind, default: [:]][status, default: 0] += 1
    }
}

/// Where a job's lines go: the response stream. `send` waits while the client is slow to read.
public protocol LineSink: Sendable {
    /// - Throws: when the client is gone; the dispatcher then cancels the rest of the job.
    func send(_ bytes: [UInt8]) async throws
}
