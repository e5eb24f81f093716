public import FanoutCore

/// Where retained jobs keep their lines and state (SPEC "Jobs that outlive their connection").
///
/// The dispatcher never sees a store: it writes to a ``SequencedSink``, which numbers the lines and
/// appends them here; every reader (the live POST stream included) reads from here with its own
/// cursor, so all readers see one sequence. A shared store (PostgreSQL) implements the same
/// protocol; `onCancel` of ``NewRetainedJob`` is then called by whichever replica runs the job.
///
/// `owner` is the hash of the bearer token (nil with auth off): a job with an owner is invisible
/// (reads as unknown) to any other owner.
public protocol JobStore: Sendable {
    /// Registers a running job (and binds its idempotency key if it has one).
    func create(_ job: NewRetainedJob) async

    /// Appends the job's next lines (contiguous `seq`), waiting while the store is full: that wait
    /// is the dispatcher's backpressure. An end line ends the job and starts its retention clock.
    func append(_ id: String, lines: [RetainedLine]) async

    /// Lines with `seq > after` (at most `maxLines`), waiting until there is at least one or the job
    /// has ended. Throws ``JobStoreError/notFound`` for an unknown, invisible, deleted or expired job,
    /// and `CancellationError` when the calling task is cancelled while waiting.
    func read(_ id: String, owner: String?, after: Int, maxLines: Int) async throws -> JobRead

    func status(_ id: String, owner: String?) async -> RetainedJobStatus?

    /// The owner's jobs, newest first, optionally only those in `state`.
    func list(owner: String?, state: RetainedJobState?) async -> [RetainedJobStatus]

    /// Asks the job to end: calls its `onCancel` if it is running. Returns its status, nil if unknown.
    func requestCancel(_ id: String, owner: String?) async -> RetainedJobStatus?

    /// Waits until the job is no longer running (or `limit` passes); returns its status.
    func waitUntilEnded(_ id: String, owner: String?, limit: Duration) async -> RetainedJobStatus?

    /// Forgets a job that has ended.
    func delete(_ id: String, owner: String?) async -> DeleteOutcome

    /// Drops jobs whose retention has passed; returns how many.
    func expire() async -> Int

    /// Reserves an idempotency key for a new job, or says why not (see ``IdempotencyClaim``).
    func claim(key: String, fingerprint: String, owner: String?) async -> IdempotencyClaim

    /// Gives up a key reserved by ``claim(key:fingerprint:owner:)`` whose job was never created.
    func releaseClaim(key: String, owner: String?) async

    /// From now on appends never wait (shutdown: the drain's cancelled lines and end lines must
    /// get in so readers see complete jobs).
    func stopWaitingForSpace()

    /// This process's view of the store, for metrics.
    func usage() -> JobStoreUsage

    /// Whether the store can be reached now. A shared store that lost its database says false:
    /// new retained jobs are then refused with 503 (plain jobs need no store).
    var isAvailable: Bool { get }
}

extension JobStore {
    public var isAvailable: Bool { true }
}

/// A job about to run, as the store first records it.
public struct NewRetainedJob: Sendable {
    public var id: String
    public var owner: String?
    public var idempotencyKey: String?
    public var total: Int
    /// Each subtask's `id`, by index: a shared store writes the `interrupted` lines from them when
    /// the replica running the job dies (empty: the store does not need them).
    public var taskIDs: [String]
    /// Wall-clock seconds since 1970.
    public var createdAt: Double
    /// Ends the running job (its remaining subtasks become `cancelled` lines).
    public var onCancel: @Sendable () -> Void

    public init(id: String, owner: String?, idempotencyKey: String?, total: Int, taskIDs: [String] = [], createdAt: Double = WallClock.now, onCancel: @escaping @Sendable () -> Void) {
        self.id = id
        self.owner = owner
        self.idempotencyKey = idempotencyKey
        self.total = total
        self.taskIDs = taskIDs
        self.createdAt = createdAt
        self.onCancel = onCancel
    }
}

/// One numbered NDJSON line of a retained job.
public struct RetainedLine: Sendable, Equatable {
    public enum Event: String, Sendable {
        case result, heartbeat, end
    }

    public var seq: Int
    public var event: Event
    /// A result line's status (for the status document's counts).
    public var status: SubtaskOutcome.Status?
    /// A result line's subtask index.
    public var index: Int?
    /// The line as sent: `{"seq":N,…}\n`.
    public var bytes: [UInt8]

    public init(seq: Int, event: Event, status: SubtaskOutcome.Status?, index: Int? = nil, bytes: [UInt8]) {
        self.seq = seq
        self.event = event
        self.status = status
        self.index = index
        self.bytes = bytes
    }

    /// The store's estimate of a line's memory besides its bytes (array header, allocation, fields).
    public static let overheadBytes = 64
    public var retainedBytes: Int { bytes.count + Self.overheadBytes }
}

/// What a read returned.
public struct JobRead: Sendable {
    public var lines: [RetainedLine]
    /// The job has ended and `lines` reach its last line: nothing more will come.
    public var ended: Bool

    public init(lines: [RetainedLine], ended: Bool) {
        self.lines = lines
        self.ended = ended
    }
}

public enum JobStoreError: Error, Sendable {
    case notFound
    /// A shared store cannot reach its database.
    case unavailable
}

public enum DeleteOutcome: Sendable, Equatable {
    case deleted
    case running
    case notFound
}

/// The answer to an `Idempotency-Key`.
public enum IdempotencyClaim: Sendable, Equatable {
    /// The key is new: reserved for the caller, who creates the job (or releases the key).
    case claimed
    /// The key names a retained job submitted with the same fingerprint: that job, not a new one.
    case existing(jobID: String)
    /// The key was used with a different job.
    case mismatch
    /// The first request with this key is still being admitted.
    case inProgress
    /// A shared store cannot reach its database: nothing was decided.
    case unavailable
}

/// Jobs and bytes held, readers waiting.
public struct JobStoreUsage: Sendable, Equatable {
    public var jobs = 0
    public var running = 0
    public var bytes = 0
    public var lines = 0
    public init() {}
}
