import FanoutCore
public import FanoutJobs
import FanoutSync
public import Logging
import PostgresNIO

/// The shared store (`jobs.store: "postgres://…"`): every replica on one database can answer the
/// reads, cancels and idempotent retries of any job, and a job's lines outlive its replica.
///
/// - Appends: one statement per flush (all the batch's lines through `unnest`, the job's counts,
///   and a NOTIFY), idempotent (`on conflict do nothing`) so a flush whose answer was lost is sent
///   again safely; while the database cannot be reached the append is retried with backoff and
///   the job waits (no line is lost).
/// - Readers: by cursor on the `(job, seq)` primary key, woken through one LISTEN connection per
///   replica (``ReaderWakeups``) with a fallback poll of ``pollInterval``.
/// - Leases: this replica renews the lease of the jobs it runs every ``tick``; a job whose lease
///   lapsed is ended as `interrupted` by whichever replica locks its row first (``interrupt(_:)``).
/// - Cancel: asked on any replica, it sets `cancel_requested` and NOTIFYs; the running replica
///   calls the job's `onCancel` (from the notification, or at its next lease tick at the latest).
///
/// `jobs.max_retained_bytes` does not bound this store: the database is sized instead, and
/// retention (`jobs.retention_s`) frees it.
public final class PostgresJobStore: JobStore {
    public struct Settings: Sendable {
        public var url: PostgresURL
        public var poolSize: Int
        public var leaseSeconds: Double
        public var retentionSeconds: Double
        public init(url: PostgresURL, poolSize: Int = 10, leaseSeconds: Double = 15, retentionSeconds: Double = 900) {
            self.url = url
            self.poolSize = poolSize
            self.leaseSeconds = leaseSeconds
            self.retentionSeconds = retentionSeconds
        }
    }

    public let settings: Settings
    /// This process's name in `lease_owner`.
    public let replica: String
    let schema: String
    let channel: String
    let client: PostgresClient
    let logger: Logger
    let wakeups = ReaderWakeups()
    /// How long one statement may take before the store counts as unavailable.
    static let statementLimit: Duration = .seconds(5)
    /// A reader waiting for lines queries again after this long without a notification.
    static let pollInterval: Duration = .seconds(1)
    var tick: Duration { .milliseconds(Int(min(1.0, settings.leaseSeconds / 3) * 1000)) }

    private struct Local {
        /// The jobs this replica runs: their `onCancel`, and whether it was called.
        var running: [String: (onCancel: @Sendable () -> Void, cancelled: Bool)] = [:]
        var available = false
        var neverWait = false
        var usage = JobStoreUsage()
        var background: Task<Void, Never>?
    }

    private let local = Locked(Local())

    public init(settings: Settings, logger: Logger) throws {
        self.settings = settings
        self.schema = settings.url.schema
        self.channel = "fanout_\(settings.url.schema)"
        self.logger = logger
        var generator = SystemRandomNumberGenerator()
        self.replica = String(generator.next() as UInt64, radix: 16)
        // postgres-nio logs every failed connection attempt at info; ours says it once.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(configuration: try settings.url.clientConfiguration(poolSize: settings.poolSize), backgroundLogger: background)
    }

    // MARK: Lifecycle

    /// Starts the pool, migrates the schema and starts the listener and the lease loop. Throws
    /// (and stops again) when the database cannot be reached within `limit`.
    public func start(limit: Duration = .seconds(10)) async throws {
        let client = self.client
        let background = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await client.run() }
                group.addTask { await self.listen() }
                group.addTask { await self.maintain() }
            }
        }
        local.withLock { $0.background = background }
        // Let client.run() begin before the first lease (postgres-nio warns otherwise).
        await Task.yield()
        do {
            try await Self.deadline(limit) {
                try await PostgresSchema.migrate(client, schema: self.schema, logger: self.logger)
            }
            local.withLock { $0.available = true }
        } catch {
            await stop()
            throw error
        }
    }

    /// Stops the listener, the lease loop and the pool. A write still being retried gives up
    /// within 10 s (as after ``stopWaitingForSpace()``).
    public func stop() async {
        let background = local.withLock { state in
            state.neverWait = true
            defer { state.background = nil }
            return state.background
        }
        background?.cancel()
        await background?.value
    }

    public var isAvailable: Bool { local.withLock { $0.available } }

    public func stopWaitingForSpace() {
        local.withLock { $0.neverWait = true }
    }

    /// The whole store's figures (all replicas), refreshed every few lease ticks.
    public func usage() -> JobStoreUsage { local.withLock { $0.usage } }

    func setUsage(_ usage: JobStoreUsage) { local.withLock { $0.usage = usage } }

    // MARK: Helpers

    /// The owner-scoped key (an owner is hex, so ":" cannot be part of it).
    static func scoped(_ key: String, owner: String?) -> String { (owner ?? "") + ":" + key }

    static func code(_ event: RetainedLine.Event) -> Int {
        switch event {
        case .result: 0
        case .heartbeat: 1
        case .end: 2
        }
    }

    static func event(_ code: Int) -> RetainedLine.Event { code == 0 ? .result : code == 2 ? .end : .heartbeat }

    static func code(_ status: SubtaskOutcome.Status) -> Int {
        switch status {
        case .ok: 0
        case .error: 1
        case .timeout: 2
        case .cancelled: 3
        }
    }

    static func status(_ code: Int) -> SubtaskOutcome.Status? {
        [SubtaskOutcome.Status.ok, .error, .timeout, .cancelled].indices.contains(code) ? [SubtaskOutcome.Status.ok, .error, .timeout, .cancelled][code] : nil
    }

    /// A batch of lines as the arrays that `unnest(seq, event, status, idx, body)` turns back into
    /// rows (status and index -1 for none): one statement stores the whole batch.
    struct LineColumns {
        let seqs: [Int]
        let events: [Int]
        let statuses: [Int]
        let indexes: [Int]
        let bodies: [ByteBuffer]

        init(_ lines: [RetainedLine]) {
            seqs = lines.map(\.seq)
            events = lines.map { PostgresJobStore.code($0.event) }
            statuses = lines.map { $0.status.map(PostgresJobStore.code) ?? -1 }
            indexes = lines.map { $0.index ?? -1 }
            bodies = lines.map { ByteBuffer(bytes: $0.bytes) }
        }
    }

    /// Whether a statement's `returning` gave any row (its one column a string: a key or an id).
    static func returnedRow(_ rows: PostgresRowSequence) async throws -> Bool {
        var any = false
        for try await _ in rows.decode(String.self) { any = true }
        return any
    }

    func cancelLocally(_ id: String) {
        let onCancel = local.withLock { state -> (@Sendable () -> Void)? in
            guard let entry = state.running[id], !entry.cancelled else { return nil }
            state.running[id]!.cancelled = true
            return entry.onCancel
        }
        onCancel?()
    }

    var runningHere: [String] { local.withLock { Array($0.running.keys) } }

    /// Notes a job this replica runs, with its `onCancel`.
    func runHere(_ id: String, onCancel: @escaping @Sendable () -> Void) { local.withLock { $0.running[id] = (onCancel, false) } }

    /// Forgets a job that ended here.
    func endedHere(_ id: String) { _ = local.withLock { $0.running.removeValue(forKey: id) } }

    /// Runs one statement (and reads its rows) within ``statementLimit``, noting whether the
    /// database answered.
    func query<Value: Sendable>(
        _ run: @escaping @Sendable (PostgresClient, String) async throws -> PostgresRowSequence,
        decode: @escaping @Sendable (PostgresRowSequence) async throws -> Value
    ) async throws -> Value {
        let client = self.client
        let schema = self.schema
        do {
            let value = try await Self.deadline(Self.statementLimit) { try await decode(try await run(client, schema)) }
            local.withLock { $0.available = true }
            return value
        } catch let error as PSQLError where error.code == .server {
            local.withLock { $0.available = true }
            throw error
        } catch {
            if !Task.isCancelled {
                let wasAvailable = local.withLock { state in
                    defer { state.available = false }
                    return state.available
                }
                if wasAvailable { logger.error("job store unreachable", metadata: ["error": "\(String(reflecting: error))"]) }
            }
            throw error
        }
    }

    /// Writes that must happen (a job's lines): retried with backoff until they do, in a task of
    /// their own so that the job's cancellation (the drain) cannot stop them. After
    /// ``stopWaitingForSpace()`` (shutdown) it gives up after 10 s: the lease then lapses and
    /// another replica ends the job as `interrupted`.
    func persist(_ what: String, _ write: @escaping @Sendable (PostgresClient, String, String, Double) async throws -> PostgresRowSequence) async {
        let replica = self.replica
        let lease = settings.leaseSeconds
        let attempt = Task {
            var backoff = 0.05
            var givingUpAt: ContinuousClock.Instant?
            while true {
                do {
                    try await self.query { client, schema in try await write(client, schema, replica, lease) } decode: { rows in
                        for try await _ in rows {}
                    }
                    return
                } catch {
                    if self.local.withLock({ $0.neverWait }) {
                        let at = givingUpAt ?? .now + .seconds(10)
                        givingUpAt = at
                        if ContinuousClock.now >= at {
                            self.logger.error("job store write abandoned at shutdown", metadata: ["what": "\(what)", "error": "\(error)"])
                            return
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
                    backoff = min(backoff * 2, 2)
                }
            }
        }
        await attempt.value
    }

    /// `operation`, or ``StoreTimeout`` after `limit`, or `CancellationError` when the caller is
    /// cancelled. The operation runs in a task of its own and is cancelled, not awaited, when the
    /// limit passes first: a statement blocked in the database (a lock, a dead peer) does not
    /// hold the caller.
    static func deadline<Value: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let race = Race<Value>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                race.begin(continuation, work: Task {
                    do { race.finish(.success(try await operation())) } catch { race.finish(.failure(error)) }
                }, timer: Task {
                    try await Task.sleep(for: limit)
                    race.finish(.failure(StoreTimeout()))
                })
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// The first of operation, timer and cancellation to finish resumes the caller and cancels the rest.
    final class Race<Value: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<Value, any Error>?
            var tasks: [Task<Void, any Error>] = []
            var result: Result<Value, any Error>?
        }

        private let state = Locked(State())

        func begin(_ continuation: CheckedContinuation<Value, any Error>, work: Task<Void, any Error>, timer: Task<Void, any Error>) {
            let early = state.withLock { state -> Result<Value, any Error>? in
                state.tasks = [work, timer]
                guard let result = state.result else {
                    state.continuation = continuation
                    return nil
                }
                return result
            }
            if let early {
                work.cancel()
                timer.cancel()
                continuation.resume(with: early)
            }
        }

        func finish(_ result: Result<Value, any Error>) {
            let (continuation, tasks) = state.withLock { state -> (CheckedContinuation<Value, any Error>?, [Task<Void, any Error>]) in
                guard state.result == nil else { return (nil, []) }
                state.result = result
                defer { state.continuation = nil }
                return (state.continuation, state.tasks)
            }
            for task in tasks { task.cancel() }
            continuation?.resume(with: result)
        }
    }

    struct StoreTimeout: Error, CustomStringConvertible {
        var description: String { "PostgreSQL did not answer in time (is it running and reachable, and is the URL right?)" }
    }
}
