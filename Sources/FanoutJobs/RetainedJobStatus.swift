public import FanoutCore

public enum RetainedJobState: String, Sendable {
    case running
    /// The end line is stored.
    case finished
    /// The process running it stopped before its end (shared stores; see SPEC).
    case interrupted
}

/// The status document of SPEC "Jobs that outlive their connection".
public struct RetainedJobStatus: Sendable, Equatable {
    public var job: String
    public var state: RetainedJobState
    public var total: Int
    public var ok = 0
    public var error = 0
    public var timeout = 0
    public var cancelled = 0
    /// Wall-clock seconds since 1970.
    public var createdAt: Double
    public var finishedAt: Double?
    public var expiresAt: Double?
    public var lastSeq = 0

    public init(job: String, state: RetainedJobState, total: Int, createdAt: Double) {
        self.job = job
        self.state = state
        self.total = total
        self.createdAt = createdAt
    }

    public var done: Int { ok + error + timeout + cancelled }

    public mutating func count(_ status: SubtaskOutcome.Status) {
        switch status {
        case .ok: ok += 1
        case .error: error += 1
        case .timeout: timeout += 1
        case .cancelled: cancelled += 1
        }
    }

    /// `{"job","state","total","done","ok","error","timeout","cancelled","created_at","finished_at","expires_at","last_seq"}`;
    /// times as RFC 3339 UTC, null while unknown.
    public func write(into writer: inout JSONWriter) {
        writer.raw("{\"job\":")
        writer.write(string: job)
        writer.raw(",\"state\":")
        writer.write(string: state.rawValue)
        writer.raw(",\"total\":")
        writer.write(int: total)
        writer.raw(",\"done\":")
        writer.write(int: done)
        writer.raw(",\"ok\":")
        writer.write(int: ok)
        writer.raw(",\"error\":")
        writer.write(int: error)
        writer.raw(",\"timeout\":")
        writer.write(int: timeout)
        writer.raw(",\"cancelled\":")
        writer.write(int: cancelled)
        writer.raw(",\"created_at\":")
        writer.write(string: WallClock.rfc3339(createdAt))
        writer.raw(",\"finished_at\":")
        if let finishedAt { writer.write(string: WallClock.rfc3339(finishedAt)) } else { writer.raw("null") }
        writer.raw(",\"expires_at\":")
        if let expiresAt { writer.write(string: WallClock.rfc3339(expiresAt)) } else { writer.raw("null") }
        writer.raw(",\"last_seq\":")
        writer.write(int: lastSeq)
        writer.raw("}")
    }
}
